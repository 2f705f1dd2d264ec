"""Metric functions, each small enough to check by hand (their unit tests do).

Relevance uses the set's matching rule (``text.contains``): a passage is relevant when its
verbatim text contains one of the question's evidence excerpts. For nDCG a passage gains 1 when
it brings an excerpt not already brought by a passage above it, and the ideal ranking brings
every excerpt in the first places: a list repeating the same evidence does not score as well as
one covering all of it. Several identical context paragraphs appear in three sheets, which is
why "any relevant passage" gains would let nDCG exceed 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from assistant.text import contains


def relevant(text: str, evidence: Sequence[str]) -> bool:
    return any(contains(text, excerpt) for excerpt in evidence)


def first_relevant_rank(texts: Sequence[str], evidence: Sequence[str]) -> int | None:
    for rank, text in enumerate(texts, start=1):
        if relevant(text, evidence):
            return rank
    return None


def hit_at(texts: Sequence[str], evidence: Sequence[str], k: int) -> float:
    rank = first_relevant_rank(texts[:k], evidence)
    return 1.0 if rank is not None else 0.0


def mrr_at(texts: Sequence[str], evidence: Sequence[str], k: int = 10) -> float:
    rank = first_relevant_rank(texts[:k], evidence)
    return 1.0 / rank if rank else 0.0


def ndcg_at(texts: Sequence[str], evidence: Sequence[str], k: int = 10) -> float:
    if not evidence:
        return 0.0
    covered: set[int] = set()
    dcg = 0.0
    for rank, text in enumerate(texts[:k], start=1):
        new = {i for i, excerpt in enumerate(evidence) if i not in covered and contains(text, excerpt)}
        if new:
            dcg += 1.0 / math.log2(rank + 1)
            covered |= new
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(evidence), k) + 1))
    return min(1.0, dcg / ideal)


def evidence_recall_at(texts: Sequence[str], evidence: Sequence[str], k: int = 5) -> float:
    if not evidence:
        return 0.0
    top = texts[:k]
    found = sum(1 for excerpt in evidence if any(contains(t, excerpt) for t in top))
    return found / len(evidence)


def retrieval_metrics(texts: Sequence[str], evidence: Sequence[str]) -> dict[str, float]:
    return {
        "hit@1": hit_at(texts, evidence, 1),
        "hit@5": hit_at(texts, evidence, 5),
        "mrr@10": mrr_at(texts, evidence, 10),
        "ndcg@10": ndcg_at(texts, evidence, 10),
        "evidence_recall@5": evidence_recall_at(texts, evidence, 5),
    }


# -- answers -------------------------------------------------------------------------------


def fact_coverage(answer: str, facts: Sequence[str]) -> float:
    if not facts:
        return 0.0
    return sum(1 for fact in facts if contains(answer, fact)) / len(facts)


def citation_precision(cited_texts: Sequence[str], evidence: Sequence[str]) -> float | None:
    """Share of cited passages containing an evidence excerpt; None when nothing is cited."""
    if not cited_texts:
        return None
    return sum(1 for t in cited_texts if relevant(t, evidence)) / len(cited_texts)


def quote_fidelity(quotes: Sequence[str], corpus_texts: Sequence[str]) -> float | None:
    """Share of quoted spans found verbatim in the corpus; None when the answer quotes nothing."""
    if not quotes:
        return None
    return sum(1 for q in quotes if any(contains(t, q) for t in corpus_texts)) / len(quotes)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(position), math.ceil(position)
    if low == high:
        return float(ordered[low])
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0
