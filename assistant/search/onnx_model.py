"""EmbeddingGemma in ONNX Runtime: exported once from the verified weights, then run without torch.

On the 2-core machines this project runs on, a question took ~156 ms (p50, one thread) to encode
through sentence-transformers on torch and ~85 ms through ONNX Runtime, with the same vectors
(cosine 1.000000 on 60 development questions); two questions at once, 21 per second against ~10.
The graph holds the whole sentence-transformers pipeline (the Gemma encoder, mean pooling, the two
dense layers, the normalisation): ONNX Runtime and the model's tokenizer are all a process needs.

- ``export_model`` (``scripts/export_embedder.py``, run by ``make install``): traces the model with
  ``torch.onnx.export`` into ``<model>/onnx/``, checks the exported graph against the torch model on
  questions and passages of different lengths encoded together (padding included), and writes a
  marker with the versions it was made with and the check's figure. Nothing is left half-written:
  the export goes to a temporary folder renamed into place once checked.
- ``quantize_for_queries`` (same script, after the export): a second graph with 8-bit weights
  (``<model>/onnx-query-int8/``), for questions only, when several are asked at once
  (``GemmaOnnxEmbeddings``): passages are always encoded by the float32 graph.
- ``OnnxEncoder``: the exported graph behind the tokenizer, as sentence-transformers would call it
  (same prompts, same stripping, same truncation).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ONNX_FOLDER = "onnx"
ONNX_FILE = "model.onnx"
ONNX_MARKER = ".exported"
OUTPUT = "sentence_vector"
# The exported graph must give the torch model's vectors: measured 1.000000 (cosine, worst of
# the probes); anything below this means a broken export, never a rounding difference.
MIN_COSINE = 0.9999
PROBES = (
    "task: search result | query: Qui pilote le CMA ?",
    "task: search result | query: Quelles limites le rattachement à l'ENTPE présente-t-il pour les "
    "finances et la gouvernance du centre ?",
    "title: Scénario ENTPE › Limites | text: Finances : dotation à redéfinir.",
    "title: Note de l'Université Gustave Eiffel › Synthèse | text: L'université propose d'accueillir "
    "le CMA dans une structure dédiée, avec un comité de pilotage trimestriel associant le ministère, "
    "et de préserver la visibilité de sa mission auprès des services déconcentrés.",
)


# The 8-bit graph for questions: the float32 export with its linear layers and its token table
# quantized (weights in int8, one scale per output channel; activations quantized on the fly).
# Measured on 2 cores (Intel Xeon, 02/12/2026), 120 development questions, one thread: 56 → 24 ms
# per question (p50), 300 MB of weights instead of 1.2 GB; vectors within cosine 0.973 (worst) /
# 0.980 (mean) of float32's on 40 of them. Retrieval with 8-bit questions against the float32
# index (`scripts/sweep_retrieval.py`, the four sets), hit@5 / mrr@10: dev 0.928/0.813 →
# 0.921/0.808, blind 0.903/0.786 → 0.903/0.776, blind2 0.852/0.731 → 0.852/0.740, heldout
# 0.765/0.626 → 0.765/0.607: a little lower, hence used only when questions queue up. Passages
# quantized too were worse (heldout 0.735/0.568); quantizing one scale per tensor, or the
# feed-forward layers alone, drifted further (cosine 0.962 / 0.973 worst).
INT8_FOLDER = "onnx-query-int8"
# A broken quantization gives unrelated vectors (cosine ≪ 0.9); a sound one stays above 0.96 here.
MIN_INT8_COSINE = 0.95


class OnnxExportError(RuntimeError):
    """The export or its check failed (French message)."""


@dataclass(frozen=True)
class ExportReport:
    folder: Path
    seconds: float
    min_cosine: float
    reused: bool


def onnx_folder(model_path: str | Path) -> Path:
    return Path(model_path) / ONNX_FOLDER


def runtime_versions() -> dict[str, str]:
    """What the export depends on: a change of any of them calls for a new export."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("torch", "transformers", "sentence-transformers", "onnx", "onnxruntime"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "absent"
    return versions


def _source_stamp(model_path: Path) -> str:
    """The weights' own verification marker (their hashes), as written by the fetch script."""
    marker = model_path / ".verified"
    return marker.read_text(encoding="utf-8") if marker.is_file() else ""


def exported(model_path: str | Path) -> bool:
    """Whether ``<model>/onnx`` holds a checked export of these weights (a read of the marker)."""
    folder = onnx_folder(model_path)
    try:
        marker = json.loads((folder / ONNX_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if marker.get("source") != _source_stamp(Path(model_path)):
        return False
    return (folder / ONNX_FILE).is_file() and float(marker.get("min_cosine", 0.0)) >= MIN_COSINE


def export_model(
    model_path: str | Path, *, force: bool = False, announce: Callable[[], None] | None = None
) -> ExportReport:
    """Export the sentence-transformers folder ``model_path`` to ``<model>/onnx`` and check it;
    ``announce`` is called when the real work starts (not for an export already there)."""
    model_path = Path(model_path)
    folder = onnx_folder(model_path)
    if not force and exported(model_path):
        marker = json.loads((folder / ONNX_MARKER).read_text(encoding="utf-8"))
        if marker.get("versions") == runtime_versions():
            return ExportReport(folder, 0.0, float(marker["min_cosine"]), reused=True)
    if not (model_path / ".verified").is_file():
        raise OnnxExportError(
            f"Le modèle d'embeddings est absent ou non vérifié ({model_path}) : "
            "lancez d'abord « make install »."
        )
    if announce:
        announce()
    started = time.perf_counter()
    remove_leftovers(model_path)
    staging = Path(tempfile.mkdtemp(prefix=f".onnx-{os.getpid()}-", dir=model_path))
    staging.chmod(0o755)
    try:
        model = _load_torch_model(model_path)
        _trace(model, staging / ONNX_FILE)
        cosine = _check(model, staging / ONNX_FILE, model_path)
        if cosine < MIN_COSINE:
            kept = (
                "l'export précédent, vérifié, reste en place"
                if exported(model_path)
                else "l'assistant utilisera PyTorch"
            )
            raise OnnxExportError(
                f"Le modèle exporté en ONNX ne donne pas les vecteurs du modèle d'origine (cosinus "
                f"{cosine:.6f} < {MIN_COSINE}) : export écarté, {kept}."
            )
        marker = {
            "source": _source_stamp(model_path),
            "versions": runtime_versions(),
            "min_cosine": round(cosine, 6),
            "probes": len(PROBES),
        }
        _put_in_place(staging, folder, marker)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportReport(folder, time.perf_counter() - started, cosine, reused=False)


def _put_in_place(staging: Path, folder: Path, marker: dict[str, Any]) -> None:
    """Write the checked graph's marker, then swap the staging folder in for ``folder``: a
    reader sees the previous graph or the new one, never half of one."""
    (staging / ONNX_MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
    old = folder.parent / f".onnx-old-{os.getpid()}"
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


_LEFTOVER = re.compile(r"\.onnx-(?:old-)?(\d+)(?:-|$)")


def remove_leftovers(model_path: Path) -> None:
    """Remove the staging and replaced folders of an export whose process is gone (killed
    before its own clean-up): ``.onnx-<pid>-…`` and ``.onnx-old-<pid>``."""
    for path in model_path.glob(".onnx-*"):
        match = _LEFTOVER.match(path.name)
        if match and path.is_dir() and not _alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process: alive, not ours to remove
    return True


def int8_folder(model_path: str | Path) -> Path:
    return Path(model_path) / INT8_FOLDER


def quantized(model_path: str | Path) -> bool:
    """Whether ``<model>/onnx-query-int8`` holds a checked 8-bit graph of the current export."""
    folder = int8_folder(model_path)
    try:
        marker = json.loads((folder / ONNX_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        exported(model_path)
        and marker.get("source") == _export_stamp(Path(model_path))
        and (folder / ONNX_FILE).is_file()
        and float(marker.get("min_cosine", 0.0)) >= MIN_INT8_COSINE
    )


def _export_stamp(model_path: Path) -> str:
    """The float32 export's marker: a new export calls for a new 8-bit graph."""
    try:
        return (onnx_folder(model_path) / ONNX_MARKER).read_text(encoding="utf-8")
    except OSError:
        return ""


def quantize_for_queries(model_path: str | Path, *, force: bool = False) -> ExportReport:
    """Write the 8-bit graph for questions from the checked float32 export, and check it against
    that export on the probes. Nothing is left half-written (temporary folder, then renamed)."""
    model_path = Path(model_path)
    folder = int8_folder(model_path)
    if not exported(model_path):
        raise OnnxExportError(
            f"Pas d'export ONNX vérifié dans {onnx_folder(model_path)} : la version 8 bits des "
            "questions en dérive ; lancez d'abord « make install »."
        )
    if not force and quantized(model_path):
        marker = json.loads((folder / ONNX_MARKER).read_text(encoding="utf-8"))
        return ExportReport(folder, 0.0, float(marker["min_cosine"]), reused=True)
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    started = time.perf_counter()
    remove_leftovers(model_path)
    staging = Path(tempfile.mkdtemp(prefix=f".onnx-{os.getpid()}-int8-", dir=model_path))
    staging.chmod(0o755)
    try:
        # The exported graph transposes its weights at run time: ONNX Runtime's basic pass folds
        # those constants, which the quantizer needs to see the linear layers' weights.
        folded = staging / "folded"
        folded.mkdir()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded / ONNX_FILE)
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", f"{ONNX_FILE}.data"
        )
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_min_size_in_bytes", "1024"
        )
        options.log_severity_level = 3
        ort.InferenceSession(
            str(onnx_folder(model_path) / ONNX_FILE), options, providers=["CPUExecutionProvider"]
        )
        with contextlib.redirect_stdout(io.StringIO()), _quiet_root_logger():
            quantize_dynamic(
                str(folded / ONNX_FILE),
                str(staging / ONNX_FILE),
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul", "Gather"],
                use_external_data_format=True,
            )
        shutil.rmtree(folded)
        reference = OnnxEncoder(model_path, threads=2)
        candidate = OnnxEncoder(model_path, threads=2, path=staging / ONNX_FILE)
        cosine = float(
            np.min(np.sum(reference.encode(list(PROBES)) * candidate.encode(list(PROBES)), axis=1))
        )
        if cosine < MIN_INT8_COSINE:
            raise OnnxExportError(
                f"La version 8 bits d'EmbeddingGemma s'écarte trop du modèle (cosinus {cosine:.4f} "
                f"< {MIN_INT8_COSINE}) : écartée, les questions resteront calculées en float32."
            )
        marker = {"source": _export_stamp(model_path), "min_cosine": round(cosine, 6), "probes": len(PROBES)}
        _put_in_place(staging, folder, marker)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportReport(folder, time.perf_counter() - started, cosine, reused=False)


@contextlib.contextmanager
def _quiet_root_logger() -> Any:
    """The quantizer advises pre-processing through the root logger, in English: not for users."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _load_torch_model(model_path: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    # Eager attention traces into plain operators (the same vectors as the default attention).
    return SentenceTransformer(str(model_path), device="cpu", model_kwargs={"attn_implementation": "eager"})


def _trace(model: Any, target: Path) -> None:
    import torch

    class SentenceVector(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            features = {"input_ids": input_ids, "attention_mask": attention_mask}
            return torch.nn.functional.normalize(self.inner(features)["sentence_embedding"], dim=-1)

    wrapper = SentenceVector(model).eval()
    sample = model.preprocess(list(PROBES[:2]))  # two lengths: batch and length stay dynamic
    dynamic = {0: "batch", 1: "length"}
    # The exporter prints its progress and many warnings: kept out of the user's terminal.
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    with (
        contextlib.ExitStack() as restore,
        torch.inference_mode(),
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        restore.callback(quiet.setLevel, level)
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (sample["input_ids"], sample["attention_mask"]),
            str(target),
            input_names=["input_ids", "attention_mask"],
            output_names=[OUTPUT],
            dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, OUTPUT: {0: "batch"}},
            dynamo=True,
            # ONNX Runtime optimises the graph when it loads it: the exporter's own pass cost
            # ~20 s of the ~100 s export for the same speed (63 vs 57 ms p50, same vectors).
            optimize=False,
            external_data=True,
        )


def _check(model: Any, target: Path, model_path: Path) -> float:
    """The worst cosine between the exported graph's and the torch model's vectors for the probes,
    encoded together (the short ones padded to the longest)."""
    import torch

    with torch.inference_mode():
        expected = model.encode(list(PROBES), prompt="", normalize_embeddings=True, batch_size=len(PROBES))
    encoder = OnnxEncoder(model_path, threads=2, path=target)
    got = encoder.encode(list(PROBES))
    return float(np.min(np.sum(np.asarray(expected) * got, axis=1)))


class OnnxEncoder:
    """The exported sentence-transformers pipeline: texts (prompt included) → normalised vectors."""

    def __init__(self, model_path: str | Path, threads: int = 2, path: Path | None = None) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        model_path = Path(model_path)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        config = json.loads((model_path / "sentence_bert_config.json").read_text(encoding="utf-8"))
        self.max_length = int(config.get("max_seq_length") or 512)
        self.lowercase = bool(config.get("do_lower_case", False))
        prompts = json.loads((model_path / "config_sentence_transformers.json").read_text(encoding="utf-8"))
        self.prompts: dict[str, str] = dict(prompts.get("prompts", {}))
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        # Threads that wait sleep instead of spinning (as for torch, ``GemmaEmbeddings``): a
        # spinning pool steals the core another process (the local model, an upload) computes on.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        target = path or onnx_folder(model_path) / ONNX_FILE
        self.session = ort.InferenceSession(str(target), options, providers=["CPUExecutionProvider"])
        self._tokenizer_lock = threading.Lock()  # the fast tokenizer is not re-entrant
        self.dimension = int(self.session.get_outputs()[0].shape[-1])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of ``texts`` as sentence-transformers' ``encode`` gives them (prompt already in
        the texts): stripped, tokenized with padding and truncation, normalised (in the graph)."""
        cleaned = [text.strip().lower() if self.lowercase else text.strip() for text in texts]
        with self._tokenizer_lock:
            tokens = self.tokenizer(
                cleaned, padding=True, truncation=True, max_length=self.max_length, return_tensors="np"
            )
        feed = {name: np.asarray(tokens[name], dtype=np.int64) for name in ("input_ids", "attention_mask")}
        return np.asarray(self.session.run([OUTPUT], feed)[0], dtype=np.float32)
