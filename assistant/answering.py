"""The answer pipeline: the one entry point the CLI, the app and the evaluation runner call.

``AnswerPipeline.stream`` reads top to bottom: check the question → understand and retrieve
(``Retriever.search`` rewrites follow-ups) → send the passages → decide whether the dossier
answers (``answerability.assess``: refusal or partial answer) → choose and compact the context →
generate (LangChain chat model under a time limit, or the extractive backend) → verify every
sentence and its citations → follow a model's answer with the verbatim lines it cites →
``Answer``. ``answer`` is the same without the events. A listing (a whole section asked for) is
answered with the section itself, with or without a model; a model that refuses wrongly or says
nothing verifiable gives way to the quotes the extractive backend would choose.
``quote`` and ``compare`` are the « Citations » and « Comparer » modes: verbatim, no LLM.

Costs are bounded here: question length (``settings.max_question_chars``), passages in the
prompt (``MAX_PASSAGES``, compacted to their relevant sentences), tokens generated (the model is
built with ``settings.llm_max_tokens``) and wall-clock time (``settings.llm_timeout_s``); a model
that fails or times out gives way to the extractive answer, with a French notice.

Deliberately left out: conversation memory beyond the follow-up rewrite, and answer caching.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from assistant import answerability
from assistant.citations import Verifier, best_span, looks_like_instructions
from assistant.extractive import (
    COMPARE_COLUMNS,
    EVIDENCE_LEAD,
    EXTRACTIVE_LEAD,
    LISTING_LEAD,
    Comparison,
    CorpusStats,
    QuoteResult,
    build_comparison,
    evidence_lines,
    excerpt,
    extractive_answer,
    quote_results,
    rank_passages,
    relevant_variants,
    section_table,
    select,
    select_plain,
    spans_documents,
    topic_terms,
    variant_lines,
)
from assistant.inconsistencies import Variant, VariantIndex
from assistant.schema import Answer, Citation, Passage
from assistant.settings import Settings
from assistant.text import content_terms

# Passages retrieved, and at most how many an answer may stand on (a listing, a comparison).
RETRIEVE_K = 10
MAX_PASSAGES = 5
# A plain question is answered from its best passages only; a listing (« quelles limites… ») or
# a comparison needs more of them.
FOCUSED_PASSAGES = 2
# A model gets a few more passages to choose from (verification keeps only those it uses); three
# compacted passages keep the prompt near 400 tokens: ~10 s before the first token here.
LLM_PASSAGES = 3
# Each passage is cut to its most relevant sentences (~70 tokens) and its label shortened.
PROMPT_CHARS = 260
PROMPT_LABEL_CHARS = 90
MAX_VARIANTS = 2
# A listing is answered with the dossier's table even when a model is loaded: over the full
# development set with the local model, the model's answers to section questions covered 0.22 of
# the expected facts, the table 1.00 (it shortened or reworded the list, or refused).
DIRECT_LEADS = {"listing": LISTING_LEAD}
MAX_LISTING = 20  # passages of a section shown whole; a longer one is answered like a question
POSITIONAL = re.compile(r"\b(premi[eè]re|derni[eè]re) phrase\b", re.IGNORECASE)


class QuestionError(ValueError):
    """The question cannot be processed; the message (French) says why."""


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


def backend_name(model: Any) -> str:
    if model is None:
        return "extractive"
    name = type(model).__name__.lower()
    return "openai" if "openai" in name else "local" if "llama" in name else type(model).__name__


class AnswerPipeline:
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
        self.backend = backend or backend_name(model)
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
        self._prompt: Any = None

    # -- the entry points --------------------------------------------------------------------
    def answer(
        self,
        question: str,
        history: list[dict[str, str]] | None = None,
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
        history: list[dict[str, str]] | None = None,
        scenarios: Sequence[str] | None = None,
        sections: Sequence[str] | None = None,
    ) -> Iterator[AnswerStreamEvent]:
        started = time.perf_counter()
        question = self.check_question(question)
        result = self.retriever.search(
            question, history=history, scenarios=scenarios, sections=sections, k=RETRIEVE_K
        )
        intent = result.intent
        timings = {"retrieve_ms": result.timings.get("total_ms", 0.0)}
        wanted = topic_terms(intent.standalone)
        passages = [p for p in result.passages if not looks_like_instructions(p.text)]
        verdict = self.assessor.assess(question, intent, passages, wanted, history)
        table = None if verdict.refused else self._listing_table(intent, passages, wanted)

        def verbatim() -> list[Passage]:
            # The passages the extractive backend would quote: the answer itself for a listing
            # (see DIRECT_LEADS), what a comparison's model answer stands on, a failed model's
            # fallback (computed only when one of them is needed).
            return table or self.choose_context(intent, passages, wanted, verdict, extractive=True)

        direct = "listing" if table and self.model is not None else ""
        comparison = not verdict.refused and (intent.compare or spans_documents(intent.standalone))
        if self.model is None or direct or comparison:
            # A comparison: the model compares the best passage of each scenario, and each of
            # them is quoted after its answer, cited or not (see _generate).
            context = verbatim()
        else:
            context = self.choose_context(intent, passages, wanted, verdict)
        yield PassagesEvent(context)
        answer = Answer(
            question=question,
            standalone_question=intent.standalone,
            text="",
            citations=[],
            passages=context,
            backend=self.backend,
            filters=result.filters,
        )
        if len(passages) < len(result.passages):
            answer.flags.append("instructions_ignored")
            answer.notices.append(
                "Un passage du corpus contient des consignes adressées à l'assistant : "
                "il a été écarté de la réponse."
            )
        if verdict.refused:
            answer.text, answer.refused = verdict.message(), True
            answer.flags.append("refused")
            yield TokenEvent(answer.text)
        else:
            yield from self._generate(
                answer, context, wanted, verdict, timings, direct, verbatim, quote_all=comparison
            )
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

    # -- context -----------------------------------------------------------------------------
    def choose_context(
        self,
        intent: Any,
        passages: list[Passage],
        wanted: set[str],
        verdict: answerability.Verdict,
        extractive: bool | None = None,
    ) -> list[Passage]:
        """The passages the answer stands on, plus the other source of any inconsistency:
        ``extractive`` (default: no model loaded) chooses them for an answer made of quotes,
        otherwise for a model, which gets a few more to choose from."""
        extractive = self.model is None if extractive is None else extractive
        if verdict.refused:
            return verdict.nearby or passages[:3]
        position = POSITIONAL.search(intent.question)
        if position and passages:
            chosen = [
                self._at_position(
                    intent, passages, wanted, first=position.group(1).lower().startswith("premi")
                )
            ]
        elif intent.compare or (extractive and spans_documents(intent.standalone)):
            chosen = self._spread(intent, passages, wanted) or passages[:1]
        elif extractive and not getattr(intent, "listing", False):
            chosen = select_plain(passages, wanted, self.stats, intent.scenarios)
        else:
            listing = getattr(intent, "listing", False) or bool(intent.sections and not intent.follow_up)
            focused = FOCUSED_PASSAGES if extractive else LLM_PASSAGES
            chosen = select(
                passages,
                wanted,
                self.stats,
                MAX_PASSAGES if listing else focused,
                intent.sections if listing else (),
                intent.scenarios,
                keep_ratio=None if extractive else 0.0,
            )
        return self._with_variants(chosen, wanted)

    def _with_variants(self, chosen: list[Passage], wanted: set[str]) -> list[Passage]:
        """``chosen`` plus the other source of each inconsistency it holds (at most MAX_VARIANTS)."""
        for variant in self._variants(chosen, wanted):
            if variant.second.chunk_id not in {p.chunk_id for p in chosen}:
                chosen.append(variant.second)
        return chosen

    def _listing_table(self, intent: Any, passages: list[Passage], wanted: set[str]) -> list[Passage] | None:
        """« Quelles sont les limites de l'ENTPE ? »: the whole table asked for, in document order,
        plus the other source of any inconsistency; ``None`` for any other question."""
        if not getattr(intent, "listing", False) or intent.compare or POSITIONAL.search(intent.question):
            return None
        row = self._listing_anchor(intent, passages)
        if row is None:
            return None
        table = section_table(self.trusted, row)
        return None if len(table) > MAX_LISTING else self._with_variants(table, wanted)

    def _listing_anchor(self, intent: Any, passages: list[Passage]) -> Passage | None:
        """The best retrieved passage of the section (and scenario) a listing asks for: a table
        row, or a paragraph when the section has no table (a synthesis)."""
        rows = [p for p in passages if p.section_kind in intent.sections]
        named = [p for p in rows if not intent.scenarios or p.scenario in intent.scenarios]
        return (named or rows or [None])[0]  # type: ignore[list-item]

    def _variants(self, passages: list[Passage], wanted: set[str]) -> list[Variant]:
        found = self.variant_index.find(passages, wanted - answerability.TYPE_TERMS)
        return relevant_variants(found, wanted, self.stats)[:MAX_VARIANTS]

    def _at_position(self, intent: Any, passages: list[Passage], wanted: set[str], first: bool) -> Passage:
        """« La première / dernière phrase de … »: the first or last passage of the section the
        best passage belongs to (the section asked, when the question names one)."""
        pool = [p for p in passages if p.section_kind in intent.sections] or passages
        top = rank_passages(pool, wanted, self.stats, intent.scenarios)[0][1]
        same = [
            p
            for p in self.trusted
            if p.metadata.get("doc_id") == top.metadata.get("doc_id")
            and p.metadata.get("section") == top.metadata.get("section")
        ]
        same.sort(key=lambda p: int(p.metadata.get("position", 0)))
        return (same[0] if first else same[-1]) if same else top

    def _spread(self, intent: Any, passages: list[Passage], wanted: set[str]) -> list[Passage]:
        """A comparison: the best passage of each compared scenario (all three when the question
        names fewer than two) that speaks of the topic at all; the UGE note counts as the UGE."""
        named = [s for s in intent.scenarios if s in COMPARE_COLUMNS]
        targets = set(named) if len(named) >= 2 else set(COMPARE_COLUMNS)
        chosen: list[Passage] = []
        seen: set[str] = set()
        for _, passage in rank_passages(passages, wanted, self.stats):
            scenario = "uge" if passage.scenario == "note" else passage.scenario
            relevant = not wanted or content_terms(passage.text) & wanted
            if scenario in targets and scenario not in seen and (relevant or not chosen):
                seen.add(scenario)
                chosen.append(passage)
        return chosen[:MAX_PASSAGES]

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

    # -- generation and verification ---------------------------------------------------------
    def _generate(
        self,
        answer: Answer,
        context: list[Passage],
        wanted: set[str],
        verdict: answerability.Verdict,
        timings: dict[str, float],
        direct: str = "",
        verbatim: Callable[[], list[Passage]] | None = None,
        quote_all: bool = False,
    ) -> Iterator[AnswerStreamEvent]:
        """The model's answer on ``context``, verified, followed by the lines it rests on (all of
        ``context`` with ``quote_all``); or, with no model, a ``direct`` answer (a listing) or a
        model that failed, the quotes of ``verbatim``."""
        started = time.perf_counter()
        variants = self._variants(context, wanted)
        raw = ""
        streamed = False
        if self.model is not None and not direct:
            from assistant.llm import LLMUnavailable, stream_with_timeout

            try:
                messages = self.prompt_messages(answer.standalone_question, context, wanted)
                for piece in stream_with_timeout(self.model, messages, self.settings.llm_timeout_s):
                    if not raw:
                        timings["first_token_ms"] = (time.perf_counter() - started) * 1000
                    raw += piece
                    streamed = True
                    yield TokenEvent(piece)
            except LLMUnavailable as error:
                answer.notices.append(f"{error} Réponse extractive à la place.")
                answer.flags.append("llm_timeout" if "délai" in str(error) else "llm_error")
                raw = ""
            timings["generate_ms"] = (time.perf_counter() - started) * 1000
        checked = time.perf_counter()
        verification = None
        if raw.strip():
            extra = "\n".join(variant_lines(context, variants))
            verification = self.verifier.verify(f"{raw.strip()}\n\n{extra}".strip(), context)
            if not verification.supported_sentences and not _only_refusals(verification):
                answer.notices.append(
                    "La réponse du modèle n'a pas pu être vérifiée dans le dossier : "
                    "voici les extraits pertinents."
                )
                answer.flags.append("extractive_fallback")
                answer.removed += verification.removed
                verification = None
            elif _only_refusals(verification) and context:
                # The assessment found the answer in the dossier; the small model often refuses
                # anyway (« Le dossier ne traite pas… » on an ellipsis or a comparison): the
                # passages are shown rather than a refusal the dossier contradicts.
                answer.notices.append(
                    "Le modèle n'a pas su répondre à partir des passages : voici les extraits pertinents."
                )
                answer.flags.append("extractive_fallback")
                verification = None
        if verification is None:
            position = POSITIONAL.search(answer.question)
            which = position.group(1).lower()[:5] if position else None
            quoted = verbatim() if verbatim else context
            variants = self._variants(quoted, wanted)
            body = self.verifier.verify(extractive_answer(quoted, wanted, variants, which), quoted)
            body.text = f"{DIRECT_LEADS.get(direct, EXTRACTIVE_LEAD)}\n\n{body.text}"
            answer.backend = "extractive"
            if direct:
                answer.flags.append(f"verbatim_{direct}")
            verification = body
            if not streamed:  # no model, or it failed before its first token
                yield TokenEvent(body.text)
        timings["verify_ms"] = (time.perf_counter() - checked) * 1000
        answer.text = verification.text
        if answer.backend != "extractive" and quote_all:
            self._cite_all(verification, context, wanted)
        if answer.backend != "extractive" and verification.citations:
            # The model's sentences are checked word by word, not meaning by meaning, and a small
            # model rewords figures and names: the verbatim lines they rest on follow, so that
            # every claim can be read in the dossier's own words (full eval, local model:
            # fact_coverage 0.535 without them).
            evidence = evidence_lines(verification.citations, wanted, said=answer.text)
            if evidence:
                answer.text = f"{answer.text}\n\n{EVIDENCE_LEAD}\n\n{evidence}"
        if verdict.partial:
            answer.text = f"{answer.text}\n\n{verdict.message()}"
            answer.flags.append("partial")
        answer.citations = verification.citations
        answer.passages = verification.passages
        answer.removed += verification.removed
        answer.flags = sorted(set(answer.flags) | set(verification.flags))
        answer.refused = _only_refusals(verification)
        if variants:
            answer.flags = sorted(set(answer.flags) | {"inconsistency"})
            answer.notices.append(
                "Le dossier n'est pas cohérent sur ce point : les deux sources sont citées."
            )

    @staticmethod
    def _cite_all(verification: Any, context: list[Passage], wanted: set[str]) -> None:
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
        """Scenario × section table for a theme; empty cells say « non traité dans le dossier »."""
        theme = self.check_question(theme)
        columns = [s for s in (scenarios or COMPARE_COLUMNS) if s in COMPARE_COLUMNS] or list(COMPARE_COLUMNS)
        wanted = answerability.theme_terms(theme)
        result = self.retriever.search(theme, k=len(self.corpus))
        comparison = build_comparison(theme, result.passages, wanted, columns)
        comparison.variants = self.variant_index.find([c.passage for c in comparison.citations], wanted)[
            :MAX_VARIANTS
        ]
        return comparison


def _only_refusals(verification: Any) -> bool:
    verdicts = {c.verdict for c in verification.checks}
    return "refusal" in verdicts and verdicts <= {"refusal", "no_claim", "unsupported", "bad_quote"}
