"""Side-by-side benchmark: index build, warm retrieval, extractive answer and peak memory of this
project against the plain LangChain pipeline of ``assistant eval --baseline``.

    python scripts/bench_retrieval.py [--limit N] [--out runs/bench/recherche.json]

Each side runs in its own child process (``--side project|baseline``), on a copy of the corpus
in a temporary folder, with the default embedder (EmbeddingGemma) for both:

- cold build: imports, embedder load and indexing, from a new process;
- re-index with nothing changed: the project checks its manifest (hashes of the files) and keeps
  its index; the plain pipeline has no manifest and rebuilds everything (its index lives in memory,
  as ``BaselinePipeline`` builds it);
- re-index with one document changed (one table row of ``02_scenario_entpe.md`` edited, then put
  back: two measures);
- ``assistant index`` in a new process with nothing changed (project only: the plain pipeline
  keeps nothing between processes, a new process rebuilds it — its cold build);
- warm retrieval over every question of the three sets (one query before the clock starts): the
  project through ``Retriever.search`` (follow-ups with their conversation, as the evaluation
  does), the plain pipeline through ``BaselinePipeline.search`` (top 10, the question alone);
- answer without a language model: the project's extractive answer (``AnswerPipeline.answer``:
  understanding, retrieval, refusal, quoted lines verified); the plain pipeline has no such
  answer, its equivalent is retrieving the top 4 chunks (LangChain's default ``k``) and stuffing
  them into the prompt, which is what is timed;
- peak memory (VmHWM) of the side's process.

Prints a French table with the ratio project / reference and the load average, and writes the
JSON to ``runs/bench/recherche.json``. Benchmarks, not tests: nothing is asserted.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import (
    ROOT,
    SIDES,
    current_rss_mb,
    header,
    latency_summary,
    load_average,
    question_pool,
    run_side,
    save,
    table,
    write_result,
)

CHANGED_FILE = "02_scenario_entpe.md"
CHANGED_FROM = "| Ouverture à la transfo à la DFI ? | Pas de sollicitation à ce stade. |"
CHANGED_TO = "| Ouverture à la transfo à la DFI ? | Pas de sollicitation à ce stade (note révisée). |"
STUFF_K = 4  # what ``as_retriever()`` hands to a « stuff » chain by default


def cold_build(
    imports_s: float, load_s: float, build_s: float, chunks: int, embedded: int, sentences: int
) -> dict[str, Any]:
    """The cold-build record of one side (printed), the start of its results."""
    out: dict[str, Any] = {
        "cold_build": {
            "imports_s": round(imports_s, 2),
            "embedder_load_s": round(load_s, 2),
            "indexing_s": round(build_s, 2),
            "total_s": round(imports_s + load_s + build_s, 2),
            "chunks": chunks,
            "embedded_chunks": embedded,
            "embedded_sentences": sentences,
        },
        "rss_after_build_mb": round(current_rss_mb(), 1),
    }
    print(f"Construction à froid : {out['cold_build']}", flush=True)
    return out


def edit(corpus: Path, old: str, new: str) -> None:
    path = corpus / CHANGED_FILE
    text = path.read_text(encoding="utf-8")
    if old not in text:
        raise SystemExit(f"Ligne introuvable dans {CHANGED_FILE} : le banc d'essai est à mettre à jour.")
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def timed(function: Any, *args: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - started


def project_side(corpus: Path, index_dir: Path, limit: int | None) -> dict[str, Any]:
    started = time.perf_counter()
    from assistant.answer.pipeline import AnswerPipeline
    from assistant.search.embeddings import build_embeddings
    from assistant.search.index import CorpusIndex
    from assistant.search.retrieval import Retriever
    from assistant.settings import Settings

    settings = Settings.from_env().replace(corpus_dir=corpus, index_dir=index_dir)
    imports_s = time.perf_counter() - started
    embeddings, load_s = timed(build_embeddings, settings)
    report, build_s = timed(CorpusIndex(settings, embeddings).update)
    out = cold_build(
        imports_s, load_s, build_s, report.total_chunks, report.embedded_chunks, report.embedded_sentences
    )

    def reindex() -> dict[str, Any]:
        report, seconds = timed(CorpusIndex(settings, embeddings).ensure)
        return {
            "seconds": round(seconds, 3),
            "rebuilt": report is not None,
            "embedded_chunks": report.embedded_chunks if report else 0,
            "embedded_sentences": report.embedded_sentences if report else 0,
        }

    out["reindex_unchanged"] = reindex()
    edit(corpus, CHANGED_FROM, CHANGED_TO)
    first = reindex()
    edit(corpus, CHANGED_TO, CHANGED_FROM)
    out["reindex_one_changed"] = [first, reindex()]
    print(f"Réindexation : {out['reindex_unchanged']} ; {out['reindex_one_changed']}", flush=True)

    command = [sys.executable, "-m", "assistant", "index", "--corpus", str(corpus), "--index", str(index_dir)]
    t = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
    out["index_command_unchanged_s"] = round(time.perf_counter() - t, 2)

    index = CorpusIndex(settings, embeddings)
    retriever, open_s = timed(Retriever, index, settings)
    out["open_s"] = round(open_s, 3)
    cases = question_pool(limit)
    retriever.search(cases[0].question)  # warm-up: first-call costs are not what users wait for
    latencies = []
    for case in cases:
        t = time.perf_counter()
        retriever.search(case.question, history=case.history or None, k=10)
        latencies.append((time.perf_counter() - t) * 1000)
    out["retrieval"] = latency_summary(latencies)
    print(f"Recherche : {out['retrieval']}", flush=True)

    pipeline = AnswerPipeline(settings, retriever)  # no model: the extractive answer
    pipeline.answer(cases[0].question)
    latencies = []
    for case in cases:
        t = time.perf_counter()
        pipeline.answer(case.question, case.history or None)
        latencies.append((time.perf_counter() - t) * 1000)
    out["answer"] = latency_summary(latencies)
    print(f"Réponse extractive : {out['answer']}", flush=True)
    return out


def baseline_side(corpus: Path, limit: int | None) -> dict[str, Any]:
    started = time.perf_counter()
    from assistant.evaluation.evaluate import baseline_documents
    from assistant.evaluation.runner import BaselinePipeline
    from assistant.search.embeddings import build_embeddings
    from assistant.settings import Settings

    settings = Settings.from_env().replace(corpus_dir=corpus)
    imports_s = time.perf_counter() - started
    embeddings, load_s = timed(build_embeddings, settings)

    def build() -> Any:
        return BaselinePipeline(baseline_documents(corpus), embeddings)

    reference, build_s = timed(build)
    out = cold_build(imports_s, load_s, build_s, reference.chunks, reference.chunks, 0)

    def reindex() -> dict[str, Any]:
        rebuilt, seconds = timed(build)  # no manifest: every chunk is embedded again
        return {
            "seconds": round(seconds, 3),
            "rebuilt": True,
            "embedded_chunks": rebuilt.chunks,
            "embedded_sentences": 0,
        }

    out["reindex_unchanged"] = reindex()
    edit(corpus, CHANGED_FROM, CHANGED_TO)
    first = reindex()
    edit(corpus, CHANGED_TO, CHANGED_FROM)
    reference = build()  # the one searched below: built from the original corpus
    out["reindex_one_changed"] = [first, reindex()]
    print(f"Réindexation : {out['reindex_unchanged']} ; {out['reindex_one_changed']}", flush=True)

    cases = question_pool(limit)
    reference.search(cases[0])
    latencies = []
    for case in cases:
        t = time.perf_counter()
        reference.search(case)
        latencies.append((time.perf_counter() - t) * 1000)
    out["retrieval"] = latency_summary(latencies)
    print(f"Recherche : {out['retrieval']}", flush=True)

    def stuffed(question: str) -> str:
        chunks = reference.store.similarity_search(question, k=STUFF_K)
        return "\n\n".join(d.page_content for d in chunks)

    stuffed(cases[0].question)
    latencies = []
    for case in cases:
        t = time.perf_counter()
        stuffed(case.question)
        latencies.append((time.perf_counter() - t) * 1000)
    out["answer"] = latency_summary(latencies)
    print(f"« Réponse » sans modèle (4 morceaux collés) : {out['answer']}", flush=True)
    return out


def child(side: str, result: Path, limit: int | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        shutil.copytree(ROOT / "corpus", corpus)
        if side == "project":
            out = project_side(corpus, Path(tmp) / "index", limit)
        else:
            out = baseline_side(corpus, limit)
    out["load_average_end"] = load_average()
    write_result(out, result)


def rows(sides: dict[str, dict[str, Any]]) -> list[tuple[str, float | None, float | None, int]]:
    p, b = sides["project"], sides["baseline"]

    def both(*keys: Any) -> tuple[float | None, float | None]:
        values = []
        for data in (p, b):
            for key in keys:
                data = data.get(key) if isinstance(data, dict) else None
            values.append(data)
        return values[0], values[1]

    changed = [
        sum(r["seconds"] for r in side["reindex_one_changed"]) / len(side["reindex_one_changed"])
        for side in (p, b)
    ]
    return [
        ("construction à froid, modèle chargé compris (s)", *both("cold_build", "total_s"), 1),
        ("  dont chargement du modèle d'embeddings (s)", *both("cold_build", "embedder_load_s"), 1),
        ("  dont calcul et écriture de l'index (s)", *both("cold_build", "indexing_s"), 1),
        ("réindexation, rien de changé (s)", *both("reindex_unchanged", "seconds"), 2),
        ("réindexation, un document changé (s, moyenne de 2)", changed[0], changed[1], 1),
        (
            "`assistant index` dans un nouveau processus, rien de changé (s)",
            p.get("index_command_unchanged_s"),
            b["cold_build"]["total_s"],
            1,
        ),
        ("recherche à chaud p50 (ms)", *both("retrieval", "p50_ms"), 1),
        ("recherche à chaud p95 (ms)", *both("retrieval", "p95_ms"), 1),
        ("réponse sans modèle p50 (ms)", *both("answer", "p50_ms"), 1),
        ("réponse sans modèle p95 (ms)", *both("answer", "p95_ms"), 1),
        ("mémoire de pointe du processus (Mo)", *both("peak_rss_mb"), 0),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="questions au plus (essai rapide)")
    parser.add_argument(
        "--out", type=Path, default=None, help="fichier JSON (défaut : runs/bench/recherche.json)"
    )
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        child(args.side, args.result, args.limit)
        return 0

    command = "python scripts/bench_retrieval.py" + (f" --limit {args.limit}" if args.limit else "")
    info = header(command)
    extra = ["--limit", str(args.limit)] if args.limit else []
    sides = {side: run_side(Path(__file__), side, extra) for side in SIDES}
    info["load_average_end"] = load_average()
    questions = sides["project"]["retrieval"]["count"]
    print(
        f"\nProjet (EmbeddingGemma, passages et phrases, BM25, compréhension de la question) contre "
        f"référence (RecursiveCharacterTextSplitter 1000/200, même modèle, Chroma top-k) ; "
        f"{questions} questions ; rapport = projet / référence (< 1 : le projet est plus rapide "
        "ou plus léger).\n"
    )
    print(table(rows(sides)))
    print(
        "\nRéférence : réindexer, c'est tout recalculer (pas de manifeste) ; sa « réponse sans "
        "modèle » = les 4 premiers morceaux collés dans l'invite, sans refus ni vérification."
    )
    print(
        "Charge de la machine à la fin (1, 5, 15 min) : "
        + ", ".join(f"{x:.2f}".replace(".", ",") for x in info["load_average_end"])
    )
    path = save("recherche", info | {"questions": questions, "sides": sides}, args.out)
    print(f"Résultats : {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
