"""The language model's own bounded queue: one synthesis written at a time, a few waiting.

Verbatim answers need no model and are served several at once; a synthesis needs the model,
which on two cores writes one at a time (llama.cpp serialises its context, and two syntheses
side by side would each take twice as long and both miss their budget). So an answer that
wants a synthesis first takes a ``Ticket``: ``slots`` answers write at once, ``waiting`` more
wait their turn, and an answer that finds the line full gets no ticket — its verbatim answer is
shown at once with ``BUSY_NOTE``, in plain French. The wait for a turn counts against the
synthesis's time budget (``settings.llm_timeout_s``, applied by the pipeline): no answer waits
for the model longer than it would have let the model write.

Deliberately left out: priorities and strict arrival order among the waiting answers (a
semaphore wakes any one of them; with two waiting at most, the difference is one turn).
"""

from __future__ import annotations

import threading
from types import TracebackType

# Shown under the verbatim answer, which stands alone, when no synthesis is written.
BUSY_NOTE = (
    "Synthèse non rédigée : le modèle de langage est occupé par les questions d'autres "
    "utilisateurs. Les extraits ci-dessus font foi ; reposez la question dans un moment pour "
    "obtenir aussi une synthèse."
)
BUSY_WAIT_NOTE = (
    "Synthèse non rédigée : le modèle de langage est resté occupé par les questions d'autres "
    "utilisateurs pendant tout le temps accordé à une synthèse. Les extraits ci-dessus font foi."
)


class Ticket:
    """One answer's place in the model's queue: ``wait`` for a turn, ``leave`` when done."""

    def __init__(self, queue: ModelQueue) -> None:
        self._queue = queue
        self._writing = False
        self._left = False

    def wait(self, timeout_s: float) -> bool:
        """Block until this answer may use the model (True), or ``timeout_s`` has passed (False)."""
        self._writing = self._queue._turns.acquire(timeout=max(timeout_s, 0.0))
        return self._writing

    def leave(self) -> None:
        """Give the place back (idempotent): the turn, if it was reached, then the place in line."""
        if self._left:
            return
        self._left = True
        if self._writing:
            self._queue._turns.release()
        self._queue._leave()

    def __enter__(self) -> Ticket:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.leave()


class ModelQueue:
    """At most ``slots`` answers use the model at once and ``waiting`` more wait; no more."""

    def __init__(self, slots: int = 1, waiting: int = 2) -> None:
        if slots < 1 or waiting < 0:
            raise ValueError(f"model queue needs slots >= 1 and waiting >= 0 (got {slots}, {waiting})")
        self.slots = slots
        self.waiting = waiting
        self._turns = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self._admitted = 0

    @property
    def admitted(self) -> int:
        """Answers holding a ticket: writing or waiting."""
        return self._admitted

    def enter(self) -> Ticket | None:
        """A place in line, or ``None`` when ``slots + waiting`` answers already hold one."""
        with self._lock:
            if self._admitted >= self.slots + self.waiting:
                return None
            self._admitted += 1
        return Ticket(self)

    def _leave(self) -> None:
        with self._lock:
            self._admitted -= 1
