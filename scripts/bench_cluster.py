"""Beyond one machine: two app processes sharing one Chroma server (and one model server).

Starts, on loopback only, a Chroma server (``chroma run``, in a temporary folder), builds the
index into it once (``python -m assistant index`` with ``CHROMA_HOST``), then starts app
process A and drives it alone (phase 1), starts app process B and drives the same load split
over A and B (phase 2). Each app process has its own copy of the corpus and its own, empty,
``index/`` folder, as on two machines: the script checks that neither builds anything (the
server's manifest names the same generation before and after). With ``--llm openai`` the
syntheses are written by llama.cpp's OpenAI-compatible server (``llama_cpp.server`` started by
``python -m assistant.answer.model_server``, the project's GGUF model), one server shared by A and B.

Load: ``--users`` simultaneous users spread over ``--workers`` client processes; each user asks
``--per-user`` questions of ``evals/qa.jsonl`` (answerable, asked alone), each in a new
conversation (« Nouvelle conversation »), a short pause between them. In phase 2, user i talks
to A or B by parity and stays there (as a proxy with sticky sessions would send them). An
answer is *correct* when its cited passages (« Sources citées ») contain one of the question's
evidence excerpts (the evaluation's matching rule, ``evaluation.metrics.relevant``).

    python scripts/bench_cluster.py                          # extractive answers
    python scripts/bench_cluster.py --llm openai --users 4 --per-user 2

Prints, per phase: answers per second, p50/p95 (verbatim answer, full answer), errors, correct
answers, the CPU seconds of every process, the load average; then the throughput ratio. Writes
the figures as JSON (``runs/bench-cluster-<llm>.json``). Every process started here is stopped
on exit (Ctrl+C included). Output in French.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import html
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from load_test import (  # noqa: E402
    App,
    Outcome,
    _client,
    _free_port,
    _interrupt,
    _load,
    _own_cpu_s,
    _tail,
    ask,
    busy_processes,
    percentile,
    process_cpu_s,
    running_app,
    stop,
)

from assistant.evaluation.metrics import relevant  # noqa: E402
from assistant.settings import Settings  # noqa: E402

HOST = "127.0.0.1"
MODEL_ALIAS = "qwen2.5-coder-1.5b-instruct"
# What became of an answer's synthesis, read from the notes under it (answer/synthesis.py,
# answer/model_queue.py), first match wins; none of them: the answer never went to the model
# (a section listed whole, a refusal) or the model wrote nothing to verify.
SYNTHESIS_OUTCOMES = (
    ("écrite", "chaque phrase a été vérifiée"),
    ("modèle occupé", "Synthèse non rédigée"),
    ("délai dépassé", "pas terminé à temps"),
    ("délai dépassé", "interrompue faute de temps"),
    ("aucune phrase vérifiée", "aucune phrase proposée"),
    ("erreur du modèle", "n'a pas pu être utilisé"),
)


def synthesis_outcome(text: str) -> str:
    return next((label for label, marker in SYNTHESIS_OUTCOMES if marker in text), "sans synthèse")


# -- the servers ------------------------------------------------------------------------------------
@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path


@contextmanager
def server(
    name: str, command: list[str], port: int, ready_path: str, root: Path, timeout_s: float
) -> Iterator[Server]:
    """A server process on loopback, ready once ``ready_path`` answers 200; stopped on exit."""
    log_path = root / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{name} s'est arrêté ({process.returncode}) :\n{_tail(log_path)}")
            try:
                with urllib.request.urlopen(f"http://{HOST}:{port}{ready_path}", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} n'a pas répondu en {timeout_s:.0f} s :\n{_tail(log_path)}")
            time.sleep(0.3)
        yield Server(name, process, port, log_path)
    finally:
        stop(process)


def chroma_server(root: Path) -> Any:
    data = root / "chroma-data"
    port = _free_port()
    command = [str(Path(sys.executable).parent / "chroma"), "run", "--path", str(data), "--host", HOST]
    return server("serveur Chroma", [*command, "--port", str(port)], port, "/api/v2/heartbeat", root, 60)


def model_server(root: Path, settings: Settings, threads: int) -> Any:
    from assistant.answer.model_files import ensure_local_model

    path = ensure_local_model(settings, progress=False)
    port = _free_port()
    command = [sys.executable, "-m", "assistant.answer.model_server", "--model", str(path)]
    command += ["--model_alias", MODEL_ALIAS]
    command += ["--n_threads", str(threads), "--n_ctx", str(settings.llm_context), "--host", HOST]
    # By default llama.cpp's server ends the answer it is streaming as soon as another request
    # comes in (« [DONE] » sent early): with two app processes, each cut the other's synthesis
    # short and the answers came back with no synthesis at all (measured here). Queue them instead.
    command += ["--interrupt_requests", "False"]
    return server(
        "serveur de modèle (llama.cpp)", [*command, "--port", str(port)], port, "/v1/models", root, 120
    )


def build_index(root: Path, chroma: Server, embedder: str | None) -> float:
    """``python -m assistant index`` against the server, once, as an operator would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHROMA_", "ASSISTANT_"))}
    env |= {
        "CHROMA_HOST": HOST,
        "CHROMA_PORT": str(chroma.port),
        "ASSISTANT_INDEX_DIR": str(root / "indexation"),
        "ASSISTANT_LOG_PATH": str(root / "indexation" / "assistant.log"),
        "HF_HUB_OFFLINE": "1",
        "ANONYMIZED_TELEMETRY": "False",
    }
    if embedder:
        env["ASSISTANT_EMBEDDER"] = embedder
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "index"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(
            f"L'indexation a échoué ({done.returncode}) :\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return time.monotonic() - started


def generations(chroma: Server) -> tuple[str, int]:
    """The generation the server's manifest names, and how many generations the server holds."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    from assistant.search.shared_index import read_manifest

    client = chromadb.HttpClient(
        host=HOST, port=chroma.port, settings=ChromaSettings(anonymized_telemetry=False)
    )
    name = Settings().collection
    manifest = read_manifest(client, name) or {}
    held = [c if isinstance(c, str) else c.name for c in client.list_collections()]
    return str(manifest.get("collection", "")), sum(
        h.startswith(f"{name}_g") and not h.endswith("_s") for h in held
    )


# -- the load ---------------------------------------------------------------------------------------
@dataclass
class Case:
    id: str
    question: str
    evidence: list[str]


def load_cases() -> list[Case]:
    cases = []
    with (ROOT / "evals" / "qa.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                row = json.loads(line)
                if row.get("answerable") and not row.get("history") and row.get("evidence"):
                    cases.append(Case(row["id"], row["question"], list(row["evidence"])))
    return cases


def cites_expected(outcome: Outcome, case: Case) -> bool:
    """The answer's cited passages (the « Sources citées » panel) hold an expected excerpt."""
    cited = html.unescape(re.sub(r"<[^>]+>", "", outcome.sources))
    return relevant(cited, case.evidence)


Row = tuple[str, int, Outcome, float]  # case id, app number, what the question got, when it ended


def drive_users(
    targets: list[tuple[int, str]], plans: list[list[Case]], t0: float, args: argparse.Namespace, seed: int
) -> tuple[list[Row], int]:
    """Users ``plans`` (user i on app ``targets[i]``: number, address) from wall-clock ``t0``."""
    clients = [_client(url, args.timeout) for _, url in targets]
    results: list[Row] = []
    lock, stop = threading.Lock(), threading.Event()

    def user(i: int) -> None:
        rng = random.Random(seed + i)
        if stop.wait(max(0.0, t0 + rng.uniform(0, args.ramp) - time.time())):
            return
        for n, case in enumerate(plans[i]):
            if n:
                clients[i].reset_session()  # « Nouvelle conversation »: each question alone
                if stop.wait(rng.uniform(*args.think)):
                    return
            outcome = ask(clients[i], case.question, args.timeout)
            with lock:
                results.append((case.id, targets[i][0], outcome, time.time()))

    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(len(plans))]
    for thread in threads:
        thread.start()
    deadline = t0 + args.ramp + max(len(p) for p in plans) * (args.timeout + args.think[1]) + 10
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.time()))
    stop.set()
    for client in clients:
        with suppress(Exception):
            client.close()
    return results, sum(thread.is_alive() for thread in threads)


def run_phase(
    name: str, apps: list[App], others: dict[str, int], cases: list[Case], args: argparse.Namespace
) -> dict[str, Any]:
    """The same load (same seed: same users, same questions) on ``apps``; user i on app i mod n."""
    rng = random.Random(args.seed)
    plans = [rng.sample(cases, args.per_user) for _ in range(args.users)]
    targets = [(i % len(apps), apps[i % len(apps)].url) for i in range(args.users)]
    workers = max(1, min(args.workers, args.users))
    shares = [list(range(args.users))[w::workers] for w in range(workers)]
    pids = {f"application {'AB'[i]}": app.process.pid for i, app in enumerate(apps)} | others
    cpu_before = {label: process_cpu_s(pid) for label, pid in pids.items()}
    clients_before = _own_cpu_s()
    load_before = os.getloadavg()
    t0 = time.time() + 3
    rows: list[Row] = []
    unfinished = 0
    context = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as processes:
        jobs = [
            processes.submit(
                drive_users,
                [targets[i] for i in share],
                [plans[i] for i in share],
                t0,
                args,
                args.seed + 97 * w,
            )
            for w, share in enumerate(shares)
        ]
        for job in jobs:
            got, left = job.result()
            rows += got
            unfinished += left
    by_id = {case.id: case for case in cases}
    served = [(cid, o) for cid, _, o, _ in rows if o.kind == "served"]
    # Throughput: answers served over the time from the first arrival to the last answer.
    span = max((ended for *_, ended in rows), default=t0) - t0
    verbatim = [o.verbatim_s for _, o in served if o.verbatim_s is not None]
    totals = [o.total_s for _, o in served]
    result = {
        "phase": name,
        "app_processes": len(apps),
        "users": args.users,
        "questions": len(rows),
        "served": len(served),
        "errors": sum(o.kind == "error" for _, _, o, _ in rows),
        "turned_away": sum(o.kind == "turned_away" for _, _, o, _ in rows),
        "error_examples": sorted({o.detail for _, _, o, _ in rows if o.kind != "served"})[:3],
        "correct": sum(cites_expected(o, by_id[cid]) for cid, o in served),
        "not_citing_expected": sorted({cid for cid, o in served if not cites_expected(o, by_id[cid])}),
        "served_by_app": [
            sum(1 for _, a, o, _ in rows if a == i and o.kind == "served") for i in range(len(apps))
        ],
        "span_s": span,
        "answers_per_s": len(served) / span if span > 0 else 0.0,
        "verbatim_p50": percentile(verbatim, 0.5),
        "verbatim_p95": percentile(verbatim, 0.95),
        "total_p50": percentile(totals, 0.5),
        "total_p95": percentile(totals, 0.95),
        "syntheses": dict(Counter(synthesis_outcome(o.text) for _, o in served).most_common()),
        "written_total": [o.total_s for _, o in served if synthesis_outcome(o.text) == "écrite"],
        "cpu_s": {label: process_cpu_s(pid) - cpu_before[label] for label, pid in pids.items()}
        | {"clients": _own_cpu_s() - clients_before},
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "unfinished": unfinished,
        # Question → its cited passages, to compare phases (not written to the JSON file).
        "answers": {cid: re.sub(r"<[^>]+>", "", o.sources) for cid, o in served},
    }
    return result


def print_phase(row: dict[str, Any], llm: bool) -> None:
    def s(value: float) -> str:
        return "—" if value != value else f"{value:.2f} s"

    print(
        f"\n== {row['phase']} : {row['app_processes']} processus d'application, {row['users']} utilisateurs, "
        f"{row['questions']} questions en {row['span_s']:.1f} s ==\n"
        f"  servies : {row['served']} (par processus : {' + '.join(map(str, row['served_by_app']))})"
        f" · justes (citent un passage attendu) : {row['correct']}/{row['served']}"
        f" · erreurs : {row['errors']} · refusées (file pleine) : {row['turned_away']}\n"
        f"  débit : {row['answers_per_s']:.2f} réponses/s"
        f" · mot pour mot : p50 {s(row['verbatim_p50'])}, p95 {s(row['verbatim_p95'])}"
        f" · réponse complète : p50 {s(row['total_p50'])}, p95 {s(row['total_p95'])}"
    )
    if "same_sources_as_phase_1" in row:
        print(
            f"  mêmes passages cités qu'en phase 1 : {row['same_sources_as_phase_1']}"
            f"/{row['compared_with_phase_1']} questions"
        )
    if llm:
        written = row["written_total"]
        print(
            "  synthèses : "
            + " · ".join(f"{label} {n}" for label, n in row["syntheses"].items())
            + (
                f" ; réponse complète avec synthèse : p50 {s(percentile(written, 0.5))}, "
                f"p95 {s(percentile(written, 0.95))}"
                if written
                else ""
            )
        )
    if row["error_examples"]:
        print("  exemples d'erreurs : " + " | ".join(row["error_examples"]))
    print("  temps CPU pendant la phase : " + ", ".join(f"{k} {v:.1f} s" for k, v in row["cpu_s"].items()))
    print(f"  charge (1, 5, 15 min) : avant {_load(row['load_before'])}, après {_load(row['load_after'])}")


# -- main -------------------------------------------------------------------------------------------
def _range(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    return float(low), float(high or low)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Deux processus d'application, un serveur Chroma (boucle locale)."
    )
    parser.add_argument("--llm", choices=("extractive", "openai"), default="extractive")
    parser.add_argument("--embedder", help="modèle d'embeddings (par défaut celui des réglages)")
    # Enough users asking without a real pause to keep every process busy: throughput, not latency
    # at a given traffic (that is scripts/load_test.py).
    parser.add_argument("--users", type=int, default=12, help="utilisateurs simultanés")
    parser.add_argument("--per-user", type=int, default=5, help="questions par utilisateur")
    parser.add_argument("--think", type=_range, default=(0.0, 0.3), help="pause entre deux questions, s")
    parser.add_argument("--ramp", type=float, default=1.0, help="arrivée des utilisateurs étalée sur … s")
    parser.add_argument("--timeout", type=float, default=90.0, help="délai maximal d'une question, s")
    parser.add_argument("--workers", type=int, default=2, help="processus clients")
    parser.add_argument(
        "--rounds", type=int, default=2, help="mesures avec A et B, alternées avec des mesures de A seul"
    )
    parser.add_argument("--llm-threads", type=int, default=2, help="fils du serveur de modèle")
    parser.add_argument("--startup-timeout", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--out", type=Path, help="fichier JSON des résultats (défaut : runs/bench-cluster-<llm>.json)"
    )
    parser.add_argument("--keep", action="store_true", help="garder les dossiers temporaires")
    args = parser.parse_args(argv)
    # What ``load_test.running_app`` reads.
    args.concurrency = args.queue_size = args.llm_queue = None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    settings = Settings.from_env()
    cases = load_cases()
    signal.signal(signal.SIGTERM, _interrupt)
    print(
        f"Deux processus d'application, un serveur Chroma — modèle : {args.llm} ; {os.cpu_count()} cœurs ; "
        f"charge (1, 5, 15 min) {_load(os.getloadavg())} ; {len(cases)} questions possibles"
    )
    root = Path(tempfile.mkdtemp(prefix="assistant-cluster-"))
    report: dict[str, Any] = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(
            ["python", "scripts/bench_cluster.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "cores": os.cpu_count(),
        "llm": args.llm,
    }
    try:
        with ExitStack() as stack:
            chroma = stack.enter_context(chroma_server(root))
            others = {"serveur Chroma": chroma.process.pid}
            report["index_build_s"] = build_index(root, chroma, args.embedder)
            built, count = generations(chroma)
            print(
                f"Index construit une fois sur le serveur Chroma en {report['index_build_s']:.0f} s ({built})"
            )
            extra = {"CHROMA_HOST": HOST, "CHROMA_PORT": str(chroma.port)}
            if args.llm == "openai":
                model = stack.enter_context(model_server(root, settings, args.llm_threads))
                others["serveur de modèle"] = model.process.pid
                extra |= {
                    "ASSISTANT_OPENAI_BASE_URL": f"http://{HOST}:{model.port}/v1",
                    "ASSISTANT_OPENAI_MODEL": MODEL_ALIAS,
                }
                print(f"Serveur de modèle prêt : http://{HOST}:{model.port}/v1 ({args.llm_threads} fils)")
            # Each app gets empty folders of its own: ``settings`` names no index to copy.
            app_settings = settings.replace(index_dir=root / "aucun-index")
            apps: list[App] = []
            phases: list[dict[str, Any]] = []

            def start(name: str) -> None:
                started = time.monotonic()
                app = stack.enter_context(running_app(args, app_settings, extra))
                apps.append(app)
                warm = _client(app.url, args.timeout)
                ask(warm, cases[0].question, args.timeout)  # warm-up: models loaded
                warm.close()
                print(f"Application {name} prête en {time.monotonic() - started:.0f} s : {app.url}")
                now_named, now_count = generations(chroma)
                if (now_named, now_count) != (built, count):
                    raise SystemExit(
                        f"L'application {name} a reconstruit l'index ({built} → {now_named}, "
                        f"{now_count} générations)."
                    )

            def phase(name: str, on: list[App]) -> None:
                print(
                    "Autres processus actifs : "
                    + busy_processes({os.getpid(), *(a.process.pid for a in apps)})
                )
                row = run_phase(name, on, others, cases, args)
                # The same users ask the same questions in every phase: their cited passages
                # must not depend on which process answered.
                answers = row.pop("answers")
                if phases:
                    first = phases[0]["_answers"]
                    row["same_sources_as_phase_1"] = sum(first.get(k) == v for k, v in answers.items())
                    row["compared_with_phase_1"] = sum(k in first for k in answers)
                row["_answers"] = answers
                phases.append(row)
                print_phase(row, args.llm == "openai")

            start("A")
            phase("phase 1 : A seul", apps[:1])
            start("B")  # B stays up (idle) during the later « A seul » rounds
            for round_ in range(args.rounds):
                suffix = f" (tour {round_ + 1})" if args.rounds > 1 else ""
                phase("phase 2 : A et B" + suffix, apps[:2])
                if round_ < args.rounds - 1:
                    phase(f"phase 1 : A seul (tour {round_ + 2})", apps[:1])
            for row in phases:
                row.pop("_answers")
            report["index_unchanged_by_apps"] = True
            report["phases"] = phases
            alone = [p["answers_per_s"] for p in phases if p["app_processes"] == 1]
            both = [p["answers_per_s"] for p in phases if p["app_processes"] == 2]
            one, two = sum(alone) / len(alone), sum(both) / len(both)
            report["throughput_ratio"] = two / one if one else None
            ratio = report["throughput_ratio"] or 0.0
            print(
                f"\nDébit moyen avec A et B / avec A seul : {two:.2f} / {one:.2f} réponses/s = {ratio:.2f}"
                f" ({len(both)} et {len(alone)} mesures)"
            )
    except KeyboardInterrupt:
        print("Essai interrompu ; serveurs et applications arrêtés.", file=sys.stderr)
        return 130
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    out = args.out or ROOT / "runs" / f"bench-cluster-{args.llm}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    print(f"Résultats : {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
