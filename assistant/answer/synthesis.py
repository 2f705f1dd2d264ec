"""The synthesis: a model's short summary of the lines an answer quotes, shown sentence by
sentence, each one only once it is complete and verified.

The verbatim answer comes first and stands alone (``pipeline``); the model then reads those
quoted lines only, numbered as the answer numbers them, and writes a few sentences. Each
sentence is checked against the quoted passages as soon as its end arrives
(``Verifier.check_sentence``): kept with its markers, or dropped and counted. Raw model text
never leaves this module. The model has one time budget for the whole synthesis; past it, the
sentences already kept stand and the answer says, in plain French, that the synthesis stopped.

Deliberately left out: rewording of the quoted lines (the verbatim answer holds them), and any
sentence resting on a passage the answer does not quote.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from assistant.answer.citations import Verifier, answer_sentences, cite, markers_before_stop
from assistant.answer.errors import LLMTimeout, LLMUnavailable
from assistant.answer.extractive import excerpt
from assistant.answer.llm import stream_with_timeout
from assistant.schema import Citation

log = logging.getLogger(__name__)

SYNTHESIS_LEAD = "Synthèse (chaque phrase a été vérifiée dans les extraits ci-dessus) :"
# Each quoted passage is cut to its most relevant sentences (~70 tokens), its label shortened:
# on 2 cores every 100 prompt tokens cost ~2.6 s before the first token (MODELS.md).
PROMPT_CHARS = 260
PROMPT_LABEL_CHARS = 90
KEPT = frozenset({"supported", "fixed", "added"})
# Sentences that claim nothing (« Voici la synthèse : ») are neither kept nor counted.
UNCOUNTED = frozenset({"no_claim"})
_ITEM = re.compile(r"^\s*(?:[-*•+]|\d{1,3}[.)])\s+")

NOTES = {
    "timeout_empty": "Synthèse non disponible : le modèle n'a pas terminé à temps. "
    "Les extraits ci-dessus font foi.",
    "timeout": "Synthèse interrompue faute de temps : seules les phrases déjà vérifiées sont montrées.",
    "error": "Synthèse non disponible : le modèle de langage n'a pas pu être utilisé. "
    "Les extraits ci-dessus font foi.",
    "unverified": "Synthèse non disponible : aucune phrase proposée par le modèle n'a pu être "
    "vérifiée dans les extraits. Les extraits ci-dessus font foi.",
}


def load_prompt(name: str) -> str:
    return resources.files("assistant.prompts").joinpath(name).read_text(encoding="utf-8").strip()


@dataclass
class Synthesis:
    """What the model's synthesis gave: the kept sentences (with the answer's markers), the
    dropped ones, and how it ended (``done``, ``timeout`` or ``error``)."""

    kept: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    cited: list[int] = field(default_factory=list)  # markers of the answer the kept sentences use
    status: str = "done"
    first_token_ms: float | None = None

    @property
    def checked(self) -> int:
        return len(self.kept) + len(self.dropped)

    @property
    def text(self) -> str:
        return " ".join(self.kept)

    def note(self) -> str:
        """The plain French line the answer shows about its synthesis, if any."""
        if self.status == "error":
            return NOTES["error"]
        if self.status == "timeout":
            return NOTES["timeout"] if self.kept else NOTES["timeout_empty"]
        if self.dropped and not self.kept:
            return NOTES["unverified"]
        return ""


def complete_sentences(text: str, final: bool) -> list[str]:
    """The sentences of ``text`` known to be complete: every line but the one being written,
    and in that line every sentence but the last (all of them once the model has finished).
    A sentence never ends before its markers: « … . [1] » is read as « … [1]. »."""
    lines = text.split("\n")
    if not final:
        lines, current = lines[:-1], lines[-1]
    else:
        current = ""
    sentences: list[str] = []
    for line in lines:
        sentences += answer_sentences(markers_before_stop(_ITEM.sub("", line)))
    if current.strip():
        sentences += answer_sentences(markers_before_stop(_ITEM.sub("", current)))[:-1]
    return [s for s in sentences if s.strip()]


class Synthesiser:
    """Asks the model for a synthesis of quoted lines and lets through only verified sentences."""

    def __init__(self, model: Any, verifier: Verifier) -> None:
        self.model = model
        self.verifier = verifier
        self._prompt: Any = None

    def messages(self, question: str, citations: Sequence[Citation], wanted: set[str]) -> list[Any]:
        """French rules, then the quoted passages as data (numbered as in the answer), then the
        question."""
        from langchain_core.prompts import ChatPromptTemplate

        if self._prompt is None:
            self._prompt = ChatPromptTemplate.from_messages(
                [("system", load_prompt("synthesis_fr.txt")), ("human", load_prompt("answer_user_fr.txt"))]
            )
        blocks = []
        for citation in citations:
            passage = citation.passage
            source = passage.label.replace('"', "'")[:PROMPT_LABEL_CHARS]
            body = excerpt(passage, wanted, PROMPT_CHARS)
            # Retrieved text is untrusted: it can never close its tag or open another one.
            body, source = (s.replace("<", "‹").replace(">", "›") for s in (body, source))
            blocks.append(f'<passage n="{citation.marker}" source="{source}">\n{body}\n</passage>')
        return self._prompt.format_messages(passages="\n".join(blocks), question=question)

    def stream(
        self, question: str, citations: Sequence[Citation], wanted: set[str], budget_s: float
    ) -> Generator[str, None, Synthesis]:
        """Yield each verified sentence (with the answer's markers) as soon as it is complete;
        return the whole ``Synthesis``."""
        result = Synthesis()
        ordered = sorted(citations, key=lambda c: c.marker)
        passages = [c.passage for c in ordered]
        started = time.perf_counter()
        text, seen = "", 0
        try:
            stream = stream_with_timeout(self.model, self.messages(question, ordered, wanted), budget_s)
            for piece in stream:
                if result.first_token_ms is None:
                    result.first_token_ms = (time.perf_counter() - started) * 1000
                text += piece
                sentences = complete_sentences(text, final=False)
                for sentence in sentences[seen:]:
                    yield from self._judge(sentence, passages, ordered, result)
                seen = len(sentences)
        except LLMTimeout:
            result.status = "timeout"
        except LLMUnavailable as error:
            log.warning("synthesis unavailable: %s", error)
            result.status = "error"
        else:
            for sentence in complete_sentences(text, final=True)[seen:]:
                yield from self._judge(sentence, passages, ordered, result)
        return result

    def _judge(
        self, sentence: str, passages: list[Any], ordered: list[Citation], result: Synthesis
    ) -> Generator[str, None, None]:
        check = self.verifier.check_sentence(sentence, passages)
        if check.verdict in UNCOUNTED:
            return
        if check.verdict not in KEPT:
            result.dropped.append(check.sentence)
            return
        markers = [ordered[i].marker for i in dict.fromkeys(check.markers)]
        kept = cite(check.sentence, markers)
        result.kept.append(kept)
        result.cited += [m for m in markers if m not in result.cited]
        yield kept
