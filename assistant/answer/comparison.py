"""The comparison table: one column per scenario, one row per section, each cell the dossier's
own words for that scenario and section (cited), or « non traité dans le dossier ».

Which passages fill a cell (``select_cells``): every passage of that scenario and section is
scored against the theme — its dense similarity to the theme (asked bare and as a question,
``theme_queries``), standardised over the whole dossier, plus its lexical coverage of the
theme's words (stems, IDF-weighted, concept classes counting half: ``CorpusStats.coverage``).
Each cell then decides on its own: it is filled when its best passage reaches the threshold
(``Settings.compare_threshold``), and shows the passages within ``CELL_MARGIN`` of that best
one, best first, at most ``CELL_LIMIT``. No cell is starved by a global top-k, and a cell's
second row is judged against its first. How a cell reads (``cell_lines``) is one function, used
by the Markdown table (CLI, exports) and by the app: a table row shows its subject and
observation, a paragraph its best sentence, each with its marker; the UGE's note is marked.

Deterministic, no language model. The UGE's proposal note counts for the UGE column.
Deliberately left out: sections outside the four compared ones (context paragraphs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from assistant import domain
from assistant.answer.citations import best_span, passage_sentences
from assistant.answer.extractive import NOT_COVERED, CorpusStats
from assistant.answer.inconsistencies import Variant
from assistant.domain import SCENARIOS, SECTIONS
from assistant.schema import Citation, Passage
from assistant.search.query import related_terms
from assistant.text import content_terms

COMPARE_COLUMNS = domain.COMPARED
COMPARE_ROWS = ("opportunites", "limites", "questions", "synthese")
# The UGE's proposal note has no Opportunités/Limites/Questions tables: its passages go to the
# UGE column (domain.speaks_for), in the Synthèse row (« Synthèse et note »).
NOTE_MARK = "(note de l'université)"

# Relevance of a passage to a theme = z + LEXICAL_WEIGHT × coverage, where z is the passage's
# cosine to the theme minus the mean over the dossier's passages, in standard deviations (a
# scale that does not depend on the embedder), and coverage in [0, 1]. A cell is filled when
# its best passage scores THRESHOLD or more, and shows the passages within CELL_MARGIN of it.
# Chosen on evals/compare_dev.jsonl (20 themes, EmbeddingGemma; `python evals/eval_compare.py
# evals/compare_dev.jsonl --curve …` for the threshold), cell precision / recall: threshold
# 2.75 → 0.84 / 0.84; 2.875 → 0.87 / 0.84; 3.0 → 0.86 / 0.82. The margin moves rows, not
# cells (the same cell figures from 0.75 to 2): 0.75 → rows 0.82 / 0.65, 1.5 → 0.75 / 0.71,
# 2 → 0.67 / 0.75; 1.5 keeps the row recall of the former single threshold (0.72) with better
# precision. Weight 4.5 against 3: the same cells (3 at its best threshold, 2.375), rows 0.75 /
# 0.71 against 0.68 / 0.72. Under 5-fold cross-validation over the themes (threshold and margin
# tuned on 16, read on the other 4): 0.87 / 0.84, against 0.80 / 0.79 for the former design
# (one threshold for every passage, 2.25, weight 3, the bare theme alone).
LEXICAL_WEIGHT = 4.5
THRESHOLD = 2.875  # the default of Settings.compare_threshold
CELL_MARGIN = 1.5
# The theme as a question, beside the bare theme: the mean of both vectors ranked the expected
# rows better than either alone (same analysis, this rule, each at its best threshold: bare
# 0.83 / 0.82, question 0.83 / 0.86, both 0.87 / 0.84).
THEME_QUESTION = "Que dit le dossier sur {theme} ?"
# Rows per cell: beyond 4 the dev set's recall did not move (its cells expect 1 to 4 rows).
CELL_LIMIT = 4
CELL_CHARS = 300


@dataclass
class Comparison:
    """One column per scenario, one row per section; cells hold citations (markers global)."""

    theme: str
    columns: list[str]
    rows: list[str]
    cells: dict[tuple[str, str], list[Citation]] = field(default_factory=dict)
    variants: list[Variant] = field(default_factory=list)

    @property
    def citations(self) -> list[Citation]:
        found: dict[int, Citation] = {}
        for cell in self.cells.values():
            for citation in cell:
                found.setdefault(citation.marker, citation)
        return [found[m] for m in sorted(found)]

    def cell_text(self, column: str, row: str) -> str:
        return "<br>".join(cell_lines(self, column, row))

    def table(self) -> list[tuple[str, list[list[str]]]]:
        """The table as plain text: (row title, the lines of each column's cell) per row."""
        return [(row_title(r), [cell_lines(self, c, r) for c in self.columns]) for r in self.rows]

    def to_markdown(self) -> str:
        """The table as the CLI prints it and the exports write it."""
        names = [column_title(c) for c in self.columns]
        lines = [
            f"**Comparaison des scénarios : {self.theme}**",
            "",
            "| Section | " + " | ".join(names) + " |",
            "|---" * (len(names) + 1) + "|",
        ]
        for title, cells in self.table():
            lines.append(f"| {title} | " + " | ".join("<br>".join(c).replace("|", "/") for c in cells) + " |")
        lines += ["", "**Sources**"] + [f"[{c.marker}] {c.passage.label}" for c in self.citations]
        lines += [f"\n{line}" for line in variant_lines(self)]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "theme": self.theme,
            "columns": self.columns,
            "rows": self.rows,
            "cells": {
                f"{c}/{r}": [x.to_dict() for x in self.cells.get((c, r), [])] or NOT_COVERED
                for c in self.columns
                for r in self.rows
            },
            "table": {f"{c}/{r}": cell_lines(self, c, r) for c in self.columns for r in self.rows},
            "variants": [
                {
                    "first": v.first.label,
                    "first_span": v.first_span,
                    "second": v.second.label,
                    "second_span": v.second_span,
                }
                for v in self.variants
            ],
        }


# -- rendering (one function for the CLI, the exports and the app) ----------------------------
def column_title(column: str) -> str:
    return SCENARIOS.get(column, column) + (" (et sa note)" if column == domain.UGE else "")


def row_title(row: str) -> str:
    return "Synthèse et note" if row == "synthese" else SECTIONS.get(row, row)


def cell_lines(comparison: Comparison, column: str, row: str) -> list[str]:
    """What a cell shows, one line per passage (plain text): « non traité dans le dossier »
    only when no passage of that scenario and section was selected."""
    cited = comparison.cells.get((column, row), [])
    if not cited:
        return [NOT_COVERED]
    return [
        f"{cell_quote(c)} [{c.marker}]" + (f" {NOTE_MARK}" if c.passage.scenario == domain.NOTE else "")
        for c in cited
    ]


def cell_quote(citation: Citation) -> str:
    """A table row shows its subject and its observations; a paragraph its best sentence."""
    passage = citation.passage
    if passage.subject and passage.observations:
        return f"{short(passage.subject, 120)} : « {short(passage.observations)} »"
    return f"« {short(citation.span)} »"


def short(span: str, limit: int = CELL_CHARS) -> str:
    """A verbatim prefix of the span, cut at a word and closed by « … » (still checkable)."""
    span = " ".join(span.split())
    if len(span) <= limit:
        return span
    return span[:limit].rsplit(" ", 1)[0] + " …"


def variant_lines(comparison: Comparison) -> list[str]:
    by_id = {c.passage.chunk_id: c.marker for c in comparison.citations}
    lines = []
    for v in comparison.variants:
        a, b = by_id.get(v.first.chunk_id), by_id.get(v.second.chunk_id)
        lines.append(
            f"Incohérence du dossier : « {v.first_span} » ({v.first.label}{f' [{a}]' if a else ''}) / "
            f"« {v.second_span} » ({v.second.label}{f' [{b}]' if b else ''})."
        )
    return lines


# -- which passages fill a cell -----------------------------------------------------------------
def cell_of(passage: Passage) -> tuple[str, str] | None:
    """The (column, row) a passage belongs to: the note's passages → (uge, synthese)."""
    column = domain.speaks_for(passage.scenario)
    row = "synthese" if passage.scenario == domain.NOTE else passage.section_kind
    return (column, row) if column in COMPARE_COLUMNS and row in COMPARE_ROWS else None


def standardised(similarities: Mapping[str, float]) -> dict[str, float]:
    """Each similarity minus the mean over the dossier, in standard deviations."""
    if not similarities:
        return {}
    values = np.asarray(list(similarities.values()), dtype=float)
    spread = float(values.std()) or 1.0
    return {key: (value - float(values.mean())) / spread for key, value in similarities.items()}


def select_cells(
    passages: Sequence[Passage],
    wanted: set[str],
    similarities: Mapping[str, float],
    stats: CorpusStats,
    columns: Sequence[str],
    rows: Sequence[str] = COMPARE_ROWS,
    threshold: float = THRESHOLD,
) -> dict[tuple[str, str], list[tuple[float, Passage]]]:
    """Per (column, row) whose best passage reaches ``threshold``: the passages within
    ``CELL_MARGIN`` of that best one, best first, at most ``CELL_LIMIT``.

    ``similarities`` are the theme's cosines to every passage (empty without dense search: the
    lexical coverage alone then decides); ``wanted`` the theme's stemmed words."""
    z = standardised(similarities)
    scored: dict[tuple[str, str], list[tuple[float, Passage]]] = {}
    for passage in passages:
        cell = cell_of(passage)
        if cell is None or cell[0] not in columns or cell[1] not in rows:
            continue
        score = z.get(passage.chunk_id, 0.0) + LEXICAL_WEIGHT * stats.coverage(wanted, passage.text)
        scored.setdefault(cell, []).append((score, passage))
    selected = {}
    for cell, found in scored.items():
        found.sort(key=lambda item: -item[0])
        best = found[0][0]
        if best >= threshold:
            selected[cell] = [item for item in found if item[0] >= best - CELL_MARGIN][:CELL_LIMIT]
    return selected


def theme_queries(topic: str) -> tuple[str, str]:
    """The dense queries for a theme's topic words: bare, and as a question."""
    return topic, THEME_QUESTION.format(theme=topic)


def cell_span(passage: Passage, wanted: set[str]) -> tuple[str, int]:
    """The sentence a paragraph is cited by: the one with most of the theme's words (or words
    of their concept classes), never the section's heading when the passage starts with it."""
    terms = set(wanted)
    for term in wanted:
        terms |= related_terms(term)
    heading = " ".join(str(passage.metadata.get("section", "")).split())
    sentences = [s for s in passage_sentences(passage.text) if " ".join(s.split()) != heading]
    if not sentences:
        return best_span(passage, "", terms)
    span = max(sentences, key=lambda s: len(content_terms(s) & terms))
    return span, passage.text.find(span)


def build_comparison(
    theme: str,
    passages: Sequence[Passage],
    wanted: set[str],
    columns: Sequence[str],
    similarities: Mapping[str, float],
    stats: CorpusStats,
    rows: Sequence[str] = COMPARE_ROWS,
    threshold: float = THRESHOLD,
) -> Comparison:
    """The table for ``theme``: cells from ``select_cells``, markers numbered in reading order
    (row by row, column by column), each passage cited by its best sentence for the theme."""
    comparison = Comparison(theme, list(columns), list(rows))
    selected = select_cells(passages, wanted, similarities, stats, columns, rows, threshold)
    marker = 0
    for row in rows:
        for column in columns:
            for score, passage in selected.get((column, row), []):
                marker += 1
                span, start = cell_span(passage, wanted)
                cited = replace(passage, score=score)
                comparison.cells.setdefault((column, row), []).append(Citation(marker, cited, span, start))
    return comparison
