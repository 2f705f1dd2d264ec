"""Hostile uploads: zip bombs, documents with too many passages, parsing bounded in a child.

The bombs are real .docx archives made here: one that declares its true (huge) size, one whose
directory lies about it. The passage bound and the child's time and memory limits are tried
through ``Assistant.add_document``, the path the app's upload takes; a question is answered while
a document is being added.
"""

from __future__ import annotations

import shutil
import struct
import threading
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from conftest import make_settings

from assistant.app.uploads import CORPUS_SLOT, UploadRejected, check_upload
from assistant.ingest.archive import DOCX_MAX_UNCOMPRESSED
from assistant.ingest.docx import load_docx
from assistant.ingest.errors import IngestError
from assistant.search.index import CorpusIndex
from assistant.service import Assistant
from assistant.settings import Settings

PARAGRAPH = b"<w:p><w:r><w:t>Paragraphe.</w:t></w:r></w:p>"
BOMB_BYTES = DOCX_MAX_UNCOMPRESSED + 50 * 2**20  # 150 MB of small paragraphs


def _docx_bomb(path: Path, size: int = BOMB_BYTES) -> Path:
    """A .docx whose document.xml is ``size`` bytes of small paragraphs (it zips to ~0.2 MB)."""
    block = PARAGRAPH * (2**20 // len(PARAGRAPH))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w") as member:
            member.write(
                b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
            )
            written = 0
            while written < size:
                member.write(block)
                written += len(block)
            member.write(b"</w:document>")
    return path


def _lie_about_sizes(path: Path, declared: int = 4096) -> None:
    """Rewrite the archive's directory so that document.xml declares ``declared`` bytes."""
    data = bytearray(path.read_bytes())
    name = b"word/document.xml"
    local = data.find(b"PK\x03\x04")
    while local != -1:
        name_len = struct.unpack_from("<H", data, local + 26)[0]
        if bytes(data[local + 30 : local + 30 + name_len]) == name:
            struct.pack_into("<I", data, local + 22, declared)
        local = data.find(b"PK\x03\x04", local + 4)
    central = data.find(b"PK\x01\x02")
    while central != -1:
        name_len = struct.unpack_from("<H", data, central + 28)[0]
        if bytes(data[central + 46 : central + 46 + name_len]) == name:
            struct.pack_into("<I", data, central + 24, declared)
        central = data.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _docx_bomb(tmp_path_factory.mktemp("bomb") / "rapport annuel.docx")


def test_a_docx_zip_bomb_is_refused_in_french_quickly_with_bounded_memory(bomb: Path) -> None:
    assert bomb.stat().st_size < 2 * 2**20  # small on disk: it passes the upload size limit
    with zipfile.ZipFile(bomb) as archive:  # and it declares its real size, over the cap
        assert archive.getinfo("word/document.xml").file_size > DOCX_MAX_UNCOMPRESSED
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(UploadRejected) as refused:
            check_upload(bomb, "rapport annuel.docx", 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    message = str(refused.value)
    assert "« rapport annuel.docx »" in message and "dépasse 100 Mo une fois décompressé" in message
    assert elapsed < 10, elapsed  # ~0.5 s here: decompression stops at the cap
    assert peak < 16 * 2**20, peak  # one 1 MiB block at a time, never the whole member
    with pytest.raises(IngestError, match=r"« rapport annuel.docx » : le fichier Word dépasse 100 Mo"):
        load_docx(bomb)  # the loader checks too (files put in the corpus folder by hand)


def test_a_docx_whose_directory_lies_about_its_size_is_refused(tmp_path: Path) -> None:
    liar = _docx_bomb(tmp_path / "menteur.docx", size=20 * 2**20)
    _lie_about_sizes(liar)
    with zipfile.ZipFile(liar) as archive:
        assert archive.getinfo("word/document.xml").file_size == 4096  # looks harmless
    with pytest.raises(UploadRejected, match=r"« menteur.docx » : .*endommagée ou falsifiée"):
        check_upload(liar, "menteur.docx", 20)
    with pytest.raises(IngestError, match="endommagée ou falsifiée"):
        load_docx(liar)


# -------------------------------------------------------------- adding through the assistant


def _sections(count: int) -> str:
    body = "".join(
        f"## Section {n}\n\nLe comité numéro {n} se réunirait chaque mois pour suivre l'activité {n}.\n\n"
        for n in range(count)
    )
    return "# Note de test\n\n" + body


@pytest.fixture
def workspace(tmp_path: Path, small_settings: Settings, small_index: CorpusIndex) -> Settings:
    """A private copy of the small corpus and of its built index."""
    shutil.copytree(small_settings.corpus_dir, tmp_path / "corpus")
    shutil.copytree(small_settings.index_dir, tmp_path / "index")
    return make_settings(tmp_path, tmp_path / "corpus", llm="extractive")


def _state(settings: Settings) -> tuple[list[str], bytes]:
    manifest = (settings.index_dir / "manifest.json").read_bytes()
    return sorted(p.name for p in settings.corpus_dir.iterdir()), manifest


def test_a_document_over_the_passage_bound_is_refused_and_the_next_one_added(
    workspace: Settings, tmp_path: Path
) -> None:
    settings = workspace.replace(max_passages_per_document=5)
    assistant = Assistant(settings, CorpusIndex(settings), model_status="mode extractif")
    before = _state(settings)
    long_note = tmp_path / "note longue.md"
    long_note.write_text(_sections(12), encoding="utf-8")
    with pytest.raises(IngestError) as refused:
        assistant.add_document(long_note)
    message = str(refused.value)
    assert message.startswith("« note longue.md » : le document donne 12 passages")
    assert "au-delà de la limite de 5 par document" in message
    assert _state(settings) == before  # nothing changed

    short_note = tmp_path / "note courte.md"
    short_note.write_text(_sections(3), encoding="utf-8")
    report = assistant.add_document(short_note)  # one bad document never blocks the next
    assert report.added == ["note courte.md"] and report.embedded_chunks == 0  # embedded in the child
    hits = assistant.search("Le comité numéro 2 se réunirait chaque mois").passages
    assert any(p.metadata["source"] == "note courte.md" for p in hits)


def test_a_corpus_file_over_the_bound_is_refused_and_the_others_indexed(workspace: Settings) -> None:
    settings = workspace.replace(max_passages_per_document=40)
    (settings.corpus_dir / "enorme.md").write_text(_sections(60), encoding="utf-8")
    _docx_bomb(settings.corpus_dir / "bombe.docx")
    report = CorpusIndex(settings).update()
    refused = {e.path.name: e.reason for e in report.refused}
    assert set(refused) == {"enorme.md", "bombe.docx"}
    assert "60 passages" in refused["enorme.md"] and "100 Mo" in refused["bombe.docx"]
    assert sorted(report.unchanged) == sorted(
        p.name for p in workspace.corpus_dir.iterdir() if p.suffix == ".md" and p.name != "enorme.md"
    )


def test_the_child_is_bounded_in_time_and_memory(workspace: Settings, tmp_path: Path) -> None:
    note = tmp_path / "note.md"
    note.write_text(_sections(3), encoding="utf-8")
    before = _state(workspace)
    slow = workspace.replace(upload_timeout_s=0.3)
    with pytest.raises(IngestError, match=r"« note.md » : la lecture et l.indexation .* ont dépassé 0,3 s"):
        Assistant(slow, CorpusIndex(slow)).add_document(note)
    small = workspace.replace(upload_memory_mb=48)
    with pytest.raises(IngestError, match=r"« note.md » : la lecture du document .*(mémoire|interrompue)"):
        Assistant(small, CorpusIndex(small)).add_document(note)
    assert _state(workspace) == before


def test_questions_are_answered_while_a_document_is_being_added(workspace: Settings, tmp_path: Path) -> None:
    assistant = Assistant(workspace, CorpusIndex(workspace), model_status="mode extractif")
    note = tmp_path / "note du comité.md"
    note.write_text(_sections(8), encoding="utf-8")
    progress: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def add() -> None:
        try:
            assistant.add_document(note, progress=lambda done, total, _: progress.append((done, total)))
        except BaseException as error:  # reported below
            errors.append(error)

    adding = threading.Thread(target=add)
    adding.start()
    deadline = time.monotonic() + 60
    while not progress and adding.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)  # the child has read the document and started embedding
    assert progress and adding.is_alive(), errors
    started = time.perf_counter()
    result = assistant.search("Quelles sont les limites du scénario ENTPE ?")
    elapsed = time.perf_counter() - started
    still_adding = adding.is_alive()
    adding.join(timeout=300)
    assert not errors, errors
    assert result.passages and elapsed < 5, elapsed
    assert still_adding  # the answer came while the document was being embedded
    assert progress[-1][0] == progress[-1][1]


def test_adding_documents_does_not_hold_up_questions_in_the_app() -> None:
    from assistant.app.rendering import ANSWER_SLOT_ID, EVAL_SLOT

    assert CORPUS_SLOT["concurrency_id"] not in (ANSWER_SLOT_ID, EVAL_SLOT["concurrency_id"])
