"""Loading documents: one function per format, all returning the same ``LoadedDocument``.

Markdown is the corpus format (explicit ``#`` headings and pipe tables keep the dossier's
structure); plain text follows the dossier's own export (plain-line headings, TAB-separated
table rows); PDF and DOCX live in their own modules. Every refusal is an ``IngestError`` whose
message, in French, names the file and the reason. Nothing here decides sections: that is
``structure.py``'s job.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from assistant.ingest.docx import load_docx
from assistant.ingest.errors import SUPPORTED_EXTENSIONS, IngestError, doc_id_for
from assistant.ingest.pdf import load_pdf
from assistant.schema import Element, ElementKind, LoadedDocument


def load_document(path: Path) -> LoadedDocument:
    """Load one file of any supported format, or raise ``IngestError``."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise IngestError(
            path,
            f"format non pris en charge ({suffix or 'sans extension'}) ; "
            "formats acceptés : Markdown (.md), texte (.txt), PDF (.pdf), Word (.docx).",
        )
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise IngestError(path, f"fichier illisible ({exc.strerror}).") from exc
    if size == 0:
        raise IngestError(path, "le fichier est vide.")
    if suffix == ".pdf":
        document = load_pdf(path)
    elif suffix == ".docx":
        document = load_docx(path)
    else:
        text = read_utf8(path)
        if not text.strip():
            raise IngestError(path, "le fichier ne contient que des espaces ou des lignes vides.")
        document = parse_markdown(path, text) if suffix == ".md" else parse_plain_text(path, text)
    if not any(e.kind != "heading" and e.text.strip() for e in document.elements):
        raise IngestError(path, "aucun texte exploitable n'a été trouvé dans ce document.")
    return document


def read_utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(
            path,
            f"le texte n'est pas encodé en UTF-8 (octet invalide en position {exc.start}). "
            "Enregistrez le fichier en UTF-8 puis ajoutez-le à nouveau.",
        ) from exc
    return text.removeprefix("\ufeff")


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines of ``text`` with the offset of their first character."""
    offset = 0
    for line in text.splitlines(keepends=True):
        yield offset, line.rstrip("\r\n")
        offset += len(line)


_FRONT = re.compile(r"\A---\n(.*?)\n---\n", re.S)
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LIST = re.compile(r"^(\s*)(?:[-*+•]|(\d+[.)]))\s+(.*)$")
_TABLE_SEP = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def _item_text(item: re.Match[str]) -> str:
    """A list item's text; a numbered item keeps its number (« 1. … »), which is content."""
    return f"{item.group(2)} {item.group(3)}" if item.group(2) else item.group(3)


def _front_matter(text: str) -> tuple[dict[str, str], int]:
    match = _FRONT.match(text)
    if not match:
        return {}, 0
    meta = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            meta[key.strip()] = value.strip()
    return meta, match.end()


def _split_cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") else inner
    return [cell.strip() for cell in inner.split("|")]


def parse_markdown(path: Path, text: str) -> LoadedDocument:
    meta, body_start = _front_matter(text)
    elements: list[Element] = []
    previous_was_row = False
    for offset, line in _lines(text):
        if offset < body_start or not line.strip():
            if not line.strip():
                previous_was_row = False
            continue
        end = offset + len(line)
        stripped = line.strip()
        if heading := _HEADING.match(stripped):
            level, title = len(heading.group(1)), heading.group(2)
            start = offset + line.index(title)
            elements.append(Element("heading", title, start, start + len(title), level=level))
            previous_was_row = False
        elif stripped.startswith("|"):
            if _TABLE_SEP.match(stripped):
                continue
            cells = _split_cells(stripped)
            row_kind: ElementKind = "table_row" if previous_was_row else "table_header"
            elements.append(Element(row_kind, stripped, offset, end, cells=cells))
            previous_was_row = True
        elif item := _LIST.match(line):
            level = 1 + len(item.group(1)) // 2
            item_text = _item_text(item)
            start = offset + line.index(item_text)
            elements.append(Element("list_item", item_text, start, end, level=level))
        else:
            start = offset + line.index(stripped)
            elements.append(Element("paragraph", stripped, start, start + len(stripped)))
    return LoadedDocument(str(path), doc_id_for(path), text, elements, meta)


_SECTION_TITLES = re.compile(
    r"^(opportunités|limites( / ce qui fait encore débat)?|questions|synthèse du scénario|conclusion)$",
    re.I,
)


def _is_plain_heading(line: str, previous: str, following: str) -> bool:
    """The export's headings are short lines alone between blank lines, with no final stop."""
    text = line.strip()
    if not text or "\t" in line or _LIST.match(line) or previous.strip() or following.strip():
        return False
    if _SECTION_TITLES.match(text):
        return True
    return len(text) < 200 and not text.endswith((".", ":", ";", ",")) and not text[0].islower()


def parse_plain_text(path: Path, text: str) -> LoadedDocument:
    """Plain text in the dossier's export shape: TAB rows, plain-line headings, ``-`` items."""
    lines = list(_lines(text))
    elements: list[Element] = []
    previous_was_row = False
    first_heading = True
    for index, (offset, line) in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        end = offset + len(line)
        before = lines[index - 1][1] if index else ""
        after = lines[index + 1][1] if index + 1 < len(lines) else ""
        if "\t" in line:
            cells = [c.strip() for c in line.split("\t")]
            header = not previous_was_row or "<u>" in line
            elements.append(
                Element("table_header" if header else "table_row", line, offset, end, cells=cells)
            )
            previous_was_row = True
            continue
        previous_was_row = False
        start = offset + line.index(stripped)
        if _is_plain_heading(line, before, after):
            level = 1 if first_heading else 2
            first_heading = False
            elements.append(Element("heading", stripped, start, start + len(stripped), level=level))
        elif item := _LIST.match(line):
            level = 1 + len(item.group(1))
            item_text = _item_text(item)
            start = offset + line.index(item_text)
            elements.append(Element("list_item", item_text, start, end, level=level))
        else:
            elements.append(Element("paragraph", stripped, start, start + len(stripped)))
    return LoadedDocument(str(path), doc_id_for(path), text, elements, {})
