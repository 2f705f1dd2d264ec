"""Load that degrades gracefully: verbatim answers served side by side, the model behind its own
bounded queue, a French note for the answer that finds it full.

The model is ``tests/openai_standin.py`` (``ASSISTANT_LLM=openai``), slowed down so that one
synthesis holds the model for seconds; the index is the session's small one (e5). The app tests
launch the real ``AssistantApp`` in this process around a real ``Assistant``, as
``tests/test_app_guards.py`` does, and call it through ``gradio_client``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from assistant.answer.model_queue import BUSY_NOTE, BUSY_WAIT_NOTE, ModelQueue
from assistant.answer.pipeline import AnswerPipeline
from assistant.search.index import CorpusIndex
from assistant.search.retrieval import Retriever
from assistant.settings import Settings
from tests.openai_standin import MODEL_ID, OpenAIStandin

# A plain question of the small corpus: answered from its lines, then synthesised.
QUESTION = "Quelle masse salariale la fiche ENTPE évoque-t-elle ?"
OTHERS = (
    "Qui porterait le CMA dans le scénario ENTPE ?",
    "Quelle gouvernance propose le scénario UGE ?",
    "Que dit la fiche ENTPE sur la plateforme ?",
)


def openai_settings(base: Settings, server: OpenAIStandin, **changes: object) -> Settings:
    return base.replace(
        llm="openai",
        openai_base_url=server.base_url,
        openai_model=MODEL_ID,
        openai_api_key="cle-test",
        **changes,
    )


def test_the_model_queue_admits_its_slots_and_waiting_places_and_no_more() -> None:
    line = ModelQueue(slots=1, waiting=1)
    first, second = line.enter(), line.enter()
    assert first is not None and second is not None and line.enter() is None
    assert first.wait(0.1) and not second.wait(0.1)  # one writes; the other's turn has not come
    first.leave()
    first.leave()  # idempotent: a place is never given back twice
    assert second.wait(0.1) and line.admitted == 1
    with line.enter() as third:  # type: ignore[union-attr]
        assert line.admitted == 2
    assert line.admitted == 1 and third is not None
    second.leave()
    assert line.admitted == 0 and line.enter() is not None


def test_a_full_model_queue_gives_the_verbatim_answer_at_once_with_a_french_note(
    small_settings: Settings, small_index: CorpusIndex
) -> None:
    from assistant.answer.llm import build_chat_model

    with OpenAIStandin(delay_s=0.05, quote=True) as server:
        settings = openai_settings(small_settings, server, llm_queue_size=0, llm_timeout_s=20)
        model, status = build_chat_model(settings)
        pipeline = AnswerPipeline(settings, Retriever(small_index, settings), model, status)
        held = pipeline.model_queue.enter()  # another user's synthesis holds the model
        assert held is not None and held.wait(0)
        started = time.perf_counter()
        answer = pipeline.answer(QUESTION)
        assert time.perf_counter() - started < 5
        assert answer.citations and answer.body and not answer.synthesis
        assert BUSY_NOTE in answer.notices and "llm_busy" in answer.flags
        assert not any("ASSISTANT_" in n or "llm" in n for n in answer.notices)
        assert not server.requests  # the model was never asked
        held.leave()
        answer = pipeline.answer(QUESTION)  # the model is free again: a synthesis follows
        assert answer.synthesis and BUSY_NOTE not in answer.notices and len(server.requests) == 1


def test_the_wait_for_the_model_counts_against_the_synthesis_budget(
    small_settings: Settings, small_index: CorpusIndex
) -> None:
    from assistant.answer.llm import build_chat_model

    with OpenAIStandin(quote=True) as server:
        settings = openai_settings(small_settings, server, llm_queue_size=1, llm_timeout_s=0.6)
        model, status = build_chat_model(settings)
        pipeline = AnswerPipeline(settings, Retriever(small_index, settings), model, status)
        held = pipeline.model_queue.enter()
        assert held is not None and held.wait(0)
        started = time.perf_counter()
        answer = pipeline.answer(QUESTION)  # admitted to wait, but the turn never comes in time
        elapsed = time.perf_counter() - started
        held.leave()
    assert 0.5 < elapsed < 5, elapsed
    assert BUSY_WAIT_NOTE in answer.notices and not answer.synthesis and answer.citations
    assert not server.requests and pipeline.model_queue.admitted == 0


# ------------------------------------------------------------------------------ in the app


class Recording:
    """The Assistant, counting the answers being written at the same moment."""

    def __init__(self, assistant: Any) -> None:
        self._assistant = assistant
        self._lock = threading.Lock()
        self.active = 0
        self.peak = 0  # the most answers being written at the same moment

    def __getattr__(self, name: str) -> Any:
        return getattr(self._assistant, name)

    def stream(self, question: str, *args: Any, **kwargs: Any) -> Iterator[Any]:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            yield from self._assistant.stream(question, *args, **kwargs)
        finally:
            with self._lock:
                self.active -= 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def slow_model() -> Iterator[OpenAIStandin]:
    # ~25 words at 0.25 s each: one synthesis holds the model for about six seconds.
    with OpenAIStandin(delay_s=0.25, quote=True) as server:
        yield server


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory,
    small_settings: Settings,
    small_index: CorpusIndex,
    slow_model: OpenAIStandin,
) -> Iterator[tuple[str, Recording]]:
    from assistant.app.webapp import AssistantApp
    from assistant.service import Assistant

    root = tmp_path_factory.mktemp("concurrency")
    settings = openai_settings(
        small_settings,
        slow_model,
        llm_queue_size=0,
        llm_timeout_s=20,
        app_concurrency=4,
        app_temp_dir=root / "gradio",
        feedback_path=root / "feedback" / "feedback.jsonl",
        log_path=root / "logs" / "assistant.log",
    )
    assistant = Recording(Assistant.open(settings))
    app = AssistantApp(assistant, settings)
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", assistant
    finally:
        assert app.demo is not None
        app.demo.close()


def _last_answer(result: tuple[Any, ...]) -> str:
    content = result[0][-1]["content"]  # a string, or a list of text parts
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content)


def test_verbatim_answers_are_served_side_by_side_while_the_model_writes(
    running: tuple[str, Recording], slow_model: OpenAIStandin
) -> None:
    from gradio_client import Client

    url, assistant = running
    first = Client(url, verbose=False)
    writing = first.submit(QUESTION, "Réponse", [], [], api_name="/ask")
    deadline = time.monotonic() + 20
    while not slow_model.requests:  # the first answer's synthesis now holds the model
        assert time.monotonic() < deadline and not writing.done(), "the synthesis never started"
        time.sleep(0.05)
    clients = [Client(url, verbose=False) for _ in OTHERS]
    started = time.monotonic()
    jobs = [c.submit(q, "Réponse", [], [], api_name="/ask") for c, q in zip(clients, OTHERS, strict=True)]
    answers = [_last_answer(job.result(timeout=30)) for job in jobs]
    elapsed = time.monotonic() - started
    # Under one shared slot they would have waited for the whole synthesis (~6 s) first.
    assert not writing.done() and elapsed < 5, elapsed
    for text in answers:  # each verbatim answer, with the plain note instead of a synthesis
        assert "Sources :" in text and "le modèle de langage est occupé" in text, text
        assert "ASSISTANT_" not in text and "File d'attente" not in text
    assert assistant.peak >= 3  # the synthesis and at least two verbatim answers at once
    final = _last_answer(writing.result(timeout=30))
    assert "Synthèse \\(chaque phrase a été vérifiée" in final and "occupé" not in final
    assert len(slow_model.requests) == 1  # the model wrote one synthesis, the others skipped it
