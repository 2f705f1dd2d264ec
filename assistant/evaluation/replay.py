"""A question set's conversation as the app holds it.

In the app each earlier turn keeps the passages its answer cited (``Exchange.of``), and a
follow-up is also searched with them (« Lesquels exactement ? » asks for their detail). A question
set stores its conversations as chat messages, text only. To measure what the app does, each
earlier question of a conversation is answered again by the pipeline — its verbatim answer only,
never a model — and the passages that answer cites join the set's own answer text.

Replays are computed before a question's clock starts (they are not part of its latency) and
shared by the questions of a set that open with the same turns. Only when retrieval reads those
passages (``cited_weight`` above 0): otherwise the turns are taken as they are, nothing is
answered twice.
"""

from __future__ import annotations

import json
from typing import Any

from assistant.schema import Exchange, History, Passage, as_exchanges


class ConversationReplay:
    """Earlier turns of conversations, answered again by ``pipeline`` for their citations."""

    def __init__(self, pipeline: Any, cite: bool | None = None) -> None:
        self.pipeline = pipeline
        self.cite = pipeline.settings.cited_weight > 0 if cite is None else cite
        self._cited: dict[str, list[Passage]] = {}

    def exchanges(self, history: History | None) -> list[Exchange] | None:
        """``history`` as exchanges, each with the passages the assistant cites for its question
        (asked with the turns before it); ``None`` for no history."""
        if not history:
            return None
        if not self.cite:
            return as_exchanges(history)
        replayed: list[Exchange] = []
        for exchange in as_exchanges(history):
            key = history_key(exchange.question, replayed)
            if key not in self._cited:
                self._cited[key] = self._citations(exchange.question, list(replayed))
            replayed.append(Exchange(exchange.question, exchange.answer, list(self._cited[key])))
        return replayed

    def _citations(self, question: str, history: list[Exchange]) -> list[Passage]:
        from assistant.answer.pipeline import VerbatimEvent

        events = self.pipeline.stream(question, history=history or None)
        try:
            for event in events:
                if isinstance(event, VerbatimEvent):
                    return [c.passage for c in event.answer.citations]
        finally:
            events.close()  # the verbatim answer is all a replay needs: no synthesis
        return []


def history_key(question: str, history: History | None) -> str:
    """One key for a question and its conversation, the same whether the conversation arrives
    as chat messages or as exchanges (questions and answer texts only)."""
    turns = [[e.question, e.answer] for e in as_exchanges(history)]
    return json.dumps([question, turns], ensure_ascii=False)
