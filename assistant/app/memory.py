"""Keep the web app's memory from creeping up under steady use: large buffers go back to the system.

Each question runs the embedding model in one of the server's worker threads, and glibc gives
those threads their own heaps. Its default « dynamic mmap threshold » rises to the size of the
largest buffer freed so far, so after the first few questions the model's intermediate tensors
(up to a few MB each) are carved out of those heaps instead of being mapped; freed, they leave
holes that the next, differently sized question cannot reuse, and the heaps only grow.
Fixing the threshold at glibc's own starting value (128 KiB) keeps large buffers mapped: each is
returned to the system when freed. Measured with ``scripts/load_test.py --soak`` (10
conversations asking without pause; 20 kept): memory held free by the allocator 40 → 121 MB over
6.5 min before, 10 → 19 MB after. With the default 200 kept, over 1 → 10 min: anonymous memory
+85 MB before, +43 MB after, response times within the noise of a shared machine.

Deliberately left out: other allocators (jemalloc, tcmalloc need a preload at start-up) and
periodic ``malloc_trim`` (it gave back 15 to 40 MB a minute in the same test, and the heaps grew
again). Does nothing outside glibc, or when the operator sets ``MALLOC_MMAP_THRESHOLD_``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Mapping

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # mallopt parameter, from glibc's <malloc.h>
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's default starting value, held fixed from now on
OPERATOR_VARIABLE = "MALLOC_MMAP_THRESHOLD_"


def keep_large_buffers_mapped(environ: Mapping[str, str]) -> bool:
    """Fix glibc's mmap threshold for this process; True when it was set here."""
    if OPERATOR_VARIABLE in environ:
        return False  # the operator's own value, read by glibc at start-up, stays
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to set
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    if not applied:
        log.warning("mallopt(M_MMAP_THRESHOLD) refused; memory may creep up under steady use")
    return applied
