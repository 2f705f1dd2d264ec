"""LLM backends: build a LangChain chat model from settings, and call it within a time limit.

``build_chat_model(settings)`` returns ``(model, status)``: a LangChain chat model, or ``None``
in extractive mode, and a French status line for the interface. Backends:

- ``local``: llama-cpp-python through LangChain's ``ChatLlamaCpp``, on the GGUF file that
  ``model_files`` joins from the packaged parts. Loaded once per process and reused.
- ``openai``: ``ChatOpenAI`` against any OpenAI-compatible server (``openai_base_url``).
- ``extractive``: no model.
- ``auto``: local when llama-cpp-python imports and the model is installed, else extractive;
  never raises, the reason goes in the status line.

``stream_with_timeout`` / ``generate_with_timeout`` bound a call in wall-clock time and raise
``LLMTimeout`` (French message) when it fires; the local model is then stopped between two
tokens, or in the middle of reading the prompt.

Deliberately left out: prompts (they are data files of the generation stage), retries,
tool calling.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import logging
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from pydantic import SecretStr

from assistant.answer.errors import LLMTimeout, LLMUnavailable, french_number
from assistant.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

EXTRACTIVE_STATUS = "mode extractif, sans LLM"
LLAMA_CPP_REQUIREMENT = "llama-cpp-python==0.3.36"
# Prompt tokens per llama_decode call. Measured here (2 cores): a 552-token prompt was read at
# ~97 tokens/s with batches of 128 or 512, about three times slower with ChatLlamaCpp's default
# of 8. 128 also bounds how long a cancelled prompt keeps running (~1.3 s, see _SharedLlama).
LOCAL_N_BATCH = 128


def backend_for(settings: Settings, model: Any) -> str:
    """The backend answering with ``model`` under ``settings``: « extractive » without a model,
    « openai » when the settings ask for a server, « local » otherwise (``auto`` loads only the
    local model)."""
    if model is None:
        return "extractive"
    return "openai" if settings.llm == "openai" else "local"


def build_chat_model(settings: Settings) -> tuple[BaseChatModel | None, str]:
    """The chat model the settings ask for, and a French status line.

    Raises ``SettingsError`` for an invalid value and ``LLMUnavailable`` for a missing piece,
    except in ``auto`` mode, which falls back to ``(None, "mode extractif, sans LLM (raison)")``.
    """
    if settings.llm == "extractive":
        return None, EXTRACTIVE_STATUS
    if settings.llm == "auto":
        return _build_auto(settings)
    _check_generation_settings(settings)
    if settings.llm == "local":
        return _build_local(settings)
    if settings.llm == "openai":
        return _build_openai(settings)
    raise SettingsError(
        f"Valeur inconnue pour le modèle de langage : « {settings.llm} » "
        "(valeurs possibles : auto, local, openai, extractive)."
    )


def _build_auto(settings: Settings) -> tuple[BaseChatModel | None, str]:
    from assistant.answer.model_files import local_model_problem

    try:
        _check_generation_settings(settings)
        reason = llama_cpp_problem() or local_model_problem(settings)
        if reason is None:
            return _build_local(settings)
    except (LLMUnavailable, SettingsError) as exc:
        reason = _lowercase_first(str(exc).rstrip("."))
    except Exception as exc:  # auto must never prevent the assistant from starting
        logger.warning("Local LLM failed to load; falling back to extractive mode", exc_info=True)
        reason = f"le modèle local n'a pas pu être chargé ({type(exc).__name__} : {exc})"
    return None, f"{EXTRACTIVE_STATUS} ({reason})"


def _lowercase_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _check_generation_settings(settings: Settings) -> None:
    if settings.llm_threads < 1:
        raise SettingsError(
            "Le nombre de fils de calcul du modèle (ASSISTANT_LLM_THREADS) doit être au moins 1 "
            f"(valeur reçue : {settings.llm_threads})."
        )
    if settings.llm_context < 512:
        raise SettingsError(
            "La taille de contexte du modèle (llm_context) doit être d'au moins 512 jetons "
            f"(valeur reçue : {settings.llm_context})."
        )
    if not 1 <= settings.llm_max_tokens < settings.llm_context:
        raise SettingsError(
            "Le nombre maximal de jetons générés (ASSISTANT_LLM_MAX_TOKENS) doit être compris "
            f"entre 1 et la taille de contexte ({settings.llm_context}) "
            f"(valeur reçue : {settings.llm_max_tokens})."
        )
    if not settings.llm_timeout_s > 0:
        raise SettingsError(
            "Le délai de réponse du modèle (ASSISTANT_LLM_TIMEOUT) doit être un nombre de "
            f"secondes positif (valeur reçue : {french_number(settings.llm_timeout_s)})."
        )


# --------------------------------------------------------------------------- OpenAI-compatible


def _build_openai(settings: Settings) -> tuple[BaseChatModel, str]:
    base_url = settings.openai_base_url
    if base_url:
        parsed = urlparse(base_url)
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            raise SettingsError(
                f"L'adresse du serveur de modèle (ASSISTANT_OPENAI_BASE_URL) est invalide : "
                f"« {base_url} » (attendu : http://hôte:port/v1 ou https://…)."
            )
    elif not settings.openai_api_key:
        raise LLMUnavailable(
            "Le mode « openai » demande une clé d'API : définissez ASSISTANT_OPENAI_API_KEY "
            "(ou OPENAI_API_KEY), ou bien l'adresse d'un serveur compatible local avec "
            "ASSISTANT_OPENAI_BASE_URL."
        )
    if not settings.openai_model:
        raise SettingsError("Le nom du modèle (ASSISTANT_OPENAI_MODEL) est vide.")
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as exc:
        raise LLMUnavailable(
            "Le mode « openai » demande le paquet langchain-openai : pip install langchain-openai"
        ) from exc

    model = ChatOpenAI(
        model=settings.openai_model,
        base_url=base_url,
        # Local OpenAI-compatible servers usually ignore the key, but the client requires one.
        api_key=SecretStr(settings.openai_api_key or "sans-cle"),
        temperature=0,
        # Sent as ``max_completion_tokens``, the current name of ``max_tokens`` in the API.
        max_completion_tokens=settings.llm_max_tokens,
        timeout=settings.llm_timeout_s,
        max_retries=1,
    )
    where = urlparse(base_url).netloc if base_url else "api.openai.com"
    return model, f"{settings.openai_model} (API compatible OpenAI, {where})"


# --------------------------------------------------------------------------- local llama.cpp


def llama_cpp_problem() -> str | None:
    """Why llama-cpp-python cannot be used (French), or ``None`` when it imports."""
    try:
        importlib.import_module("llama_cpp")
    except ImportError:
        return f"llama-cpp-python n'est pas installé (pip install {LLAMA_CPP_REQUIREMENT})"
    except OSError as exc:  # the compiled library is there but does not load
        return f"la bibliothèque llama.cpp ne se charge pas ({exc})"
    return None


class _SharedLlama:
    """State shared by every chat model built on one loaded ``Llama``.

    ``lock`` serialises generations (a llama.cpp context is not thread-safe). ``abort()`` stops
    llama.cpp inside ``llama_decode``: it installs an abort callback only once a generation is
    cancelled. An always-installed Python callback runs ~650 times per generated token (counted
    here) and takes the GIL each time, so any busy Python thread of the process (a PDF being
    parsed, say) slows generation: about threefold in one noisy measurement here. The callback
    is read when each graph computation starts, so a long prompt stops at the next batch
    (``LOCAL_N_BATCH`` tokens), a generation at once.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.client: Any = None
        self._guard = threading.Lock()
        self._cancel: threading.Event | None = None
        self._abort_callback: Any = None  # ctypes function, kept alive while installed

    def begin(self, cancel: threading.Event) -> None:
        with self._guard:
            self._cancel = cancel

    def end(self) -> None:
        with self._guard:
            self._cancel = None
            if self._abort_callback is not None:
                self._set_abort_callback(None)

    def abort(self) -> None:
        """Called from another thread once the current generation's event is set."""
        with self._guard:
            if self._cancel is not None and self._cancel.is_set() and self.client is not None:
                self._set_abort_callback(lambda _data: True)

    def _set_abort_callback(self, func: Any) -> None:
        import llama_cpp

        # Writing the pointer while the worker thread computes is a plain aligned store; the
        # CPU backend copies it at the start of each graph computation.
        callback = llama_cpp.ggml_abort_callback(func) if func else llama_cpp.ggml_abort_callback()
        llama_cpp.llama_set_abort_callback(self.client.ctx, callback, ctypes.c_void_p(0))
        self._abort_callback = callback if func else None


def _local_chat_class() -> Any:
    """``ChatLlamaCpp`` plus a lock and cancellation; built lazily so importing this module
    does not import langchain_community."""
    global _LocalChatLlamaCpp
    if _LocalChatLlamaCpp is not None:
        return _LocalChatLlamaCpp
    from langchain_community.chat_models import ChatLlamaCpp
    from langchain_core.outputs import ChatGenerationChunk, ChatResult

    class LocalChatLlamaCpp(ChatLlamaCpp):  # type: ignore[misc]
        shared: Any = None

        def _generate(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
        ) -> ChatResult:
            with self.shared.lock:
                return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

        def _stream(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
        ) -> Iterator[ChatGenerationChunk]:
            cancel = kwargs.pop("cancel_event", None) or threading.Event()
            with self.shared.lock:
                if cancel.is_set():  # timed out while waiting for another generation
                    return
                self.shared.begin(cancel)
                chunks = super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs)
                try:
                    for chunk in chunks:
                        yield chunk
                        if cancel.is_set():
                            break
                except RuntimeError:
                    if not cancel.is_set():
                        raise
                    # llama_decode was aborted: the caller already has its LLMTimeout, and
                    # llama-cpp-python drops the partial KV cache on the next call.
                finally:
                    close = getattr(chunks, "close", None)
                    if close is not None:  # stops llama-cpp-python's token generator
                        close()
                    self.shared.end()

        def abort_current(self) -> None:
            self.shared.abort()

    _LocalChatLlamaCpp = LocalChatLlamaCpp
    return LocalChatLlamaCpp


_LocalChatLlamaCpp: Any = None  # the class above, once built
_LOCAL_MODELS: dict[tuple[str, int, int], Any] = {}
_VARIANTS: dict[tuple[str, int, int, int], Any] = {}
_LOAD_LOCK = threading.Lock()


def amx_built_in() -> bool:
    """Whether this llama.cpp build multiplies with Intel AMX: compiled on a processor that has it
    (pip compiles llama-cpp-python for the machine it installs on)."""
    import llama_cpp

    return b"AMX_INT8 = 1" in llama_cpp.llama_print_system_info()


@contextlib.contextmanager
def safe_llama_loading() -> Iterator[None]:
    """Models loaded inside this block do without llama.cpp's extra weight buffers when the build
    uses AMX: its AMX matrix product crashes the whole process (segmentation fault in
    ``ggml_backend_amx_mul_mat`` on the first token, llama.cpp issue #20824, reproduced on a
    2-core Intel Xeon with AMX on 02/12/2026 with llama-cpp-python 0.3.36); without those buffers
    the model runs on the AVX-512 kernels. Elsewhere (AVX2 machines) nothing changes."""
    if not amx_built_in():
        yield
        return
    from llama_cpp import llama_cpp as low_level

    default = low_level.llama_model_default_params

    def without_extra_buffers() -> Any:
        params = default()
        params.use_extra_bufts = False
        return params

    low_level.llama_model_default_params = without_extra_buffers
    try:
        yield
    finally:
        low_level.llama_model_default_params = default


def _load_local(path: Path, settings: Settings) -> Any:
    """The chat model for ``path``, loading the weights only once per process.

    Models that differ only by ``max_tokens`` share one loaded ``Llama`` (and its lock).
    """
    key = (str(path.resolve()), settings.llm_context, settings.llm_threads)
    with _LOAD_LOCK:
        base = _LOCAL_MODELS.get(key)
        if base is None:
            cls = _local_chat_class()
            shared = _SharedLlama()
            started = time.perf_counter()
            try:
                with safe_llama_loading():
                    base = cls(
                        model_path=str(path),
                        n_ctx=settings.llm_context,
                        n_threads=settings.llm_threads,
                        n_batch=LOCAL_N_BATCH,
                        max_tokens=settings.llm_max_tokens,
                        temperature=0.0,
                        # A repetition penalty would push the model away from copying passage
                        # wording, and quotes are checked verbatim; greedy decoding stays.
                        repeat_penalty=1.0,
                        verbose=False,
                        streaming=True,
                        model_kwargs={
                            "n_threads_batch": settings.llm_threads,
                            "n_ubatch": LOCAL_N_BATCH,
                        },
                        shared=shared,
                    )
            except Exception as exc:
                raise LLMUnavailable(
                    f"Le modèle local n'a pas pu être chargé depuis {path} ({exc}). Le fichier est "
                    "peut-être abîmé, ou la mémoire insuffisante."
                ) from exc
            shared.client = base.client
            logger.info("Local model loaded in %.1f s from %s", time.perf_counter() - started, path)
            _LOCAL_MODELS[key] = base
        # One chat model per (weights, max_tokens), so the same settings always give the same
        # object, whichever settings loaded the weights first.
        variant_key = (*key, settings.llm_max_tokens)
        if variant_key not in _VARIANTS:
            same = base.max_tokens == settings.llm_max_tokens
            _VARIANTS[variant_key] = (
                base if same else base.model_copy(update={"max_tokens": settings.llm_max_tokens})
            )
        return _VARIANTS[variant_key]


def _build_local(settings: Settings) -> tuple[BaseChatModel, str]:
    from assistant.answer.model_files import ensure_local_model, model_info

    problem = llama_cpp_problem()
    if problem:
        raise LLMUnavailable(f"Le modèle local est indisponible : {problem}.")
    path = ensure_local_model(settings)
    info = model_info(path)
    model = _load_local(path, settings)
    licence = f"licence {info.license}" if info.license else "licence non déclarée"
    return model, f"{info.name} (local, llama.cpp, {licence})"


def loaded_local_models() -> int:
    """How many distinct local models this process holds (for tests and the status page)."""
    return len(_LOCAL_MODELS)


# --------------------------------------------------------------------------- time limits

_DONE = object()


def stream_with_timeout(
    model: BaseChatModel, messages: LanguageModelInput, timeout_s: float
) -> Iterator[str]:
    """Yield the answer's text pieces as they come; ``LLMTimeout`` after ``timeout_s`` seconds
    in total (reading the prompt included). Other failures become ``LLMUnavailable``.

    The model runs in a worker thread so the limit holds even while no token arrives; closing
    this generator early (the user left) also stops the generation.
    """
    if not timeout_s > 0:
        raise SettingsError(
            f"Le délai de réponse doit être positif (valeur reçue : {french_number(timeout_s)})."
        )
    cancel = threading.Event()
    pieces: queue.Queue[object] = queue.Queue()
    local_cls = _LocalChatLlamaCpp
    kwargs: dict[str, Any] = {}
    if local_cls is not None and isinstance(model, local_cls):
        kwargs["cancel_event"] = cancel

    def work() -> None:
        try:
            for chunk in model.stream(messages, **kwargs):
                if cancel.is_set():
                    break
                if chunk.text:
                    pieces.put(chunk.text)
        except Exception as exc:  # re-raised in the caller's thread
            pieces.put(exc)
        else:
            pieces.put(_DONE)

    worker = threading.Thread(target=work, name="llm-generation", daemon=True)
    deadline = time.monotonic() + timeout_s
    produced: list[str] = []
    worker.start()
    try:
        while True:
            try:
                item = pieces.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                raise LLMTimeout(timeout_s, "".join(produced)) from None
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise _as_unavailable(item, model, timeout_s, "".join(produced)) from item
            produced.append(str(item))
            yield str(item)
    finally:
        cancel.set()
        abort = getattr(model, "abort_current", None)
        if abort is not None:
            abort()


def generate_with_timeout(model: BaseChatModel, messages: LanguageModelInput, timeout_s: float) -> str:
    """The whole answer as one string, under the same time limit as ``stream_with_timeout``."""
    return "".join(stream_with_timeout(model, messages, timeout_s))


def _as_unavailable(
    exc: BaseException, model: BaseChatModel, timeout_s: float, partial: str
) -> LLMUnavailable:
    """A French ``LLMUnavailable`` for a failure raised inside the model call."""
    if isinstance(exc, LLMUnavailable):
        return exc
    logger.warning("LLM call failed", exc_info=exc)
    try:
        import openai
    except ImportError:
        openai = None  # type: ignore[assignment]
    where = getattr(model, "openai_api_base", None) or "api.openai.com"
    if openai is not None and isinstance(exc, openai.APITimeoutError):
        return LLMTimeout(timeout_s, partial)
    if openai is not None and isinstance(exc, openai.APIConnectionError):
        return LLMUnavailable(
            f"Le serveur de modèle de langage ({where}) est injoignable. Vérifiez qu'il est "
            "démarré et l'adresse ASSISTANT_OPENAI_BASE_URL."
        )
    if openai is not None and isinstance(exc, openai.AuthenticationError):
        return LLMUnavailable(
            f"Le serveur de modèle de langage ({where}) refuse la clé d'API : vérifiez "
            "ASSISTANT_OPENAI_API_KEY."
        )
    if openai is not None and isinstance(exc, openai.APIStatusError):
        return LLMUnavailable(
            f"Le serveur de modèle de langage ({where}) a répondu par une erreur "
            f"{exc.status_code}. Réessayez plus tard ou vérifiez le nom du modèle "
            "(ASSISTANT_OPENAI_MODEL)."
        )
    return LLMUnavailable(
        f"Le modèle de langage a échoué pendant la génération ({type(exc).__name__} : {exc})."
    )
