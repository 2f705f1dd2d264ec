"""Retrieval figures for several values of the retrieval settings, on one or more question sets.

    python scripts/sweep_retrieval.py evals/qa.jsonl [evals/heldout.jsonl …] \\
        --vary turn_alone_weight=0,0.5,1 --vary turn_answer_weight=0,0.5 [--kind multiturn]

Every combination of the ``--vary`` values is a change of settings (``Settings.replace``); the
index of the settings (``ASSISTANT_INDEX_DIR``, ``ASSISTANT_EMBEDDER``) is opened once. Prints,
per set, hit@5 / mrr@10 / evidence_recall@5 overall and for the kind asked. A conversation's
earlier turns carry the passages the assistant cites for them, as in the app (``replay``), so
that ``cited_weight`` can be swept too. Asserts nothing: tune on the development set, then read
the blind sets' column once.
"""

from __future__ import annotations

import argparse
import itertools
import logging
from pathlib import Path

from assistant.answer.pipeline import AnswerPipeline
from assistant.evaluation.dataset import load_cases
from assistant.evaluation.replay import ConversationReplay
from assistant.evaluation.runner import by_kind, evaluate_retrieval, summarize
from assistant.search.index import CorpusIndex
from assistant.search.retrieval import Retriever
from assistant.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+")
    parser.add_argument("--vary", action="append", default=[], help="réglage=v1,v2,…")
    parser.add_argument("--kind", default="multiturn")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    settings = Settings.from_env()
    index = CorpusIndex(settings)
    index.ensure()
    sets = {Path(s).stem: load_cases(Path(s)) for s in args.sets}
    axes = []
    for spec in args.vary:
        key, values = spec.split("=", 1)
        kind = type(getattr(settings, key))
        kind = float if kind is type(None) else kind  # settings left to the embedder (None)
        axes.append([(key, kind(v)) for v in values.split(",")])
    header = ["réglages"] + [f"{n} {m}" for n in sets for m in ("hit@5", "mrr", "ev@5", f"{args.kind[:5]}@5")]
    print(" | ".join(header))
    for combo in itertools.product(*axes) if axes else [()]:
        changed = settings.replace(llm="extractive", **dict(combo))
        retriever = Retriever(index, changed)
        replay = ConversationReplay(AnswerPipeline(changed, retriever))
        histories = {id(c): replay.exchanges(c.history) for cases in sets.values() for c in cases}

        def search(case, retriever=retriever, histories=histories):  # type: ignore[no-untyped-def]
            history = histories[id(case)]
            return [p.text for p in retriever.search(case.question, history=history, k=10).passages]

        row = [",".join(f"{k}={v}" for k, v in combo) or "défaut"]
        for cases in sets.values():
            results = evaluate_retrieval(cases, search)
            total, kinds = summarize(results), by_kind(results)
            row += [f"{total['hit@5']:.3f}", f"{total['mrr@10']:.3f}", f"{total['evidence_recall@5']:.3f}"]
            row.append(f"{kinds.get(args.kind, {}).get('hit@5', float('nan')):.3f}")
        print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
