"""The comparison table: one column per scenario, one row per section, each cell the dossier's
own words for that scenario and section (cited), or « non traité dans le dossier ».

Deterministic, no language model. The UGE's proposal note counts for the UGE column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from assistant import domain
from assistant.answer.citations import best_span
from assistant.answer.extractive import NOT_COVERED
from assistant.answer.inconsistencies import Variant
from assistant.domain import SCENARIOS, SECTIONS
from assistant.schema import Citation, Passage
from assistant.text import content_terms

COMPARE_COLUMNS = domain.COMPARED
COMPARE_ROWS = ("opportunites", "limites", "questions", "synthese")
# The UGE's proposal note has no Opportunités/Limites/Questions tables: its passages go to the
# UGE column (domain.speaks_for), in the Synthèse row (« Synthèse et note »).
CELL_LIMIT = 3
SEMANTIC_TOP = 2
CELL_CHARS = 160


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
        cited = self.cells.get((column, row), [])
        if not cited:
            return NOT_COVERED
        return "<br>".join(f"{cell_quote(c)} [{c.marker}]" for c in cited)

    def to_markdown(self) -> str:
        names = [SCENARIOS.get(c, c) + (" (+ note)" if c == "uge" else "") for c in self.columns]
        lines = [
            f"**Comparaison des scénarios : {self.theme}**",
            "",
            "| Section | " + " | ".join(names) + " |",
            "|---" * (len(names) + 1) + "|",
        ]
        for row in self.rows:
            title = "Synthèse et note" if row == "synthese" else SECTIONS.get(row, row)
            cells = [self.cell_text(c, row).replace("|", "/") for c in self.columns]
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
        lines += ["", "**Sources**"] + [f"[{c.marker}] {c.passage.label}" for c in self.citations]
        by_id = {c.passage.chunk_id: c.marker for c in self.citations}
        for v in self.variants:
            a, b = by_id.get(v.first.chunk_id), by_id.get(v.second.chunk_id)
            lines.append(
                f"\nIncohérence du dossier : « {v.first_span} » ({v.first.label}"
                f"{f' [{a}]' if a else ''}) / « {v.second_span} » ({v.second.label}{f' [{b}]' if b else ''})."
            )
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


def cell_quote(citation: Citation) -> str:
    """A table row shows its subject and its observations; a paragraph its best sentence."""
    passage = citation.passage
    if passage.subject and passage.observations:
        return f"{short(passage.subject, 60)} : « {short(passage.observations)} »"
    return f"« {short(citation.span)} »"


def short(span: str, limit: int = CELL_CHARS) -> str:
    """A verbatim prefix of the span, cut at a word and closed by « … » (still checkable)."""
    span = " ".join(span.split())
    if len(span) <= limit:
        return span
    return span[:limit].rsplit(" ", 1)[0] + " …"


def build_comparison(
    theme: str,
    passages: Sequence[Passage],
    wanted: set[str],
    columns: Sequence[str],
    rows: Sequence[str] = COMPARE_ROWS,
) -> Comparison:
    """Fill each (scenario, section) cell with passages about the theme, in retrieval order.

    A passage belongs to a cell when its best sentence shares a topic word with the theme, or
    when it is among the retriever's first ``SEMANTIC_TOP`` results (the theme may be named
    otherwise: « localisation » is « Géographie » in the tables). The breadcrumb is not read:
    it names every section and would put every row in every theme."""
    comparison = Comparison(theme, list(columns), list(rows))
    marker = 0
    for rank, passage in enumerate(passages):
        scenario = domain.speaks_for(passage.scenario)
        row = passage.section_kind if passage.scenario != domain.NOTE else "synthese"
        if scenario not in columns or row not in rows:
            continue
        span, start = best_span(passage, "", wanted)
        if not (content_terms(span) & wanted or rank < SEMANTIC_TOP):
            continue
        cell = comparison.cells.setdefault((scenario, row), [])
        if len(cell) < CELL_LIMIT:
            marker += 1
            cell.append(Citation(marker, passage, span, start))
    return comparison
