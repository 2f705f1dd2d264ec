"""Answer evaluation: run the answer pipeline on a question set and measure what users read.

Per question: ``fact_coverage`` (share of the question's facts found in the answer text, by the
set's matching rule), ``citation_precision`` (share of cited passages containing one of the
question's evidence excerpts; ``None`` when nothing is cited), ``refused``, ``quote_fidelity``
(share of the answer's quoted spans found verbatim in the corpus; ``None`` without quotes),
latency, time to the verbatim answer and, with a model, the synthesis's kept share.

``summarize_answers`` turns them into the figures of the issue: means over answerable questions
for facts and citations, ``refusal_accuracy`` over unanswerable ones, ``false_refusal_rate`` over
answerable ones, quote fidelity over every answer that quotes, latency percentiles over all.
Latencies are warm: one question runs before the clock starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from assistant.answer.citations import find_quotes
from assistant.evaluation.dataset import Case
from assistant.evaluation.metrics import citation_precision, fact_coverage, mean, percentile, quote_fidelity
from assistant.evaluation.replay import ConversationReplay

Tick = Callable[[], None]
ANSWER_KEYS = (
    "fact_coverage",
    "citation_precision",
    "refusal_accuracy",
    "false_refusal_rate",
    "quote_fidelity",
)


def evaluate_answers(cases: Sequence[Case], pipeline: Any, tick: Tick | None = None) -> list[dict[str, Any]]:
    """Answer every case with ``pipeline`` (an ``AnswerPipeline``); one result dict per case.

    Each answer is read through ``pipeline.stream``: the time to the verbatim answer
    (``verbatim_ms``) is recorded with the total, and with a model the synthesis's figures
    (sentences checked and kept, time to its first token). A conversation's earlier turns carry
    the passages the assistant cites for them, as in the app (``replay``)."""
    from assistant.answer.pipeline import AnswerEvent, VerbatimEvent

    corpus = [p.text for p in pipeline.corpus]
    replay = ConversationReplay(pipeline)
    if cases:
        pipeline.answer(cases[0].question, history=replay.exchanges(cases[0].history))  # warm-up
    results = []
    for case in cases:
        history = replay.exchanges(case.history)
        started = time.perf_counter()
        verbatim: float | None = None
        answer = None
        for event in pipeline.stream(case.question, history=history):
            if isinstance(event, VerbatimEvent):
                verbatim = (time.perf_counter() - started) * 1000
            elif isinstance(event, AnswerEvent):
                answer = event.answer
        latency = (time.perf_counter() - started) * 1000
        assert answer is not None
        quotes = find_quotes(answer.text)
        result: dict[str, Any] = {
            "id": case.id,
            "kind": case.kind,
            "question": case.question,
            "answerable": case.answerable,
            "refused": answer.refused,
            "latency_ms": latency,
            "backend": answer.backend,
            "quote_fidelity": quote_fidelity(quotes, corpus),
            "cited": [c.passage.label for c in answer.citations],
            "flags": answer.flags,
            "answer": answer.text,
        }
        if verbatim is not None:
            result["verbatim_ms"] = verbatim
        if answer.synthesis_checked or "first_token_ms" in answer.timings:
            result["synthesis_checked"] = answer.synthesis_checked
            result["synthesis_kept"] = answer.synthesis_kept
            result["removed"] = list(answer.removed)
        if "first_token_ms" in answer.timings:
            result["ttft_ms"] = answer.timings["first_token_ms"]
        if case.answerable:
            result["fact_coverage"] = fact_coverage(answer.text, case.facts)
            result["citation_precision"] = citation_precision(
                [c.passage.text for c in answer.citations], case.evidence
            )
        results.append(result)
        if tick:
            tick()
    return results


def summarize_answers(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    answerable = [r for r in results if r["answerable"]]
    unanswerable = [r for r in results if not r["answerable"]]
    precisions = [r["citation_precision"] for r in answerable if r.get("citation_precision") is not None]
    fidelities = [r["quote_fidelity"] for r in results if r.get("quote_fidelity") is not None]
    latencies = [r["latency_ms"] for r in results]
    summary: dict[str, Any] = {
        "fact_coverage": round(mean([r.get("fact_coverage", 0.0) for r in answerable]), 4),
        "citation_precision": round(mean(precisions), 4),
        "refusal_accuracy": round(mean([1.0 if r["refused"] else 0.0 for r in unanswerable]), 4),
        "false_refusal_rate": round(mean([1.0 if r["refused"] else 0.0 for r in answerable]), 4),
        "quote_fidelity": round(mean(fidelities), 4) if fidelities else 1.0,
        "latency_p50_ms": round(percentile(latencies, 50), 1),
        "latency_p95_ms": round(percentile(latencies, 95), 1),
    }
    verbatim = [r["verbatim_ms"] for r in results if "verbatim_ms" in r]
    if verbatim:
        summary["verbatim_p50_ms"] = round(percentile(verbatim, 50), 1)
        summary["verbatim_p95_ms"] = round(percentile(verbatim, 95), 1)
    checked = sum(r.get("synthesis_checked", 0) for r in results)
    if any("synthesis_checked" in r for r in results):
        kept = sum(r.get("synthesis_kept", 0) for r in results)
        summary["synthesis_kept_share"] = round(kept / checked, 4) if checked else 0.0
        summary["synthesis_answers"] = sum(1 for r in results if r.get("synthesis_kept"))
    first_tokens = [r["ttft_ms"] for r in results if "ttft_ms" in r]
    if first_tokens:
        summary["ttft_p50_ms"] = round(percentile(first_tokens, 50), 1)
        summary["ttft_p95_ms"] = round(percentile(first_tokens, 95), 1)
    summary["questions"] = len(results)
    return summary
