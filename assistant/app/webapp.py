"""The web interface: a thin Gradio layer around an opened ``Assistant`` (``assistant/service.py``).

``AssistantApp`` builds the page — chat with streamed answers, sources panel, filters, the
Réponse / Citations / Comparer modes, exports, 👍/👎 feedback, the Corpus and Évaluation tabs, the
backend status — wires its events and launches it with safe defaults. Every answer, quote,
comparison and index operation is the Assistant's; the pieces live in their own modules:

- ``assistant/rendering.py``: safe Markdown/HTML for untrusted text (chat, sources), the look;
- ``assistant/exports.py``: the Markdown/CSV files written into the export folder;
- ``assistant/uploads.py``: the checks on uploaded documents, and the Corpus tab;
- ``assistant/eval_tab.py``: the Évaluation tab (run a question set, read and download the report);
- ``assistant/guards.py``: failed logins limited per client, the French « file d'attente pleine ».

Deliberately left out: per-user accounts beyond Gradio's optional login.
"""

from __future__ import annotations

import logging
import statistics
from collections import deque
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr

from assistant.answer.presentation import method_line
from assistant.answer.quotes import QUOTES_K
from assistant.app.eval_tab import EVAL_CSS, EvaluationTab
from assistant.app.exports import EXPORT_MAX_AGE_S, ExportFolder, TurnExports, turn_markdown
from assistant.app.guards import DEFAULT_WAIT_S, FrenchPage, LoginLimiter, french_queue_full, queue_full
from assistant.app.rendering import (
    ANSWER_SLOT_ID,
    CSS,
    HELP_TEXT,
    MODES,
    TITLE,
    Turn,
    chat_messages,
    french_error,
    h,
    highlighted,
    md_escape,
    ministry_theme,
    safe_markdown,
    sources_html,
)
from assistant.app.uploads import CorpusTab, UploadRejected, check_upload
from assistant.domain import SCENARIOS, SECTIONS
from assistant.evaluation.feedback import FeedbackError, FeedbackWriter
from assistant.schema import Exchange, as_messages
from assistant.settings import PROJECT_ROOT, Settings, SettingsError

# Re-exported: the renderers and upload checks were first defined here (tests import them from here).
__all__ = [
    "AssistantApp",
    "UploadRejected",
    "blocked_paths",
    "check_upload",
    "highlighted",
    "md_escape",
    "parse_auth",
    "safe_markdown",
]

log = logging.getLogger(__name__)

SUBTITLE = (
    "Devenir du Centre ministériel d'appui à la formation à distance : "
    "questions, citations et comparaison des scénarios"
)
SCENARIO_CHOICES = [(label, code) for code, label in SCENARIOS.items()]
SECTION_CHOICES = [(label, code) for code, label in SECTIONS.items()]
EXAMPLES = [
    ["Quelles sont les limites du scénario ENTPE ?", "Réponse"],
    ["En quelle année le CMA a-t-il été préfiguré ?", "Réponse"],
    ["Que propose la note de l'Université Gustave Eiffel ?", "Réponse"],
    ["localisation des agents", "Comparer"],
    ["gouvernance", "Comparer"],
    ["Cite textuellement les activités principales du CMA", "Citations"],
]
# The wait announced while a synthesis is written: the median of the last answers' synthesis
# times in this process, once there are a few of them (none is announced before).
SYNTHESIS_SAMPLES = 20
STATUS_REFRESH_S = 30
MIN_SYNTHESIS_SAMPLES = 3


class AssistantApp:
    """The Gradio interface around an opened ``Assistant``."""

    def __init__(self, assistant: Any, settings: Settings, startup_note: str = "") -> None:
        self.assistant = assistant
        self.settings = settings
        self.startup_note = startup_note
        self.exports = ExportFolder(settings.app_temp_dir / "exports")
        self.turn_exports = TurnExports(self.exports)
        self.feedback = FeedbackWriter(settings.feedback_path)
        self.demo: gr.Blocks | None = None
        # How long a synthesis takes, measured here on the last answers (never a promised figure).
        self.synthesis_times: deque[float] = deque(maxlen=SYNTHESIS_SAMPLES)

    @property
    def wait_hint(self) -> str:
        if len(self.synthesis_times) < MIN_SYNTHESIS_SAMPLES:
            return ""
        typical = statistics.median(self.synthesis_times) / 1000
        return f" (ici, en général {typical:.0f} s)"

    def _status(self) -> dict[str, Any]:
        try:
            status = self.assistant.status()
        except Exception:  # the status line must never break the page
            log.exception("status failed")
            return {}
        return status if isinstance(status, dict) else {}

    @property
    def answer_slot(self) -> dict[str, Any]:
        """Where questions run: ``settings.app_concurrency`` at once, from the page or the API."""
        return {"concurrency_id": ANSWER_SLOT_ID, "concurrency_limit": self.settings.app_concurrency}

    # -- status view ------------------------------------------------------------------------------
    def status_markdown(self) -> str:
        """One plain line for a committee: how answers are made, what the dossier holds; no
        internal names (the embedder and model files are in the Corpus tab and the README)."""
        status = self._status()
        chunks = status.get("chunks", status.get("chunk_count", "?"))
        documents = status.get("documents", [])
        count = len(documents) if isinstance(documents, list) else documents
        how = method_line(str(status.get("backend", "extractive")))
        text = f"**Réponses** : {md_escape(how)} · **Dossier** : {count} documents, {chunks} passages"
        if status.get("index_notice"):
            text += "  \n⚠ " + md_escape(str(status["index_notice"]))
        if self.startup_note and status.get("backend", "extractive") == "extractive":
            text += "  \n" + md_escape(self.startup_note)  # e.g. the model still installing
        return text

    # -- asking ---------------------------------------------------------------------------------
    # Expected refusals are shown in the page, in French: Gradio's toasts are not displayed for
    # events outside the queue and carry an English title.
    def question_problem(self, question: str | None) -> str:
        """Why a question cannot be sent (French), or ``""``."""
        question = (question or "").strip()
        if not question:
            return "Écrivez d'abord une question (ou choisissez un exemple ci-dessous)."
        limit = self.settings.max_question_chars
        if len(question) > limit:
            return (
                f"Votre question fait {len(question)} caractères : la limite est de {limit}. "
                "Raccourcissez-la ou découpez-la en plusieurs questions."
            )
        return ""

    def _queue_is_full(self) -> bool:
        queue = getattr(self.demo, "_queue", None)
        try:
            return queue is not None and len(queue) >= self.settings.app_queue_size
        except Exception:
            return False

    def admit(
        self,
        question: str,
        mode_label: str,
        scenarios: list[str],
        sections: list[str],
        turns: list[Turn],
        busy: bool,
    ) -> tuple[Any, ...]:
        """Outside the queue: show the question at once, or say (in French) why it is not sent.

        Returns (chat, question box, pending question, notice, busy, send button). An empty pending
        question stops the chain at ``gate``, so a refused question never reaches the queue. One
        question at a time per conversation: the next one would start from a stale conversation."""
        problem = self.question_problem(question)
        if not problem and busy:
            problem = (
                "Une réponse est en cours de rédaction : attendez qu'elle soit terminée avant d'envoyer "
                "la question suivante (elle est restée dans la zone de saisie)."
            )
        if not problem and self._queue_is_full():
            problem = queue_full(DEFAULT_WAIT_S) + " Votre question est restée dans la zone de saisie."
        if problem:
            notice = f'<div class="msg-error">{h(problem)}</div>'
            return gr.skip(), gr.skip(), "", notice, gr.skip(), gr.skip()
        question = question.strip()
        pending = Turn(question, MODES.get(mode_label, "answer"), self._filters(scenarios, sections))
        return chat_messages([*turns, pending]), "", question, "", True, gr.Button(interactive=False)

    @staticmethod
    def release() -> tuple[bool, Any]:
        return False, gr.Button(interactive=True)

    @staticmethod
    def gate(pending: str) -> None:
        if not pending:
            raise gr.Error("Question non envoyée.")

    @staticmethod
    def _filters(scenarios: Sequence[str] | None, sections: Sequence[str] | None) -> dict[str, list[str]]:
        return {
            "scenarios": [s for s in scenarios or [] if s in SCENARIOS],
            "sections": [s for s in sections or [] if s in SECTIONS],
        }

    @staticmethod
    def _history(turns: Sequence[Turn]) -> list[Exchange]:
        """The conversation as follow-ups read it: each answered question with its answer's parts."""
        return [
            Exchange.of(turn.answer) for turn in turns if turn.answer is not None and turn.mode == "answer"
        ]

    def respond(
        self, question: str, mode_label: str, scenarios: list[str], sections: list[str], turns: list[Turn]
    ) -> Iterator[tuple[Any, ...]]:
        """The question in the chosen mode; yields (chat, sources, turns, Markdown to copy)."""
        if problem := self.question_problem(question):
            raise gr.Error(problem)  # API callers; the page checks in ``admit`` first
        question = question.strip()
        turns = list(turns or [])
        filters = self._filters(scenarios, sections)
        turn = Turn(question, MODES.get(mode_label, "answer"), filters, wait_hint=self.wait_hint)
        history = self._history(turns)
        turns.append(turn)
        yield chat_messages(turns), sources_html(turn), turns, ""
        try:
            if turn.mode == "quote":
                turn.quotes = self.assistant.quote(
                    question,
                    scenarios=filters["scenarios"] or None,
                    sections=filters["sections"] or None,
                    k=QUOTES_K,
                )
            elif turn.mode == "compare":
                turn.comparison = self.assistant.compare(question, scenarios=filters["scenarios"] or None)
            else:
                yield from self._stream_answer(turn, turns, history)
        except Exception as error:  # shown in French in the chat; the traceback goes to the log
            log.exception("request failed")
            turn.error = french_error(error)
        yield chat_messages(turns), sources_html(turn), turns, turn_markdown(turn) if turn.done else ""

    def _stream_answer(
        self, turn: Turn, turns: list[Turn], history: list[Exchange]
    ) -> Iterator[tuple[Any, ...]]:
        from assistant.answer.pipeline import AnswerEvent, PassagesEvent, SentenceEvent, VerbatimEvent

        filters = turn.filters
        events = self.assistant.stream(
            turn.question, history, filters["scenarios"] or None, filters["sections"] or None
        )
        for event in events:
            if isinstance(event, PassagesEvent):
                turn.passages = list(event.passages)
            elif isinstance(event, VerbatimEvent):
                # The dossier's lines at once; a synthesis follows only as verified sentences.
                turn.answer, turn.synthesising = event.answer, event.synthesis_follows
            elif isinstance(event, SentenceEvent):
                turn.synthesis.append(event.text)
            elif isinstance(event, AnswerEvent):
                turn.answer, turn.synthesising = event.answer, False
                turn.filters = dict(event.answer.filters) or turn.filters
                if "synthesis_ms" in event.answer.timings:
                    self.synthesis_times.append(event.answer.timings["synthesis_ms"])
                continue
            yield chat_messages(turns), sources_html(turn), turns, ""

    def show_sources(self, turns: list[Turn], event: gr.SelectData) -> str:
        """A click on a message shows the sources of that exchange in the panel."""
        index = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        try:
            return sources_html(list(turns or [])[int(index) // 2])
        except (IndexError, TypeError, ValueError):
            return sources_html(turns[-1] if turns else None)

    # -- feedback -----------------------------------------------------------------------------------
    def give_feedback(self, rating: str, comment: str, turns: list[Turn]) -> tuple[str, Any]:
        """Record 👍/👎 on the last answer; returns (status, comment box)."""
        turns = list(turns or [])
        index = next((i for i in range(len(turns) - 1, -1, -1) if turns[i].as_answer() is not None), None)
        answer = turns[index].as_answer() if index is not None else None
        if index is None or answer is None:
            problem = "Posez d'abord une question : votre avis porte sur la dernière réponse."
            return f'<span class="msg-error">{h(problem)}</span>', gr.skip()
        try:
            self.feedback.record(
                rating, answer, self.settings, comment or "", as_messages(self._history(turns[:index]))
            )
        except FeedbackError as error:
            return f'<span class="msg-error">{h(str(error))}</span>', gr.skip()
        thanks = (
            "Merci : votre avis positif a été enregistré."
            if rating == "up"
            else "Merci : votre avis a été enregistré ; la réponse sera revue pour améliorer l'assistant."
        )
        return f'<span class="msg-ok">{h(thanks)}</span>', ""

    # -- the page -------------------------------------------------------------------------------------
    def build(self) -> gr.Blocks:
        with gr.Blocks(title=TITLE, delete_cache=(3600, EXPORT_MAX_AGE_S)) as demo:
            gr.HTML(
                f'<div id="app-header"><div class="brand"><div class="flag"></div><div><h1>{h(TITLE)}</h1>'
                f"<p>{h(SUBTITLE)}</p></div></div></div>",
                js_on_load=None,
            )
            status = gr.Markdown(self.status_markdown(), elem_id="status-line")
            if self.startup_note:
                # A model that becomes ready while the page is open shows in the status line.
                gr.Timer(STATUS_REFRESH_S).tick(
                    self.status_markdown, None, [status], queue=False, api_visibility="private"
                )
            turns = gr.State([])
            pending = gr.State("")
            busy = gr.State(False)
            with gr.Tabs():
                with gr.Tab("Questions", id="questions"):
                    self._questions_tab(turns, pending, busy)
                with gr.Tab("Corpus", id="corpus"):
                    CorpusTab(self).build(status)
                with gr.Tab("Évaluation", id="evaluation"):
                    EvaluationTab(self).build()
                with gr.Tab("Aide", id="aide"):
                    gr.Markdown(HELP_TEXT)
        self.demo = demo
        return demo

    def _questions_tab(self, turns: gr.State, pending: gr.State, busy: gr.State) -> None:
        with gr.Row(equal_height=True, elem_id="controls"):
            mode = gr.Radio(
                list(MODES),
                value="Réponse",
                label="Mode",
                elem_id="mode",
                info="Réponse sourcée · citations textuelles · comparaison des scénarios sur un thème",
                scale=3,
            )
            scenarios = gr.Dropdown(
                SCENARIO_CHOICES,
                value=[],
                multiselect=True,
                label="Scénarios",
                info="Aucun : tout le dossier",
                elem_id="filter-scenarios",
                scale=2,
            )
            sections = gr.Dropdown(
                SECTION_CHOICES,
                value=[],
                multiselect=True,
                label="Sections",
                info="Aucune : toutes les sections",
                elem_id="filter-sections",
                scale=2,
            )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=480):
                chatbot = gr.Chatbot(
                    label="Conversation",
                    show_label=False,
                    elem_id="chat",
                    # The chat takes what the window leaves once the header, the controls and the
                    # question row (about 470 px together) are placed: at 1366×768 the question box
                    # stays visible without scrolling, a taller screen gets a taller chat.
                    height="calc(100vh - 470px)",
                    min_height=300,
                    layout="panel",
                    sanitize_html=True,
                    render_markdown=True,
                    allow_tags=False,
                    latex_delimiters=[],
                    feedback_options=None,
                    buttons=[],
                    allow_file_downloads=False,
                    placeholder="**Posez une question sur le dossier du CMA.**  \n"
                    "Chaque réponse cite ses sources "
                    "[1], [2]… détaillées dans le panneau de droite. Exemples ci-dessous.",
                )
                with gr.Row():
                    question = gr.Textbox(
                        label="Votre question",
                        placeholder="Ex. : Quelles sont les limites du scénario ENTPE ?",
                        lines=1,
                        max_lines=6,
                        max_length=self.settings.max_question_chars,
                        scale=5,
                        elem_id="question",
                        autofocus=True,
                    )
                    send = gr.Button("Envoyer", variant="primary", scale=1, elem_id="send", min_width=110)
                    new = gr.Button(
                        "Nouvelle conversation",
                        variant="secondary",
                        scale=1,
                        elem_id="new-conversation",
                        min_width=170,
                    )
                notice = gr.HTML("", elem_id="question-notice", js_on_load=None)
                gr.Examples(
                    EXAMPLES,
                    inputs=[question, mode],
                    label="Exemples de questions",
                    example_labels=[f"{q} ({m})" for q, m in EXAMPLES],
                )
                with gr.Column(elem_id="feedback"):
                    gr.Markdown(
                        "**Cette réponse vous a-t-elle été utile ?** Votre avis porte sur la dernière "
                        "réponse ; un commentaire aide à la corriger."
                    )
                    with gr.Row(equal_height=True):
                        comment = gr.Textbox(
                            show_label=False,
                            lines=1,
                            max_length=2000,
                            scale=4,
                            placeholder="Commentaire facultatif",
                            elem_id="comment",
                            container=False,
                        )
                        up = gr.Button("👍 Utile", size="md", elem_id="feedback-up", min_width=100, scale=1)
                        down = gr.Button(
                            "👎 À revoir", size="md", elem_id="feedback-down", min_width=110, scale=1
                        )
                    feedback_status = gr.HTML("", elem_id="feedback-status", js_on_load=None)
            with gr.Column(scale=2, min_width=340):
                sources = gr.HTML(sources_html(None), elem_id="sources", js_on_load=None)
                copy_box = self.turn_exports.build(turns)

        inputs = [question, mode, scenarios, sections, turns]
        quick: dict[str, Any] = {"api_visibility": "private", "queue": False, "show_progress": "hidden"}
        for trigger in (send.click, question.submit):
            trigger(
                self.admit, [*inputs, busy], [chatbot, question, pending, notice, busy, send], **quick
            ).then(self.gate, [pending], None, **quick).success(
                self.respond,
                [pending, mode, scenarios, sections, turns],
                [chatbot, sources, turns, copy_box],
                api_visibility="private",
                **self.answer_slot,
                show_progress="minimal",
            ).then(self.release, None, [busy, send], **quick)
        # The same handler as an API endpoint (gradio_client), without the page's pre-checks; an
        # event listener rather than gr.api so that API calls share the session's conversation state.
        api_ask = gr.Button(visible=False)
        api_ask.click(
            self.respond,
            inputs,
            [chatbot, sources, turns, copy_box],
            api_name="ask",
            **self.answer_slot,
        )
        for name, button, rating in (("feedback_up", up, "up"), ("feedback_down", down, "down")):
            button.click(
                partial(self.give_feedback, rating),
                [comment, turns],
                [feedback_status, comment],
                api_name=name,
                show_progress="hidden",
            )
        chatbot.select(
            self.show_sources,
            [turns],
            [sources],
            queue=False,
            api_visibility="private",
            show_progress="hidden",
        )
        for clearing in (chatbot.clear, new.click):
            clearing(
                lambda: ([], [], sources_html(None), "", ""),
                None,
                [chatbot, turns, sources, copy_box, feedback_status],
                queue=False,
                api_visibility="private",
            )
        chatbot.change(
            lambda: "", None, [feedback_status], queue=False, api_visibility="private", show_progress="hidden"
        )

    # -- launching --------------------------------------------------------------------------------------
    def launch(self, **overrides: Any) -> Any:
        demo = self.demo or self.build()
        demo.queue(max_size=self.settings.app_queue_size, default_concurrency_limit=1)
        french_queue_full(demo)
        from starlette.middleware import Middleware

        limiter = Middleware(
            LoginLimiter,  # type: ignore[arg-type]
            max_attempts=self.settings.login_max_attempts,
            window_s=self.settings.login_window_s,
        )
        options: dict[str, Any] = {
            "app_kwargs": {"middleware": [limiter, Middleware(FrenchPage)]},  # type: ignore[arg-type]
            "auth": parse_auth(self.settings.app_auth),
            "auth_message": f"{TITLE} : identifiez-vous.",
            "allowed_paths": [str(self.exports.root)],
            "blocked_paths": blocked_paths(self.settings),
            # A backstop for huge bodies; the real limit is checked in ``upload`` with a French
            # message (Gradio's own refusal is in English).
            "max_file_size": f"{2 * self.settings.upload_max_mb + 1}mb",
            # Bounded memory: past this many conversations, the least recently used is forgotten.
            "state_session_capacity": self.settings.app_sessions,
            "show_error": False,
            "footer_links": [],
            "theme": ministry_theme(),
            "css": CSS + EVAL_CSS,
            "ssr_mode": False,
            "pwa": False,
            "mcp_server": False,
        }
        options.update(overrides)
        return demo.launch(**options)


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise SettingsError("ASSISTANT_AUTH doit être de la forme « utilisateur:mot_de_passe ».")
    return user, password


def blocked_paths(settings: Settings) -> list[str]:
    """What Gradio must never serve: the index, the corpus originals, feedback, logs, caches, secrets."""
    paths = [
        settings.index_dir,
        settings.corpus_dir,
        settings.cache_dir,
        settings.feedback_path.parent,
        settings.log_path.parent,
        PROJECT_ROOT / ".env",
    ]
    temp = settings.app_temp_dir.resolve()
    if not temp.is_relative_to(PROJECT_ROOT.resolve()):
        paths.append(PROJECT_ROOT)  # nothing of the project itself is ever served
    return [str(Path(p).resolve()) for p in paths]
