"""Typed data passed between stages: elements, blocks, chunks, passages, citations, answers.

Citations and the interface read their source from these objects, never by re-parsing strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ElementKind = Literal["heading", "paragraph", "list_item", "table_header", "table_row"]


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
    section_kind: str  # one of domain.SECTIONS
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
    def subject(self) -> str:
        """A table row's left cell (« Gouvernance »); empty for prose."""
        return str(self.metadata.get("subject", "")) if self.metadata.get("kind") == "row" else ""

    @property
    def observations(self) -> str:
        """A table row's right cell, what it says of its subject; empty for prose."""
        return str(self.metadata.get("observations", "")) if self.metadata.get("kind") == "row" else ""

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
    """What the answer pipeline returns to the CLI, the app and the evaluation runner.

    An answer keeps its parts, which renderers show as they see fit, verbatim first: ``lead``
    (what kind of answer this is), ``body`` (the dossier's own lines, quoted with their [n]
    markers, or the refusal's message), ``gap`` (the part of the question the dossier does not
    treat), then ``synthesis`` (a model's sentences, each verified against the quoted lines
    before it was kept, under ``synthesis_lead``; empty without a model). ``text`` is all of
    them, in that order."""

    question: str
    standalone_question: str
    citations: list[Citation]
    passages: list[Passage]
    lead: str = ""
    body: str = ""
    gap: str = ""
    synthesis: str = ""
    synthesis_lead: str = ""
    # Synthesis sentences the model completed, and how many of them passed verification.
    synthesis_checked: int = 0
    synthesis_kept: int = 0
    mode: str = "answer"
    backend: str = "extractive"
    refused: bool = False
    flags: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    filters: dict[str, list[str]] = field(default_factory=dict)
    # What the question was read as asking about (scenario and section codes), beyond the filters.
    read_as: dict[str, list[str]] = field(default_factory=dict)
    # Messages for the user (French): fallback to extractive, timeout, inconsistencies…
    notices: list[str] = field(default_factory=list)
    # Sentences the verification removed because no passage supports them.
    removed: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        synthesis = f"{self.synthesis_lead}\n\n{self.synthesis}" if self.synthesis else ""
        return "\n\n".join(part for part in (self.lead, self.body, self.gap, synthesis) if part)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "standalone_question": self.standalone_question,
            "text": self.text,
            "parts": {
                "lead": self.lead,
                "body": self.body,
                "gap": self.gap,
                "synthesis": self.synthesis,
            },
            "synthesis": {"checked": self.synthesis_checked, "kept": self.synthesis_kept},
            "citations": [c.to_dict() for c in self.citations],
            "mode": self.mode,
            "backend": self.backend,
            "refused": self.refused,
            "flags": self.flags,
            "timings": self.timings,
            "filters": self.filters,
            "read_as": self.read_as,
            "notices": self.notices,
            "removed": self.removed,
        }


@dataclass
class Exchange:
    """One past question of the conversation and what the assistant answered, as a follow-up
    reads it: the answer's own sentences (no lead, verbatim lines or notices) and the passages
    it cited. The app and the CLI keep these; a conversation that arrives as chat messages (a
    question set, the API) is turned into them by ``as_exchanges``."""

    question: str
    answer: str = ""
    cited: list[Passage] = field(default_factory=list)

    @classmethod
    def of(cls, answer: Answer) -> Exchange:
        return cls(answer.question, answer.body, [c.passage for c in answer.citations])


History = Sequence[Exchange] | Sequence[Mapping[str, str]]

# What a rendered answer that arrives as text may carry besides its claims: the extractive lead
# and a trailing source list. Only text from outside (chat messages) is cleaned this way.
_RENDERED_LEAD = re.compile(r"^(R[ée]ponse extractive|Ce que le dossier en dit)[^\n]*\n", re.IGNORECASE)
_RENDERED_TAIL = re.compile(r"\n\s*(Sources?|Note|Remarque)\s*:.*", re.IGNORECASE | re.DOTALL)


def as_messages(exchanges: Sequence[Exchange]) -> list[dict[str, str]]:
    """The exchanges as chat messages (what feedback files and question sets store)."""
    messages: list[dict[str, str]] = []
    for exchange in exchanges:
        messages.append({"role": "user", "content": exchange.question})
        messages.append({"role": "assistant", "content": exchange.answer})
    return messages


def as_exchanges(history: History | None) -> list[Exchange]:
    """The conversation as exchanges; chat messages (``{"role", "content"}``, alternating from
    ``user``) are paired, an assistant message answering the user message before it."""
    exchanges: list[Exchange] = []
    for item in history or []:
        if isinstance(item, Exchange):
            exchanges.append(item)
            continue
        role, content = item.get("role"), str(item.get("content", ""))
        if role == "user":
            exchanges.append(Exchange(content))
        elif role == "assistant" and exchanges and not exchanges[-1].answer:
            text = content.strip()
            exchanges[-1].answer = _RENDERED_TAIL.sub("", _RENDERED_LEAD.sub("", text))
    return exchanges
