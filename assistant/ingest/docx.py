"""Loading a Word document (.docx): headings, list items, table rows and paragraphs, in order.

The body is read in document order, paragraphs and tables interleaved (the children of
``document.element.body``, content controls opened). A paragraph is:

- a heading when its style, or a style it is based on, is « Heading N » / « Titre N » (level N),
  « Title » / « Titre » (level 1), or carries an outline level (level + 1);
- a list item when its style is a list style (« List Bullet 2 », « Liste à puces »,
  « List Paragraph »…) or it has numbering properties, directly or through its style; the level
  comes from the numbering level (``ilvl`` + 1) or the style's number;
- a paragraph otherwise (table-of-contents entries are skipped: they repeat the headings).

A table gives one element per row with the text of each cell (nested tables flattened into their
cell; a vertically merged cell repeats its text on every row it covers, so each row keeps its
subject). The first row, and any further rows marked « repeat as header », are ``table_header``.
A one-column table (a framed box) is read as paragraphs, and a table with a single row as one
paragraph, so that no text hides in a header that is not indexed.

Text is read from the XML runs (``w:t``, tabs, breaks), which keeps tracked insertions and
hyperlinks and drops tracked deletions (the text reads as if all changes were accepted), field
codes and hidden text. The document text is rebuilt
from the elements (one per line, list items prefixed with « - », cells separated by a TAB) and
``start``/``end`` point into it. Page numbers are unknown in a .docx (``page`` stays ``None``).

Left out: text boxes and shapes, headers and footers, footnotes and endnotes, comments, images,
embedded objects, the numbering's rendered labels (« 1. », « a) »), bold « Normal » paragraphs
used as headings (only styles make headings here, unlike the PDF loader which has no styles to
go by), and old binary .doc files (refused with advice). A corrupt file, a file that is not a
zip, a zip that holds no Word document or one that really decompresses to more than
``DOCX_MAX_UNCOMPRESSED`` bytes (measured while decompressing, ``archive.py``) raises ``IngestError``.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.ingest.archive import DOCX_MAX_UNCOMPRESSED, check_docx_archive
from assistant.ingest.errors import IngestError, doc_id_for
from assistant.schema import Element, ElementKind, LoadedDocument

__all__ = ["DOCX_MAX_UNCOMPRESSED", "load_docx"]

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_CORRUPT = "le fichier Word est illisible ou endommagé"

# Elements whose content is not visible text of the paragraph itself.
_SKIP = {
    _W + "pPr",
    _W + "rPr",
    _W + "del",
    _W + "moveFrom",
    _W + "delText",
    _W + "instrText",
    _W + "drawing",
    _W + "pict",
    _W + "object",
    _W + "footnoteReference",
    _W + "endnoteReference",
    _W + "commentReference",
    _MC + "AlternateContent",
}
_HEADING_STYLE = re.compile(r"^(?:heading|titre)\s*([1-9])$", re.IGNORECASE)
_TITLE_STYLE = re.compile(r"^(?:title|titre)$", re.IGNORECASE)
_LIST_STYLE = re.compile(r"^(?:list|liste)\b|paragraphe de liste|list paragraph", re.IGNORECASE)
_TOC_STYLE = re.compile(
    r"^(?:toc|tdm|table des matières)\s*\d|^toc heading$|^en-tête de table", re.IGNORECASE
)
# What python-docx, zipfile and lxml raise on a damaged package, besides their own errors.
_READ_ERRORS: tuple[type[BaseException], ...] = (
    AttributeError,
    LookupError,
    NotImplementedError,
    OSError,
    TypeError,
    ValueError,
    EOFError,
)
_STYLE_NUMBER = re.compile(r"(\d)\s*$")
_SPACES = re.compile(r"[ \t\r\n]+")


def load_docx(path: Path) -> LoadedDocument:
    """Load a .docx file, or raise ``IngestError`` with the reason in French."""
    path = Path(path)
    _check_archive(path)
    from docx import Document
    from docx.opc.exceptions import OpcError
    from lxml.etree import LxmlError

    try:
        document = Document(str(path))
        body = document.element.body
        styles = _Styles(document.styles.element)
    except (OpcError, LxmlError, zipfile.BadZipFile, *_READ_ERRORS) as exc:
        raise IngestError(path, f"{_CORRUPT} (le contenu du document ne peut pas être lu).") from exc
    builder = _Builder(styles)
    builder.blocks(body)
    meta: dict[str, str] = {}
    return LoadedDocument(str(path), doc_id_for(path), "".join(builder.parts), builder.elements, meta)


def _check_archive(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise IngestError(path, f"fichier illisible ({exc.strerror}).") from exc
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise IngestError(
            path,
            f"{_CORRUPT} (c'est un document Word 97-2003 « .doc » : enregistrez-le au format "
            ".docx puis ajoutez-le à nouveau).",
        )
    check_docx_archive(path)


@dataclass
class _Style:
    name: str
    based_on: str
    outline: int | None
    numbered: bool


class _Styles:
    """Paragraph styles by id, with what is inherited through ``basedOn``."""

    def __init__(self, root: Any) -> None:
        self.styles: dict[str, _Style] = {}
        self.default = ""
        for style in root.iter(_W + "style"):
            if style.get(_W + "type", "paragraph") != "paragraph":
                continue
            style_id = style.get(_W + "styleId") or ""
            name = _val(style.find(_W + "name")) or style_id
            based_on = _val(style.find(_W + "basedOn")) or ""
            ppr = style.find(_W + "pPr")
            outline = _outline(ppr)
            numbered = _numbered(ppr)
            self.styles[style_id] = _Style(name, based_on, outline, numbered)
            if style.get(_W + "default") in ("1", "true"):
                self.default = style_id

    def chain(self, style_id: str) -> list[_Style]:
        chain: list[_Style] = []
        seen: set[str] = set()
        current = style_id or self.default
        while current and current not in seen and current in self.styles and len(chain) < 10:
            seen.add(current)
            chain.append(self.styles[current])
            current = self.styles[current].based_on
        return chain


def _val(element: Any) -> str | None:
    return None if element is None else element.get(_W + "val")


def _outline(ppr: Any) -> int | None:
    if ppr is None:
        return None
    value = _val(ppr.find(_W + "outlineLvl"))
    try:
        level = int(value) if value is not None else None
    except ValueError:
        return None
    return level if level is not None and 0 <= level < 9 else None


def _numbered(ppr: Any) -> bool:
    if ppr is None:
        return False
    numpr = ppr.find(_W + "numPr")
    return numpr is not None and _val(numpr.find(_W + "numId")) not in (None, "0")


def _ilvl(ppr: Any) -> int | None:
    if ppr is None or ppr.find(_W + "numPr") is None:
        return None
    value = _val(ppr.find(_W + "numPr").find(_W + "ilvl"))
    return int(value) if value is not None and value.isdigit() else None


def _hidden(run: Any) -> bool:
    rpr = run.find(_W + "rPr")
    if rpr is None:
        return False
    vanish = rpr.find(_W + "vanish")
    return vanish is not None and _val(vanish) not in ("0", "false")


def _text(element: Any) -> str:
    """Visible text of a paragraph (or of any element holding runs)."""
    out: list[str] = []

    def walk(node: Any) -> None:
        for child in node:
            tag = child.tag
            if not isinstance(tag, str) or tag in _SKIP:
                continue
            if tag == _W + "r" and _hidden(child):
                continue
            if tag == _W + "t":
                out.append(child.text or "")
            elif tag == _W + "tab":
                out.append("\t")
            elif tag in (_W + "br", _W + "cr"):
                out.append("\n")
            elif tag == _W + "noBreakHyphen":
                out.append("-")
            else:
                walk(child)

    walk(element)
    return _SPACES.sub(" ", "".join(out)).strip()


class _Builder:
    def __init__(self, styles: _Styles) -> None:
        self.styles = styles
        self.parts: list[str] = []
        self.elements: list[Element] = []
        self.offset = 0

    # -- output

    def emit(self, kind: ElementKind, text: str, *, level: int = 0, cells: list[str] | None = None) -> None:
        if not text.strip():
            return
        separator = "\n" if kind == "heading" and self.parts else ""
        prefix = "- " if kind == "list_item" else ""
        start = self.offset + len(separator) + len(prefix)
        end = start + len(text)
        self.parts.append(f"{separator}{prefix}{text}\n")
        self.offset = end + 1
        self.elements.append(Element(kind, text, start, end, level=level, cells=cells or []))

    # -- body

    def blocks(self, container: Any) -> None:
        for child in container.iterchildren():
            tag = child.tag
            if tag == _W + "p":
                self.paragraph(child)
            elif tag == _W + "tbl":
                self.table(child)
            elif tag in (_W + "sdt", _W + "customXml", _W + "sdtContent"):
                content = child.find(_W + "sdtContent") if tag == _W + "sdt" else child
                if content is not None:
                    self.blocks(content)

    def paragraph(self, p: Any) -> None:
        text = _text(p)
        if not text:
            return
        ppr = p.find(_W + "pPr")
        style_id = _val(ppr.find(_W + "pStyle")) if ppr is not None else None
        chain = self.styles.chain(style_id or "")
        names = [style.name for style in chain]
        if any(_TOC_STYLE.search(name) for name in names[:1]):
            return
        level = self.heading_level(ppr, chain)
        if level:
            self.emit("heading", text, level=level)
            return
        if _numbered(ppr) or any(s.numbered for s in chain) or any(_LIST_STYLE.search(n) for n in names):
            ilvl = _ilvl(ppr)
            if ilvl is None:
                number = next((_STYLE_NUMBER.search(n) for n in names if _LIST_STYLE.search(n)), None)
                level = int(number.group(1)) if number else 1
            else:
                level = ilvl + 1
            self.emit("list_item", text, level=level)
            return
        self.emit("paragraph", text)

    def heading_level(self, ppr: Any, chain: list[_Style]) -> int:
        direct = _outline(ppr)
        if direct is not None:
            return direct + 1
        for style in chain:
            if match := _HEADING_STYLE.match(style.name.strip()):
                return int(match.group(1))
            if _TITLE_STYLE.match(style.name.strip()):
                return 1
            if style.outline is not None:
                return style.outline + 1
        return 0

    # -- tables

    def table(self, tbl: Any) -> None:
        rows: list[tuple[list[str], bool]] = []  # (cells, marked as header)
        above: dict[int, str] = {}  # grid column -> text of the cell above (vertical merges)
        columns = 0
        for tr in _children(tbl, "tr"):
            trpr = tr.find(_W + "trPr")
            header = trpr is not None and trpr.find(_W + "tblHeader") is not None
            grid = _int(_val(trpr.find(_W + "gridBefore"))) if trpr is not None else 0
            cells: list[str] = []
            for tc in _children(tr, "tc"):
                tcpr = tc.find(_W + "tcPr")
                span = max(1, _int(_val(tcpr.find(_W + "gridSpan"))) if tcpr is not None else 1)
                vmerge = tcpr.find(_W + "vMerge") if tcpr is not None else None
                if vmerge is not None and _val(vmerge) in (None, "continue"):
                    text = above.get(grid, "")
                else:
                    text = self.cell_text(tc)
                for column in range(grid, grid + span):
                    above[column] = text
                cells.append(text)
                grid += span
            columns = max(columns, len(cells))
            if any(cells):
                rows.append((cells, header))
        if not rows:
            return
        if columns < 2:  # a framed box, not a table
            for cells, _ in rows:
                for text in cells:
                    self.emit("paragraph", text)
            return
        if len(rows) == 1:
            self.emit("paragraph", " ".join(c for c in rows[0][0] if c))
            return
        for index, (cells, header) in enumerate(rows):
            is_header = index == 0 or (header and all(h for _, h in rows[:index]))
            kind: ElementKind = "table_header" if is_header else "table_row"
            self.emit(kind, "\t".join(cells), cells=cells)

    def cell_text(self, tc: Any) -> str:
        pieces: list[str] = []
        for child in tc.iterchildren():
            if child.tag == _W + "p":
                pieces.append(_text(child))
            elif child.tag == _W + "tbl":  # nested table: its cells, in order
                pieces += [
                    self.cell_text(inner) for row in _children(child, "tr") for inner in _children(row, "tc")
                ]
            elif child.tag in (_W + "sdt", _W + "customXml"):
                pieces.append(_text(child))
        return " ".join(p for p in pieces if p).strip()


def _children(element: Any, name: str) -> list[Any]:
    """Children named ``w:name``, looking through content controls and custom XML."""
    found = []
    for child in element.iterchildren():
        if child.tag == _W + name:
            found.append(child)
        elif child.tag in (_W + "sdt", _W + "customXml"):
            inner = child.find(_W + "sdtContent") if child.tag == _W + "sdt" else child
            if inner is not None:
                found += _children(inner, name)
    return found


def _int(value: str | None) -> int:
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0
