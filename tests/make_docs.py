"""Making real PDF and Word files for tests, from a corpus Markdown document.

The Markdown is read with the assistant's own parser (``parse_markdown``) and every text is
cleaned with ``clean_markup`` before rendering, so the PDF and the DOCX carry exactly the words
the assistant indexes from the Markdown. The PDF is laid out by ReportLab (Platypus): a big bold
title, bold section headings, justified body paragraphs, bulleted items (nested items indented),
two-column tables with wrapped cells, a grid, padding and a header row repeated on each page, and
a page number in the footer. The DOCX uses Word's built-in styles (Title, Heading N, List Bullet,
List Bullet 2, Table Grid) and real tables.

Also: a password-protected PDF, a PDF with an owner password only (opens without one), a
« scanned » PDF (drawings only, no text), a corrupt and a truncated PDF, a corrupt DOCX, a zip
that is not a DOCX, a PDF that is valid but takes far too long to parse, a PDF laid out
differently (``layout_sample_pdf``: bold body-size headings, no paragraph spacing, a table
without grid lines, a running footer) and a DOCX with tracked changes, hidden text, merged cells
and boxes (``docx_edge_cases``).

Left out: images, fonts other than the PDF core fonts, inline emphasis (the cleaned text has
none), numbered lists.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path
from xml.sax.saxutils import escape

from assistant.ingest.formats import parse_markdown, read_utf8
from assistant.schema import Element
from assistant.text import clean_markup


def _read_elements(md_path: Path) -> list[Element]:
    return parse_markdown(md_path, read_utf8(md_path)).elements


def _groups(elements: list[Element]) -> list[tuple[str, list[Element]]]:
    """Consecutive table elements grouped as one ("table", rows); other elements alone."""
    groups: list[tuple[str, list[Element]]] = []
    for element in elements:
        is_table = element.kind in ("table_header", "table_row")
        if is_table and element.kind == "table_row" and groups and groups[-1][0] == "table":
            groups[-1][1].append(element)
        elif is_table:
            groups.append(("table", [element]))
        else:
            groups.append((element.kind, [element]))
    return groups


# --------------------------------------------------------------------------------------- PDF


def markdown_to_pdf(md_path: Path, pdf_path: Path, *, footer: bool = True) -> Path:
    """Render a corpus Markdown document as a multi-page, text-based PDF."""
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_JUSTIFY
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import cm
    from reportlab.platypus import (
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    body = ParagraphStyle(
        "body", fontName="Helvetica", fontSize=10, leading=13, spaceAfter=6, alignment=TA_JUSTIFY
    )
    headings = {
        1: ParagraphStyle("h1", fontName="Helvetica-Bold", fontSize=18, leading=22, spaceAfter=12),
        2: ParagraphStyle(
            "h2", fontName="Helvetica-Bold", fontSize=13, leading=16, spaceBefore=10, spaceAfter=6
        ),
        3: ParagraphStyle(
            "h3", fontName="Helvetica-Bold", fontSize=11, leading=14, spaceBefore=8, spaceAfter=4
        ),
    }
    cell = ParagraphStyle("cell", fontName="Helvetica", fontSize=9.5, leading=12)
    cell_head = ParagraphStyle("cell_head", parent=cell, fontName="Helvetica-Bold")

    def bullet_style(level: int) -> ParagraphStyle:
        return ParagraphStyle(
            f"bullet{level}",
            parent=body,
            alignment=0,
            leftIndent=18 * level,
            bulletIndent=18 * level - 12,
            spaceAfter=3,
        )

    def para(text: str, style: ParagraphStyle, **kwargs: str) -> Paragraph:
        return Paragraph(escape(clean_markup(text)), style, **kwargs)

    width = A4[0] - 4 * cm
    story: list[object] = []
    for kind, group in _groups(_read_elements(md_path)):
        element = group[0]
        if kind == "heading":
            story.append(para(element.text, headings[min(element.level, 3)]))
        elif kind == "list_item":
            marker = "•" if element.level <= 1 else "–"
            story.append(para(element.text, bullet_style(element.level), bulletText=marker))
        elif kind == "paragraph":
            story.append(para(element.text, body))
        else:  # a table
            rows = [
                [para(c, cell_head if e.kind == "table_header" else cell) for c in e.cells] for e in group
            ]
            columns = max(len(row) for row in rows)
            shares = [0.38, 0.62] if columns == 2 else [1 / columns] * columns
            table = Table(rows, colWidths=[share * width for share in shares], repeatRows=1)
            table.setStyle(
                TableStyle(
                    [
                        ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
                        ("VALIGN", (0, 0), (-1, -1), "TOP"),
                        ("LEFTPADDING", (0, 0), (-1, -1), 6),
                        ("RIGHTPADDING", (0, 0), (-1, -1), 6),
                        ("TOPPADDING", (0, 0), (-1, -1), 5),
                        ("BOTTOMPADDING", (0, 0), (-1, -1), 5),
                        ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke),
                    ]
                )
            )
            story += [table, Spacer(1, 8)]

    def page_footer(canvas, doc) -> None:  # type: ignore[no-untyped-def]
        if footer:
            canvas.saveState()
            canvas.setFont("Helvetica", 8)
            canvas.drawCentredString(A4[0] / 2, 1.2 * cm, f"Page {doc.page}")
            canvas.restoreState()

    document = SimpleDocTemplate(
        str(pdf_path),
        pagesize=A4,
        leftMargin=2 * cm,
        rightMargin=2 * cm,
        topMargin=2 * cm,
        bottomMargin=2 * cm,
        title="",
        author="",
    )
    document.build(story, onFirstPage=page_footer, onLaterPages=page_footer)
    return pdf_path


def simple_pdf(path: Path | io.BytesIO, lines: list[str] | None = None) -> Path | io.BytesIO:
    """A one-page text PDF (a title and a few body lines), written to a path or a buffer."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    lines = lines or ["Note de test", "Une phrase de contenu pour le test.", "Une autre phrase."]
    pdf = canvas.Canvas(str(path) if isinstance(path, Path) else path, pagesize=A4)
    pdf.setFont("Helvetica-Bold", 16)
    pdf.drawString(72, 770, lines[0])
    pdf.setFont("Helvetica", 10)
    for index, line in enumerate(lines[1:]):
        pdf.drawString(72, 740 - 14 * index, line)
    pdf.save()
    return path


def encrypted_pdf(path: Path, *, user_password: str = "secret") -> Path:
    """A text PDF encrypted with ``user_password`` (RC4-128: no extra package needed).

    With ``user_password=""`` only an owner password is set: the file opens without one.
    """
    from pypdf import PdfReader, PdfWriter

    buffer = io.BytesIO()
    simple_pdf(buffer)
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(buffer.getvalue())))
    writer.encrypt(user_password=user_password, owner_password="proprietaire", algorithm="RC4-128")
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def scanned_pdf(path: Path) -> Path:
    """A PDF that looks like a scan: drawn shapes (a « page image ») and no text at all."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4)
    for page in range(2):
        pdf.setFillGray(0.85)
        pdf.rect(40, 40, A4[0] - 80, A4[1] - 80, stroke=0, fill=1)
        pdf.setFillGray(0.2)
        for row in range(40):  # grey bars where the text lines of a scan would be
            pdf.rect(70, 760 - 18 * row, 420 - 3 * ((row * 7 + page) % 20), 8, stroke=0, fill=1)
        pdf.showPage()
    pdf.save()
    return path


def corrupt_pdf(path: Path) -> Path:
    """Starts like a PDF, then garbage: no objects, no cross-reference table, no %%EOF."""
    path.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(range(256)) * 8 + b"\n1 0 obj\n<<")
    return path


def truncated_pdf(source: Path, path: Path) -> Path:
    """The first third of a real PDF."""
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def slow_pdf(path: Path, operations: int = 300_000) -> Path:
    """A valid PDF whose single page holds ``operations`` text operators (a few KB on disk).

    Parsing 300,000 of them takes pypdf well over ten seconds: a stand-in for the malformed files
    that make a parser loop, to test that the time limit stops the child process.
    """
    content = b"BT /F1 10 Tf 72 700 Td " + b"(a) Tj 0 0 Td " * operations + b"ET"
    stream = zlib.compress(content, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>"
        ),
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    path.write_bytes(bytes(out))
    return path


# -------------------------------------------------------------------------------------- DOCX


def markdown_to_docx(md_path: Path, docx_path: Path) -> Path:
    """Render a corpus Markdown document as a Word file with built-in styles and real tables."""
    from docx import Document

    document = Document()
    title_done = False
    for kind, group in _groups(_read_elements(md_path)):
        element = group[0]
        if kind == "heading":
            text = clean_markup(element.text)
            if element.level == 1 and not title_done:
                document.add_paragraph(text, style="Title")
                title_done = True
            else:
                document.add_heading(text, level=min(element.level, 9))
        elif kind == "list_item":
            style = "List Bullet" if element.level <= 1 else f"List Bullet {min(element.level, 3)}"
            document.add_paragraph(clean_markup(element.text), style=style)
        elif kind == "paragraph":
            document.add_paragraph(clean_markup(element.text))
        else:
            columns = max(len(e.cells) for e in group)
            table = document.add_table(rows=len(group), cols=columns)
            table.style = "Table Grid"
            for row, source in zip(table.rows, group, strict=True):
                for cell, text in zip(row.cells, source.cells, strict=False):
                    cell.text = clean_markup(text)
                    if source.kind == "table_header":
                        for run in cell.paragraphs[0].runs:
                            run.bold = True
    document.save(str(docx_path))
    return docx_path


def corrupt_docx(path: Path) -> Path:
    """Not a zip at all: what a renamed or half-downloaded file looks like."""
    path.write_bytes(b"PK\x03\x04" + b"\x00garbage" * 64)
    return path


def zip_but_not_docx(path: Path) -> Path:
    """A valid zip archive that holds no Word document."""
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "pas un document Word")
    return path


LAYOUT_SAMPLE_ROWS = [
    (
        "Gouvernance",
        (
            "Un comité de pilotage commun se réunit chaque trimestre pour arbitrer les "
            "priorités et suivre les indicateurs partagés entre les deux établissements."
        ),
    ),
    ("Géographie des équipes", "Les agents restent sur leurs sites actuels."),
    ("Budget et moyens humains transférés", "Dotation à préciser."),
]


def layout_sample_pdf(path: Path) -> Path:
    """A PDF laid out unlike ``markdown_to_pdf``: bold body-size headings, paragraphs without
    spacing (a new one starts after a short line), a numbered list, a table WITHOUT grid lines,
    a paragraph cut by a page break, and a running footer « Rapport — page N »."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import cm
    from reportlab.platypus import (
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    body = ParagraphStyle("b", fontName="Times-Roman", fontSize=11, leading=14)
    bold = ParagraphStyle("h", parent=body, fontName="Times-Bold", spaceBefore=8)
    title = ParagraphStyle("t", parent=body, fontName="Times-Bold", fontSize=16, leading=20)
    item = ParagraphStyle("i", parent=body, leftIndent=20, bulletIndent=6)
    filler = (
        "Cette phrase sert à remplir la page afin que le paragraphe suivant soit coupé par le "
        "changement de page, comme dans un vrai rapport. "
    )
    story: list[object] = [
        Paragraph("Rapport d'étude sur le rapprochement", title),
        Spacer(1, 10),
        Paragraph("Contexte", bold),
        Paragraph("Le premier paragraphe est court et se termine ici.", body),
        Paragraph("Le second paragraphe commence sans espace au-dessus de lui.", body),
        Paragraph("Étapes", bold),
    ]
    story += [
        Paragraph(text, item, bulletText=f"{number}.")
        for number, text in enumerate(["Diagnostic partagé.", "Scénarios détaillés."], start=1)
    ]
    story += [Paragraph("Constats", bold), Spacer(1, 4)]
    rows = [["Sujet", "Constat"]] + [list(row) for row in LAYOUT_SAMPLE_ROWS]
    cell = ParagraphStyle("c", parent=body, fontSize=10, leading=12)
    table = Table(
        [[Paragraph(text, cell) for text in row] for row in rows],
        colWidths=[5 * cm, 11 * cm],
    )
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 4),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
                ("LEFTPADDING", (0, 0), (-1, -1), 4),
            ]
        )
    )
    story += [table, Spacer(1, 8), Paragraph("Suite", bold)]
    story += [Paragraph(filler * 9, body) for _ in range(5)]
    story.append(Paragraph("Dernier paragraphe du rapport.", body))

    def footer(canvas, doc) -> None:  # type: ignore[no-untyped-def]
        canvas.saveState()
        canvas.setFont("Times-Italic", 8)
        canvas.drawString(2 * cm, 1.2 * cm, f"Rapport de test — page {doc.page}")
        canvas.restoreState()

    SimpleDocTemplate(str(path), pagesize=A4, topMargin=2 * cm, bottomMargin=2 * cm).build(
        story, onFirstPage=footer, onLaterPages=footer
    )
    return path


def docx_edge_cases(path: Path) -> Path:
    """A Word file with what real documents hold beyond plain styles: a tracked insertion and a
    tracked deletion, hidden text, a numbered list, a vertically merged cell, a framed box (a
    one-column table) and a one-row table."""
    from docx import Document
    from docx.oxml import parse_xml
    from docx.oxml.ns import nsdecls

    document = Document()
    document.add_paragraph("Dossier de test", style="Title")
    document.add_heading("Révisions", level=1)
    paragraph = document.add_paragraph("Texte avec une partie ")
    paragraph._p.append(
        parse_xml(
            f'<w:ins {nsdecls("w")} w:id="1" w:author="A" w:date="2024-01-01T00:00:00Z">'
            "<w:r><w:t>insérée</w:t></w:r></w:ins>"
        )
    )
    paragraph._p.append(
        parse_xml(
            f'<w:del {nsdecls("w")} w:id="2" w:author="A" w:date="2024-01-01T00:00:00Z">'
            "<w:r><w:delText> supprimée</w:delText></w:r></w:del>"
        )
    )
    hidden = paragraph.add_run(" cachée")
    hidden.font.hidden = True
    paragraph.add_run(".")
    document.add_heading("Étapes", level=2)
    document.add_paragraph("Diagnostic partagé.", style="List Number")
    document.add_paragraph("Scénarios détaillés.", style="List Number 2")
    table = document.add_table(rows=4, cols=2)
    texts_by_row = [
        ("Sujet", "Observations"),
        ("Gouvernance", "Comité commun."),
        ("", "Charte signée."),
        ("Budget", "À préciser."),
    ]
    for row, texts in zip(table.rows, texts_by_row, strict=True):
        for cell, text in zip(row.cells, texts, strict=True):
            cell.text = text
    table.cell(1, 0).merge(table.cell(2, 0))
    table.cell(1, 0).text = "Gouvernance"
    box = document.add_table(rows=1, cols=1)
    box.cell(0, 0).text = "Encadré : un point important."
    pair = document.add_table(rows=1, cols=2)
    pair.cell(0, 0).text = "Date :"
    pair.cell(0, 1).text = "12 mai"
    document.save(str(path))
    return path
