"""The dossier's inconsistencies: where two documents give the same statement differently.

The three scenario sheets repeat the same context paragraphs with small differences (the same
decree dated the 8th and the 7th of February 2017; « l'ENTE » become « l'ENTPE » in one sheet).
``VariantIndex.find`` reports them next to the passages an answer cites, with both wordings, so
that the answer gives both sources instead of silently picking one. Two kinds are found:

- dated references (« arrêté du 8 février 2017 ») to the same kind of act, month and year with
  another day;
- near-identical sentences (``SAME_STATEMENT`` word overlap) in two documents where a name or a
  figure changed — unless each sheet simply names its own scenario (« statuts de l'ENTPE » /
  « statuts de Gustave Eiffel »), or one copy only leaves words out (the note's copy of the
  request made to the ENTE drops « par le Secrétaire Général … le 28/07/2014 »): a shorter copy
  says less, not something else. Citing it beside the full one added a passage without the
  answer: extractive citation precision 0.730 → 0.734 (dev), 0.702 → 0.712 (blind), 0.725 →
  0.733 (blind2), 0.490 → 0.500 (heldout), fact coverage unchanged (02/12/2026).

Deliberately left out: contradictions worded differently (« 25 % de la recherche nationale » /
« plus du quart »), which need understanding, not matching.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from assistant import domain
from assistant.answer.citations import passage_sentences
from assistant.schema import Passage
from assistant.search.query import detect_scenarios
from assistant.text import content_terms

_MONTHS = (
    "janvier|février|fevrier|mars|avril|mai|juin|juillet|août|aout|septembre|octobre|novembre|"
    "décembre|decembre"
)
DATED_REFERENCE = re.compile(
    rf"\b(arrêté|arrete|décret|decret|loi|lettre|circulaire|courrier|ordonnance|instruction|note|"
    rf"convention|délibération|deliberation)\s+(?:n°\s*\S+\s+)?du\s+(\d{{1,2}})(?:er)?\s+({_MONTHS})\s+(\d{{4}})",
    re.IGNORECASE,
)
_WORD = re.compile(r"[\wÀ-ÿ-]+")  # elisions split off: « l'ENTPE » → « l », « ENTPE »
# Two sentences are the same statement in two documents when their words overlap this much;
# below it, the sheets are saying different things, not the same thing differently.
SAME_STATEMENT = 0.8


@dataclass
class Variant:
    """The same statement given differently by two passages of the dossier."""

    first: Passage
    first_span: str
    second: Passage
    second_span: str


def _dated_references(text: str) -> list[tuple[tuple[str, str, str], str, str]]:
    found = []
    for match in DATED_REFERENCE.finditer(text):
        kind, day, month, year = match.groups()
        key = (kind.lower()[:5], month.lower().replace("é", "e").replace("û", "u"), year)
        found.append((key, day, match.group(0)))
    return found


def _changed_names_or_figures(set_a: set[str], set_b: set[str]) -> set[str]:
    """Nearly the same words, but an acronym or a figure changed: the changed words of ``set_a``."""
    if not set_a or not set_b or set_a == set_b:
        return set()
    if min(len(set_a), len(set_b)) < SAME_STATEMENT * max(len(set_a), len(set_b)):
        return set()  # the overlap cannot reach SAME_STATEMENT: skip the set operations
    if len(set_a & set_b) / len(set_a | set_b) < SAME_STATEMENT:
        return set()
    changed = set_a ^ set_b
    if not any((w.isupper() and len(w) > 1) or any(ch.isdigit() for ch in w) for w in changed):
        return set()
    return set_a - set_b


def _near(sentence: str, words: set[str], reach: int = 4) -> str:
    """The verbatim stretch of ``sentence`` around its first word in ``words`` (``reach`` words
    on each side): what a reader needs to see the difference, not the whole paragraph."""
    tokens = list(_WORD.finditer(sentence))
    hits = [i for i, t in enumerate(tokens) if t.group(0) in words]
    if not hits:
        return sentence
    first, last = max(hits[0] - reach, 0), min(hits[0] + reach, len(tokens) - 1)
    return sentence[tokens[first].start() : tokens[last].end()]


def _own_names(words: set[str], passage: Passage) -> bool:
    """Whether the changed words name the passage's own scenario (« l'ENTPE » in the ENTPE sheet)."""
    found = set(detect_scenarios(" ".join(words)))
    return bool(found) and found <= domain.named_by(passage.scenario)


class VariantIndex:
    """The corpus prepared for ``find``: dated references and sentence word sets, computed once."""

    def __init__(self, corpus: Sequence[Passage]) -> None:
        self.corpus = list(corpus)
        self.dated = [_dated_references(p.text) for p in self.corpus]
        self.sentences = [
            [(s, set(_WORD.findall(s))) for s in passage_sentences(p.text) if len(s.split()) >= 8]
            for p in self.corpus
        ]

    def find(self, passages: Sequence[Passage], about: set[str] | None = None) -> list[Variant]:
        """Statements of ``passages`` that another passage of the corpus gives differently.

        With ``about`` (stemmed terms of a question), only the variants whose differing part is
        about those terms: a question on the CMA's creation year need not hear that one sheet
        names the ENTE and another the ENTPE a few words later."""
        variants: list[Variant] = []
        seen: set[frozenset[str]] = set()
        for passage in passages:
            doc = passage.metadata.get("doc_id")
            for key, day, span in _dated_references(passage.text):
                if about is not None and not content_terms(span) & about:
                    continue
                for other, references in zip(self.corpus, self.dated, strict=True):
                    pair = frozenset((passage.text, other.text))
                    for other_key, other_day, other_span in references:
                        if other_key == key and other_day != day and pair not in seen:
                            seen.add(pair)
                            variants.append(Variant(passage, span, other, other_span))
            for sentence in passage_sentences(passage.text):
                words = set(_WORD.findall(sentence))
                if len(sentence.split()) < 8:
                    continue
                for other, sentences in zip(self.corpus, self.sentences, strict=True):
                    pair = frozenset((passage.text, other.text))
                    if other.metadata.get("doc_id") == doc or pair in seen:
                        continue
                    for other_sentence, other_words in sentences:
                        changed = _changed_names_or_figures(words, other_words)
                        if not changed:
                            continue
                        theirs = _changed_names_or_figures(other_words, words)
                        if not theirs:
                            continue  # words left out, none replaced: a shorter copy, no contradiction
                        if _own_names(changed, passage) and _own_names(theirs, other):
                            continue  # each sheet naming its own scenario is no inconsistency
                        if about is None or content_terms(_near(sentence, changed)) & about:
                            seen.add(pair)
                            variants.append(
                                Variant(
                                    passage, _near(sentence, changed), other, _near(other_sentence, theirs)
                                )
                            )
                            break
        unique: dict[tuple[str, str], Variant] = {}
        for variant in variants:  # the same two wordings found from several copies count once
            unique.setdefault((variant.first_span, variant.second_span), variant)
        return list(unique.values())


def find_variants(passages: Sequence[Passage], corpus: Sequence[Passage]) -> list[Variant]:
    """Shortcut for ``VariantIndex(corpus).find(passages)`` (prepare the index once when repeating)."""
    return VariantIndex(corpus).find(passages)
