"""What each rule of « does the dossier answer? » does: the answer evaluation (extractive) run with
one rule switched off at a time, on the development and the blind sets side by side.

    python scripts/ablation_answerability.py [evals/qa.jsonl evals/blind.jsonl …] [--only=liste]

``--only=WORD`` keeps the variants whose label holds WORD (the reference row always runs).

A rule is kept only if it helps on a blind set (issue: « keep an entry only if it helps on a blind
set »). Retrieval is run once per question and reused by every variant (rules act after it), so
the whole ablation costs one evaluation plus a few seconds per variant. Uses the index of the
settings (``ASSISTANT_INDEX_DIR``, ``ASSISTANT_EMBEDDER``; built if missing). Prints, per set,
refusal_accuracy / false_refusal_rate / fact_coverage for each variant. Asserts nothing.
"""

from __future__ import annotations

import copy
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

from assistant.answer import answerability, extractive
from assistant.answer.pipeline import AnswerPipeline
from assistant.evaluation.answers import evaluate_answers, summarize_answers
from assistant.evaluation.dataset import load_cases
from assistant.search import query
from assistant.search.index import CorpusIndex
from assistant.search.retrieval import Retriever
from assistant.settings import Settings

NEVER = re.compile(r"(?!x)x")


def _off(*names: str) -> Callable[[], Any]:
    """A variant: the module-level patterns ``names`` never match."""
    return lambda: mock.patch.multiple(answerability, **dict.fromkeys(names, NEVER))


def _method_off(name: str) -> Callable[[], Any]:
    """A variant: the assessor's check ``name`` never objects."""
    return lambda: mock.patch.object(answerability.Assessor, name, lambda self, *a, **k: None)


def _emptied(module: Any, name: str, empty: Any) -> Callable[[], Any]:
    """A variant: the word list ``name`` of ``module`` (read from data/lexicon.toml) is empty."""
    return lambda: mock.patch.object(module, name, empty)


# The rules of answerability.py, by the kind of question each one refuses, then the word lists
# of data/lexicon.toml, each emptied in turn.
VARIANTS: dict[str, Callable[[], Any] | None] = {
    "toutes les règles": None,
    "sans hors domaine (centroïde)": _method_off("off_domain"),
    "sans mots inconnus": _method_off("off_topic"),
    "sans section vide": _method_off("empty_section"),
    "sans noms inconnus du dossier": _method_off("unknown_names"),
    "sans « qui » (nom de personne)": _off("PERSON_Q"),
    "sans décision / événement": _off("DECISION_Q"),
    "sans « combien de »": _off("COUNT_Q"),
    "sans « combien y en a-t-il »": _off("COUNT_PRONOUN_Q"),
    "sans lieu (« dans quelle ville », « où … »)": _off("PLACE_Q", "WHERE_Q"),
    "sans montant": _off("AMOUNT_Q"),
    "sans date": _off("DATE_Q"),
    "sans pourcentage": _off("PERCENT_Q"),
    "sans horaire": _off("TIME_Q"),
    "sans « à combien s'élève »": _off("AMOUNT_ASK"),
    "sans « de quoi » d'un montant (l'installation, le projet…)": _off("PRICED"),
    "sans démarche (« comment installer… »)": _off("HOWTO_Q"),
    "sans chiffre par unité (« par an », « sur chaque site »)": _off("DISTRIBUTIVE_Q"),
    "sans adresse ni coordonnées": _off("CONTACT_Q"),
    "sans jours d'ouverture": _off("OPEN_Q"),
    "liste role vide": _emptied(answerability, "PERSON_Q", answerability.person_question("(?!x)x")),
    "liste count_kinds vide": _emptied(answerability, "COUNT_KINDS", []),
    "liste amount_kinds vide": _emptied(answerability, "AMOUNT_KINDS", []),
    "liste type_terms vide": _emptied(answerability, "TYPE_TERMS", set()),
    "liste request_terms vide": _emptied(extractive, "REQUEST_TERMS", set()),
    "liste name_heads vide": _off("NAMED_BY"),
    "liste section_request_terms vide": _emptied(query, "_GENERIC", frozenset()),
}
KEYS = ("refusal_accuracy", "false_refusal_rate", "fact_coverage")


class CachedRetriever:
    """The retriever, each question searched once (the rules act after retrieval). Retrieval
    returns the question as it finished understanding it (``RetrievalResult.intent``) and leaves
    the given intent alone, so a cached result answers every variant from the same reading;
    each call gets its own copy, which a variant may change."""

    def __init__(self, retriever: Retriever) -> None:
        self._retriever = retriever
        self._seen: dict[Any, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._retriever, name)

    def retrieve(self, intent: Any, scenarios: Any = None, sections: Any = None, k: int = 10) -> Any:
        key = (repr(intent), repr(scenarios), repr(sections), k)
        if key not in self._seen:
            self._seen[key] = self._retriever.retrieve(intent, scenarios, sections, k)
        return copy.deepcopy(self._seen[key])


def main() -> None:
    logging.disable(logging.WARNING)
    args = sys.argv[1:]
    only = [a.split("=", 1)[1] for a in args if a.startswith("--only=")]
    paths = [Path(a) for a in args if not a.startswith("--")] or [
        Path("evals/qa.jsonl"),
        Path("evals/blind.jsonl"),
    ]
    settings = Settings.from_env().replace(llm="extractive")
    index = CorpusIndex(settings)
    index.ensure()
    retriever = CachedRetriever(Retriever(index, settings))
    sets = {p.stem: load_cases(p) for p in paths}
    print("| règle retirée | " + " | ".join(f"{name} : refus / faux refus / faits" for name in sets) + " |")
    print("|---" * (len(sets) + 1) + "|")
    for label, patch in VARIANTS.items():
        if only and patch is not None and not any(word in label for word in only):
            continue
        cells = []
        for cases in sets.values():
            with patch() if patch else mock.patch.dict({}):
                pipeline = AnswerPipeline(settings, retriever)
                summary = summarize_answers(evaluate_answers(cases, pipeline))
            cells.append(" / ".join(f"{summary[k]:.3f}" for k in KEYS))
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
