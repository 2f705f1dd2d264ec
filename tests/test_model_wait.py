"""A model that becomes ready after the start is attached to the running assistant.

On a fresh machine ``make run`` starts the app before llama.cpp has compiled (it installs in
the background, ``.cache/installation-modele.en-cours`` marking the work); the app answers with
the dossier's lines and adds the synthesis once the model is there. Here the installation and the
model are stand-ins: what is tested is the waiting, the attaching, and what the page says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from assistant.app.model_wait import WAITING_NOTE, ModelWaiter
from assistant.search.retrieval import Retriever
from assistant.service import Assistant
from assistant.settings import Settings


@pytest.fixture
def assistant(settings: Settings, retriever: Retriever) -> Assistant:
    """The assistant as ``make run`` starts it on a fresh machine: no model yet."""
    return Assistant(settings, retriever.index, None, "mode extractif")


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """The background installation, under way."""
    path = tmp_path / "installation-modele.en-cours"
    path.touch()
    return path


def test_the_model_is_attached_once_its_runtime_imports(
    settings: Settings, assistant: Assistant, marker: Path
) -> None:
    assert assistant.pipeline.model is None
    installed = {"done": False}
    model = FakeListChatModel(responses=["Le CIPEN compte 70 agents [1]."])

    def problem() -> str | None:
        return None if installed["done"] else "llama-cpp-python n'est pas installé"

    waiter = ModelWaiter(
        assistant, settings, marker, builder=lambda s: (model, "modèle prêt"), problem=problem
    )
    assert waiter.poll() is False  # still installing: keep waiting
    installed["done"] = True
    assert waiter.poll() is True
    assert assistant.model is model and assistant.pipeline.model is model
    assert assistant.status()["llm"] == "modèle prêt"


def test_waiting_ends_when_the_installation_is_over_without_a_model(
    settings: Settings, assistant: Assistant, marker: Path
) -> None:
    waiter = ModelWaiter(
        assistant, settings, marker, interval_s=0.01, builder=lambda s: (None, "échec"), problem=lambda: None
    )
    assert waiter.poll() is False
    marker.unlink()  # the background installation ended (here: without a usable model)
    waiter.start()
    assert waiter.done.wait(5)
    assert assistant.model is None


def test_the_status_line_says_the_model_is_coming_then_that_it_is_there(
    settings: Settings, assistant: Assistant
) -> None:
    from assistant.app.webapp import AssistantApp

    app: Any = AssistantApp(assistant, settings, startup_note=WAITING_NOTE)
    assert "Le modèle de langage s'installe" in app.status_markdown()
    assistant.attach_model(FakeListChatModel(responses=["x"]), "modèle prêt")
    line = app.status_markdown()
    assert "s'installe" not in line and "puis une courte synthèse" in line


def test_the_page_refreshes_its_status_line_while_the_model_installs(
    settings: Settings, assistant: Assistant
) -> None:
    import gradio as gr

    from assistant.app.webapp import AssistantApp

    demo = AssistantApp(assistant, settings, startup_note=WAITING_NOTE).build()
    assert any(isinstance(block, gr.Timer) for block in demo.blocks.values())
