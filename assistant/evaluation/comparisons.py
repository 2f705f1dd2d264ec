"""The « Comparer » mode measured: comparison themes with their expected cells, scored cell by
cell and row by row.

A set is JSON Lines, one theme per line::

    {"id": "d01", "theme": "gouvernance",
     "cells": {"entpe/limites": ["verbatim excerpt identifying an expected row", …], …},
     "empty": ["cmvrh/questions", …]}

Every one of the 12 cells (cmvrh|entpe|uge × opportunites|limites|questions|synthese; the
note's passages belong to uge/synthese) is either in ``cells`` (what it should show, each
excerpt a verbatim piece of one passage of that cell) or in ``empty`` (it should say « non
traité dans le dossier »).

Definitions (``score_theme``):

- a shown row is a passage cited in a cell; it is *right* when it contains one of the excerpts
  expected in that cell (``text.contains``: case, accents kept, punctuation and spaces ignored);
  an expected excerpt is *found* when one of the rows shown in its cell contains it;
- row precision = right rows / rows shown (all cells, those expected empty included);
  row recall = found excerpts / expected excerpts;
- a cell is *correct* when it shows rows, is expected non-empty, and at least one of its
  expected excerpts is found; cell precision = correct cells / cells shown non-empty; cell
  recall = correct cells / cells expected non-empty; empty accuracy = cells expected empty that
  say « non traité dans le dossier » / cells expected empty.

Deliberately left out: running the pipeline (``evals/eval_compare.py`` does, through the
assistant's own ``compare``) and any tuning.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.answer.comparison import COMPARE_COLUMNS, COMPARE_ROWS, Comparison
from assistant.evaluation.jsonl import jsonl_lines
from assistant.text import contains

CELLS = tuple(f"{c}/{r}" for c in COMPARE_COLUMNS for r in COMPARE_ROWS)


class CompareSetError(ValueError):
    """A comparison set that cannot be read (the message says which line and why, in French)."""


@dataclass
class Theme:
    id: str
    theme: str
    cells: dict[str, list[str]]
    empty: list[str]


@dataclass
class ThemeResult:
    id: str
    theme: str
    rows_shown: int = 0
    rows_right: int = 0
    expected: int = 0
    found: int = 0
    shown_cells: int = 0
    expected_cells: int = 0
    correct_cells: int = 0
    empty_cells: int = 0
    empty_right: int = 0
    misses: list[str] = field(default_factory=list)  # « cell: what went wrong »

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def load_set(path: Path) -> list[Theme]:
    """The themes of a set, each checked: an id, a theme, every cell in ``cells`` or ``empty``."""
    themes = []
    for number, line in enumerate(jsonl_lines(path.read_text(encoding="utf-8")), start=1):
        if not line.strip():
            continue
        where = f"{path.name}, ligne {number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CompareSetError(f"{where} : JSON invalide ({exc.msg}).") from exc
        cells = data.get("cells") or {}
        empty = list(data.get("empty") or [])
        if not data.get("id") or not data.get("theme"):
            raise CompareSetError(f"{where} : « id » et « theme » sont obligatoires.")
        unknown = (set(cells) | set(empty)) - set(CELLS)
        if unknown:
            raise CompareSetError(
                f"{where} : cellules inconnues {sorted(unknown)} (attendu : {', '.join(CELLS)})."
            )
        both = set(cells) & set(empty)
        missing = set(CELLS) - set(cells) - set(empty)
        if both or missing:
            raise CompareSetError(
                f"{where} : chaque cellule doit être soit dans « cells », soit dans « empty » "
                f"(dans les deux : {sorted(both)} ; dans aucune : {sorted(missing)})."
            )
        themes.append(
            Theme(str(data["id"]), str(data["theme"]), {k: list(v) for k, v in cells.items()}, empty)
        )
    return themes


def unknown_excerpts(themes: Sequence[Theme], cell_texts: dict[str, list[str]]) -> list[str]:
    """Expected excerpts found in no passage of their cell (``cell_texts``: cell → passage
    texts): a set error, reported before the figures (such an excerpt can never be found)."""
    problems = []
    for theme in themes:
        for cell, excerpts in theme.cells.items():
            for excerpt in excerpts:
                if not any(contains(text, excerpt) for text in cell_texts.get(cell, [])):
                    problems.append(
                        f"{theme.id} {cell} : « {excerpt} » ne figure dans aucun passage de la cellule"
                    )
    return problems


def score_theme(theme: Theme, comparison: Comparison) -> ThemeResult:
    result = ThemeResult(theme.id, theme.theme)
    for cell in CELLS:
        column, row = cell.split("/")
        shown = [c.passage.text for c in comparison.cells.get((column, row), [])]
        expected = theme.cells.get(cell, [])
        right = [t for t in shown if any(contains(t, e) for e in expected)]
        found = [e for e in expected if any(contains(t, e) for t in shown)]
        result.rows_shown += len(shown)
        result.rows_right += len(right)
        result.expected += len(expected)
        result.found += len(found)
        result.shown_cells += bool(shown)
        result.expected_cells += bool(expected)
        result.correct_cells += bool(shown and found)
        if not expected:
            result.empty_cells += 1
            result.empty_right += not shown
        for excerpt in expected:
            if excerpt not in found:
                result.misses.append(f"{cell} : manque « {excerpt} »")
        for text in shown:
            if text not in right:
                first = " ".join(text.split())[:70]
                result.misses.append(f"{cell} : en trop « {first}… »")
    return result


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 3) if whole else 1.0


def summary(results: Sequence[ThemeResult]) -> dict[str, float]:
    def total(name: str) -> int:
        return sum(getattr(r, name) for r in results)

    return {
        "themes": len(results),
        "cell_precision": _ratio(total("correct_cells"), total("shown_cells")),
        "cell_recall": _ratio(total("correct_cells"), total("expected_cells")),
        "empty_accuracy": _ratio(total("empty_right"), total("empty_cells")),
        "row_precision": _ratio(total("rows_right"), total("rows_shown")),
        "row_recall": _ratio(total("found"), total("expected")),
        "rows_shown": total("rows_shown"),
        "cells_shown": total("shown_cells"),
        "cells_expected": total("expected_cells"),
    }
