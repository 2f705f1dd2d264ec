"""A language model that arrives after the start: the app answers at once with the dossier's
lines, and adds the verified synthesis as soon as the model is ready.

On a fresh machine, ``make run`` installs the local model's runtime in the background (llama.cpp
compiles for ~10 minutes on 2 cores) and marks it with ``MARKER`` while it works; the app starts
meanwhile, without a model. ``ModelWaiter`` polls every ``interval_s``: once llama.cpp imports,
it builds the model (joining and verifying the GGUF file the first time) and attaches it to the
assistant (``Assistant.attach_model``). It stops when the model is attached, or when the
installation is over (the marker is gone) and the model still cannot be built; the status line
then says why, as at any start without a model.

Deliberately left out: unloading or replacing a model that is already there.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assistant.answer.llm import llama_cpp_problem
from assistant.service import build_model
from assistant.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)

# Written by ``make run`` while the model's runtime installs in the background (see Makefile).
MARKER = PROJECT_ROOT / ".cache" / "installation-modele.en-cours"
WAITING_NOTE = (
    "Le modèle de langage s'installe (première mise en route, une dizaine de minutes) : en "
    "attendant, les réponses donnent les extraits du dossier, mot pour mot, sans synthèse ; la "
    "synthèse s'ajoutera d'elle-même dès qu'il sera prêt."
)
Builder = Callable[[Settings], tuple[Any, str]]


def installing(marker: Path = MARKER) -> bool:
    return marker.exists()


class ModelWaiter:
    """Polls for the model in a daemon thread and attaches it once it can be built."""

    def __init__(
        self,
        assistant: Any,
        settings: Settings,
        marker: Path = MARKER,
        interval_s: float = 20.0,
        builder: Builder = build_model,
        problem: Callable[[], str | None] = llama_cpp_problem,
    ) -> None:
        self.assistant = assistant
        self.settings = settings
        self.marker = marker
        self.interval_s = interval_s
        self.builder = builder
        self.problem = problem
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-wait", daemon=True)

    def start(self) -> ModelWaiter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def poll(self) -> bool:
        """One look: ``True`` when the waiting is over (attached, or nothing more to wait for)."""
        importlib.invalidate_caches()  # packages installed since the start become importable
        finished = not self.marker.exists()
        if self.problem() is not None:
            return finished
        model, status = self.builder(self.settings)
        if model is None:
            return finished
        self.assistant.attach_model(model, status)
        log.info("language model ready: %s", status)
        return True

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    if self.poll():
                        break
                except Exception:  # a failed attempt is retried; the app keeps answering
                    log.warning("the language model is not ready yet", exc_info=True)
                self._stop.wait(self.interval_s)
        finally:
            self.done.set()
