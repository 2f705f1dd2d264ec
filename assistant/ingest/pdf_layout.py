"""Layout analysis of a text PDF: headings, lists, tables and paragraphs recovered from positions.

``assistant.ingest.pdf`` opens the file with pypdf in a child process; for each page it calls
``page_data`` (text runs and drawn rules), then ``layout`` turns the pages into the document's
text and elements.

How the structure is recovered (everything from ``page.extract_text(visitor_text=...)``):

- every text run comes with its position (text matrix × CTM), font size and font name; its width
  comes from the font's metrics plus word and character spacing (``Tw``/``Tc``, justified text).
  pypdf only moves a run's position on positioning operators, so a run that follows a font change
  on the same line is placed where the previous run ends; the same text printed twice at almost
  the same place (simulated bold) is kept once. Horizontal rules and cell rectangles drawn on the
  page are collected too (table grids);
- runs on one baseline form a line; a line's runs separated by a wide gap form *segments*;
- running headers and footers (the same text, digits aside, in the top or bottom band of several
  pages) and bare page numbers are dropped;
- table: consecutive lines whose segments fall in the same columns (two or more) for at least two
  rows, across page breaks too; within it, a new row starts at a grid line between two lines (or,
  for tables without grid lines, where the gap is larger than the line spacing) and where the
  left column starts a new cell after lines without one; the first row is ``table_header`` and a
  header repeated at the top of a following page is skipped. A « table » of a single row is read
  as a paragraph, so no text is hidden in a header;
- heading: a line whose size is clearly larger than the body size (the most used size), or one
  to three lines entirely in bold (« 1. Introduction » included) that stand alone: not continued
  by regular text and not ending with « . », « , » or « ; ». Consecutive heading lines of one size
  are one heading. Level 1 for the largest heading size of the first page (or larger), level 2
  for the next size, level 3 below;
- list item: a line starting with « - », « • » (or another bullet glyph), « 1. », « 1) » or
  « a) »; the lines indented under it belong to it; the level comes from the marker's indent;
- paragraph: consecutive lines of one size and left edge, until a larger gap, a change of indent,
  or a short line ending a sentence; a paragraph split by a page break is joined again.
  Lines are joined with a space, except after a hyphen followed by a lowercase letter: joined
  without a space, hyphen kept (« Vaulx- » + « en-Velin »); a soft hyphen is removed.

The text of ``LoadedDocument`` is rebuilt from the elements (one per line, table cells separated
by a TAB, list items with their marker); ``start``/``end`` point into it and ``page`` is 1-based.

Left out: OCR (a scan is refused, with advice), multi-column page layouts (read line by line
across the columns), tables whose producer writes a whole row as one text object (pypdf then
reports one run: the row reads as a paragraph), tables without grid lines whose cells have no
vertical padding (rows can merge), text drawn rotated (ignored, unless a page has no upright
text), footnotes (read as small paragraphs where they are), images, links, annotations, forms
and the outline. The PDF's own title metadata is not used (often a file name or a template's).
A hyphen that only splits a word at a line end stays (« exam-ple »): it cannot be told from the
hyphen of a compound word.
"""

from __future__ import annotations

import itertools
import math
import re
import struct
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from assistant.schema import Element

# What pypdf and the libraries under it raise on damaged files. Anything else still ends the
# child, and the parent reports the file as unreadable.
_PDF_ERRORS: tuple[type[BaseException], ...] = (
    ArithmeticError,
    AssertionError,
    AttributeError,
    LookupError,
    NotImplementedError,
    OSError,
    RuntimeError,  # RecursionError included
    TypeError,
    ValueError,  # UnicodeDecodeError included
    struct.error,
    zlib.error,
)


def pdf_errors(*extra: type[BaseException]) -> tuple[type[BaseException], ...]:
    """pypdf's own errors plus the built-in ones malformed files raise inside it (and ``extra``)."""
    from pypdf.errors import PyPdfError

    return (PyPdfError, *_PDF_ERRORS, *extra)


# ------------------------------------------------------------------------------ extraction


@dataclass
class _Run:
    x: float
    y: float
    x1: float
    size: float
    bold: bool
    text: str
    space_before: bool = False  # the run's text had white space around it
    space_after: bool = False


@dataclass
class PageData:
    number: int
    runs: list[_Run]
    rules: list[tuple[float, float, float]] = field(default_factory=list)  # (y, x0, x1)
    height: float = 842.0
    bottom: float = 0.0


def _mult(m: list[float], n: list[float]) -> list[float]:
    return [
        m[0] * n[0] + m[1] * n[2],
        m[0] * n[1] + m[1] * n[3],
        m[2] * n[0] + m[3] * n[2],
        m[2] * n[1] + m[3] * n[3],
        m[4] * n[0] + m[5] * n[2] + n[4],
        m[4] * n[1] + m[5] * n[3] + n[5],
    ]


_BOLD_NAME = re.compile(r"bold|black|heavy|semibold|demi|[-,]bd\b|[-,]b$", re.IGNORECASE)
# Ligatures, and 0x7F: WinAnsiEncoding maps unused codes to the bullet, pypdf does not.
_CHARACTERS = str.maketrans({"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "\x7f": "•"})


class _FontInfo:
    """Name, boldness and glyph widths of one font resource (pypdf's metrics when available)."""

    def __init__(self, font_dict: Any) -> None:
        self.bold = False
        self.metrics: Any = None
        name = ""
        if font_dict is None:
            return
        try:
            name = str(font_dict.get("/BaseFont", "")).lstrip("/").split("+")[-1]
            descriptor = font_dict.get("/FontDescriptor")
            descriptor = descriptor.get_object() if descriptor is not None else {}
            weight = float(descriptor.get("/FontWeight", 0) or 0)
            flags = int(descriptor.get("/Flags", 0) or 0)
            self.bold = bool(_BOLD_NAME.search(name)) or weight >= 600 or bool(flags & (1 << 18))
        except _PDF_ERRORS:  # a malformed descriptor only costs the bold hint
            self.bold = bool(_BOLD_NAME.search(name))
        try:
            from pypdf.generic._font import Font

            self.metrics = Font.from_font_resource(font_dict)
        except pdf_errors(ImportError):  # private API or odd font
            self.metrics = None  # an average glyph width will do

    def width(self, text: str, size: float) -> float:
        estimate = 0.5 * size * len(text)
        if self.metrics is None:
            return estimate
        try:
            width = float(self.metrics.get_text_width(text)) / 1000 * size
        except _PDF_ERRORS:
            return estimate
        return width if 0 < width <= 1.5 * size * len(text) else estimate


def page_data(page: Any, number: int) -> PageData:
    runs: list[_Run] = []
    rotated: list[str] = []
    rules: list[tuple[float, float, float]] = []
    fonts: dict[int, _FontInfo] = {}
    point: list[float] = [0.0, 0.0]
    spacing = {"word": 0.0, "char": 0.0}  # Tw and Tc: justified lines are wider than their glyphs
    state: dict[str, Any] = {"space": False, "previous": None}

    def on_text(text: str, cm: list[float], tm: list[float], font_dict: Any, size: Any) -> None:
        text = (text or "").replace("\n", " ").translate(_CHARACTERS)
        if not text.strip():
            state["space"] = state["space"] or bool(text)
            return
        m = _mult([float(v) for v in tm], [float(v) for v in cm])
        if m[0] <= 0 or abs(m[1]) > 1e-3 * abs(m[0]):  # not upright
            rotated.append(text)
            return
        info = fonts.get(id(font_dict))
        if info is None:
            info = fonts[id(font_dict)] = _FontInfo(font_dict)
        try:
            font_size = abs(float(size)) or 1.0
        except (TypeError, ValueError):
            font_size = 1.0
        x_scale, y_scale = math.hypot(m[0], m[1]), math.hypot(m[2], m[3])
        size = font_size * y_scale
        leading = len(text) - len(text.lstrip())
        space_before, state["space"] = bool(leading) or bool(state["space"]), False
        space_after = text[-1].isspace()
        text = text.strip()
        width = info.width(text, font_size) * x_scale
        width += (spacing["char"] * len(text) + spacing["word"] * text.count(" ")) * x_scale
        space = info.width(" ", font_size) * x_scale
        x, y = m[4] + leading * space, m[5]
        raw = (m[4], m[5])
        if runs:
            last = runs[-1]
            same_line = abs(last.y - y) < 0.1 * max(size, last.size)
            if same_line and text == last.text and abs(x - last.x) < 1.5:
                return  # the same text printed twice, slightly offset: simulated bold
            previous_raw = state["previous"]
            if previous_raw is not None and math.dist(raw, previous_raw) < 0.01:
                # pypdf moves the text position on positioning operators only, not as glyphs
                # are shown: a run after a font change without a move gets the position of the
                # run before it. It really starts where that run ends.
                x = last.x1 + (space if space_before or last.space_after else 0.0)
        state["previous"] = raw
        runs.append(_Run(x, y, x + width, size, info.bold, text, space_before, space_after))

    def on_operator(operator: bytes, operands: list[Any], cm: list[float], tm: list[float]) -> None:
        if operator in (b"Tw", b"Tc", b'"'):
            try:
                if operator == b"Tc":
                    spacing["char"] = float(operands[0])
                else:
                    spacing["word"] = float(operands[0])
                    if operator == b'"':
                        spacing["char"] = float(operands[1])
            except (IndexError, TypeError, ValueError):
                pass
            return
        if operator not in (b"re", b"m", b"l"):
            return
        try:
            values = [float(v) for v in operands]
            a, b, c, d, e, f = (float(v) for v in cm)
        except (TypeError, ValueError):
            return

        def place(x: float, y: float) -> tuple[float, float]:
            return a * x + c * y + e, b * x + d * y + f

        if operator == b"re" and len(values) == 4:
            x0, y0 = place(values[0], values[1])
            x1, y1 = place(values[0] + values[2], values[1] + values[3])
            if abs(x1 - x0) >= 10:
                rules.append((y0, min(x0, x1), max(x0, x1)))
                if abs(y1 - y0) > 3:
                    rules.append((y1, min(x0, x1), max(x0, x1)))
        elif operator == b"m" and len(values) == 2:
            point[:] = place(values[0], values[1])
        elif operator == b"l" and len(values) == 2:
            x, y = place(values[0], values[1])
            if abs(y - point[1]) < 0.5 and abs(x - point[0]) >= 10:
                rules.append((y, min(x, point[0]), max(x, point[0])))
            point[:] = [x, y]

    page.extract_text(visitor_text=on_text, visitor_operand_before=on_operator)
    try:
        box = page.mediabox
        height, bottom = float(box.height), float(box.bottom)
    except _PDF_ERRORS:
        height, bottom = 842.0, 0.0
    if not runs and rotated:
        # A page whose text is all drawn rotated: keep its words, in pypdf's reading order.
        plain = page.extract_text() or " ".join(rotated)
        top = bottom + height - 72
        for index, line in enumerate(x for x in plain.splitlines() if x.strip()):
            runs.append(_Run(72.0, top - 14 * index, 72.0 + 5 * len(line), 10.0, False, line))
    return PageData(number, runs, rules, height, bottom)


# --------------------------------------------------------------------------------- layout


@dataclass
class _Seg:
    x0: float
    x1: float
    text: str


@dataclass
class _Line:
    page: int
    y: float
    size: float
    bold: bool
    segs: list[_Seg]
    index: int = 0  # position in the document's line list
    first_on_page: bool = False
    last_on_page: bool = False

    @property
    def x0(self) -> float:
        return self.segs[0].x0

    @property
    def x1(self) -> float:
        return self.segs[-1].x1

    @property
    def text(self) -> str:
        return " ".join(seg.text for seg in self.segs)


@dataclass
class _Proto:
    """An element before its text offsets and heading level are known."""

    kind: str
    text: str
    page: int
    size: float = 0.0
    bold: bool = False
    level: int = 0
    cells: list[str] = field(default_factory=list)
    marker: str = ""


_SYMBOL_BULLETS = set("\uf0a7\uf0b7\uf076\uf0d8\uf0fc\uf0e0")  # Symbol/Wingdings, private use
_BULLETS = "-–—•·▪◦●○■□►▶➢➤✓✔❖*" + "".join(sorted(_SYMBOL_BULLETS))
_MARKER = re.compile(rf"^([{re.escape(_BULLETS)}]|\(?\d{{1,3}}[.)]|\(?[a-z]\))(?:\s+|$)")
_PAGE_NUMBER = re.compile(r"^(page\s*)?[-–]?\s*\d{1,4}\s*[-–]?(\s*(/|sur|de|of)\s*\d{1,4})?$", re.IGNORECASE)


_LEADERS = re.compile(r"(?:\.\s?){4,}\s*\S{0,8}$")


def _join(left: str, right: str) -> str:
    """Join two pieces of text broken at a line end."""
    if not left:
        return right
    if not right:
        return left
    if left.endswith("\u00ad"):
        return left[:-1] + right
    if left.endswith("-") and len(left) > 1 and left[-2].isalpha() and right[0].islower():
        return left + right
    return left + " " + right


def _make_lines(data: PageData) -> list[_Line]:
    runs = sorted(data.runs, key=lambda r: (-r.y, r.x))
    groups: list[list[_Run]] = []
    for run in runs:
        if groups:
            ref = max(groups[-1], key=lambda r: r.size)
            if abs(ref.y - run.y) <= 0.6 * min(ref.size, run.size):
                groups[-1].append(run)
                continue
        groups.append([run])
    lines = []
    for group in groups:
        group.sort(key=lambda r: r.x)
        weights: Counter[float] = Counter()
        for run in group:
            weights[round(run.size * 2) / 2] += len(run.text)
        size = weights.most_common(1)[0][0]
        segs: list[_Seg] = []
        previous: _Run | None = None
        for run in group:
            gap = run.x - segs[-1].x1 if segs else 0.0
            if segs and previous is not None and gap < 0.9 * size:
                seg = segs[-1]
                spaced = run.space_before or previous.space_after or gap >= 0.12 * size
                seg.text += (" " if spaced else "") + run.text
                seg.x1 = max(seg.x1, run.x1)
            else:
                segs.append(_Seg(run.x, run.x1, run.text))
            previous = run
        # A bullet drawn apart from its text is part of the text's segment.
        if len(segs) >= 2 and _MARKER.match(segs[0].text + " ") and len(segs[0].text) <= 4:
            first, second = segs[0], segs[1]
            segs[:2] = [_Seg(first.x0, second.x1, f"{first.text} {second.text}")]
        bold = all(run.bold for run in group)
        ref_y = max(group, key=lambda r: r.size).y
        lines.append(_Line(data.number, ref_y, size, bold, segs))
    return lines


def _furniture(pages: list[PageData], lines_by_page: list[list[_Line]]) -> set[int]:
    """ids of running headers/footers and page numbers."""
    drop: set[int] = set()
    candidates: dict[str, list[_Line]] = {}
    for data, lines in zip(pages, lines_by_page, strict=True):
        band = 0.09 * data.height
        for line in lines[:2] + lines[-2:]:
            in_band = line.y > data.bottom + data.height - band or line.y < data.bottom + band
            if not in_band:
                continue
            text = line.text.strip()
            if _PAGE_NUMBER.match(text):
                drop.add(id(line))
                continue
            key = re.sub(r"\d+", "#", text.lower()) + f"@{round(line.y / 4)}"
            candidates.setdefault(key, []).append(line)
    if len(pages) >= 2:
        for group in candidates.values():
            if len({line.page for line in group}) >= max(2, math.ceil(0.5 * len(pages))):
                drop.update(id(line) for line in group)
    return drop


class _Layout:
    def __init__(self, pages: list[PageData]) -> None:
        self.pages = {data.number: data for data in pages}
        by_page = [_make_lines(data) for data in pages]
        drop = _furniture(pages, by_page)
        self.lines: list[_Line] = []
        for lines in by_page:
            kept = [line for line in lines if id(line) not in drop and line.text.strip()]
            if kept:
                kept[0].first_on_page = True
                kept[-1].last_on_page = True
            self.lines += kept
        for index, line in enumerate(self.lines):
            line.index = index
        sizes: Counter[float] = Counter()
        for line in self.lines:
            sizes[line.size] += len(line.text)
        self.body = sizes.most_common(1)[0][0] if sizes else 10.0
        gaps: Counter[float] = Counter()
        for prev, line in itertools.pairwise(self.lines):
            body_sized = abs(prev.size - self.body) < 0.3 and abs(line.size - self.body) < 0.3
            if prev.page == line.page and body_sized:
                gap = round((prev.y - line.y) * 2) / 2
                if 0.8 * self.body <= gap <= 2.5 * self.body:
                    gaps[gap] += 1
        self.leading = gaps.most_common(1)[0][0] if gaps else 1.2 * self.body
        self.right_edge: dict[int, float] = {}
        self.left_edge: dict[int, float] = {}
        for line in self.lines:
            self.right_edge[line.page] = max(self.right_edge.get(line.page, 0.0), line.x1)
            self.left_edge[line.page] = min(self.left_edge.get(line.page, 1e9), line.x0)

    # -- helpers

    def lead(self, size: float) -> float:
        return self.leading * size / self.body

    def heading_sized(self, line: _Line) -> bool:
        return line.size >= 1.15 * self.body and line.size >= self.body + 1

    def full_width(self, line: _Line) -> bool:
        width = self.right_edge[line.page] - self.left_edge[line.page]
        return line.x1 >= self.right_edge[line.page] - 0.12 * width

    def follows(self, prev: _Line, line: _Line, factor: float) -> bool:
        """``line`` comes right after ``prev``: same page within ``factor`` line spacings, or
        the first line of the next page after the last line of a page."""
        if line.page == prev.page:
            return 0 < prev.y - line.y <= factor * self.lead(max(prev.size, line.size))
        return prev.last_on_page and line.first_on_page and line.page == prev.page + 1

    # -- tables

    def _column(self, seg: _Seg, cols: list[float], tol: float, strict: bool) -> int | None:
        if seg.x0 < cols[0] - tol:
            return None
        k = max(i for i, x in enumerate(cols) if x - tol <= seg.x0)
        if strict and abs(seg.x0 - cols[k]) > tol:
            return None
        if k + 1 < len(cols) and seg.x1 > cols[k + 1] + tol:
            return None  # runs across the next column: not a cell
        return k

    def _fits(self, line: _Line, cols: list[float], size: float, prev: _Line) -> bool:
        if abs(line.size - size) > 0.25 * size or self.heading_sized(line):
            return False
        if not self.follows(prev, line, 3.0):
            return False
        tol = max(3.0, 0.3 * size)
        strict = len(line.segs) == 1
        return all(self._column(seg, cols, tol, strict) is not None for seg in line.segs)

    def find_table(self, start: int) -> tuple[int, list[list[_Line]], list[float]] | None:
        """The table starting at line ``start``: (end index, rows of lines, column starts)."""
        first = self.lines[start]
        if len(first.segs) < 2 or self.heading_sized(first):
            return None
        cols = [seg.x0 for seg in first.segs]
        end = start + 1
        while end < len(self.lines) and self._fits(self.lines[end], cols, first.size, self.lines[end - 1]):
            end += 1
        rows = self._rows(self.lines[start:end], cols)
        if len(rows) < 2:
            return None
        return end, rows, cols

    def _rule_between(self, upper: _Line, lower: _Line, x0: float, x1: float) -> bool:
        """A horizontal line drawn between two lines of text, long enough to be a border
        (an underline sits closer to its text and is usually shorter)."""
        top = upper.y - 0.22 * upper.size
        bottom = lower.y + 0.7 * lower.size
        shortest = min(50.0, 0.3 * (x1 - x0))
        return any(
            bottom < y < top and rx0 < x1 and rx1 > x0 and rx1 - rx0 >= shortest
            for y, rx0, rx1 in self.pages[upper.page].rules
        )

    def _rows(self, lines: list[_Line], cols: list[float]) -> list[list[_Line]]:
        tol = max(3.0, 0.3 * lines[0].size)
        x0, x1 = cols[0], max(line.x1 for line in lines)

        def has_first(line: _Line) -> bool:
            return any(self._column(s, cols, tol, False) == 0 for s in line.segs)

        gridded = any(
            self._rule_between(a, b, x0, x1) for a, b in itertools.pairwise(lines) if a.page == b.page
        )
        rows: list[list[_Line]] = []
        for line in lines:
            if not rows:
                rows.append([line])
                continue
            prev = rows[-1][-1]
            if line.page != prev.page:
                new = has_first(line)
            elif gridded:
                new = self._rule_between(prev, line, x0, x1)
            else:
                new = prev.y - line.y > 1.35 * self.lead(line.size)
            if not new and has_first(line) and not has_first(prev):
                new = True
            if new:
                rows.append([line])
            else:
                rows[-1].append(line)
        return rows

    def table_protos(self, rows: list[list[_Line]], cols: list[float]) -> list[_Proto]:
        tol = max(3.0, 0.3 * rows[0][0].size)
        protos: list[_Proto] = []
        header: list[str] = []
        for number, row in enumerate(rows):
            cells = [""] * len(cols)
            for line in row:
                for seg in line.segs:
                    k = self._column(seg, cols, tol, False) or 0
                    cells[k] = _join(cells[k], seg.text)
            key = [_key(c) for c in cells]
            if number == 0:
                header = key
                protos.append(_Proto("table_header", "\t".join(cells), row[0].page, cells=cells))
            elif row[0].first_on_page and key == header:
                continue  # the header repeated at the top of a new page
            else:
                protos.append(_Proto("table_row", "\t".join(cells), row[0].page, cells=cells))
        return protos

    # -- prose

    def run(self) -> list[_Proto]:
        protos: list[_Proto] = []
        current: _Proto | None = None
        lines_in_current: list[_Line] = []
        marker_x: list[float] = []  # list items: x of the marker, per proto index

        def close() -> None:
            nonlocal current
            if current is not None:
                if current.kind == "bold":
                    plain = current.text.rstrip()
                    is_heading = len(plain) <= 200 and not plain.endswith((".", ",", ";"))
                    current.kind = "heading" if is_heading else "paragraph"
                protos.append(current)
                marker_x.append(lines_in_current[0].x0 if current.kind == "list_item" else -1)
            current = None
            lines_in_current.clear()

        index = 0
        while index < len(self.lines):
            line = self.lines[index]
            table = self.find_table(index)
            if table is not None:
                close()
                end, rows, cols = table
                for proto in self.table_protos(rows, cols):
                    protos.append(proto)
                    marker_x.append(-1)
                index = end
                continue
            if current is not None and self._continues(current, lines_in_current, line):
                current.text = _join(current.text, line.text)
                lines_in_current.append(line)
                index += 1
                continue
            close()
            current = self._start(line)
            lines_in_current.append(line)
            index += 1
        close()
        self._list_levels(protos, marker_x)
        self._heading_levels(protos)
        return protos

    def _start(self, line: _Line) -> _Proto:
        text = line.text
        if _LEADERS.search(text):  # « 2.1 Syntaxe . . . . 3 »: a table-of-contents entry
            return _Proto("paragraph", text, line.page, line.size, line.bold)
        if self.heading_sized(line):
            return _Proto("heading", text, line.page, line.size, line.bold)
        match = _MARKER.match(text)
        bold = line.bold and len(text) <= 200
        if match and bold and match.group(1)[0] not in _BULLETS:
            return _Proto("bold", text, line.page, line.size, True)  # « 1. Introduction »
        if match:
            marker = match.group(1)
            if marker in _SYMBOL_BULLETS:
                marker = "•"
            return _Proto("list_item", text[match.end() :], line.page, line.size, marker=marker)
        if bold:
            return _Proto("bold", text, line.page, line.size, True)
        return _Proto("paragraph", text, line.page, line.size, line.bold)

    def _continues(self, current: _Proto, lines: list[_Line], line: _Line) -> bool:
        prev = lines[-1]
        same_size = abs(line.size - current.size) <= 0.6
        if _LEADERS.search(line.text) or _LEADERS.search(current.text):
            return False
        if current.kind == "heading":
            width = self.right_edge[line.page] - self.left_edge[line.page]
            return (
                same_size
                and self.heading_sized(line)
                and line.bold == current.bold
                and line.page == prev.page
                and self.follows(prev, line, 1.3)
                and prev.x1 >= self.right_edge[prev.page] - 0.3 * width  # the heading wrapped
            )
        if self.heading_sized(line) or _MARKER.match(line.text) or not same_size:
            return False
        tol = max(3.0, 0.3 * line.size)
        if current.kind == "bold":
            if not self.follows(prev, line, 1.3) or line.page != prev.page:
                return False
            if line.bold:
                return len(lines) < 3 and abs(line.x0 - prev.x0) <= tol
            if self.full_width(prev) and abs(line.x0 - lines[0].x0) <= tol:
                current.kind = "paragraph"  # it was a paragraph that starts in bold
                return True
            return False
        if not self.follows(prev, line, 1.3):
            return False
        if current.kind == "list_item":  # its lines are indented past the marker
            ended = line.page != prev.page and prev.text.rstrip().endswith((".", ";", "!", "?"))
            return line.x0 > lines[0].x0 + tol and not ended
        if line.page != prev.page and not self.full_width(prev):
            return False  # the paragraph ended at the bottom of the page
        if line.bold and not prev.bold and not self.full_width(line):
            return False  # a bold line alone after a paragraph: a heading
        if not self.full_width(prev) and prev.text.rstrip().endswith((".", "!", "?", ":")):
            return False  # the previous line ended a paragraph
        if abs(line.x0 - prev.x0) <= tol:
            return True
        return len(lines) == 1 and line.x0 < prev.x0  # first-line indent

    def _list_levels(self, protos: list[_Proto], marker_x: list[float]) -> None:
        index = 0
        while index < len(protos):
            if protos[index].kind != "list_item":
                index += 1
                continue
            end = index
            while end < len(protos) and protos[end].kind == "list_item":
                end += 1
            indents: list[float] = []
            for x in sorted(marker_x[index:end]):
                if not indents or x - indents[-1] > 3.0:
                    indents.append(x)
            for k in range(index, end):
                protos[k].level = 1 + max(i for i, x in enumerate(indents) if x - 3.0 <= marker_x[k])
            index = end

    def _heading_levels(self, protos: list[_Proto]) -> None:
        headings = [p for p in protos if p.kind == "heading"]
        if not headings:
            return
        first_page = min(p.page for p in protos)
        on_first = [h.size for h in headings if h.page == first_page]
        top = max(on_first) if on_first else None
        lower = sorted({round(h.size * 2) / 2 for h in headings if top is None or h.size < top - 0.25})
        second = lower[-1] if lower else 0.0
        for heading in headings:
            if top is not None and heading.size >= top - 0.25:
                heading.level = 1
            elif heading.size >= second - 0.25:
                heading.level = 2
            else:
                heading.level = 3


def _key(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def layout(pages: list[PageData]) -> tuple[str, list[Element]]:
    """The document's text and its elements, in reading order, from the pages' runs."""
    protos = _Layout(pages).run()
    parts: list[str] = []
    elements: list[Element] = []
    offset = 0
    previous_kind = ""
    for proto in protos:
        content = re.sub(r"[ \u00a0]{2,}", " ", proto.text.replace("\u00ad", "")).strip()
        if proto.kind in ("table_header", "table_row"):
            cells = [c.strip() for c in proto.cells]
            content = "\t".join(cells)
        if not content.strip():
            continue
        separator = "\n" if proto.kind == "heading" and parts else ""
        if proto.kind.startswith("table") != previous_kind.startswith("table") and parts:
            separator = "\n"
        prefix = f"{proto.marker} " if proto.kind == "list_item" else ""
        start = offset + len(separator) + len(prefix)
        end = start + len(content)
        parts.append(f"{separator}{prefix}{content}\n")
        offset = end + 1
        element = Element(proto.kind, content, start, end, page=proto.page)  # type: ignore[arg-type]
        if proto.kind in ("table_header", "table_row"):
            element.cells = cells
        if proto.kind in ("heading", "list_item"):
            element.level = proto.level
        elements.append(element)
        previous_kind = proto.kind
    return "".join(parts), elements
