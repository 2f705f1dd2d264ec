"""What each part of retrieval brings: the evaluation run with one part switched off at a time.

    python scripts/ablation_retrieval.py [evals/qa.jsonl]

Uses the index of the settings (``ASSISTANT_INDEX_DIR``, ``ASSISTANT_EMBEDDER``; built if
missing). Prints one column per variant: the default settings, dense only, keyword (BM25) only,
the fusion with keyword search at weight 1, without sentence vectors, without scenario/section
boosts. Asserts nothing.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from assistant.evaluation.dataset import load_cases
from assistant.evaluation.runner import RETRIEVAL_KEYS, by_kind, evaluate_retrieval, format_table, summarize
from assistant.search.index import CorpusIndex
from assistant.search.retrieval import Retriever
from assistant.settings import Settings


def main() -> None:
    logging.disable(logging.WARNING)
    cases = load_cases(Path(sys.argv[1] if len(sys.argv) > 1 else "evals/qa.jsonl"))
    settings = Settings.from_env()
    index = CorpusIndex(settings)
    index.ensure()
    # Each variant is a change of settings: the retrieval tunables are constructor settings.
    variants = {
        "défaut": {},
        "dense seul": {"use_lexical": False},
        "BM25 seul": {"use_dense": False, "lexical_weight": 1.0},
        "fusion BM25 poids 1": {"lexical_weight": 1.0},
        "sans phrases": {"use_sentences": False},
        "sans boosts": {"scenario_boost": 0.0, "section_boost": 0.0},
    }
    summaries, kinds = {}, {}
    for name, change in variants.items():
        retriever = Retriever(index, settings.replace(**change))

        def search(case, retriever=retriever):  # type: ignore[no-untyped-def]
            return [p.text for p in retriever.search(case.question, history=case.history, k=10).passages]

        results = evaluate_retrieval(cases, search)
        summaries[name], kinds[name] = summarize(results), by_kind(results)
    print(format_table(summaries, RETRIEVAL_KEYS))
    for kind in sorted(next(iter(kinds.values()))):
        if kind != "unanswerable":
            print(f"\n{kind} — hit@5")
            print(format_table({n: kinds[n][kind] for n in kinds}, ["hit@5", "mrr@10"]))


if __name__ == "__main__":
    main()
