"""What the side-by-side benchmarks share: the question pool, one child process per side, the
peak memory of a process, the machine's description, the French table and the JSON file.

Each benchmark measures this project and the plain LangChain pipeline that ``assistant eval
--baseline`` measures (``assistant.evaluation.runner.BaselinePipeline``), each in its own child
process, started one after the other: a side's peak memory (VmHWM) is then its own, and the two
never compete for the 2 cores.

Deliberately left out: any threshold or assertion (benchmarks print and record, they never fail
on a figure) and any second baseline.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from assistant.evaluation.dataset import Case, load_cases  # noqa: E402
from assistant.evaluation.metrics import percentile  # noqa: E402

SIDES = ("project", "baseline")
SIDE_NAMES = {"project": "projet", "baseline": "référence"}
POOL = ("evals/qa.jsonl", "evals/blind.jsonl", "evals/heldout.jsonl")
RESULTS_DIR = ROOT / "runs" / "bench"


def question_pool(limit: int | None = None) -> list[Case]:
    """Every question of the three sets (development, blind, held-out), in file order."""
    cases = [case for name in POOL for case in load_cases(ROOT / name)]
    return cases[:limit] if limit else cases


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (VmHWM), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(memory_gib, 1),
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def run_side(script: Path, side: str, arguments: Sequence[str]) -> dict[str, Any]:
    """Run ``script --side side`` in a child process; what it wrote to its result file."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        env = os.environ | {"PYTHONPATH": str(ROOT)}
        command = [sys.executable, str(script), "--side", side, "--result", str(result), *arguments]
        print(f"— {SIDE_NAMES[side]} (processus à part) —", flush=True)
        started = time.perf_counter()
        subprocess.run(command, check=True, env=env, cwd=ROOT)
        data: dict[str, Any] = json.loads(result.read_text(encoding="utf-8"))
        data["process_s"] = round(time.perf_counter() - started, 2)
        return data


def write_result(data: dict[str, Any], path: Path) -> None:
    """The side's figures, for the parent process to read."""
    data["peak_rss_mb"] = round(peak_rss_mb(), 1)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")


def latency_summary(values_ms: Sequence[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(values_ms, 50), 1),
        "p95_ms": round(percentile(values_ms, 95), 1),
        "max_ms": round(max(values_ms, default=0.0), 1),
        "count": len(values_ms),
    }


def french(value: float | None, digits: int = 1) -> str:
    if value is None or value != value:  # None or NaN
        return "—"
    return f"{value:,.{digits}f}".replace(",", " ").replace(".", ",")


def ratio(project: float | None, baseline: float | None) -> float | None:
    """project / baseline: below 1, the project is faster (or lighter); above 1, slower."""
    if project is None or baseline is None or not baseline or project != project:
        return None
    return project / baseline


def table(rows: Sequence[tuple[str, float | None, float | None, int]], unit_header: str = "") -> str:
    """A French plain-text table: measure, project, reference, ratio project / reference."""
    header = ("mesure" + (f" ({unit_header})" if unit_header else ""), "projet", "référence", "rapport")
    cells = [
        (
            name,
            french(p, digits),
            french(b, digits),
            "—" if (r := ratio(p, b)) is None else f"× {french(r, 2)}",
        )
        for name, p, b, digits in rows
    ]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(4)]

    def line(row: Sequence[str]) -> str:
        padded = [c.rjust(w) for c, w in zip(row, widths, strict=True)]
        return "  ".join([row[0].ljust(widths[0]), *padded[1:]])

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(row) for row in cells)])


def save(name: str, data: dict[str, Any], out: Path | None) -> Path:
    """Write the benchmark's JSON (``runs/bench/<name>.json`` unless ``out`` says otherwise)."""
    path = out or RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def header(command: str) -> dict[str, Any]:
    """Date, machine, command and load average at the start of a benchmark (printed too)."""
    info = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command,
        "machine": machine(),
        "load_average_start": load_average(),
    }
    m = info["machine"]
    load = ", ".join(french(x, 2) for x in info["load_average_start"])
    print(
        f"{info['date']} — {m['cores']} cœurs ({m['cpu']}), {french(m['memory_gib'])} Gio, "
        f"Python {m['python']}\nCommande : {command}\n"
        f"Charge de la machine au départ (1, 5, 15 min) : {load}",
        flush=True,
    )
    return info
