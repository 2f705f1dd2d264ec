"""The answer pipeline: the one path a question takes, for the CLI, the app and the evaluation.

``AnswerPipeline.stream`` reads top to bottom, one named step each:
``understand`` (``search.query``: scenarios, sections, follow-ups read with the conversation) →
``retrieve`` (``Retriever.retrieve``) → ``plan`` (does the dossier answer? ``answerability``;
which ``Mode``: refusal, listing, comparison or plain question; which lines to quote) — the
refusal is decided here, before any model is called → ``quote`` (the verbatim answer: the
chosen lines, cited, every sentence checked; shown at once) → ``synthesise`` (with a model
only: a short synthesis of those quoted lines, each sentence shown only once complete and
verified, ``synthesis``) → the final ``Answer``.
``answer`` is the same without the events. Raw model text is never an event.
``quote`` and ``compare`` are the « Citations » and « Comparer » modes: verbatim, no LLM.

Costs are bounded here: question length (``settings.max_question_chars``), passages in the
prompt (the quoted ones, compacted to their relevant sentences), tokens generated (the model is
built with ``settings.llm_max_tokens``) and wall-clock time (``settings.llm_timeout_s``, the
synthesis's budget, the wait for the model included); past it the verbatim answer stands, with a
plain French note. The model has its own bounded queue (``model_queue``): an answer that finds it
full is given its verbatim answer alone, at once, with a note saying the model is busy.

Deliberately left out: answer caching.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from assistant import domain
from assistant.answer import answerability
from assistant.answer.citations import Verification, Verifier, looks_like_instructions
from assistant.answer.comparison import COMPARE_COLUMNS, Comparison, build_comparison, theme_queries
from assistant.answer.context import MAX_VARIANTS, POSITIONAL, ContextBuilder
from assistant.answer.errors import QuestionError
from assistant.answer.extractive import (
    DETAIL_CHARS,
    EXCERPT_CHARS,
    LISTING_LEAD,
    RANKING,
    RANKING_NOTE,
    VERBATIM_LEAD,
    CorpusStats,
    extractive_answer,
    sentence_focus,
    spans_documents,
    topic_terms,
)
from assistant.answer.inconsistencies import VariantIndex
from assistant.answer.llm import backend_for
from assistant.answer.model_queue import BUSY_NOTE, BUSY_WAIT_NOTE, ModelQueue, Ticket
from assistant.answer.quotes import QuoteResult, quote_results
from assistant.answer.synthesis import SYNTHESIS_LEAD, Synthesis, Synthesiser
from assistant.schema import Answer, Citation, History, Passage, as_exchanges
from assistant.search.query import QueryIntent, topic_text, understand
from assistant.search.retrieval import RetrievalResult
from assistant.settings import Settings
from assistant.text import content_terms, fold

# Passages retrieved for a question (the context builder keeps at most MAX_PASSAGES of them).
RETRIEVE_K = 10


@dataclass
class PassagesEvent:
    """Retrieval is done: the passages the answer may cite, numbered from 1."""

    passages: list[Passage]


@dataclass
class VerbatimEvent:
    """The verbatim answer (the dossier's lines, cited and checked) or the refusal: complete,
    shown before any synthesis. ``synthesis_follows``: a model now writes one."""

    answer: Answer
    synthesis_follows: bool = False


@dataclass
class SentenceEvent:
    """One sentence of the synthesis, verified against the quoted lines, with its markers."""

    text: str


@dataclass
class AnswerEvent:
    """The final answer: the verbatim part and the verified synthesis."""

    answer: Answer


AnswerStreamEvent = PassagesEvent | VerbatimEvent | SentenceEvent | AnswerEvent


class Mode(StrEnum):
    """What kind of answer a question gets; decided before any model is called."""

    REFUSAL = "refusal"  # the dossier does not answer: say so, with what it covers nearby
    LISTING = "listing"  # a whole section asked for: the section itself, in its order
    COMPARISON = "comparison"  # the best passage of each compared scenario, all of them quoted
    QUESTION = "question"  # a plain question: its best passages


@dataclass
class AnswerPlan:
    """How one question will be answered: the reading of the question, the verdict on whether
    the dossier answers it, the mode, and the lines the answer quotes."""

    question: str
    intent: QueryIntent
    wanted: set[str]  # the question's topic words (stems)
    verdict: answerability.Verdict
    mode: Mode
    passages: list[Passage]  # retrieved, passages that address the assistant left out
    context: list[Passage]  # what the answer quotes (a refusal: what the dossier covers nearby)
    use_model: bool  # a synthesis of the quoted lines follows them
    filters: dict[str, list[str]]
    instructions_ignored: bool = False
    # A comparison asking which scenario is best (``RANKING``): answered with each scenario's
    # lines and RANKING_NOTE, never with a model's synthesis, which would have to rank.
    ranking: bool = False


class AnswerPipeline:
    """understand → retrieve → plan → quote (verbatim, at once) → synthesise (verified)."""

    def __init__(
        self,
        settings: Settings,
        retriever: Any,
        model: Any = None,
        model_status: str = "",
        backend: str | None = None,
        model_queue: ModelQueue | None = None,
    ) -> None:
        self.settings = settings
        self.retriever = retriever
        self.model = model
        # Shared by every pipeline of one Assistant (a re-index builds a new pipeline mid-answer).
        self.model_queue = model_queue or ModelQueue(waiting=settings.llm_queue_size)
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
        self.synthesiser = Synthesiser(model, Verifier((), on_unsupported="remove"))

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
        found = self.retriever.retrieve(understand(question, history), scenarios, sections, RETRIEVE_K)
        timings = {"retrieve_ms": found.timings.get("total_ms", 0.0)}
        plan = self.plan(question, found, history)
        yield PassagesEvent(plan.context)
        answer = self.start(plan)
        if plan.mode is Mode.REFUSAL:
            answer.body, answer.refused = plan.verdict.message(), True
            answer.flags.append("refused")
        else:
            self.compose(answer, self.quote_lines(plan, answer), plan)
        timings["verbatim_ms"] = (time.perf_counter() - started) * 1000
        answer.timings = _rounded(timings)
        ticket = self.model_queue.enter() if plan.use_model and answer.citations else None
        if plan.use_model and answer.citations and ticket is None:
            answer.flags = sorted({*answer.flags, "llm_busy"})
            answer.notices.append(BUSY_NOTE)
        try:
            yield VerbatimEvent(answer, synthesis_follows=ticket is not None)
            if ticket is not None:
                yield from self.synthesise(plan, answer, timings, ticket)
        finally:  # also when the user left mid-synthesis: the place goes to the next answer
            if ticket is not None:
                ticket.leave()
        timings["total_ms"] = (time.perf_counter() - started) * 1000
        answer.timings = _rounded(timings)
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
    def plan(self, question: str, found: RetrievalResult, history: History | None) -> AnswerPlan:
        """Decide whether the dossier answers, the kind of answer, and the lines it quotes, from
        the question as retrieval finished understanding it (``found.intent``)."""
        intent = found.intent
        wanted = topic_terms(intent.standalone)
        passages = [p for p in found.passages if not looks_like_instructions(p.text)]
        verdict = self.assessor.assess(
            question, intent, passages, wanted, history, domain_similarity=found.domain_similarity
        )
        table = None if verdict.refused else self.context.listing_table(intent, passages, wanted)
        cells: list[Passage] = []
        if verdict.refused:
            mode = Mode.REFUSAL
        elif table:
            mode = Mode.LISTING
        elif intent.compare or spans_documents(intent.standalone):
            mode = Mode.COMPARISON
            cells = self.table_passages(intent)
        else:
            mode = Mode.QUESTION
        ranking = mode is Mode.COMPARISON and bool(RANKING.search(fold(intent.standalone)))
        return AnswerPlan(
            question=question,
            intent=intent,
            wanted=wanted,
            verdict=verdict,
            mode=mode,
            passages=passages,
            context=table or self.context.choose(intent, passages, wanted, verdict, cells),
            # A listing is the dossier's table, whole and in order: a synthesis of twenty rows by
            # the small local model shortened or reworded them (fact coverage 0.22 against 1.00
            # for the table, development set). A request for quotes (« Cite textuellement… »)
            # is answered by the quotes: on the quote questions of the development and blind
            # sets the synthesis added no fact (scripts/eval_llm.py --per-kind 5: fact coverage
            # 1.00 with and without it) and cost ~6 s. A refusal never reaches the model.
            use_model=self.model is not None
            and mode in (Mode.QUESTION, Mode.COMPARISON)
            and not intent.verbatim
            and not ranking,
            filters=found.filters,
            instructions_ignored=len(passages) < len(found.passages),
            ranking=ranking,
        )

    def table_passages(self, intent: QueryIntent) -> list[Passage]:
        """A comparison question's best passage in each column of its comparison table (the
        table ``compare`` builds for the question read as a theme), best first; each scenario's
        passages are all scored against the theme, where retrieval's top passages may hold none
        of a scenario's rows (« l'autonomie du CMA » finds the passages about the CMA)."""
        named = [s for s in intent.scenarios if s in COMPARE_COLUMNS]
        # The topic as a question alone, one encoding instead of two: development set, comparison
        # questions (22), facts / citations 0.856 / 0.716 with both forms, 0.856 / 0.739 with the
        # question alone, 0.856 / 0.708 with the bare topic, 0.720 / 0.668 with the user's
        # question itself.
        try:
            comparison = self._table(
                intent.standalone,
                named if len(named) >= 2 else None,
                query_forms=lambda topic: theme_queries(topic)[1:],
            )
        except QuestionError:
            # A follow-up rewritten with a long previous question may pass the length a theme
            # may have: its comparison then stands on retrieval alone.
            return []
        best: dict[str, Citation] = {}
        for (column, _), citations in comparison.cells.items():
            for citation in citations:
                if column not in best or citation.passage.score > best[column].passage.score:
                    best[column] = citation
        chosen = sorted(best.values(), key=lambda c: -c.passage.score)
        return [c.passage for c in chosen]

    def start(self, plan: AnswerPlan) -> Answer:
        answer = Answer(
            question=plan.question,
            standalone_question=plan.intent.standalone,
            citations=[],
            passages=plan.context,
            backend="extractive",
            filters=plan.filters,
            read_as={
                "sections": [s for s in plan.intent.sections if s not in plan.filters.get("sections", [])],
                "scenarios": [s for s in plan.intent.scenarios if s not in plan.filters.get("scenarios", [])],
            },
        )
        if plan.instructions_ignored:
            answer.flags.append("instructions_ignored")
            answer.notices.append(
                "Un passage du corpus contient des consignes adressées à l'assistant : "
                "il a été écarté de la réponse."
            )
        return answer

    # -- quote, then synthesise --------------------------------------------------------------
    def quote_lines(self, plan: AnswerPlan, answer: Answer) -> Verification:
        """The verbatim answer: the chosen lines, quoted word for word, with their lead."""
        position = POSITIONAL.search(plan.question)
        which = position.group(1).lower()[:5] if position else None
        variants = self.context.variants(plan.context, plan.wanted)
        size = DETAIL_CHARS if plan.intent.asks_detail else EXCERPT_CHARS
        # A follow-up is read with the previous question (``standalone``), whose words would pick
        # that question's sentences in a long passage: the follow-up's own words choose first.
        own = frozenset(topic_terms(plan.intent.question)) if plan.intent.follow_up else frozenset()
        focus = sentence_focus(plan.wanted, self.stats)
        text = extractive_answer(plan.context, plan.wanted, variants, which, size, own, focus)
        answer.lead = LISTING_LEAD if plan.mode is Mode.LISTING else VERBATIM_LEAD
        if plan.mode is Mode.LISTING:
            answer.flags.append("verbatim_listing")
        return self.verifier.verify(text, plan.context, focus)

    def compose(self, answer: Answer, verification: Verification, plan: AnswerPlan) -> None:
        """The verbatim answer's parts: its checked lines, what the dossier does not say, the
        notices."""
        answer.body = verification.text
        if plan.verdict.partial:
            answer.gap = plan.verdict.message()
            answer.flags.append("partial")
        elif plan.ranking:
            answer.gap = RANKING_NOTE
        answer.citations = verification.citations
        answer.passages = verification.passages
        answer.removed += verification.removed
        answer.flags = sorted(set(answer.flags) | set(verification.flags))
        answer.refused = _only_refusals(verification)
        if self.context.variants(plan.context, plan.wanted):
            answer.flags = sorted(set(answer.flags) | {"inconsistency"})
            answer.notices.append(
                "Le dossier n'est pas cohérent sur ce point : les deux sources sont citées."
            )

    def synthesise(
        self, plan: AnswerPlan, answer: Answer, timings: dict[str, float], ticket: Ticket
    ) -> Generator[SentenceEvent, None, None]:
        """The model's synthesis of the quoted lines, one verified sentence at a time, once the
        model's queue gives this answer its turn; the wait is taken from the time budget."""
        started = time.perf_counter()
        budget = self.settings.llm_timeout_s
        turn = ticket.wait(budget)
        waited = time.perf_counter() - started
        timings["model_wait_ms"] = waited * 1000
        if not turn:
            answer.flags = sorted({*answer.flags, "llm_busy"})
            answer.notices.append(BUSY_WAIT_NOTE)
            timings["synthesis_ms"] = waited * 1000
            return
        answer.synthesis_lead = SYNTHESIS_LEAD
        result = yield from _as_events(
            self.synthesiser.stream(
                plan.intent.standalone, answer.citations, plan.wanted, max(budget - waited, 1e-3)
            )
        )
        answer.synthesis = result.text
        answer.synthesis_checked, answer.synthesis_kept = result.checked, len(result.kept)
        answer.removed += result.dropped
        if result.kept:
            answer.backend = self.backend
        if result.dropped:
            answer.flags.append("synthesis_dropped")
        if result.status != "done":
            answer.flags.append("llm_timeout" if result.status == "timeout" else "llm_error")
        if note := result.note():
            answer.notices.append(note)
        answer.flags = sorted(set(answer.flags))
        if result.first_token_ms is not None:
            timings["first_token_ms"] = result.first_token_ms
        timings["synthesis_ms"] = (time.perf_counter() - started) * 1000

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
        (``comparison.select_cells``): the theme's similarity to each passage, then its words;
        each cell is filled from its own best passage. The dossier's inconsistencies among the
        cited passages are listed under the table."""
        comparison = self._table(theme, scenarios)
        wanted = answerability.theme_terms(theme)
        comparison.variants = self.variant_index.find([c.passage for c in comparison.citations], wanted)[
            :MAX_VARIANTS
        ]
        return comparison

    def _table(
        self,
        theme: str,
        scenarios: Sequence[str] | None = None,
        query_forms: Callable[[str], tuple[str, ...]] = theme_queries,
    ) -> Comparison:
        """The cells of ``compare``'s table (no inconsistencies: a comparison question reads
        only its best cells). ``query_forms``: the texts the theme's topic words are searched as
        (the mean of their vectors)."""
        theme = self.check_question(theme)
        intent = understand(theme)
        named = {domain.speaks_for(s) for s in intent.scenarios}
        columns = [s for s in (scenarios or []) if s in COMPARE_COLUMNS]
        if not columns and len(named & set(COMPARE_COLUMNS)) >= 2:
            columns = [s for s in COMPARE_COLUMNS if s in named]
        columns = columns or list(COMPARE_COLUMNS)
        wanted = answerability.theme_terms(theme)
        # The dense query is the theme's topic words alone (bare and as a question,
        # comparison.theme_queries): « compare », « trois » or the scenarios' names would pull
        # every passage towards the same few.
        topic = topic_text(intent.standalone, intent.sections)
        topic = " ".join(w for w in topic.split() if content_terms(w) & wanted) or topic or theme
        comparison = build_comparison(
            theme,
            self.trusted,
            wanted,
            columns,
            # Standardised over the compared scenarios' passages (the dossier), whatever columns
            # were chosen: the same theme gets the same scores in a two- or three-column table.
            self.retriever.similarities(
                *query_forms(topic), scenarios=sorted(domain.with_related(list(COMPARE_COLUMNS)))
            ),
            self.stats,
            threshold=self.settings.compare_threshold,
        )
        return comparison


def _as_events(sentences: Generator[str, None, Synthesis]) -> Generator[SentenceEvent, None, Synthesis]:
    """Each verified sentence as an event; the synthesis once the model is done. Closing the
    answer stream early (the user left) closes the model's stream too, which stops it."""
    try:
        while True:
            try:
                sentence = next(sentences)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            yield SentenceEvent(sentence)
    finally:
        sentences.close()


def _rounded(timings: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 1) for k, v in timings.items()}


def _only_refusals(verification: Verification) -> bool:
    verdicts = {c.verdict for c in verification.checks}
    return "refusal" in verdicts and verdicts <= {"refusal", "no_claim", "unsupported", "bad_quote"}
