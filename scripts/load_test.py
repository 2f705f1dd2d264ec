"""Load test of the web app: simultaneous conversations through its API, on loopback only.

Starts ``app.py`` itself (as ``tests/test_app_api.py::start_app`` does) on 127.0.0.1 and a free
port, on copies of the corpus and index folders, then drives N simultaneous conversations per
level: each is one ``gradio_client`` session (one thread) asking 2 or 3 questions of
``evals/qa.jsonl`` in « Réponse » mode, with a pause between questions (reading the answer).
For each level it prints the latency to the verbatim answer and to the full answer (p50/p95),
the errors, the questions turned away and whether each of those was told so in French.
``--soak`` then keeps ``--soak-users`` conversations going and prints the app's memory, threads
and open files every 30 s.

    python scripts/load_test.py                       # extractive, levels 10, 25, 50, 100
    python scripts/load_test.py --llm local --levels 10,25
    python scripts/load_test.py --levels 10 --soak 600

Bounded: every request has a timeout (``--timeout``), every level a deadline, and the app
process is stopped on exit (Ctrl+C included). The load average and the busiest other processes
are printed: on 2 cores, anything else running changes the figures. Output in French.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import json
import math
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.settings import Settings  # noqa: E402

TURNED_AWAY = "File d'attente pleine"
GRADIO_FULL = ("Queue is full", "currently busy")
PENDING = "Recherche des passages dans le dossier"  # the placeholder before the verbatim answer
MODEL_BUSY = "le modèle de langage est occupé"
POLL_S = 0.05


# -- the app under test ---------------------------------------------------------------------------
@dataclass
class App:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a child process, killing it if it has not ended within 20 s."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_app(
    args: argparse.Namespace, settings: Settings, extra_env: dict[str, str] | None = None
) -> Iterator[App]:
    """``python app.py`` on copies of the corpus and index, on loopback, stopped on exit;
    ``extra_env`` is applied last (a Chroma server, a model server)."""
    root = Path(tempfile.mkdtemp(prefix="assistant-load-"))
    corpus_dir, index_dir = root / "corpus", root / "index"
    shutil.copytree(settings.corpus_dir, corpus_dir)
    if Path(settings.index_dir).is_dir():
        shutil.copytree(settings.index_dir, index_dir, ignore=shutil.ignore_patterns(".lock"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRADIO_", "CHROMA_"))}
    env |= {
        "ASSISTANT_CORPUS_DIR": str(corpus_dir),
        "ASSISTANT_INDEX_DIR": str(index_dir),
        "ASSISTANT_FEEDBACK_PATH": str(root / "feedback" / "feedback.jsonl"),
        "ASSISTANT_LOG_PATH": str(root / "logs" / "assistant.log"),
        "ASSISTANT_APP_TEMP_DIR": str(root / "gradio"),
        "ASSISTANT_LLM": args.llm,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "ANONYMIZED_TELEMETRY": "False",
    }
    for option, name in (
        ("embedder", "ASSISTANT_EMBEDDER"),
        ("concurrency", "ASSISTANT_CONCURRENCY"),
        ("queue_size", "ASSISTANT_QUEUE_SIZE"),
        ("llm_queue", "ASSISTANT_LLM_QUEUE"),
    ):
        if getattr(args, option) is not None:
            env[name] = str(getattr(args, option))
    env |= extra_env or {}
    log_path = root / "app.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    app = App(f"http://127.0.0.1:{port}/", process, log_path)
    try:
        deadline = time.monotonic() + args.startup_timeout
        while True:
            if process.poll() is not None:
                raise SystemExit(f"L'application s'est arrêtée ({process.returncode}) :\n{_tail(log_path)}")
            try:
                with urllib.request.urlopen(app.url, timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"L'application n'a pas répondu en {args.startup_timeout} s :\n{_tail(log_path)}"
                )
            time.sleep(0.5)
        yield app
    finally:
        stop(process)
        if args.keep:
            print(f"Dossier de l'essai conservé : {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


# -- one conversation -------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What one question got: served (with its latencies), turned away, or an error."""

    kind: str  # "served" | "turned_away" | "error"
    total_s: float = 0.0
    verbatim_s: float | None = None
    french: bool = True  # a turned-away question was told so in French
    model_busy: bool = False  # served verbatim only: the model's queue was full
    detail: str = ""
    text: str = ""  # a served answer's message, and its « Sources citées » panel (HTML)
    sources: str = ""


@dataclass
class Tally:
    outcomes: list[Outcome] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)

    def since(self, start: int) -> list[Outcome]:
        with self.lock:
            return list(self.outcomes[start:])


def _client(url: str, timeout_s: float) -> Any:
    from gradio_client import Client

    return Client(
        url,
        verbose=False,
        download_files=False,
        analytics_enabled=False,
        max_workers=2,
        httpx_kwargs={"timeout": timeout_s},
    )


def _answer_text(output: Any) -> str:
    """The last assistant message of the chat returned by ``/ask``."""
    try:
        content = output[0][-1]["content"]
    except (IndexError, KeyError, TypeError):
        return ""
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def ask(client: Any, question: str, timeout_s: float) -> Outcome:
    """One question through ``/ask``, timed to the verbatim answer and to the end."""
    started = time.monotonic()
    try:
        job = client.submit(question, "Réponse", [], [], api_name="/ask")
    except Exception as error:
        return Outcome("error", detail=f"envoi : {error}"[:200])
    verbatim: float | None = None
    while True:
        done, _ = futures.wait([job.future], timeout=POLL_S)
        if verbatim is None:
            outputs = job.outputs()
            if outputs and (text := _answer_text(outputs[-1])) and PENDING not in text:
                verbatim = time.monotonic() - started
        if done:
            break
        if time.monotonic() - started > timeout_s:
            job.cancel()
            return Outcome("error", detail=f"pas de réponse en {timeout_s:.0f} s")
    total = time.monotonic() - started
    try:
        result = job.result(timeout=0)
    except Exception as error:
        message = str(error)
        if message.startswith(TURNED_AWAY):
            return Outcome("turned_away", total, detail=message)
        if any(m in message for m in GRADIO_FULL):
            return Outcome("turned_away", total, french=False, detail=message)
        return Outcome("error", total, detail=message[:200])
    text = _answer_text(result)
    if not text or "⚠️" in text:
        return Outcome("error", total, detail=(text or "réponse vide")[:200])
    sources = str(result[1]) if isinstance(result, list | tuple) and len(result) > 1 else ""
    return Outcome(
        "served", total, verbatim or total, model_busy=MODEL_BUSY in text, text=text, sources=sources
    )


def conversation(
    client: Any,
    questions: list[str],
    tally: Tally,
    args: argparse.Namespace,
    rng: random.Random,
    stop: threading.Event,
) -> None:
    for i, question in enumerate(questions):
        if stop.is_set():
            return
        tally.add(ask(client, question, args.timeout))
        if i < len(questions) - 1:
            stop.wait(rng.uniform(*args.think))


# -- one level --------------------------------------------------------------------------------------
def load_questions() -> list[str]:
    with (ROOT / "evals" / "qa.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(line)["question"] for line in lines if line.strip()]


def open_clients(url: str, count: int, timeout_s: float) -> list[Any]:
    with futures.ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda _: _client(url, timeout_s), range(count)))


def drive(
    url: str, plans: list[list[str]], offsets: list[float], t0: float, args: argparse.Namespace, seed: int
) -> tuple[list[Outcome], int]:
    """Run ``len(plans)`` conversations, each starting at wall-clock ``t0 + offset``; return what
    each question got and how many conversations were still going at the deadline."""
    clients = open_clients(url, len(plans), args.timeout)
    tally, stop = Tally(), threading.Event()

    def user(i: int) -> None:
        if stop.wait(max(0.0, t0 + offsets[i] - time.time())):
            return
        conversation(clients[i], plans[i], tally, args, random.Random(seed + i), stop)

    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(len(plans))]
    for thread in threads:
        thread.start()
    # Deadline: the ramp, three questions each at their timeout, the pauses between them.
    deadline = t0 + args.ramp + 3 * args.timeout + 2 * args.think[1] + 10
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.time()))
    stop.set()
    unfinished = sum(thread.is_alive() for thread in threads)
    for client in clients:
        with suppress(Exception):
            client.close()
    return tally.outcomes, unfinished


def run_level(app: App, users: int, pool: list[str], args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """``users`` conversations, spread over ``args.workers`` processes: with a hundred
    ``gradio_client`` sessions (five threads each) in one process, the script's own lock on
    Python (the GIL) would delay its readings."""
    rng = random.Random(seed)
    plans = [rng.sample(pool, rng.choice((2, 3))) for _ in range(users)]
    offsets = [rng.uniform(0, args.ramp) for _ in range(users)]
    workers = max(1, min(args.workers, users))
    shares = [list(range(users))[w::workers] for w in range(workers)]
    load_before = os.getloadavg()
    cpu_before = process_cpu_s(app.process.pid), _own_cpu_s()
    # Every process opens its sessions first; the conversations start together afterwards.
    t0 = time.time() + 3 + users / 20
    outcomes: list[Outcome] = []
    unfinished = 0
    if workers == 1:
        outcomes, unfinished = drive(app.url, plans, offsets, t0, args, seed)
    else:
        context = multiprocessing.get_context("spawn")
        with futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as processes:
            jobs = [
                processes.submit(
                    drive, app.url, [plans[i] for i in share], [offsets[i] for i in share], t0, args, seed + w
                )
                for w, share in enumerate(shares)
            ]
            for job in jobs:
                got, left = job.result()
                outcomes += got
                unfinished += left
    row = summarise(outcomes, users, time.time() - t0, load_before, unfinished)
    row["app_cpu_s"] = process_cpu_s(app.process.pid) - cpu_before[0]
    row["driver_cpu_s"] = _own_cpu_s() - cpu_before[1]
    return row


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summarise(
    outcomes: list[Outcome], users: int, elapsed: float, load_before: tuple[float, ...], unfinished: int = 0
) -> dict[str, Any]:
    served = [o for o in outcomes if o.kind == "served"]
    away = [o for o in outcomes if o.kind == "turned_away"]
    errors = [o for o in outcomes if o.kind == "error"]
    verbatim = [o.verbatim_s for o in served if o.verbatim_s is not None]
    totals = [o.total_s for o in served]
    return {
        "users": users,
        "questions": len(outcomes),
        "served": len(served),
        "turned_away": len(away),
        "turned_away_french": sum(o.french for o in away),
        "errors": len(errors),
        "error_examples": sorted({o.detail for o in errors})[:3],
        "model_busy": sum(o.model_busy for o in served),
        "verbatim_p50": percentile(verbatim, 0.5),
        "verbatim_p95": percentile(verbatim, 0.95),
        "total_p50": percentile(totals, 0.5),
        "total_p95": percentile(totals, 0.95),
        "away_wait_max": max((o.total_s for o in away), default=0.0),
        "elapsed_s": elapsed,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "unfinished": unfinished,
    }


def print_level(row: dict[str, Any]) -> None:
    def s(value: float) -> str:
        return "—" if math.isnan(value) else f"{value:.2f} s"

    print(
        f"\n== {row['users']} conversations simultanées : {row['questions']} questions en "
        f"{row['elapsed_s']:.0f} s ==\n"
        f"  servies : {row['served']} · refusées (file pleine) : {row['turned_away']}"
        f" (dont prévenues en français : {row['turned_away_french']}) · erreurs : {row['errors']}\n"
        f"  réponse mot pour mot : p50 {s(row['verbatim_p50'])}, p95 {s(row['verbatim_p95'])}"
        f" · réponse complète : p50 {s(row['total_p50'])}, p95 {s(row['total_p95'])}"
    )
    if row["model_busy"]:
        print(f"  synthèse sautée (modèle occupé) : {row['model_busy']}")
    if row["turned_away"]:
        print(f"  refus reçu en au plus {row['away_wait_max']:.2f} s")
    if row["error_examples"]:
        print("  exemples d'erreurs : " + " | ".join(row["error_examples"]))
    if row.get("app_cpu_s") is not None and row["served"]:
        print(
            f"  temps CPU de l'application : {row['app_cpu_s']:.1f} s, soit "
            f"{row['app_cpu_s'] / row['served']:.2f} s par question servie ; "
            f"du script d'essai lui-même : {row['driver_cpu_s']:.1f} s"
        )
    if row["unfinished"]:
        print(f"  conversations arrêtées à l'échéance : {row['unfinished']}")
    print(
        "  charge de la machine (1, 5, 15 min) : avant "
        + _load(row["load_before"])
        + ", après "
        + _load(row["load_after"])
    )


def _load(values: tuple[float, ...]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


# -- the machine ------------------------------------------------------------------------------------
def _cpu_ticks() -> dict[int, tuple[str, int]]:
    ticks = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as stat:
                raw = stat.read()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                words = cmdline.read().decode(errors="replace").split("\0")
            # The script or module a Python process runs says more than « python ».
            named = [w for w in words[1:] if w and not w.startswith("-")][:2]
            name = " ".join([Path(words[0]).name, *named])[:80] if words[0] else name
        except OSError:
            pass
        fields = raw[raw.rindex(")") + 2 :].split()
        ticks[int(entry)] = (name, int(fields[11]) + int(fields[12]))
    return ticks


def busy_processes(exclude: set[int], sample_s: float = 2.0, top: int = 4) -> str:
    """The processes that used the most CPU over ``sample_s`` seconds (others than ours)."""
    before = _cpu_ticks()
    time.sleep(sample_s)
    after = _cpu_ticks()
    hz = os.sysconf("SC_CLK_TCK")
    used = []
    for pid, (name, ticks) in after.items():
        if pid in exclude or pid not in before:
            continue
        share = (ticks - before[pid][1]) / hz / sample_s * 100
        if share >= 5:
            used.append((share, f"{name} ({pid}) {share:.0f} %"))
    used.sort(reverse=True)
    return ", ".join(text for _, text in used[:top]) or "aucun au-dessus de 5 % d'un cœur"


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid``, its threads included."""
    with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    """CPU seconds of this script and of its finished worker processes."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def process_figures(pid: int) -> tuple[float, int, int]:
    """(RSS in MB, threads, open files) of ``pid``: psutil when installed, else /proc."""
    try:
        import psutil

        process = psutil.Process(pid)
        return process.memory_info().rss / 2**20, process.num_threads(), process.num_fds()
    except ImportError:
        pass
    values = _status(pid)
    rss = int(values["VmRSS"].split()[0]) / 1024
    return rss, int(values["Threads"]), len(os.listdir(f"/proc/{pid}/fd"))


def memory_split(pid: int) -> tuple[float, float]:
    """(anonymous, file-backed) resident MB of ``pid``. The file-backed part is mostly the
    embedding model's weights, mapped from their file: it grows as questions use words not seen
    before (each new token reads its row of the 805 MB vocabulary table), up to the file's size,
    and the system can take those pages back at any time. The anonymous part is what leaks."""
    try:
        values = _status(pid)
        return int(values["RssAnon"].split()[0]) / 1024, int(values["RssFile"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return math.nan, math.nan


def _status(pid: int) -> dict[str, str]:
    values: dict[str, str] = {}
    with open(f"/proc/{pid}/status", encoding="utf-8") as status:
        for line in status:
            key, _, value = line.partition(":")
            values[key] = value.strip()
    return values


# -- the soak ---------------------------------------------------------------------------------------
def soak(app: App, pool: list[str], args: argparse.Namespace) -> None:
    print(
        f"\n== Endurance : {args.soak_users} conversations pendant {args.soak} s "
        f"(relevé toutes les {args.soak_every} s) =="
    )
    tally, stop = Tally(), threading.Event()
    clients = open_clients(app.url, args.soak_users, args.timeout)

    def user(i: int) -> None:
        rng = random.Random(args.seed * 1000 + i)
        stop.wait(rng.uniform(0, args.ramp))
        client = clients[i]
        while not stop.is_set():
            conversation(client, rng.sample(pool, rng.choice((2, 3))), tally, args, rng, stop)
            if not stop.is_set():
                client.reset_session()  # « Nouvelle conversation »
                stop.wait(rng.uniform(*args.think))

    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(args.soak_users)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    samples = []
    seen = 0
    print(
        "  temps | mémoire (RSS) | dont anonyme | dont fichiers | threads | fichiers ouverts | questions"
        " | erreurs | p95 complète"
    )
    try:
        while True:
            ended = stop.wait(min(args.soak_every, max(0.0, started + args.soak - time.monotonic())))
            elapsed = time.monotonic() - started
            window = tally.since(seen)
            seen += len(window)
            rss, threads_n, files = process_figures(app.process.pid)
            anon, mapped = memory_split(app.process.pid)
            samples.append((elapsed, rss, threads_n, files, anon, mapped))
            totals = [o.total_s for o in window if o.kind == "served"]
            errors = sum(o.kind != "served" for o in window)
            p95 = percentile(totals, 0.95)
            print(
                f"  {elapsed:5.0f} s | {rss:8.1f} Mo | {anon:9.1f} Mo | {mapped:10.1f} Mo | {threads_n:7d} | "
                f"{files:16d} | {len(window):9d} | "
                f"{errors:7d} | {'—' if math.isnan(p95) else f'{p95:.2f} s'}",
                flush=True,
            )
            if ended or elapsed >= args.soak:
                break
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=args.timeout + 5)
        for client in clients:
            with suppress(Exception):
                client.close()
    if len(samples) >= 3:
        warm = samples[1]  # after the first 30 s: models loaded, caches filled
        last = samples[-1]
        print(
            f"  de {warm[0]:.0f} s à {last[0]:.0f} s : mémoire {last[1] - warm[1]:+.1f} Mo "
            f"(anonyme {last[4] - warm[4]:+.1f} Mo, fichiers {last[5] - warm[5]:+.1f} Mo), "
            f"threads {last[2] - warm[2]:+d}, fichiers ouverts {last[3] - warm[3]:+d}"
        )
    everything = tally.outcomes
    print(
        f"  total : {len(everything)} questions, erreurs ou refus : "
        f"{sum(o.kind != 'served' for o in everything)}; charge {_load(os.getloadavg())}"
    )


# -- main -------------------------------------------------------------------------------------------
def _range(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    return float(low), float(high or low)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Essai de charge de l'application (boucle locale).")
    parser.add_argument("--levels", default="10,25,50,100", help="conversations simultanées, par palier")
    parser.add_argument("--llm", choices=("extractive", "local"), default="extractive")
    parser.add_argument("--embedder", help="modèle d'embeddings (par défaut celui des réglages)")
    parser.add_argument("--think", type=_range, default=(2.0, 5.0), help="pause entre deux questions, s")
    parser.add_argument("--ramp", type=float, default=2.0, help="arrivée des conversations étalée sur … s")
    parser.add_argument("--timeout", type=float, default=90.0, help="délai maximal d'une question, s")
    parser.add_argument("--startup-timeout", type=float, default=900.0)
    parser.add_argument("--concurrency", type=int, help="questions traitées à la fois (app)")
    parser.add_argument("--queue-size", type=int, help="questions en attente au plus (app)")
    parser.add_argument("--llm-queue", type=int, help="questions en attente du modèle (app)")
    parser.add_argument("--soak", type=float, default=0.0, help="durée de l'essai d'endurance, s")
    parser.add_argument("--soak-users", type=int, default=10)
    parser.add_argument("--soak-every", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=4, help="processus qui portent les conversations")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="garder le dossier temporaire de l'essai")
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    settings = Settings.from_env()
    levels = [int(n) for n in args.levels.split(",") if n.strip()]
    pool = load_questions()
    # Ctrl+C or a kill: the ``finally`` of ``running_app`` stops the app.
    signal.signal(signal.SIGTERM, _interrupt)
    print(
        f"Essai de charge : modèle {args.llm}, paliers {levels}, {os.cpu_count()} cœurs, "
        f"charge (1, 5, 15 min) {_load(os.getloadavg())}"
    )
    try:
        with running_app(args, settings) as app:
            print(f"Application prête : {app.url} (journal : {app.log_path})")
            print("Autres processus actifs : " + busy_processes({os.getpid(), app.process.pid}))
            ask(_client(app.url, args.timeout), pool[0], args.timeout)  # warm-up: models loaded
            rows = []
            for number, users in enumerate(levels):
                row = run_level(app, users, pool, args, args.seed + 100 * number)
                rows.append(row)
                print_level(row)
                time.sleep(3)  # let the queue drain before the next level
            if rows:
                print("\nRésumé (secondes ; mot pour mot = premier affichage de la réponse) :")
                print("  conv. | questions | servies | refusées (FR) | erreurs | p50 | p95 | p95 complète")
                for r in rows:
                    print(
                        f"  {r['users']:5d} | {r['questions']:9d} | {r['served']:7d} | "
                        f"{r['turned_away']:4d} ({r['turned_away_french']:3d}) | {r['errors']:7d} | "
                        f"{r['verbatim_p50']:.2f} | {r['verbatim_p95']:.2f} | {r['total_p95']:.2f}"
                    )
            if args.soak > 0:
                soak(app, pool, args)
            print("Autres processus actifs (fin) : " + busy_processes({os.getpid(), app.process.pid}))
    except KeyboardInterrupt:
        print("Essai interrompu ; application arrêtée.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
