"""The evaluation runner: a set of questions in, per-question results and a summary out.

``run_retrieval`` measures the assistant's retrieval; ``run_baseline`` measures, on the same
set and in the same run, a plain LangChain pipeline (RecursiveCharacterTextSplitter 1000/200 on
the raw documents, the same embedder, Chroma top-k) so that every figure has a reference.
Latencies are warm: one query runs before the clock starts.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from assistant.evaluation.answers import ANSWER_KEYS
from assistant.evaluation.dataset import Case
from assistant.evaluation.metrics import mean, percentile, retrieval_metrics
from assistant.text import clean_markup

RETRIEVAL_KEYS = ("hit@1", "hit@5", "mrr@10", "ndcg@10", "evidence_recall@5")
# In an answer run's summary when measured: the time to the verbatim answer, and with a model the
# time to its first token and the synthesis's kept share.
STREAM_KEYS = (
    "verbatim_p50_ms",
    "verbatim_p95_ms",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "synthesis_kept_share",
    "synthesis_answers",
)
SearchFn = Callable[[Case], list[str]]
Tick = Callable[[], None]


def evaluate_retrieval(
    cases: Sequence[Case], search: SearchFn, tick: Tick | None = None
) -> list[dict[str, Any]]:
    """Run ``search`` on every case; one result dict per case (metrics only when answerable)."""
    if cases:
        search(cases[0])  # warm-up: first-call costs are not what users wait for
    results = []
    for case in cases:
        started = time.perf_counter()
        texts = search(case)
        latency = (time.perf_counter() - started) * 1000
        result: dict[str, Any] = {
            "id": case.id,
            "kind": case.kind,
            "question": case.question,
            "answerable": case.answerable,
            "latency_ms": latency,
            "passages": texts[:10],
        }
        if case.answerable:
            result.update(retrieval_metrics(texts, case.evidence))
        results.append(result)
        if tick:
            tick()
    return results


def summarize(results: Sequence[dict[str, Any]], keys: Sequence[str] = RETRIEVAL_KEYS) -> dict[str, Any]:
    """Means over answerable questions, latency percentiles over all, and the question count."""
    scored = [r for r in results if r.get("answerable")]
    summary: dict[str, Any] = {
        k: round(mean([r[k] for r in scored if r.get(k) is not None]), 4) for k in keys
    }
    latencies = [r["latency_ms"] for r in results]
    summary["latency_p50_ms"] = round(percentile(latencies, 50), 1)
    summary["latency_p95_ms"] = round(percentile(latencies, 95), 1)
    summary["questions"] = len(results)
    return summary


def by_kind(
    results: Sequence[dict[str, Any]], keys: Sequence[str] = RETRIEVAL_KEYS
) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        groups[result["kind"]].append(result)
    return {kind: summarize(group, keys) for kind, group in sorted(groups.items())}


class BaselinePipeline:
    """The plain LangChain pipeline the assistant is measured against."""

    def __init__(self, documents: Sequence[tuple[str, str]], embeddings: Any, k: int = 10) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings
        from langchain_chroma import Chroma
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
        texts: list[str] = []
        metadatas: list[dict[str, Any]] = []
        for name, raw in documents:
            for piece in splitter.split_text(raw):
                texts.append(piece)
                metadatas.append({"source": name})
        client = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
        self.store = Chroma(
            client=client, collection_name=f"baseline_{time.time_ns()}", embedding_function=embeddings
        )
        self.store.add_texts(texts=texts, metadatas=metadatas)
        self.k = k
        self.chunks = len(texts)

    def search(self, case: Case) -> list[str]:
        question = case.question
        documents = self.store.similarity_search(question, k=self.k)
        # Matching reads the same cleaned text as for the assistant: markup is not evidence.
        return [clean_markup(d.page_content) for d in documents]


def format_table(columns: dict[str, dict[str, Any]], keys: Sequence[str]) -> str:
    """A plain-text table: one row per metric, one column per run."""
    names = list(columns)
    width = max(len(k) for k in keys) + 2
    lines = [" " * width + "".join(f"{n:>16}" for n in names)]
    for key in keys:
        cells = []
        for name in names:
            value = columns[name].get(key)
            cells.append(f"{value:>16.3f}" if isinstance(value, float) else f"{value!s:>16}")
        lines.append(f"{key:<{width}}" + "".join(cells))
    return "\n".join(lines)


def summary_keys(mode: str) -> tuple[str, ...]:
    """The keys of a run's summary, in the order of ``--json``."""
    metrics = RETRIEVAL_KEYS if mode == "retrieval" else ANSWER_KEYS
    return (*metrics, "latency_p50_ms", "latency_p95_ms", "questions")


def shown_keys(mode: str, summary: Mapping[str, Any]) -> tuple[str, ...]:
    """The keys tables show for a summary: ``summary_keys``, then the time to the first token
    when the run streamed."""
    return (*summary_keys(mode), *(k for k in STREAM_KEYS if k in summary))
