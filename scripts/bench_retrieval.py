"""Benchmark of the retrieval core: cold index build, warm start, query latency.

    python scripts/bench_retrieval.py [--queries evals/qa.jsonl] [--repeat 3]

Builds the index of the corpus in a temporary folder (cold: every chunk embedded), opens it
again (warm start: manifest check + Chroma + BM25, nothing embedded), then times every question
of the set through ``Retriever.search``. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from assistant.evaluation.metrics import percentile
from assistant.search.index import CorpusIndex
from assistant.search.retrieval import Retriever
from assistant.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", default="evals/qa.jsonl")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    lines = Path(args.queries).read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line)["question"] for line in lines if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env().replace(index_dir=Path(tmp) / "index")
        started = time.perf_counter()
        index = CorpusIndex(settings)
        report = index.update()
        cold = time.perf_counter() - started
        print(
            f"Construction à froid : {cold:.1f} s ({report.total_chunks} passages, "
            f"{report.embedded_chunks} calculés, {report.embedded_sentences} phrases)"
        )

        started = time.perf_counter()
        index = CorpusIndex(settings)
        assert index.ensure() is None
        retriever = Retriever(index, settings)
        warm = time.perf_counter() - started
        print(f"Démarrage sur index existant : {warm:.2f} s (rien recalculé)")

        retriever.search(questions[0])
        latencies = []
        for _ in range(args.repeat):
            for question in questions:
                t = time.perf_counter()
                retriever.search(question)
                latencies.append((time.perf_counter() - t) * 1000)
        print(
            f"Recherche ({len(latencies)} requêtes) : p50 {percentile(latencies, 50):.1f} ms, "
            f"p95 {percentile(latencies, 95):.1f} ms, moyenne {statistics.mean(latencies):.1f} ms"
        )


if __name__ == "__main__":
    main()
