"""Placing a loaded document's elements in the dossier's structure: document › section › row.

Which scenario a document belongs to comes from its front matter when present, otherwise from
its title; which kind of section a heading opens (context, Opportunités, Limites, Questions,
Synthèse, or one of the note's headings) from the heading's words. Table header rows (column
names) are not blocks.
"""

from __future__ import annotations

import re
from pathlib import Path

from assistant import domain
from assistant.domain import SCENARIOS
from assistant.schema import Block, LoadedDocument
from assistant.text import clean_markup, fold

_SECTION_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (s.kind, s.heading) for s in domain.sections() if s.heading is not None
]


def section_kind_for(heading: str, default: str) -> str:
    folded = fold(clean_markup(heading)).strip()
    for kind, pattern in _SECTION_PATTERNS:
        if pattern.match(folded):
            return kind
    return default


def scenario_for_title(title: str) -> str:
    """Scenario code from a document title; ``autre`` when none is recognisable."""
    folded = fold(title)
    if "cipen" in folded or folded.startswith(("proposition", "note")):
        return "note"
    if "cmvrh" in folded:
        return "cmvrh"
    if "entpe" in folded:
        return "entpe"
    if "gustave eiffel" in folded or re.search(r"\buge\b", folded):
        return "uge"
    return "autre"


def _label_for(scenario: str, title: str) -> str:
    if scenario in {"cmvrh", "entpe"}:
        return f"Scénario {SCENARIOS[scenario]}"
    if scenario == "uge":
        return "Scénario UGE"
    if scenario == "note":
        return "Note UGE-CIPEN"
    return title if len(title) <= 60 else title[:57].rstrip() + "…"


def build_blocks(document: LoadedDocument) -> list[Block]:
    """Turn a document's elements into blocks carrying their document, section and row."""
    headings = [e for e in document.elements if e.kind == "heading"]
    title = document.meta.get("title") or (
        clean_markup(headings[0].text) if headings else Path(document.path).stem
    )
    scenario = document.meta.get("scenario") or scenario_for_title(title)
    label = document.meta.get("label") or _label_for(scenario, title)
    default_kind = "note" if scenario == domain.NOTE else "contexte"

    blocks: list[Block] = []
    section, section_kind = title, default_kind
    path: list[str] = []
    for element in document.elements:
        if element.kind == "heading":
            text = clean_markup(element.text)
            if element.level <= 1 and not blocks and fold(text) == fold(title):
                continue  # the document title itself: it is the document label
            if element.level <= 2:
                section = text
                path = [text]
                section_kind = section_kind_for(text, default_kind)
            else:
                path = [*path[:1], text]
        if element.kind == "table_header":
            continue
        block = Block(
            doc_id=document.doc_id,
            doc_title=title,
            doc_label=label,
            scenario=scenario,
            section=section,
            section_kind=section_kind,
            kind=element.kind,
            raw=element.text,
            text=clean_markup(element.text),
            start=element.start,
            end=element.end,
            heading_path=list(path),
            page=element.page,
            order=len(blocks),
        )
        if element.kind == "table_row":
            cells = [clean_markup(c) for c in element.cells] + ["", ""]
            block.subject = cells[0]
            block.observations = " ".join(c for c in cells[1:] if c).strip()
            block.text = f"{block.subject} — {block.observations}".strip(" —")
        blocks.append(block)
    return blocks
