"""What keeps a large library affordable, and the synthetic libraries that measure it.

- each distinct text is embedded once (content hash), within a build and across files;
- the fast USE embedder is selected by settings like the others;
- the synthetic library generator (``scripts/synth_library.py``) is deterministic, names every
  document differently and never writes an evidence excerpt of the set it is given.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings

from assistant.search import index_build
from assistant.search.embeddings import (
    ProgressEmbeddings,
    UseEmbeddings,
    VectorCache,
    build_embeddings,
    content_hash,
)
from assistant.search.index import CorpusIndex
from assistant.settings import Settings
from assistant.text import match_key
from tests.conftest import CORPUS_SOURCE, make_settings

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _script(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class CountingEmbeddings(Embeddings):
    """Wraps a real embedder and records every text it is asked to embed."""

    def __init__(self, base: Embeddings) -> None:
        self.base = base
        self.name = getattr(base, "name", "")
        self.batch_size = getattr(base, "batch_size", 8)
        self.seen: list[str] = []

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        self.seen.extend(texts)
        return self.base.embed_documents(list(texts))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_batch(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.base.embed_query(text)


class FakeEmbeddings(Embeddings):
    """A vector from the text's length: enough to tell which texts were embedded."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return [[float(len(t)), 1.0] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return [float(len(text)), 1.0]


def test_each_distinct_text_is_embedded_once_and_kept_as_float32() -> None:
    base = FakeEmbeddings()
    wrapper = ProgressEmbeddings(base)
    first = wrapper.embed_documents(["une ligne", "une autre ligne", "une ligne"])
    assert base.calls == [["une ligne", "une autre ligne"]]
    assert first[0] == first[2] == [9.0, 1.0]
    wrapper.embed_documents(["une ligne", "une troisième"])
    assert base.calls[1] == ["une troisième"]  # the known text is not embedded again
    assert len(wrapper.known) == 3 and wrapper.embedded == 3
    assert content_hash("une ligne") != content_hash("une ligne ")
    cache = VectorCache()
    cache.add("x", [0.5, 0.25])
    assert cache._vectors[content_hash("x")].dtype == np.float32 and cache.get("x") == [0.5, 0.25]


def test_a_bounded_cache_keeps_the_most_recently_used_vectors() -> None:
    cache = VectorCache(limit=2)
    cache.add("a", [1.0])
    cache.add("b", [2.0])
    assert cache.get("a") == [1.0]  # « a » used again: « b » is now the oldest
    cache.add("c", [3.0])
    assert len(cache) == 2 and "a" in cache and "c" in cache and "b" not in cache


@pytest.mark.parametrize("cache_vectors", [index_build.CACHE_VECTORS, 1])
def test_identical_rows_in_two_files_are_embedded_once_by_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache_vectors: int
) -> None:
    # With a cache of one vector, a text met again is read back from the index, not re-embedded.
    monkeypatch.setattr(index_build, "CACHE_VECTORS", cache_vectors)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    sheet = (
        "---\ntitle: Fiche d'essai\nlabel: Fiche d'essai\nscenario: autre\n---\n# Fiche d'essai\n\n"
        "## Limites\n\n| Sujet | Observations |\n| --- | --- |\n"
        "| Géographie | Agents basés à Aix et Valenciennes |\n| Finances | Environ 780 k€ |\n"
    )
    (corpus / "a.md").write_text(sheet, encoding="utf-8")
    (corpus / "b.md").write_text(sheet, encoding="utf-8")  # same label, same rows: same texts
    settings = make_settings(tmp_path, corpus)
    counting = CountingEmbeddings(build_embeddings(settings))
    index = CorpusIndex(settings, embeddings=counting)
    report = index.update()
    assert report.total_chunks == 4  # both files are indexed, each with its own passages
    assert len(counting.seen) == len(set(counting.seen))  # but no text was embedded twice
    stored = index.vectorstore().get(include=["embeddings", "documents"])
    by_text: dict[str, list[np.ndarray]] = {}
    for text, vector in zip(stored["documents"], stored["embeddings"], strict=True):
        by_text.setdefault(text, []).append(np.asarray(vector))
    assert all(len(v) == 2 and np.allclose(v[0], v[1]) for v in by_text.values())


def test_the_use_embedder_is_chosen_by_settings() -> None:
    settings = Settings.from_env({"ASSISTANT_EMBEDDER": "use"})
    model = build_embeddings(settings)
    assert isinstance(model, UseEmbeddings)
    question, close, far = model.embed_documents(
        [
            "Où les agents travaillent-ils ?",
            "Les agents sont basés à Aix et à Valenciennes.",
            "Les marées d'équinoxe sont fortes au printemps.",
        ]
    )
    assert len(question) == 512 and abs(float(np.linalg.norm(question)) - 1.0) < 1e-3
    assert np.dot(question, close) > np.dot(question, far)


@pytest.fixture(scope="module")
def synth():  # type: ignore[no-untyped-def]
    return _script("synth_library")


@pytest.fixture
def small_dossier(tmp_path: Path) -> tuple[Path, Path]:
    """The ENTPE sheet alone, and a question set whose excerpts are whole clauses of it."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copyfile(CORPUS_SOURCE / "02_scenario_entpe.md", corpus / "02_scenario_entpe.md")
    evidence = ["Lyon, site universitaire majeur", "Projets de formation à l'international"]
    dev = tmp_path / "qa.jsonl"
    dev.write_text(json.dumps({"id": "q1", "question": "?", "evidence": evidence}) + "\n", encoding="utf-8")
    return corpus, dev


def test_synthetic_documents_never_hold_an_evidence_excerpt(synth, small_dossier) -> None:  # type: ignore[no-untyped-def]
    corpus, dev = small_dossier
    keys = synth.evidence_keys([dev])
    assert synth.leaks("Reprise… | Lyon, site universitaire majeur |", keys)  # the check bites
    near = synth.evidence_shingles([dev])
    assert synth.clean_pieces("Projets de formation à l'international", keys, near) == []
    # a near copy (four words in a row of an excerpt) is left out too; an unrelated clause stays
    assert synth.clean_pieces("de nombreux projets de formation à distance", keys, near) == []
    assert synth.clean_pieces("Gouvernance partagée avec le ministère", keys, near) == [
        "Gouvernance partagée avec le ministère"
    ]

    report = synth.LibraryReport()
    documents = list(synth.synthetic_documents(11, seed=3, corpus_dir=corpus, evidence=[dev], report=report))
    assert len(documents) == 10 and report.documents == 10 and report.cut >= 1
    for _, text in documents:
        assert not any(k in match_key(text) for k in keys)
        assert "## Opportunités" in text and "## Limites" in text and "## Synthèse du scénario" in text
        assert "ENTPE" not in text  # the dossier's own organisation is replaced by the invented one
    names = [name for name, _ in documents]
    titles = [text.splitlines()[1] for _, text in documents]
    assert len(set(names)) == len(names) and len(set(titles)) == len(titles)


def test_synthetic_libraries_are_deterministic(synth, small_dossier) -> None:  # type: ignore[no-untyped-def]
    corpus, dev = small_dossier
    one = list(synth.synthetic_documents(3, seed=5, corpus_dir=corpus, evidence=[dev]))
    two = list(synth.synthetic_documents(3, seed=5, corpus_dir=corpus, evidence=[dev]))
    other = list(synth.synthetic_documents(3, seed=6, corpus_dir=corpus, evidence=[dev]))
    assert one == two and one != other


def test_an_unbuilt_size_past_the_exact_search_limit_is_extrapolated_from_chromas_timings() -> None:
    bench = _script("bench_scale")
    common = {"embedder": "use", "texts_per_s": 400.0, "encode_p95_ms": 6.0}

    def row(factor: int, exact: bool, local: float, chroma: float) -> dict[str, object]:
        timings = {k: local for k in ("p50_ms", "p95_ms", "index_p50_ms", "index_p95_ms")}
        timings |= {f"chroma_{k}": chroma for k in ("p50_ms", "p95_ms", "index_p50_ms", "index_p95_ms")}
        sizes = {"documents": 4 * factor, "passages": 104 * factor, "sentences": 250 * factor}
        costs = {
            "embedded_texts": 354 * factor,
            "build_s": factor,
            "embedding_s": factor,
            "peak_rss_mb": 100 + factor,
        }
        return {"factor": factor, "exact_search": exact, **common, **timings, **sizes, **costs}

    # 10x searched in memory (2.6 ms; 20.2 ms through Chroma), 100x through Chroma (27.4 ms).
    far = bench.extrapolated([row(10, True, 2.6, 20.2), row(100, False, 27.4, 27.4)], 1000)
    assert not far["exact_search"]
    assert 30 < far["index_p95_ms"] < 45  # a mix of the two ways of searching would give ~290


def test_a_size_that_fails_is_reported_with_the_childs_own_error() -> None:
    bench = _script("bench_scale")
    # An embedder no settings know: the child process stops at once; its error reaches the user.
    with pytest.raises(SystemExit) as failed:
        bench.run_child(1, "aucun-modele", 7)
    message = str(failed.value)
    assert message.startswith("Échec de la mesure à 1× (aucun-modele)")
    assert message.splitlines()[-1].endswith("introuvable : aucun-modele")
