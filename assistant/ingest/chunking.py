"""Structure-aware chunking: a table row is a chunk; prose is grouped without cutting a sentence.

A row keeps its subject inside the chunk text because the subject is what a question names
(« la gouvernance », « la géographie ») while the observations carry the answer. Consecutive
paragraphs and list items of one (sub)section are grouped up to ``MAX_CHARS``, the first group
of a section opening with its heading (headings are text users quote); a list's introductory
sentence (ending with « : ») stays with its items. A paragraph longer than ``MAX_CHARS`` is
split between sentences. Ids are deterministic: document, position and a hash
of the text, so a re-run of an interrupted ingest upserts the same records.
"""

from __future__ import annotations

import hashlib
import re

from assistant.domain import SECTIONS
from assistant.schema import Block, Chunk
from assistant.text import split_sentences

CHUNKER_VERSION = "6"
# ~700 characters is ~150 e5 tokens: one idea per chunk, and well inside e5's 512-token window.
MAX_CHARS = 700


def _chunk_id(doc_id: str, position: int, text: str) -> str:
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]
    return f"{doc_id}-{position:03d}-{digest}"


def breadcrumb(block: Block, subject: str = "") -> str:
    parts = [block.doc_label]
    if block.section and block.section != block.doc_title:
        parts.append(block.section)
    parts += [p for p in block.heading_path[1:] if p]
    if subject:
        parts.append(subject)
    return " › ".join(parts)


def _metadata(block: Block, kind: str, source: str) -> dict[str, object]:
    return {
        "doc_id": block.doc_id,
        "doc_title": block.doc_title,
        "doc_label": block.doc_label,
        "scenario": block.scenario,
        "section": block.section,
        "section_kind": block.section_kind,
        "section_label": SECTIONS.get(block.section_kind, block.section_kind),
        "subsection": " › ".join(block.heading_path[1:]),
        "subject": block.subject,
        "observations": block.observations,
        "kind": kind,
        "page": block.page if block.page is not None else -1,
        "source": source,
    }


def _group_prose(blocks: list[Block]) -> list[list[Block]]:
    """Group consecutive prose blocks of one heading, never over MAX_CHARS (unless alone)."""
    groups: list[list[Block]] = []
    current: list[Block] = []
    size = 0
    for block in blocks:
        if block.kind == "heading":  # a heading opens a new chunk and stays with its text
            if current:
                groups.append(current)
            current, size = [block], len(block.text)
            continue
        same_place = current and current[-1].heading_path == block.heading_path
        intro_pending = current and current[-1].text.endswith(":")
        fits = size + len(block.text) <= MAX_CHARS
        if current and same_place and (fits or intro_pending):
            current.append(block)
            size += len(block.text) + 1
            continue
        if current:
            groups.append(current)
        current, size = [block], len(block.text)
    if current:
        groups.append(current)
    return groups


def _split_long(text: str) -> list[str]:
    if len(text) <= MAX_CHARS:
        return [text]
    pieces: list[str] = []
    current = ""
    for sentence in split_sentences(text):
        if current and len(current) + 1 + len(sentence) > MAX_CHARS:
            pieces.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    if current:
        pieces.append(current)
    return pieces


def _piece_offsets(block: Block, piece: str) -> tuple[int, int]:
    """Offsets in the source of one piece of a split paragraph (markup may sit in between)."""
    head, tail = piece[:40], piece[-40:]
    begin = block.raw.find(head)
    finish = block.raw.find(tail, max(begin, 0))
    if begin < 0 or finish < 0:
        return block.start, block.end
    return block.start + begin, block.start + finish + len(tail)


def _join(blocks: list[Block]) -> str:
    lines = []
    for block in blocks:
        if block.kind == "list_item":
            numbered = re.match(r"\d+[.)] ", block.text)
            lines.append(block.text if numbered else f"- {block.text}")
        else:
            lines.append(block.text)
    return "\n".join(lines)


def chunk_blocks(blocks: list[Block], source: str = "") -> list[Chunk]:
    """Cut one document's blocks into chunks, in reading order."""
    chunks: list[Chunk] = []

    def emit(
        text: str,
        first: Block,
        last: Block,
        kind: str,
        subject: str = "",
        span: tuple[int, int] | None = None,
    ) -> None:
        position = len(chunks)
        metadata = _metadata(first, kind, source)
        metadata["position"] = position
        chunks.append(
            Chunk(
                chunk_id=_chunk_id(first.doc_id, position, text),
                doc_id=first.doc_id,
                text=text,
                breadcrumb=breadcrumb(first, subject),
                metadata=metadata,
                start=span[0] if span and first.kind != "heading" else first.start,
                end=span[1] if span else last.end,
            )
        )

    prose: list[Block] = []

    def flush_prose() -> None:
        for group in _group_prose(prose):
            body = [b for b in group if b.kind != "heading"]
            if not body:
                continue  # a heading with no prose (a table follows, or nothing)
            heading = group[0].text if group[0].kind == "heading" else ""
            if len(body) == 1 and body[0].kind == "paragraph" and len(body[0].text) > MAX_CHARS:
                for i, piece in enumerate(_split_long(body[0].text)):
                    text = f"{heading}\n{piece}" if heading and i == 0 else piece
                    span = _piece_offsets(body[0], piece)
                    emit(text, group[0] if i == 0 else body[0], body[0], "text", span=span)
            else:
                emit(_join(group), group[0], group[-1], "text")
        prose.clear()

    for block in blocks:
        if block.kind == "table_row":
            flush_prose()
            emit(block.text, block, block, "row", block.subject)
        elif block.text:
            prose.append(block)
    flush_prose()
    return chunks


def sentence_units(text: str) -> list[str]:
    """The sentences of a chunk (row cells and list items split too), for sentence vectors.

    A question often targets one sentence of a long chunk; a chunk's single vector blurs it.
    Sentence vectors (« small-to-big »: search sentences, return their chunk) raised dense
    hit@5 on the development set from 0.667 to 0.719 (scripts in README, « Mesures »).
    """
    units: list[str] = []
    for line in text.split("\n"):
        for cell in line.split(" — "):
            units.extend(u for u in split_sentences(cell.lstrip("- ")) if len(u) >= 15)
    return units
