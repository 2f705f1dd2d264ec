"""A real Chroma server (``chroma run``) on 127.0.0.1: the index is built and queried through it."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import chromadb
import pytest
from chromadb.config import Settings as ChromaSettings

from assistant.search import shared_index
from assistant.search.index import CorpusIndex, IndexBusy
from assistant.search.retrieval import Retriever
from tests.conftest import SMALL_ENTPE, SMALL_UGE, make_settings

HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    executable = Path(sys.executable).parent / "chroma"
    assert executable.is_file(), f"chroma executable missing next to {sys.executable}"
    data = tmp_path_factory.mktemp("chroma_server")
    log = (data.parent / "chroma_server.log").open("w")
    port = _free_port()
    process = subprocess.Popen(
        [str(executable), "run", "--path", str(data), "--host", HOST, "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (
                f"chroma run stopped (code {process.returncode}): {Path(log.name).read_text()[-2000:]}"
            )
            try:
                with urllib.request.urlopen(f"http://{HOST}:{port}/api/v2/heartbeat", timeout=2) as answer:
                    if answer.status == 200 and "nanosecond heartbeat" in json.loads(answer.read()):
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, "chroma run did not answer /api/v2/heartbeat within 60 s"
            time.sleep(0.3)
        yield port, data
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)
        log.close()


def test_index_and_search_through_a_chroma_server(
    chroma_server: tuple[int, Path], small_corpus: Path, tmp_path: Path
) -> None:
    port, data = chroma_server
    settings = make_settings(tmp_path, small_corpus, chroma_host=HOST, chroma_port=port)
    assert settings.chroma_is_remote
    index = CorpusIndex(settings)
    assert index.state() == "missing"
    report = index.update()
    assert sorted(report.added) == [SMALL_ENTPE, SMALL_UGE] and not report.refused
    assert report.embedded_chunks == report.total_chunks > 30
    assert index.state() == "fresh"
    assert not index.manifest_path.exists(), "the manifest went to a local file, not to the server"
    assert not (settings.index_dir / "chroma").exists(), "a local store was used instead of the server"
    assert list(data.iterdir()), "the server wrote nothing in its --path folder"

    # the vectors are on the server, in the collection the manifest names
    client = chromadb.HttpClient(host=HOST, port=port, settings=ChromaSettings(anonymized_telemetry=False))
    collection = client.get_collection(index.manifest()["collection"])
    assert collection.count() == report.total_chunks

    retriever = Retriever(index)
    result = retriever.search("limites du scénario ENTPE")
    assert result.passages
    top = result.passages[:6]
    assert all(p.metadata["scenario"] == "entpe" and p.metadata["section_kind"] == "limites" for p in top)
    assert all(p.label.startswith("Scénario ENTPE › Limites › ") for p in top)

    filtered = retriever.search("gouvernance et dotation", scenarios=["uge"], sections=["questions"])
    assert filtered.passages
    assert all(p.metadata["scenario"] == "uge" and p.section_kind == "questions" for p in filtered.passages)
    assert filtered.passages[0].metadata["subject"] == "Gouvernance"

    # a second start reuses what the server holds
    assert CorpusIndex(settings).ensure() is None


def test_app_processes_with_their_own_folders_share_the_servers_index(
    chroma_server: tuple[int, Path], small_corpus: Path, tmp_path: Path
) -> None:
    """Two app processes on two machines: each has its own ``index/`` folder and a copy of the
    corpus; the manifest and the writer lock are the server's, so the second one builds nothing
    and a rebuild by one does not pull the index from under the other."""
    port, _ = chroma_server
    first = make_settings(
        tmp_path / "a", small_corpus, chroma_host=HOST, chroma_port=port, collection="partage"
    )
    index_a = CorpusIndex(first)
    built = index_a.update()
    generation = index_a.manifest()["collection"]

    # a second machine: another index folder, the same corpus files (a copy)
    corpus_b = tmp_path / "b" / "corpus"
    shutil.copytree(small_corpus, corpus_b)
    second = first.replace(index_dir=tmp_path / "b" / "index", corpus_dir=corpus_b)
    index_b = CorpusIndex(second)
    assert index_b.state() == "fresh", "the second process did not see the server's manifest"
    assert index_b.ensure() is None
    assert index_b.manifest()["collection"] == generation
    assert not list((tmp_path / "b").glob("index/manifest*")), "a local manifest was written"

    # one writer at a time, across processes: the lock is on the server, not in index/
    with index_a.writer_lock(), pytest.raises(IndexBusy, match="Une indexation est déjà en cours"):
        index_b.update()

    # the first process reads on while the second rebuilds after a change of its corpus
    reader_a = Retriever(index_a)
    (corpus_b / "05_note_breve.md").write_text(
        "# Note brève\n\nLe comité se réunit en janvier pour arrêter le calendrier.\n", encoding="utf-8"
    )
    report = index_b.update()
    assert report.added == ["05_note_breve.md"] and report.embedded_chunks < built.total_chunks
    assert index_a.manifest()["collection"] != generation, "process A does not see the new generation"
    assert reader_a.search("limites du scénario ENTPE").passages, "the generation A reads was dropped"
    assert index_a.state() == "stale"  # its corpus folder lacks the new note: it would not serve it

    # a build after that drops the generation no one reads any more
    (corpus_b / "05_note_breve.md").unlink()
    assert index_b.update().removed == ["05_note_breve.md"]
    names = {c if isinstance(c, str) else c.name for c in index_a.client.list_collections()}
    assert generation not in names and f"{generation}_s" not in names
    assert index_b.manifest()["collection"] in names


def test_a_writer_lock_left_by_a_killed_builder_expires(chroma_server: tuple[int, Path]) -> None:
    port, _ = chroma_server
    client = chromadb.HttpClient(host=HOST, port=port, settings=ChromaSettings(anonymized_telemetry=False))
    client.create_collection(
        shared_index.writer_collection("abandon"), metadata={"holder": "autre:42", "since": time.time() - 60}
    )
    with (
        pytest.raises(IndexBusy, match=r"autre:42 depuis \d\d/\d\d/\d{4}"),
        shared_index.writer_lock(client, "abandon", lease_s=3600),
    ):
        pass
    with shared_index.writer_lock(client, "abandon", lease_s=30):  # the same lock, past its lease
        assert (
            client.get_collection(shared_index.writer_collection("abandon")).metadata["holder"] != "autre:42"
        )
    names = {c if isinstance(c, str) else c.name for c in client.list_collections()}
    assert shared_index.writer_collection("abandon") not in names, "the lock was not released"
