"""The index when things go wrong underneath it: a damaged store, a busy writer, a full disk,
file names that once gave two documents the same passage ids.

Everything is real — Chroma, the e5 embedder, files written here — on a corpus of two short
sheets built once (``template``) and copied for each test. Two things are simulated because
the real part cannot produce them on demand: the other process holding the writer lock (the
test takes the lock itself) and a write failing with a full disk or a refused permission.

The template's collections are created with a small HNSW ``sync_threshold`` so that their
vectors live in the segment folders, as they do for any corpus past 1 000 passages; with
Chroma's default, a corpus this small is still read from SQLite and a damaged segment folder
goes unnoticed (and harmless).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant import cli
from assistant.search.index import CorpusIndex, IndexError_, IndexWriteFailed
from assistant.search.retrieval import Retriever
from assistant.search.store import forget_client
from assistant.service import Assistant
from assistant.settings import Settings
from tests.conftest import _ENV_SETTINGS, make_settings

SHEET_A = "05_fiche_marees.md"
SHEET_B = "06_fiche_cadastre.md"
TEXT_A = """---
title: Fiche des marées
scenario: entpe
label: Fiche marées
---
# Fiche des marées

## Limites

| Sujet | Observations |
| --- | --- |
| Calendrier lunaire | Les marées d'équinoxe perturbent le calendrier des formations. |
| Digues | Les digues du campus doivent être surélevées avant l'hiver. |
"""
TEXT_B = """---
title: Fiche du cadastre
scenario: uge
label: Fiche cadastre
---
# Fiche du cadastre

## Limites

| Sujet | Observations |
| --- | --- |
| Cadastre | Le cadastre des hangars reste à établir. |
| Archives | Les archives foncières sont conservées à Marne-la-Vallée. |
"""
QUESTION = "marées d'équinoxe et calendrier"


def _small_hnsw(monkeypatch: pytest.MonkeyPatch) -> None:
    """New generations get a small HNSW ``sync_threshold`` (see the module docstring)."""
    original = CorpusIndex.store

    def store(self: CorpusIndex, collection: str, embeddings: Any = None, create: bool = False) -> Any:
        if create:
            self.client.get_or_create_collection(
                collection, configuration={"hnsw": {"sync_threshold": 2, "batch_size": 2}}
            )
        return original(self, collection, embeddings, create)

    monkeypatch.setattr(CorpusIndex, "store", store)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("healing")
    (root / "corpus").mkdir()
    (root / "corpus" / SHEET_A).write_text(TEXT_A, encoding="utf-8")
    (root / "corpus" / SHEET_B).write_text(TEXT_B, encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        _small_hnsw(patch)
        report = CorpusIndex(make_settings(root, root / "corpus")).update()
    assert sorted(report.added) == [SHEET_A, SHEET_B] and not report.refused
    yield root


@pytest.fixture
def workspace(tmp_path: Path, template: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A private copy of the template corpus and index; the CLI's environment points at it."""
    shutil.copytree(template / "corpus", tmp_path / "corpus")
    shutil.copytree(template / "index", tmp_path / "index")
    _small_hnsw(monkeypatch)
    settings = make_settings(tmp_path, tmp_path / "corpus")
    for name in _ENV_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ASSISTANT_CORPUS_DIR", str(settings.corpus_dir))
    monkeypatch.setenv("ASSISTANT_INDEX_DIR", str(settings.index_dir))
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(settings.cache_dir))
    monkeypatch.setenv("ASSISTANT_FEEDBACK_PATH", str(settings.feedback_path))
    monkeypatch.setenv("ASSISTANT_EMBEDDER", settings.embedder)
    return settings


# ------------------------------------------------------------------ a damaged store


def _segment_folders(chroma: Path) -> list[Path]:
    return [p for p in chroma.iterdir() if p.is_dir()]


def _delete_sqlite(chroma: Path) -> None:
    (chroma / "chroma.sqlite3").unlink()


def _truncate_sqlite(chroma: Path) -> None:
    path = chroma / "chroma.sqlite3"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _junk_sqlite(chroma: Path) -> None:
    path = chroma / "chroma.sqlite3"
    path.write_bytes(os.urandom(path.stat().st_size))


def _delete_segments(chroma: Path) -> None:
    folders = _segment_folders(chroma)
    assert folders
    for folder in folders:
        shutil.rmtree(folder)


def _junk_segments(chroma: Path) -> None:
    for folder in _segment_folders(chroma):
        for path in folder.iterdir():
            path.write_bytes(os.urandom(max(path.stat().st_size, 64)))


DAMAGES: dict[str, Callable[[Path], None]] = {
    "sqlite supprimé": _delete_sqlite,
    "sqlite tronqué": _truncate_sqlite,
    "sqlite écrasé": _junk_sqlite,
    "dossiers de données supprimés": _delete_segments,
    "dossiers de données écrasés": _junk_segments,
}


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_store_is_detected_and_rebuilt(
    damage: str, workspace: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    chroma = workspace.index_dir / "chroma"
    DAMAGES[damage](chroma)
    assert CorpusIndex(workspace).state() == "damaged"  # never « à jour » over a broken store

    # ``assistant search``: says what happened, rebuilds, answers
    code, out, err = _cli(capsys, "search", QUESTION, "--json")
    assert code == 0, err
    assert "L'index enregistré est endommagé (" in err and ": reconstruction complète." in err
    assert "erreur inattendue" not in err
    passages = json.loads(out.strip().splitlines()[-1])["passages"]
    assert passages and passages[0]["metadata"]["source"] == SHEET_A
    assert list(workspace.index_dir.glob("chroma.endommage-*"))  # set aside, not lost
    index = CorpusIndex(workspace)
    assert index.state() == "fresh"
    assert sorted(index.manifest()["files"]) == [SHEET_A, SHEET_B]

    # the same damage again, found this time by ``assistant index`` (a process of its own: this
    # one's cached Chroma client would keep reading a deleted file through its open handle)
    forget_client(chroma)
    DAMAGES[damage](chroma)
    code, out, err = _cli(capsys, "index", "--json")
    assert code == 0, err
    assert "L'index enregistré est endommagé (" in err and "rien à recalculer" not in err
    assert json.loads(out.strip().splitlines()[-1])["state"] == "fresh"
    code, out, err = _cli(capsys, "index")
    assert code == 0 and "Index à jour : rien à recalculer." in err


def test_a_store_missing_a_collection_names_it(workspace: Settings) -> None:
    index = CorpusIndex(workspace)
    sentences = index.manifest()["sentences"]
    index.client.delete_collection(sentences)
    reason = CorpusIndex(workspace).damage()
    assert reason is not None and f"la collection « {sentences} » n'existe plus" in reason
    assistant = Assistant.open(workspace, with_model=False)
    assert assistant.index_report is not None
    assert any(sentences in notice for notice in assistant.index_report.notices)
    assert assistant.search(QUESTION).passages


# ------------------------------------------------------------------ reads from the last good generation


def _edit(settings: Settings) -> None:
    path = settings.corpus_dir / SHEET_B
    path.write_text(TEXT_B.replace("hangars", "hangars et des phares"), encoding="utf-8")


@pytest.fixture
def other_writer(workspace: Settings) -> Iterator[None]:
    """The writer lock, held as another indexing process would hold it."""
    with (workspace.index_dir / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
        fcntl.flock(handle, fcntl.LOCK_UN)


def test_reads_use_the_previous_generation_while_another_indexer_writes(
    workspace: Settings, other_writer: None, capsys: pytest.CaptureFixture[str]
) -> None:
    import app

    before = CorpusIndex(workspace).manifest()
    _edit(workspace)
    assistant = app.open_assistant(workspace.replace(llm="extractive"))  # as ``make run`` starts
    err = capsys.readouterr().err
    notice = assistant.index_notice
    assert notice.startswith("L'index n'est pas à jour (Une indexation est déjà en cours")
    assert "les réponses viennent de l'index précédent, construit le" in notice
    assert f"Attention : {notice}" in err
    assert assistant.status()["index_notice"] == notice
    assert assistant.index.manifest() == before
    hits = assistant.search(QUESTION).passages
    assert hits and hits[0].metadata["source"] == SHEET_A
    answer = assistant.ask("Qu'est-ce qui perturbe le calendrier des formations ?")
    assert answer.citations and "marées" in answer.text
    assert not any("phares" in r.text for r in assistant.index.records())

    code, _, err = _cli(capsys, "search", QUESTION)
    assert code == 0 and "Attention : L'index n'est pas à jour (Une indexation est déjà en cours" in err


def test_nothing_usable_and_a_busy_writer_is_an_error_in_french(
    workspace: Settings, other_writer: None
) -> None:
    _delete_sqlite(workspace.index_dir / "chroma")
    with pytest.raises(IndexError_, match="Une indexation est déjà en cours"):
        Assistant.open(workspace, with_model=False)


def _failing_write(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    from langchain_chroma import Chroma

    def add_texts(*args: Any, **kwargs: Any) -> list[str]:
        raise error

    monkeypatch.setattr(Chroma, "add_texts", add_texts)


def _generations(index: CorpusIndex) -> list[str]:
    names = [c if isinstance(c, str) else c.name for c in index.client.list_collections()]
    return sorted(n for n in names if n.startswith(f"{index.settings.collection}_g"))


def _compaction_error() -> BaseException:
    from chromadb.errors import InternalError

    return InternalError("Error in compaction: Failed to apply logs to the metadata segment")


WRITE_FAILURES: dict[str, tuple[Callable[[], BaseException], str]] = {
    "ENOSPC": (lambda: OSError(errno.ENOSPC, "No space left on device"), "le disque est plein"),
    "compaction": (_compaction_error, "le disque est plein"),
    "sqlite": (lambda: sqlite3.OperationalError("database or disk is full"), "le disque est plein"),
    "EACCES": (lambda: PermissionError(errno.EACCES, "Permission denied"), "droits insuffisants"),
    "EPERM": (lambda: OSError(errno.EPERM, "Operation not permitted"), "droits insuffisants"),
}


@pytest.mark.parametrize("failure", list(WRITE_FAILURES))
def test_a_failed_write_is_named_and_leaves_the_previous_generation(
    failure: str, workspace: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_error, expected = WRITE_FAILURES[failure]
    index = CorpusIndex(workspace)
    manifest_bytes = index.manifest_path.read_bytes()
    old = index.manifest()
    _edit(workspace)
    _failing_write(monkeypatch, make_error())
    with pytest.raises(IndexWriteFailed) as caught:
        index.update()
    message = str(caught.value)
    assert message.startswith(f"L'index n'a pas pu être écrit : {expected}")
    assert str(workspace.index_dir) in message
    assert index.manifest_path.read_bytes() == manifest_bytes
    # the half-written generation is gone at once (it holds the space a full disk needs)
    assert _generations(index) == sorted([old["collection"], old["sentences"]])

    if failure == "ENOSPC":  # the assistant still opens and answers from the previous index
        assistant = Assistant.open(workspace, with_model=False)
        assert assistant.index_notice.startswith("L'index n'est pas à jour (L'index n'a pas pu être écrit")
        assert "le disque est plein" in assistant.index_notice
        assert assistant.search(QUESTION).passages


# ------------------------------------------------------------------ passage ids


NEAR_NAMES = ("Note Test.md", "note_test.md")


def test_files_with_near_names_get_distinct_passage_ids(workspace: Settings) -> None:
    for name in NEAR_NAMES:
        (workspace.corpus_dir / name).write_text(TEXT_A.replace("marées", "vagues"), encoding="utf-8")
    index = CorpusIndex(workspace)
    report = index.update()
    assert not report.refused and not report.duplicates
    assert sorted(report.added) == sorted(NEAR_NAMES)
    files = index.manifest()["files"]
    first, second = (set(files[name]["chunk_ids"]) for name in NEAR_NAMES)
    assert first and second and not first & second
    assert {files[name]["doc_id"] for name in NEAR_NAMES} == set(NEAR_NAMES)
    sources = {p.metadata["source"] for p in Retriever(index).search("vagues d'équinoxe").passages}
    assert set(NEAR_NAMES) <= sources
    assert index.state() == "fresh"


def test_a_repeated_passage_id_names_both_files_and_the_rest_is_indexed(
    workspace: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Should ids ever collide again (here: the case-folding identity of earlier versions),
    the build names both files, skips the repeats and indexes everything else."""
    import re

    def folded(path: Path) -> str:
        return re.sub(r"[^a-z0-9]+", "_", path.name.lower())

    monkeypatch.setattr("assistant.ingest.formats.doc_id_for", folded)
    for name in NEAR_NAMES:
        (workspace.corpus_dir / name).write_text(TEXT_A.replace("marées", "vagues"), encoding="utf-8")
    code, _, err = _cli(capsys, "index", "--rebuild")
    assert code == 0, err
    assert "Expected IDs to be unique" not in err
    line = next(line for line in err.splitlines() if "Passages en double" in line)
    assert "« note_test.md »" in line and "« Note Test.md »" in line
    index = CorpusIndex(workspace)
    files = index.manifest()["files"]
    assert files["Note Test.md"]["chunks"] > 0 and files["note_test.md"]["chunks"] == 0
    assert files[SHEET_A]["chunks"] > 0 and files[SHEET_B]["chunks"] > 0
    assert Retriever(index).search("vagues d'équinoxe").passages[0].metadata["source"] == "Note Test.md"
    assert Retriever(index).search(QUESTION).passages[0].metadata["source"] == SHEET_A
