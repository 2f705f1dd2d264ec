"""The answer pipeline: the one path a question takes, for the CLI, the app and the evaluation.

``AnswerPipeline.stream`` reads top to bottom, one named step each:
``understand`` (``search.query``: scenarios, sections, follow-ups read with the conversation) →
``retrieve`` (``Retriever.retrieve``) → ``plan`` (does the dossier answer? ``answerability``;
which ``Mode``: refusal, listing, comparison or plain question; which passages) → ``generate``
(the model on the plan's context, under a time limit, only for a question or a comparison) →
``verify`` (every sentence and its citations, ``citations.Verifier``) or ``quote_instead`` (the
extractive answer, also a failed model's fallback) → ``compose`` (the ``Answer``'s parts: lead,
verified sentences, verbatim evidence, what the dossier does not say, notices).
``answer`` is the same without the events. A listing (a whole section asked for) is answered
with the section itself, with or without a model.
``quote`` and ``compare`` are the « Citations » and « Comparer » modes: verbatim, no LLM.

Costs are bounded here: question length (``settings.max_question_chars``), passages in the
prompt (``MAX_PASSAGES``, compacted to their relevant sentences), tokens generated (the model is
built with ``settings.llm_max_tokens``) and wall-clock time (``settings.llm_timeout_s``); a model
that fails or times out gives way to the extractive answer, with a French notice.

Deliberately left out: conversation memory beyond the follow-up rewrite, and answer caching.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import Any

from assistant import domain
from assistant.answer import answerability
from assistant.answer.citations import Verification, Verifier, best_span, looks_like_instructions
from assistant.answer.comparison import COMPARE_COLUMNS, Comparison, build_comparison
from assistant.answer.context import MAX_VARIANTS, POSITIONAL, ContextBuilder
from assistant.answer.errors import LLMUnavailable, QuestionError
from assistant.answer.extractive import (
    EVIDENCE_LEAD,
    EXTRACTIVE_LEAD,
    LISTING_LEAD,
    CorpusStats,
    evidence_lines,
    excerpt,
    extractive_answer,
    spans_documents,
    topic_terms,
    variant_lines,
)
from assistant.answer.inconsistencies import VariantIndex
from assistant.answer.llm import backend_for, stream_with_timeout
from assistant.answer.quotes import QuoteResult, quote_results
from assistant.schema import Answer, Citation, History, Passage, as_exchanges
from assistant.search.query import QueryIntent, topic_text, understand
from assistant.search.retrieval import RetrievalResult
from assistant.settings import Settings
from assistant.text import content_terms

# Passages retrieved for a question (the context builder keeps at most MAX_PASSAGES of them).
RETRIEVE_K = 10
# Each passage of a prompt is cut to its most relevant sentences (~70 tokens), its label shortened.
PROMPT_CHARS = 260
PROMPT_LABEL_CHARS = 90


@dataclass
class PassagesEvent:
    """Retrieval is done: the passages the answer may cite, numbered from 1."""

    passages: list[Passage]


@dataclass
class TokenEvent:
    """A piece of the answer as it is generated (before verification)."""

    text: str


@dataclass
class AnswerEvent:
    """The final, verified answer."""

    answer: Answer


AnswerStreamEvent = PassagesEvent | TokenEvent | AnswerEvent


def load_prompt(name: str) -> str:
    return resources.files("assistant.prompts").joinpath(name).read_text(encoding="utf-8").strip()


class Mode(StrEnum):
    """What kind of answer a question gets; decided before any model is called."""

    REFUSAL = "refusal"  # the dossier does not answer: say so, with what it covers nearby
    LISTING = "listing"  # a whole section asked for: the section itself, in its order
    COMPARISON = "comparison"  # the best passage of each compared scenario, all of them quoted
    QUESTION = "question"  # a plain question: its best passages


@dataclass
class Draft:
    """What the model wrote (unverified), and whether any of it reached the screen."""

    text: str = ""
    streamed: bool = False


@dataclass
class AnswerPlan:
    """How one question will be answered: the reading of the question, the verdict on whether
    the dossier answers it, the mode, and the passages the answer stands on."""

    question: str
    intent: QueryIntent
    wanted: set[str]  # the question's topic words (stems)
    verdict: answerability.Verdict
    mode: Mode
    passages: list[Passage]  # retrieved, passages that address the assistant left out
    context: list[Passage]  # what the model reads, or what is quoted without a model
    use_model: bool
    filters: dict[str, list[str]]
    instructions_ignored: bool = False
    # The passages the extractive backend quotes (a listing's table, a failed model's fallback),
    # computed when first needed.
    quotes: list[Passage] | None = None


class AnswerPipeline:
    """understand → retrieve → decide → build context → generate → verify → compose."""

    def __init__(
        self,
        settings: Settings,
        retriever: Any,
        model: Any = None,
        model_status: str = "",
        backend: str | None = None,
    ) -> None:
        self.settings = settings
        self.retriever = retriever
        self.model = model
        self.model_status = model_status
        self.backend = backend or backend_for(settings, model)
        self.corpus = [
            Passage(chunk_id=r.chunk_id, text=r.text, label=r.label, metadata=dict(r.metadata), score=0.0)
            for r in retriever.records
        ]
        self.stats = CorpusStats(self.corpus)
        # Passages that address the assistant are never support for an answer (see citations).
        self.trusted = [p for p in self.corpus if not looks_like_instructions(p.text)]
        self.verifier = Verifier(self.trusted, on_unsupported="remove")
        self.variant_index = VariantIndex(self.trusted)
        self.assessor = answerability.Assessor(self.stats, retriever)
        self.context = ContextBuilder(self.stats, self.trusted, self.variant_index)
        self._prompt: Any = None

    # -- the entry points --------------------------------------------------------------------
    def answer(
        self,
        question: str,
        history: History | None = None,
        scenarios: Sequence[str] | None = None,
        sections: Sequence[str] | None = None,
    ) -> Answer:
        for event in self.stream(question, history, scenarios, sections):
            if isinstance(event, AnswerEvent):
                return event.answer
        raise RuntimeError("the answer stream ended without an answer")  # pragma: no cover

    def stream(
        self,
        question: str,
        history: History | None = None,
        scenarios: Sequence[str] | None = None,
        sections: Sequence[str] | None = None,
    ) -> Iterator[AnswerStreamEvent]:
        """The whole path of one question, top to bottom, as events for a streaming display."""
        started = time.perf_counter()
        question = self.check_question(question)
        history = as_exchanges(history)  # once: understanding and the assessment both read it
        intent = understand(question, history)
        found = self.retriever.retrieve(intent, scenarios, sections, RETRIEVE_K)
        timings = {"retrieve_ms": found.timings.get("total_ms", 0.0)}
        plan = self.plan(question, intent, found, history)
        yield PassagesEvent(plan.context)
        answer = self.start(plan)
        if plan.mode is Mode.REFUSAL:
            answer.body, answer.refused = plan.verdict.message(), True
            answer.flags.append("refused")
            yield TokenEvent(answer.body)
        else:
            draft = yield from self.generate(plan, answer, timings)
            checked = time.perf_counter()
            verification = self.verify(draft.text, plan, answer)
            if verification is None:
                verification = self.quote_instead(plan, answer)
                if not draft.streamed:  # no model, or it failed before its first token
                    yield TokenEvent(f"{answer.lead}\n\n{verification.text}")
            timings["verify_ms"] = (time.perf_counter() - checked) * 1000
            self.compose(answer, verification, plan)
        timings["total_ms"] = (time.perf_counter() - started) * 1000
        answer.timings = {k: round(v, 1) for k, v in timings.items()}
        yield AnswerEvent(answer)

    def check_question(self, question: str) -> str:
        question = (question or "").strip()
        if not question:
            raise QuestionError("La question est vide : écrivez une question sur le dossier.")
        if len(question) > self.settings.max_question_chars:
            raise QuestionError(
                f"La question est trop longue ({len(question)} caractères ; au plus "
                f"{self.settings.max_question_chars}). Raccourcissez-la ou découpez-la "
                "en plusieurs questions."
            )
        return question

    # -- decide ------------------------------------------------------------------------------
    def plan(
        self, question: str, intent: QueryIntent, found: RetrievalResult, history: History | None
    ) -> AnswerPlan:
        """Decide whether the dossier answers, the kind of answer, and its passages."""
        wanted = topic_terms(intent.standalone)
        passages = [p for p in found.passages if not looks_like_instructions(p.text)]
        verdict = self.assessor.assess(
            question, intent, passages, wanted, history, domain_similarity=found.domain_similarity
        )
        table = None if verdict.refused else self.context.listing_table(intent, passages, wanted)
        if verdict.refused:
            mode = Mode.REFUSAL
        elif table:
            mode = Mode.LISTING
        elif intent.compare or spans_documents(intent.standalone):
            mode = Mode.COMPARISON
        else:
            mode = Mode.QUESTION
        plan = AnswerPlan(
            question=question,
            intent=intent,
            wanted=wanted,
            verdict=verdict,
            mode=mode,
            passages=passages,
            context=[],
            # A listing is answered with the dossier's table even when a model is loaded: over the
            # full development set with the local model, the model's answers to section questions
            # covered 0.22 of the expected facts, the table 1.00 (it shortened or reworded the
            # list, or refused). A refusal never reaches the model.
            use_model=self.model is not None and mode in (Mode.QUESTION, Mode.COMPARISON),
            filters=found.filters,
            instructions_ignored=len(passages) < len(found.passages),
            quotes=table,
        )
        if self.model is None or mode in (Mode.LISTING, Mode.COMPARISON):
            # A comparison: the model compares the best passage of each scenario, and each of
            # them is quoted after its answer, cited or not (see compose).
            plan.context = self.quotes(plan)
        else:
            plan.context = self.context.choose(
                intent, passages, wanted, verdict, extractive=self.model is None
            )
        return plan

    def quotes(self, plan: AnswerPlan) -> list[Passage]:
        """The passages the extractive backend quotes: the answer itself for a listing, what a
        comparison's model answer stands on, a failed model's fallback."""
        if plan.quotes is None:
            plan.quotes = self.context.choose(
                plan.intent, plan.passages, plan.wanted, plan.verdict, extractive=True
            )
        return plan.quotes

    def start(self, plan: AnswerPlan) -> Answer:
        answer = Answer(
            question=plan.question,
            standalone_question=plan.intent.standalone,
            citations=[],
            passages=plan.context,
            backend=self.backend,
            filters=plan.filters,
        )
        if plan.instructions_ignored:
            answer.flags.append("instructions_ignored")
            answer.notices.append(
                "Un passage du corpus contient des consignes adressées à l'assistant : "
                "il a été écarté de la réponse."
            )
        return answer

    def prompt_messages(self, question: str, context: list[Passage], wanted: set[str]) -> list[Any]:
        """The chat messages: French rules, then the passages delimited as data, then the question."""
        from langchain_core.prompts import ChatPromptTemplate

        if self._prompt is None:
            self._prompt = ChatPromptTemplate.from_messages(
                [("system", load_prompt("answer_fr.txt")), ("human", load_prompt("answer_user_fr.txt"))]
            )
        blocks = []
        for n, passage in enumerate(context, start=1):
            source = passage.label.replace('"', "'")[:PROMPT_LABEL_CHARS]
            body = excerpt(passage, wanted, PROMPT_CHARS)
            # Retrieved text is untrusted: it can never close its tag or open another one.
            body, source = (s.replace("<", "‹").replace(">", "›") for s in (body, source))
            blocks.append(f'<passage n="{n}" source="{source}">\n{body}\n</passage>')
        return self._prompt.format_messages(passages="\n".join(blocks), question=question)

    # -- generate, verify, compose ----------------------------------------------------------
    def generate(
        self, plan: AnswerPlan, answer: Answer, timings: dict[str, float]
    ) -> Generator[TokenEvent, None, Draft]:
        """The model's text on the plan's context, streamed; empty without a model or when it
        fails (with a French notice)."""
        draft = Draft()
        if not plan.use_model:
            return draft
        started = time.perf_counter()
        raw = ""
        try:
            messages = self.prompt_messages(plan.intent.standalone, plan.context, plan.wanted)
            for piece in stream_with_timeout(self.model, messages, self.settings.llm_timeout_s):
                if not raw:
                    timings["first_token_ms"] = (time.perf_counter() - started) * 1000
                raw += piece
                draft.streamed = True
                yield TokenEvent(piece)
        except LLMUnavailable as error:
            answer.notices.append(f"{error} Réponse extractive à la place.")
            answer.flags.append("llm_timeout" if "délai" in str(error) else "llm_error")
            raw = ""
        timings["generate_ms"] = (time.perf_counter() - started) * 1000
        draft.text = raw
        return draft

    def verify(self, raw: str, plan: AnswerPlan, answer: Answer) -> Verification | None:
        """Every sentence of the model's text checked against the context (the other source of
        an inconsistency added); ``None`` when nothing of it can stand."""
        if not raw.strip():
            return None
        variants = self.context.variants(plan.context, plan.wanted)
        extra = "\n".join(variant_lines(plan.context, variants))
        verification = self.verifier.verify(f"{raw.strip()}\n\n{extra}".strip(), plan.context)
        if not verification.supported_sentences and not _only_refusals(verification):
            answer.notices.append(
                "La réponse du modèle n'a pas pu être vérifiée dans le dossier : "
                "voici les extraits pertinents."
            )
            answer.flags.append("extractive_fallback")
            answer.removed += verification.removed
            return None
        if _only_refusals(verification) and plan.context:
            # The assessment found the answer in the dossier; the small model often refuses
            # anyway (« Le dossier ne traite pas… » on an ellipsis or a comparison): the
            # passages are shown rather than a refusal the dossier contradicts.
            answer.notices.append(
                "Le modèle n'a pas su répondre à partir des passages : voici les extraits pertinents."
            )
            answer.flags.append("extractive_fallback")
            return None
        return verification

    def quote_instead(self, plan: AnswerPlan, answer: Answer) -> Verification:
        """The extractive answer: the chosen lines, quoted verbatim, with their lead."""
        position = POSITIONAL.search(plan.question)
        which = position.group(1).lower()[:5] if position else None
        quoted = self.quotes(plan)
        variants = self.context.variants(quoted, plan.wanted)
        body = self.verifier.verify(extractive_answer(quoted, plan.wanted, variants, which), quoted)
        listing = plan.mode is Mode.LISTING and self.model is not None
        answer.lead = LISTING_LEAD if listing else EXTRACTIVE_LEAD
        answer.backend = "extractive"
        if listing:
            answer.flags.append("verbatim_listing")
        return body

    def compose(self, answer: Answer, verification: Verification, plan: AnswerPlan) -> None:
        """The answer's parts: its verified sentences, the verbatim lines a model's answer rests
        on, what the dossier does not say, and the notices."""
        answer.body = verification.text
        from_model = answer.backend != "extractive"
        if from_model and plan.mode is Mode.COMPARISON:
            self._cite_all(verification, plan.context, plan.wanted)
        if from_model and verification.citations:
            # The model's sentences are checked word by word, not meaning by meaning, and a small
            # model rewords figures and names: the verbatim lines they rest on follow, so that
            # every claim can be read in the dossier's own words (full eval, local model:
            # fact_coverage 0.535 without them).
            answer.evidence = evidence_lines(verification.citations, plan.wanted, said=answer.body)
            answer.evidence_lead = EVIDENCE_LEAD
        if plan.verdict.partial:
            answer.gap = plan.verdict.message()
            answer.flags.append("partial")
        answer.citations = verification.citations
        answer.passages = verification.passages
        answer.removed += verification.removed
        answer.flags = sorted(set(answer.flags) | set(verification.flags))
        answer.refused = _only_refusals(verification)
        quoted = self.quotes(plan) if not from_model else plan.context
        if self.context.variants(quoted, plan.wanted):
            answer.flags = sorted(set(answer.flags) | {"inconsistency"})
            answer.notices.append(
                "Le dossier n'est pas cohérent sur ce point : les deux sources sont citées."
            )

    @staticmethod
    def _cite_all(verification: Verification, context: list[Passage], wanted: set[str]) -> None:
        """Cite the passages of ``context`` the model left out, after the ones it used."""
        cited = {c.passage.chunk_id for c in verification.citations}
        marker = max((c.marker for c in verification.citations), default=0)
        for passage in context:
            if passage.chunk_id not in cited and not looks_like_instructions(passage.text):
                marker += 1
                span, start = best_span(passage, "", wanted)
                verification.citations.append(Citation(marker, passage, span, start))
                cited.add(passage.chunk_id)

    # -- the other modes ---------------------------------------------------------------------
    def quote(
        self,
        request: str,
        scenarios: Sequence[str] | None = None,
        sections: Sequence[str] | None = None,
        k: int = 5,
    ) -> list[QuoteResult]:
        """Verbatim passages ranked for the request, each with its full reference."""
        request = self.check_question(request)
        result = self.retriever.search(
            request, scenarios=scenarios, sections=sections, k=max(RETRIEVE_K, 2 * k)
        )
        return quote_results(result.passages, topic_terms(result.intent.standalone), self.stats, k)

    def compare(self, theme: str, scenarios: Sequence[str] | None = None) -> Comparison:
        """Scenario × section table for a theme; empty cells say « non traité dans le dossier ».

        The theme is read like a question (« Compare la gouvernance dans les trois scénarios »
        → « gouvernance »); the columns are ``scenarios``, else the scenarios the theme names
        (two or more), else all three. Every passage of every cell is scored against the theme
        (``comparison.select_cells``): the theme's similarity to each passage, then its words."""
        theme = self.check_question(theme)
        intent = understand(theme)
        named = {domain.speaks_for(s) for s in intent.scenarios}
        columns = [s for s in (scenarios or []) if s in COMPARE_COLUMNS]
        if not columns and len(named & set(COMPARE_COLUMNS)) >= 2:
            columns = [s for s in COMPARE_COLUMNS if s in named]
        columns = columns or list(COMPARE_COLUMNS)
        wanted = answerability.theme_terms(theme)
        # The dense query is the theme's topic words alone: « compare », « trois » or the
        # scenarios' names would pull every passage towards the same few.
        topic = topic_text(intent.standalone, intent.sections)
        topic = " ".join(w for w in topic.split() if content_terms(w) & wanted) or topic or theme
        comparison = build_comparison(
            theme,
            self.trusted,
            wanted,
            columns,
            self.retriever.similarities(topic),
            self.stats,
            threshold=self.settings.compare_threshold,
        )
        comparison.variants = self.variant_index.find([c.passage for c in comparison.citations], wanted)[
            :MAX_VARIANTS
        ]
        return comparison


def _only_refusals(verification: Verification) -> bool:
    verdicts = {c.verdict for c in verification.checks}
    return "refusal" in verdicts and verdicts <= {"refusal", "no_claim", "unsupported", "bad_quote"}
