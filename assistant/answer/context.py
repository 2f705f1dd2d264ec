"""Which passages an answer stands on: the context a model reads, or the lines quoted.

``ContextBuilder.choose`` picks them for a plain question (its best passages, focused), a listing
(the whole section asked for, in the dossier's order: ``listing_table``), a comparison (the best
passage of each compared scenario: ``_spread``) or « la première / dernière phrase de … »; and
adds the other source of any inconsistency the chosen passages hold, so that the dossier's
contradictions are always shown with both sides.

Deliberately left out: generation and verification (``pipeline``), the wording of quotes
(``extractive``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cached_property

from assistant import domain
from assistant.answer import answerability
from assistant.answer.citations import passage_sentences
from assistant.answer.comparison import COMPARE_COLUMNS
from assistant.answer.extractive import (
    CorpusStats,
    own_title,
    rank_passages,
    relevant_variants,
    section_table,
    select,
    select_plain,
    spans_documents,
)
from assistant.answer.inconsistencies import Variant, VariantIndex
from assistant.schema import Passage
from assistant.search.query import QueryIntent
from assistant.search.retrieval import continuation_ids, list_continuations
from assistant.text import content_terms

# Passages retrieved, and at most how many an answer may stand on (a listing, a comparison).
RETRIEVE_K = 10
MAX_PASSAGES = 5
# A plain question is answered from its best passages only; a listing (« quelles limites… ») or
# a comparison needs more of them.
FOCUSED_PASSAGES = 2
MAX_VARIANTS = 2  # inconsistencies shown at most per answer
MAX_LISTING = 20  # passages of a section shown whole; a longer one is answered like a question
POSITIONAL = re.compile(r"\b(premi[eè]re|derni[eè]re) phrase\b", re.IGNORECASE)


class ContextBuilder:
    """The corpus prepared once: its statistics, its trusted passages, its inconsistencies."""

    def __init__(self, stats: CorpusStats, trusted: list[Passage], variant_index: VariantIndex) -> None:
        self.stats = stats
        self.trusted = trusted
        self.variant_index = variant_index

    def choose(
        self,
        intent: QueryIntent,
        passages: list[Passage],
        wanted: set[str],
        verdict: answerability.Verdict,
        cells: Sequence[Passage] = (),
    ) -> list[Passage]:
        """The lines the answer quotes (a model's synthesis reads these same lines), plus the
        other source of any inconsistency. ``cells``: a comparison's best passage per scenario
        in its comparison table (``AnswerPipeline.table_passages``)."""
        if verdict.refused:
            return verdict.nearby or passages[:3]
        position = POSITIONAL.search(intent.question)
        if position and passages:
            chosen = [
                self._at_position(
                    intent, passages, wanted, first=position.group(1).lower().startswith("premi")
                )
            ]
        elif intent.compare or spans_documents(intent.standalone):
            chosen = self._spread(intent, passages, wanted, cells) or passages[:1]
        elif not intent.listing:
            chosen = select_plain(passages, wanted, self.stats, intent.scenarios)
        else:
            listing = intent.listing or bool(intent.sections and not intent.follow_up)
            chosen = select(
                passages,
                wanted,
                self.stats,
                MAX_PASSAGES if listing else FOCUSED_PASSAGES,
                intent.sections if listing else (),
                intent.scenarios,
            )
        if intent.asks_detail:
            chosen = self._with_continuations(chosen)
        elif chosen and not intent.follow_up and self._asks_announced_list(chosen[0], wanted):
            chosen = self._with_continuations(chosen[:1]) + chosen[1:]
        return self._with_variants(chosen, wanted)

    def _with_continuations(self, chosen: list[Passage]) -> list[Passage]:
        """Each chosen paragraph followed by the next passages of its section while they carry on
        its list (they start with a list item): a list cut in two by the chunker is read whole
        when a follow-up asks for its detail (« Lesquels précisément ? »)."""
        result: list[Passage] = []
        for passage in chosen:
            result.append(passage)
            for chunk_id in continuation_ids(passage.chunk_id, self._following):
                following = self._by_id[chunk_id]
                if following in result or following in chosen:
                    break
                result.append(following)
        return result

    def _asks_announced_list(self, passage: Passage, wanted: set[str]) -> bool:
        """Whether the question asks for the list ``passage`` announces rather than one of its
        items: its topic words are in the announcement (« Les principales activités du CMA
        aujourd'hui sont les suivantes : ») at least as much as in any item, and the list goes on
        in the next passage (the chunker cut it). « Quelles sont aujourd'hui les principales
        activités du CMA ? » is then answered with the whole list (dev q034, blind3 q1019's kind)."""
        if not continuation_ids(passage.chunk_id, self._following):
            return False
        topic = (wanted - self.stats.name_terms) or wanted
        sentences = passage_sentences(passage.text)
        announced = [i for i, s in enumerate(sentences) if s.rstrip().endswith(":")]
        if not announced or not topic:
            return False
        start = announced[-1]

        # The announcement (with the passage's title) must match the question better than any of
        # the items (a word of one item asks for that item: « la FEST ») and at least as well as
        # the prose before it.
        def matched(text: str) -> int:
            return len(content_terms(text) & topic)

        announcement = matched(f"{own_title(passage)} {sentences[start]}")
        prose = max((matched(s) for s in sentences[:start]), default=0)
        items = max((matched(s) for s in sentences[start + 1 :]), default=0)
        return announcement >= max(prose, 1) and announcement > items

    @cached_property
    def _by_id(self) -> dict[str, Passage]:
        return {p.chunk_id: p for p in self.trusted}

    @cached_property
    def _following(self) -> dict[str, str]:
        """Passage id → id of the next passage of its section when that one carries on its list."""
        return list_continuations(self.trusted)

    def _with_variants(self, chosen: list[Passage], wanted: set[str]) -> list[Passage]:
        """``chosen`` plus the other source of each inconsistency it holds (at most MAX_VARIANTS)."""
        for variant in self.variants(chosen, wanted):
            if variant.second.chunk_id not in {p.chunk_id for p in chosen}:
                chosen.append(variant.second)
        return chosen

    def listing_table(
        self, intent: QueryIntent, passages: list[Passage], wanted: set[str]
    ) -> list[Passage] | None:
        """« Quelles sont les limites de l'ENTPE ? »: the whole table asked for, in document order,
        plus the other source of any inconsistency; ``None`` for any other question."""
        if not intent.listing or intent.compare or POSITIONAL.search(intent.question):
            return None
        row = self._listing_anchor(intent, passages)
        if row is None:
            return None
        table = section_table(self.trusted, row)
        return None if len(table) > MAX_LISTING else self._with_variants(table, wanted)

    def _listing_anchor(self, intent: QueryIntent, passages: list[Passage]) -> Passage | None:
        """The best retrieved passage of the section (and scenario) a listing asks for: a table
        row, or a paragraph when the section has no table (a synthesis)."""
        rows = [p for p in passages if p.section_kind in intent.sections]
        named = [p for p in rows if not intent.scenarios or p.scenario in intent.scenarios]
        return (named or rows or [None])[0]  # type: ignore[list-item]

    def variants(self, passages: list[Passage], wanted: set[str]) -> list[Variant]:
        found = self.variant_index.find(passages, wanted - answerability.TYPE_TERMS)
        return relevant_variants(found, wanted, self.stats)[:MAX_VARIANTS]

    def _at_position(
        self, intent: QueryIntent, passages: list[Passage], wanted: set[str], first: bool
    ) -> Passage:
        """« La première / dernière phrase de … »: the first or last passage of the section the
        best passage belongs to (the section asked, when the question names one)."""
        pool = [p for p in passages if p.section_kind in intent.sections] or passages
        top = rank_passages(pool, wanted, self.stats, intent.scenarios)[0][1]
        same = [
            p
            for p in self.trusted
            if p.metadata.get("doc_id") == top.metadata.get("doc_id")
            and p.metadata.get("section") == top.metadata.get("section")
        ]
        same.sort(key=lambda p: int(p.metadata.get("position", 0)))
        return (same[0] if first else same[-1]) if same else top

    def _spread(
        self, intent: QueryIntent, passages: list[Passage], wanted: set[str], cells: Sequence[Passage] = ()
    ) -> list[Passage]:
        """A comparison: the best retrieved passage of each compared scenario (all three when the
        question names fewer than two) that speaks of the topic at all, then each scenario's
        best passage in the question's comparison table (``cells``) when it is another one; the
        UGE note counts as the UGE.

        Retrieval alone misses a scenario's row when the question's other words pull towards
        other passages (« l'autonomie du CMA » finds the passages about the CMA, not the rows
        « Préservation autonomie… »); the table scores every row of every scenario. The table
        alone misses what is written outside its four sections (a sheet's context paragraphs)
        and, in the UGE column, the note beside the sheet. Development set, comparison questions
        (22): facts / citations 0.720 / 0.689 with retrieval alone, 0.765 / 0.727 with the
        table's passage replacing it, 0.856 / 0.716 with both; all questions 0.694 / 0.711 →
        0.715 / 0.712, no question losing a fact."""
        named = [s for s in intent.scenarios if s in COMPARE_COLUMNS]
        targets = set(named) if len(named) >= 2 else set(COMPARE_COLUMNS)
        chosen: list[Passage] = []
        seen: set[str] = set()
        for _, passage in rank_passages(passages, wanted, self.stats):
            scenario = domain.speaks_for(passage.scenario)
            relevant = not wanted or content_terms(passage.text) & wanted
            if scenario in targets and scenario not in seen and (relevant or not chosen):
                seen.add(scenario)
                chosen.append(passage)
        for passage in cells:
            if domain.speaks_for(passage.scenario) in targets and passage.chunk_id not in {
                p.chunk_id for p in chosen
            }:
                chosen.append(passage)
        return chosen[:MAX_PASSAGES]
