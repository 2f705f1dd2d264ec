"""The web app's allocator setting: large buffers go back to the system once they are freed.

Each case runs in its own interpreter: the setting is per process and cannot be undone.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.app.memory import keep_large_buffers_mapped

ROOT = Path(__file__).resolve().parents[1]

# Three 8 MB buffers allocated and freed one after the other, as a question's tensors are; then
# how much the allocator keeps, free, in its heaps (glibc's mallinfo2).
PROBE = """
import ctypes, os, sys
from assistant.app.memory import keep_large_buffers_mapped

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "set":
    assert keep_large_buffers_mapped(os.environ)
for _ in range(3):
    buffer = bytearray(8 << 20)
    del buffer
print(libc.mallinfo2().fordblks)
"""

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")


def _free_bytes_kept(mode: str) -> int:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return int(done.stdout.strip())


@glibc_only
def test_freed_large_buffers_stay_in_the_heap_by_default_and_go_back_once_set() -> None:
    # Without the setting, glibc raises its threshold after the first free and keeps the next
    # buffers in the heap: the 8 MB stay held, free, by the process.
    assert _free_bytes_kept("default") >= 8 << 20
    # With it, every buffer is mapped on its own and unmapped when freed.
    assert _free_bytes_kept("set") < 1 << 20


def test_the_operators_own_threshold_is_left_alone() -> None:
    assert keep_large_buffers_mapped({"MALLOC_MMAP_THRESHOLD_": "65536"}) is False
