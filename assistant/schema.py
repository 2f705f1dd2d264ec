"""Typed data passed between stages: elements, blocks, chunks, passages, citations, answers.

Citations and the interface read their source from these objects, never by re-parsing strings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ElementKind = Literal["heading", "paragraph", "list_item", "table_header", "table_row"]

# Scenario codes, and how they are shown to users.
SCENARIOS: dict[str, str] = {
    "cmvrh": "CMVRH",
    "entpe": "ENTPE",
    "uge": "Université Gustave Eiffel",
    "note": "Note de l'UGE (CIPEN)",
}
# Section kinds, and how they are shown to users.
SECTIONS: dict[str, str] = {
    "contexte": "Contexte",
    "opportunites": "Opportunités",
    "limites": "Limites",
    "questions": "Questions",
    "synthese": "Synthèse",
    "note": "Note",
}


@dataclass
class Element:
    """One structural element as a loader sees it, before sections are assigned.

    ``cells`` holds the raw cell texts of a table row; ``text`` the raw text otherwise.
    ``start``/``end`` are character offsets in the loaded text (``LoadedDocument.text``).
    """

    kind: ElementKind
    text: str
    start: int
    end: int
    level: int = 0
    cells: list[str] = field(default_factory=list)
    page: int | None = None


@dataclass
class LoadedDocument:
    """What a loader returns: the file's text and its elements in reading order."""

    path: str
    doc_id: str
    text: str
    elements: list[Element]
    meta: dict[str, str] = field(default_factory=dict)
    pages: int | None = None


@dataclass
class Block:
    """An element placed in the dossier's structure (document › section › row)."""

    doc_id: str
    doc_title: str
    doc_label: str
    scenario: str
    section: str  # heading text of the section
    section_kind: str  # one of SECTIONS
    kind: ElementKind
    raw: str  # exact source text (markup included)
    text: str  # verbatim text with markup removed (what users read and quote)
    start: int
    end: int
    subject: str = ""  # table rows: the left cell (cleaned)
    observations: str = ""  # table rows: the right cell (cleaned)
    heading_path: list[str] = field(default_factory=list)
    page: int | None = None
    order: int = 0


@dataclass
class Chunk:
    """A unit of retrieval: one table row, or consecutive paragraphs of one section."""

    chunk_id: str
    doc_id: str
    text: str
    breadcrumb: str
    metadata: dict[str, Any]
    start: int
    end: int

    def embedding_text(self) -> str:
        return f"{self.breadcrumb}\n{self.text}"


@dataclass
class Passage:
    """A retrieved chunk with its score: what every consumer of retrieval receives."""

    chunk_id: str
    text: str
    label: str
    metadata: dict[str, Any]
    score: float
    rank: int = 0
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def scenario(self) -> str:
        return str(self.metadata.get("scenario", ""))

    @property
    def section_kind(self) -> str:
        return str(self.metadata.get("section_kind", ""))

    @property
    def page(self) -> int | None:
        page = self.metadata.get("page")
        return int(page) if page not in (None, "", -1) else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Citation:
    """A passage cited by an answer, with the verbatim span that supports the claim."""

    marker: int
    passage: Passage
    span: str
    span_start: int = -1  # offset of the span within passage.text, -1 if unknown

    def to_dict(self) -> dict[str, Any]:
        return {
            "marker": self.marker,
            "label": self.passage.label,
            "chunk_id": self.passage.chunk_id,
            "span": self.span,
            "span_start": self.span_start,
            "text": self.passage.text,
            "metadata": self.passage.metadata,
        }


@dataclass
class Answer:
    """What the answer pipeline returns to the CLI, the app and the evaluation runner."""

    question: str
    standalone_question: str
    text: str
    citations: list[Citation]
    passages: list[Passage]
    mode: str = "answer"
    backend: str = "extractive"
    refused: bool = False
    flags: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    filters: dict[str, list[str]] = field(default_factory=dict)
    # Messages for the user (French): fallback to extractive, timeout, inconsistencies…
    notices: list[str] = field(default_factory=list)
    # Sentences the verification removed because no passage supports them.
    removed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "standalone_question": self.standalone_question,
            "text": self.text,
            "citations": [c.to_dict() for c in self.citations],
            "mode": self.mode,
            "backend": self.backend,
            "refused": self.refused,
            "flags": self.flags,
            "timings": self.timings,
            "filters": self.filters,
            "notices": self.notices,
            "removed": self.removed,
        }
