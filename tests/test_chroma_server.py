"""A real Chroma server (``chroma run``) on 127.0.0.1: the index is built and queried through it."""

from __future__ import annotations

import json
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

from assistant.search.index import CorpusIndex
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
    assert index.manifest_path.name == f"manifest-{HOST}-{port}.json"
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
