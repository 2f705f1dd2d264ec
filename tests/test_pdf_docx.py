"""PDF and DOCX loading: the same structure as the Markdown source, and clear refusals.

The ENTPE document is rendered from its Markdown as a real multi-page PDF (ReportLab) and a real
Word file (python-docx), loaded through ``load_document``, and compared with the Markdown after
``build_blocks``/``chunk_blocks``: same sections, same table rows, same prose (verbatim). The
other corpus documents make the same round trip, a differently laid-out PDF (no grid, no spacing,
bold headings, running footer) and a Word file with tracked changes and merged cells are read
right. Damaged, protected, scanned and never-ending PDFs, and damaged Word files, must raise an
``IngestError`` whose French message names the file and the reason.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from assistant.ingest import pdf as pdf_loader
from assistant.ingest.chunking import chunk_blocks
from assistant.ingest.errors import IngestError
from assistant.ingest.formats import load_document
from assistant.ingest.structure import build_blocks
from assistant.schema import Block, LoadedDocument
from assistant.text import match_key
from tests.make_docs import (
    LAYOUT_SAMPLE_ROWS,
    corrupt_docx,
    corrupt_pdf,
    docx_edge_cases,
    encrypted_pdf,
    layout_sample_pdf,
    markdown_to_docx,
    markdown_to_pdf,
    scanned_pdf,
    slow_pdf,
    truncated_pdf,
    zip_but_not_docx,
)

ENTPE = Path(__file__).resolve().parents[1] / "corpus" / "02_scenario_entpe.md"
FORMATS = ["pdf", "docx"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("documents")


@pytest.fixture(scope="module")
def made(folder: Path) -> dict[str, Path]:
    return {
        "pdf": markdown_to_pdf(ENTPE, folder / "02_scenario_entpe.pdf"),
        "docx": markdown_to_docx(ENTPE, folder / "02_scenario_entpe.docx"),
    }


@pytest.fixture(scope="module")
def loaded(made: dict[str, Path]) -> dict[str, LoadedDocument]:
    return {fmt: load_document(path) for fmt, path in made.items()}


@pytest.fixture(scope="module")
def blocks(loaded: dict[str, LoadedDocument]) -> dict[str, list[Block]]:
    result = {fmt: build_blocks(document) for fmt, document in loaded.items()}
    result["md"] = build_blocks(load_document(ENTPE))
    return result


def _sections(blocks: list[Block]) -> list[tuple[str, str]]:
    sections: list[tuple[str, str]] = []
    for block in blocks:
        if not sections or sections[-1] != (block.section, block.section_kind):
            sections.append((block.section, block.section_kind))
    return sections


def _rows(blocks: list[Block]) -> list[tuple[str, str, str]]:
    return [
        (b.section_kind, match_key(b.subject), match_key(b.observations))
        for b in blocks
        if b.kind == "table_row"
    ]


# ------------------------------------------------------------------ same structure as Markdown


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_document_and_sections_as_markdown(fmt: str, blocks: dict[str, list[Block]]) -> None:
    source, made = blocks["md"], blocks[fmt]
    assert {(b.doc_title, b.doc_label, b.scenario) for b in made} == {
        ("Scénario « rattachement du CMA à l'ENTPE »", "Scénario ENTPE", "entpe")
    }
    assert _sections(made) == _sections(source)
    kinds = [kind for _, kind in _sections(made)]
    assert [k for k in kinds if k in ("opportunites", "limites", "questions")] == [
        "opportunites",
        "limites",
        "questions",
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_table_rows_as_markdown(fmt: str, blocks: dict[str, list[Block]]) -> None:
    rows = _rows(blocks[fmt])
    assert len(rows) == 11 + 6 + 3
    assert rows == _rows(blocks["md"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_prose_as_markdown(fmt: str, blocks: dict[str, list[Block]]) -> None:
    def prose(items: list[Block]) -> list[tuple[str, str, str]]:
        return [(b.kind, b.section, b.text) for b in items if b.kind != "table_row"]

    # Verbatim: lines joined back with single spaces, nothing lost, nothing added.
    assert prose(blocks[fmt]) == prose(blocks["md"])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["01_scenario_cmvrh.md", "03_scenario_uge.md", "04_note_uge_cipen.md"])
def test_other_corpus_documents_round_trip(fmt: str, name: str, folder: Path) -> None:
    source = ENTPE.parent / name
    if not source.exists():
        pytest.skip(f"{name} is not in the corpus")
    make = markdown_to_pdf if fmt == "pdf" else markdown_to_docx
    made = build_blocks(load_document(make(source, folder / f"{source.stem}.{fmt}")))

    def signature(items: list[Block]) -> list[tuple[str, str, str, str]]:
        return [(b.kind, b.section, b.section_kind, match_key(b.text)) for b in items]

    assert signature(made) == signature(build_blocks(load_document(source)))


@pytest.mark.parametrize("fmt", FORMATS)
def test_list_levels_and_headings(fmt: str, loaded: dict[str, LoadedDocument]) -> None:
    elements = loaded[fmt].elements
    headings = [(e.level, e.text) for e in elements if e.kind == "heading"]
    assert headings[0] == (1, "Scénario « rattachement du CMA à l'ENTPE »")
    assert {level for level, _ in headings[1:]} == {2}
    levels = [e.level for e in elements if e.kind == "list_item"]
    assert levels == [1] * 5 + [1, 1, 1] + [2] * 5


@pytest.mark.parametrize("fmt", FORMATS)
def test_offsets_point_into_the_text(fmt: str, loaded: dict[str, LoadedDocument]) -> None:
    document = loaded[fmt]
    assert document.doc_id == f"02_scenario_entpe.{fmt}"
    for element in document.elements:
        assert document.text[element.start : element.end] == element.text
    headers = [e for e in document.elements if e.kind == "table_header"]
    assert [match_key(" ".join(h.cells)) for h in headers] == ["sujetobservations"] * 3


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_row_is_in_a_chunk(fmt: str, blocks: dict[str, list[Block]]) -> None:
    chunks = chunk_blocks(blocks[fmt], source=fmt)
    chunk_keys = [match_key(chunk.text) for chunk in chunks]
    for row in (b for b in blocks["md"] if b.kind == "table_row"):
        key = match_key(row.subject) + match_key(row.observations)
        assert any(key in chunk for chunk in chunk_keys), row.text
    row_chunks = [c for c in chunks if c.metadata["kind"] == "row"]
    assert len(row_chunks) == 20


def test_pdf_blocks_carry_pages(loaded: dict[str, LoadedDocument], blocks: dict[str, list[Block]]) -> None:
    document = loaded["pdf"]
    assert document.pages is not None and document.pages >= 2
    assert all(e.page is not None and 1 <= e.page <= document.pages for e in document.elements)
    assert all(b.page is not None and b.page >= 1 for b in blocks["pdf"])
    rows = [b for b in blocks["pdf"] if b.kind == "table_row"]
    assert rows[0].page is not None and rows[-1].page is not None and rows[-1].page > 1
    assert rows[-1].page >= rows[0].page
    assert not any("Page " in e.text for e in document.elements)  # footers dropped
    assert all(b.page is None for b in blocks["docx"])


# ------------------------------------------------------------------ other layouts, other files


def test_pdf_layout_without_grid_lines(folder: Path) -> None:
    document = load_document(layout_sample_pdf(folder / "rapport.pdf"))
    elements = document.elements
    headings = [(e.level, e.text) for e in elements if e.kind == "heading"]
    assert headings == [
        (1, "Rapport d'étude sur le rapprochement"),
        (2, "Contexte"),
        (2, "Étapes"),
        (2, "Constats"),
        (2, "Suite"),
    ]
    paragraphs = [e.text for e in elements if e.kind == "paragraph"]
    assert paragraphs[:2] == [
        "Le premier paragraphe est court et se termine ici.",
        "Le second paragraphe commence sans espace au-dessus de lui.",
    ]
    # Five long paragraphs, one of them cut by the page break and joined again.
    assert len(paragraphs) == 2 + 5 + 1
    assert all(len(p) == len(paragraphs[2]) > 1000 for p in paragraphs[2:7])
    assert paragraphs[-1] == "Dernier paragraphe du rapport."
    assert [e.text for e in elements if e.kind == "list_item"] == [
        "Diagnostic partagé.",
        "Scénarios détaillés.",
    ]
    assert "1. Diagnostic partagé." in document.text
    assert [e.cells for e in elements if e.kind == "table_header"] == [["Sujet", "Constat"]]
    assert [tuple(e.cells) for e in elements if e.kind == "table_row"] == LAYOUT_SAMPLE_ROWS
    assert "Rapport de test" not in document.text  # the running footer
    assert document.pages == 2 and elements[-1].page == 2


def test_docx_revisions_merged_cells_and_boxes(folder: Path) -> None:
    document = load_document(docx_edge_cases(folder / "cas.docx"))
    kinds = [(e.kind, e.level, e.text) for e in document.elements]
    assert kinds[:6] == [
        ("heading", 1, "Dossier de test"),
        ("heading", 1, "Révisions"),
        ("paragraph", 0, "Texte avec une partie insérée."),  # deletion and hidden text dropped
        ("heading", 2, "Étapes"),
        ("list_item", 1, "Diagnostic partagé."),
        ("list_item", 2, "Scénarios détaillés."),
    ]
    rows = [e.cells for e in document.elements if e.kind in ("table_header", "table_row")]
    assert rows == [
        ["Sujet", "Observations"],
        ["Gouvernance", "Comité commun."],
        ["Gouvernance", "Charte signée."],  # the merged cell gives each row its subject
        ["Budget", "À préciser."],
    ]
    assert kinds[-2:] == [
        ("paragraph", 0, "Encadré : un point important."),
        ("paragraph", 0, "Date : 12 mai"),
    ]
    for element in document.elements:
        assert document.text[element.start : element.end] == element.text


# ------------------------------------------------------------------------------- refusals


def _refusal(path: Path) -> str:
    with pytest.raises(IngestError) as caught:
        load_document(path)
    message = str(caught.value)
    assert message.startswith(f"« {path.name} » : ")
    return message


def test_password_protected_pdf(folder: Path) -> None:
    message = _refusal(encrypted_pdf(folder / "protege.pdf"))
    assert "le PDF est protégé par un mot de passe" in message


def test_owner_password_only_pdf_opens(folder: Path) -> None:
    document = load_document(encrypted_pdf(folder / "restreint.pdf", user_password=""))
    assert [e.kind for e in document.elements] == ["heading", "paragraph"]
    assert "Une phrase de contenu" in document.text


def test_scanned_pdf(folder: Path) -> None:
    message = _refusal(scanned_pdf(folder / "numerise.pdf"))
    assert "le PDF ne contient aucun texte extractible (document numérisé ?)" in message
    assert "version Word" in message


def test_corrupt_and_truncated_pdf(folder: Path, made: dict[str, Path]) -> None:
    assert "le PDF est illisible ou endommagé (" in _refusal(corrupt_pdf(folder / "abime.pdf"))
    truncated = truncated_pdf(made["pdf"], folder / "tronque.pdf")
    assert "le PDF est illisible ou endommagé (" in _refusal(truncated)
    not_pdf = folder / "page.pdf"
    not_pdf.write_text("<html><body>pas un PDF</body></html>", encoding="utf-8")
    assert "en-tête « %PDF » est absent" in _refusal(not_pdf)


def test_corrupt_docx(folder: Path) -> None:
    message = _refusal(corrupt_docx(folder / "abime.docx"))
    assert "le fichier Word est illisible ou endommagé" in message
    message = _refusal(zip_but_not_docx(folder / "archive.docx"))
    assert "le fichier Word est illisible ou endommagé" in message
    old = folder / "ancien.docx"
    old.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512)
    assert "Word 97-2003" in _refusal(old)


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and str(os.getpid()) != entry.name:
            found.append(entry.name)
    return found


def test_never_ending_pdf_is_stopped_by_the_time_limit(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A valid PDF whose parsing takes pypdf tens of seconds (millions of text operators):
    # the child must be killed at the limit, not waited for.
    path = slow_pdf(folder / "interminable.pdf", operations=300_000)
    monkeypatch.setattr(pdf_loader, "PDF_TIMEOUT_S", 1.0)
    started = time.monotonic()
    message = _refusal(path)
    elapsed = time.monotonic() - started
    assert "l'analyse du PDF a dépassé 1 s : fichier probablement malformé" in message
    assert elapsed < 5
    if Path("/proc").is_dir():
        assert _processes_mentioning(str(path)) == []  # the child is gone


def test_memory_limit_stops_the_child(made: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    # 30 MB of address space is too little for pypdf: the child fails, the parent explains.
    monkeypatch.setattr(pdf_loader, "PDF_MEMORY_LIMIT", 30 * 2**20)
    message = _refusal(made["pdf"])
    assert "le PDF est illisible ou endommagé" in message
    assert "mémoire" in message
