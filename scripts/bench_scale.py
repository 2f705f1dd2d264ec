"""Scale benchmark: the real dossier inside synthetic libraries of 10×, 100× (1000×) its size.

    python scripts/bench_scale.py [--sizes 1,10,100] [--embedder use] [--reference gemma]

For each size, in a fresh child process (so that its peak memory is its own): the real dossier
plus the synthetic documents of ``scripts/synth_library.py`` (none holds a development-set
evidence excerpt) are written to a temporary corpus folder, indexed with the real indexing code
(``CorpusIndex.update``), then searched with the real ``Retriever``. Measured: build time,
embedding throughput (distinct texts embedded per second of the embedder), peak resident memory,
retrieval latency (warm, every development question twice: 316 queries; p50 and p95, with and
without the question's own encoding) and hit@5 on the development set (``retrieval_records`` +
``summarize``, the evaluation's own code).

``--embedder`` fills every size (default ``use``: USE multilingual, ~280 texts/s, where the
default EmbeddingGemma embeds ~4.7 texts/s and would take hours at 100×). ``--reference``
(default ``gemma``) is also measured on the dossier alone: its throughput gives the extrapolated
EmbeddingGemma build time of each size (texts to embed / its throughput + the non-embedding part
of the build measured at that size), its query encoding the EmbeddingGemma retrieval estimate
(index-side p95 at that size + its encoding p95). Sizes in ``--extrapolate`` are not built:
their figures are fitted on the measured sizes, and marked as such.

Writes ``docs/scale.json`` and ``docs/scale.png``; prints a French table.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from assistant.evaluation.dataset import load_cases  # noqa: E402
from assistant.evaluation.metrics import percentile  # noqa: E402
from assistant.evaluation.runner import summarize  # noqa: E402
from assistant.evaluation.runs import retrieval_records  # noqa: E402
from assistant.search.embeddings import build_embeddings, embedder_name  # noqa: E402
from assistant.search.index import CorpusIndex  # noqa: E402
from assistant.search.retrieval import EXACT_SEARCH_MAX, Retriever  # noqa: E402
from assistant.settings import Settings  # noqa: E402

DEV_SET = ROOT / "evals" / "qa.jsonl"
OUT_JSON = ROOT / "docs" / "scale.json"
OUT_PNG = ROOT / "docs" / "scale.png"
REPEAT = 2  # every development question twice: 316 timed queries
NAMES = {"gemma": "EmbeddingGemma", "use": "USE multilingue", "e5": "e5"}


class TimedEmbeddings:
    """Forwards to an embedder and adds up the seconds spent in it (documents and queries)."""

    def __init__(self, base: Any) -> None:
        self.base = base
        self.name = embedder_name(base)
        self.batch_size = getattr(base, "batch_size", 8)
        self.document_seconds = 0.0
        self.documents = 0
        self.query_seconds = 0.0

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        started = time.perf_counter()
        batch = getattr(self.base, "embed_batch", self.base.embed_documents)
        vectors: list[list[float]] = batch(list(texts))
        self.document_seconds += time.perf_counter() - started
        self.documents += len(texts)
        return vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_batch(texts)

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        started = time.perf_counter()
        many = getattr(self.base, "embed_queries", None)
        vectors = many(texts) if many else [self.base.embed_query(t) for t in texts]
        self.query_seconds += time.perf_counter() - started
        return list(vectors)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_queries([text])[0]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def measure(factor: int, embedder: str, seed: int) -> dict[str, Any]:
    """One size, in this process: write the library, build its index, search it."""
    from synth_library import LibraryReport, synthetic_documents

    with tempfile.TemporaryDirectory(prefix="assistant-scale-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        for path in sorted((ROOT / "corpus").glob("*.md")):
            shutil.copy(path, corpus / path.name)
        library = LibraryReport()
        started = time.perf_counter()
        for name, text in synthetic_documents(factor, seed, report=library):
            (corpus / name).write_text(text, encoding="utf-8")
        generated_s = time.perf_counter() - started

        settings = Settings.from_env().replace(
            corpus_dir=corpus, index_dir=Path(tmp) / "index", embedder=embedder
        )
        embeddings = TimedEmbeddings(build_embeddings(settings))
        index = CorpusIndex(settings, embeddings=embeddings)  # type: ignore[arg-type]
        started = time.perf_counter()
        report = index.update()
        build_s = time.perf_counter() - started
        build_rss = peak_rss_mb()
        embedded = embeddings.documents

        started = time.perf_counter()
        retriever = Retriever(index, settings)
        open_s = time.perf_counter() - started
        cases = load_cases(DEV_SET)
        summary = summarize(retrieval_records(cases, retriever))

        def timed() -> tuple[list[float], list[float]]:
            latencies, index_side = [], []
            retriever.search(cases[0].question)
            for _ in range(REPEAT):
                for case in cases:
                    embeddings.query_seconds = 0.0
                    started = time.perf_counter()
                    retriever.search(case.question, history=case.history or None)
                    elapsed = (time.perf_counter() - started) * 1000
                    latencies.append(elapsed)
                    index_side.append(elapsed - embeddings.query_seconds * 1000)
            return latencies, index_side

        latencies, index_side = timed()
        encode = [a - b for a, b in zip(latencies, index_side, strict=True)]
        exact = retriever.stored is not None
        if exact:
            # The same questions through Chroma's index, as a library past the exact-search limit
            # is searched: what the extrapolation to such a size must be fitted on.
            retriever.stored = None
            chroma, chroma_index = timed()
        else:
            chroma, chroma_index = latencies, index_side
        return {
            "factor": factor,
            "embedder": embedder,
            "documents": len(list(corpus.glob("*.md"))),
            "synthetic_documents": library.documents,
            "redrawn": library.redrawn,
            "excerpts_checked": library.excerpts,
            "passages": report.total_chunks,
            "sentences": index.manifest().get("sentence_count", 0),
            "embedded_texts": embedded,
            "generation_s": round(generated_s, 2),
            "build_s": round(build_s, 2),
            "embedding_s": round(embeddings.document_seconds, 2),
            "texts_per_s": round(embedded / embeddings.document_seconds, 1) if embedded else None,
            "open_s": round(open_s, 2),
            "peak_rss_build_mb": round(build_rss),
            "peak_rss_mb": round(peak_rss_mb()),
            "queries": len(latencies),
            "p50_ms": round(percentile(latencies, 50), 1),
            "p95_ms": round(percentile(latencies, 95), 1),
            "index_p50_ms": round(percentile(index_side, 50), 1),
            "index_p95_ms": round(percentile(index_side, 95), 1),
            "encode_p95_ms": round(percentile(encode, 95), 1),
            "exact_search": exact,
            "chroma_p50_ms": round(percentile(chroma, 50), 1),
            "chroma_p95_ms": round(percentile(chroma, 95), 1),
            "chroma_index_p50_ms": round(percentile(chroma_index, 50), 1),
            "chroma_index_p95_ms": round(percentile(chroma_index, 95), 1),
            "hit@5": summary["hit@5"],
            "mrr@10": summary["mrr@10"],
        }


def run_child(factor: int, embedder: str, seed: int) -> dict[str, Any]:
    """``measure`` in a fresh interpreter: peak memory is per size, not the largest so far."""
    command = [sys.executable, __file__, "--child", str(factor), "--embedder", embedder, "--seed", str(seed)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        # The child's own error, not a bare exit status: say which size failed and why.
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"Échec de la mesure à {factor}× ({embedder}), code {done.returncode} :\n{tail}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def extrapolated(rows: list[dict[str, Any]], factor: int) -> dict[str, Any]:
    """Figures of an unbuilt size from the two largest measured: linear in size for counts,
    times and memory; the latencies on a power law through those two points."""
    a, b = sorted(rows, key=lambda r: r["factor"])[-2:]
    ratio = (factor - b["factor"]) / (b["factor"] - a["factor"])

    def linear(key: str) -> float:
        return float(b[key] + (b[key] - a[key]) * ratio)

    def power(key: str) -> float:
        low, high = a.get(key, a[key.removeprefix("chroma_")]), b.get(key, b[key.removeprefix("chroma_")])
        slope = math.log(high / low) / math.log(b["factor"] / a["factor"])
        return float(high * (factor / b["factor"]) ** slope)

    row: dict[str, Any] = {"factor": factor, "embedder": b["embedder"], "extrapolated": True}
    for key in ("documents", "passages", "sentences", "embedded_texts", "build_s", "embedding_s"):
        row[key] = round(linear(key))
    row["peak_rss_mb"] = round(linear("peak_rss_mb"))
    row["texts_per_s"] = b["texts_per_s"]
    # A size past the exact-search limit is searched through Chroma's index: its latencies are
    # fitted on the measured sizes' searches through Chroma (the smaller sizes, searched in
    # memory by default, were also timed that way), never across the two ways of searching.
    beyond = (row["passages"] + row["sentences"]) > EXACT_SEARCH_MAX
    for key in ("p50_ms", "p95_ms", "index_p50_ms", "index_p95_ms"):
        row[key] = round(power(f"chroma_{key}" if beyond else key), 1)
    row["exact_search"] = not beyond
    row["encode_p95_ms"] = b["encode_p95_ms"]
    row["hit@5"] = None
    return row


def with_reference(row: dict[str, Any], reference: dict[str, Any] | None) -> dict[str, Any]:
    """The reference embedder's build time and retrieval p95 at this size (estimates), from its
    throughput and query encoding measured on the dossier and this size's index-side figures."""
    if reference is None or row["embedder"] == reference["embedder"]:
        return row
    other = row["build_s"] - row["embedding_s"]  # reading, cutting, writing to Chroma
    row["reference_build_s"] = round(row["embedded_texts"] / reference["texts_per_s"] + other)
    row["reference_p95_ms"] = round(row["index_p95_ms"] + reference["encode_p95_ms"], 1)
    return row


def fr(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}".replace(",", " ").replace(".", ",")


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{fr(seconds)} s"
    if seconds < 7200:
        return f"{fr(seconds / 60)} min"
    return f"{fr(seconds / 3600)} h"


def table(rows: list[dict[str, Any]], reference: dict[str, Any] | None) -> str:
    ref = NAMES.get(reference["embedder"], reference["embedder"]) if reference else ""
    header = [
        "taille",
        "embeddings",
        "documents",
        "passages + phrases",
        "construction",
        "textes/s",
        "mémoire max.",
        "recherche p50 / p95",
        "dont index p95",
        "hit@5",
    ]
    if reference:
        header += [f"construction {ref}", f"p95 {ref}"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        mark = " (extrapolé)" if row.get("extrapolated") else ""
        cells = [
            f"{row['factor']}×{mark}",
            NAMES.get(row["embedder"], row["embedder"]),
            fr(row["documents"], 0),
            f"{fr(row['passages'], 0)} + {fr(row['sentences'], 0)}",
            duration(row["build_s"]),
            fr(row["texts_per_s"], 0),
            f"{fr(row['peak_rss_mb'], 0)} Mo",
            f"{fr(row['p50_ms'])} / {fr(row['p95_ms'])} ms",
            f"{fr(row['index_p95_ms'])} ms",
            fr(row["hit@5"], 3),
        ]
        if reference:
            if row["embedder"] == reference["embedder"]:
                cells += [f"{duration(row['build_s'])} (mesuré)", f"{fr(row['p95_ms'])} ms (mesuré)"]
            else:
                cells += [
                    f"{duration(row['reference_build_s'])} (extrapolé)",
                    f"{fr(row['reference_p95_ms'])} ms (estimé)",
                ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], reference: dict[str, Any] | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scaled = [r for r in rows if reference is None or r["embedder"] != reference["embedder"]]
    measured = [r for r in scaled if not r.get("extrapolated")]
    guessed = [r for r in scaled if r.get("extrapolated")]
    figure, axes = plt.subplots(2, 2, figsize=(11, 8))
    panels = [
        (axes[0][0], "Construction de l'index (s)", ["build_s", "reference_build_s"]),
        (axes[0][1], "Recherche p95 (ms)", ["p95_ms", "index_p95_ms", "reference_p95_ms"]),
        (axes[1][0], "Mémoire maximale (Mo)", ["peak_rss_mb"]),
        (axes[1][1], "hit@5 (questions de développement)", ["hit@5"]),
    ]
    labels = {
        "build_s": "USE (mesuré)",
        "reference_build_s": "EmbeddingGemma (extrapolé)",
        "p95_ms": "USE, question comprise",
        "index_p95_ms": "hors encodage de la question",
        "reference_p95_ms": "EmbeddingGemma (estimé)",
        "peak_rss_mb": "USE",
        "hit@5": "USE",
    }
    for axis, title, keys in panels:
        for key in keys:
            points = [(r["factor"], r[key]) for r in measured if r.get(key) is not None]
            if points:
                line = axis.plot(*zip(*points, strict=True), marker="o", label=labels[key])[0]
                tail = [points[-1]] + [(r["factor"], r[key]) for r in guessed if r.get(key) is not None]
                if len(tail) > 1:
                    axis.plot(*zip(*tail, strict=True), linestyle="--", color=line.get_color(), marker="x")
        axis.set_xscale("log")
        axis.set_xlabel("taille de la bibliothèque (× le dossier ; pointillés : extrapolé)")
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    axes[0][0].set_yscale("log")
    axes[1][1].set_ylim(0, 1)
    targets = [(axes[0][1], 150, "objectif dossier"), (axes[0][1], 400, "objectif 100×")]
    for axis, value, text in targets:
        axis.axhline(value, color="grey", linestyle=":", linewidth=1)
        axis.annotate(text, (1, value), fontsize=7, color="grey")
    figure.suptitle("Le dossier dans une bibliothèque synthétique (2 cœurs)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,100", help="tailles construites (× le dossier)")
    parser.add_argument("--extrapolate", default="1000", help="tailles extrapolées, non construites")
    parser.add_argument("--embedder", default="use", help="modèle qui remplit chaque taille")
    parser.add_argument("--reference", default="gemma", help="modèle mesuré sur le dossier seul ('' : aucun)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=OUT_JSON)
    parser.add_argument("--png", type=Path, default=OUT_PNG)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, args.embedder, args.seed)))
        return

    reference = None
    if args.reference:
        print(f"Dossier seul, {NAMES.get(args.reference, args.reference)}…", flush=True)
        reference = run_child(1, args.reference, args.seed)
    rows = []
    for factor in (int(s) for s in args.sizes.split(",") if s.strip()):
        print(f"Bibliothèque {factor}×, {NAMES.get(args.embedder, args.embedder)}…", flush=True)
        rows.append(run_child(factor, args.embedder, args.seed))
    for factor in (int(s) for s in args.extrapolate.split(",") if s.strip()):
        if len(rows) >= 2:
            rows.append(extrapolated(rows, factor))
    rows = [with_reference(r, reference) for r in rows]
    everything = ([reference] if reference else []) + rows
    print()
    print(table(everything, reference))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "date": time.strftime("%Y-%m-%d"),
        "cores": _cores(),
        "command": " ".join(sys.argv),
        "rows": everything,
    }
    args.json.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    plot(everything, reference, args.png)
    print(f"\nÉcrit : {args.json}, {args.png}")


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
