"""Safe rendering of untrusted text: chat messages (Markdown), the sources panel (HTML), the page's look.

Document text and model output are untrusted. Panels are HTML built here with ``html.escape``
(``h``: no tag of theirs survives); chat messages are Markdown where every character that
Markdown could turn into an image, a link or HTML is escaped, and URLs become inert code spans.
Nothing they contain can run a script or make the browser fetch anything
(Gradio's security advisories). ``Turn`` is one exchange of the conversation,
what both the chat and the exports render. The page's CSS and theme live here too.

Deliberately left out: file exports (``assistant/exports.py``) and the event wiring
(``assistant/webapp.py``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import gradio as gr

from assistant.answer.presentation import understood_line
from assistant.answer.synthesis import NOTES as SYNTHESIS_NOTES
from assistant.answer.synthesis import SYNTHESIS_LEAD
from assistant.domain import SCENARIOS, SECTIONS
from assistant.schema import Answer, Citation, Passage

# Questions run several at once (``settings.app_concurrency``): a verbatim answer needs no model,
# and the model has its own bounded queue inside the pipeline (``answer/model_queue.py``). An
# evaluation run asks a whole question set: it runs alone, in a slot of its own.
ANSWER_SLOT_ID = "answers"
EVAL_SLOT: dict[str, Any] = {"concurrency_id": "evaluation", "concurrency_limit": 1}

TITLE = "Assistant du dossier CMA"
MODES = {"Réponse": "answer", "Citations": "quote", "Comparer": "compare"}
MODE_LABELS = {code: label for label, code in MODES.items()}

FLAG_NOTES = {
    "unsupported_removed": "Des phrases que le dossier n'étaye pas ont été retirées de la réponse.",
    "quote_removed": "Une citation introuvable mot pour mot dans le dossier a été retirée.",
    "synthesis_dropped": "Des phrases de la synthèse que les extraits n'étayent pas ont été écartées.",
}
_SYNTHESIS_NOTES = frozenset(SYNTHESIS_NOTES.values())


def answer_notes(answer: Answer) -> list[str]:
    """The plain lines shown under an answer (app and exports), each once, and one line at most
    about the synthesis: « Synthèse non disponible… » already says why nothing of it is shown."""
    notes = list(answer.notices)
    said = any(note in _SYNTHESIS_NOTES for note in notes)
    for flag in answer.flags:
        if flag in FLAG_NOTES and not (flag == "synthesis_dropped" and said):
            notes.append(FLAG_NOTES[flag])
    return list(dict.fromkeys(notes))


# -- rendering untrusted text ----------------------------------------------------------------------
# Parentheses and brackets end a URL (Markdown syntax around it), and so does final punctuation.
_URL = re.compile(
    r"(?i)(?:\b(?:https?|ftp|file|javascript|data|vbscript|mailto):|\bwww\.)[^\s<>«»\"'`()\[\]]*[^\s<>«»\"'`()\[\].,;:!?]"
)
_MD_IMAGE = re.compile(r"!\[([^\]\n]*)\]\([^)\n]*\)")
_MD_LINK = re.compile(r"\[([^\]\n]*)\]\([^)\n]*\)")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~=^$@])")
_LIST_ITEM = re.compile(r"^\s*(?:([-*•+])|(\d{1,3})[.)])\s+(.*)$")
_HEADING = re.compile(r"^\s*#{1,6}\s+(.*)$")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def strip_media(text: str) -> str:
    """Markdown images and links reduced to their text: ``![x](url)`` → ``x``."""
    return _MD_LINK.sub(r"\1", _MD_IMAGE.sub(r"\1", text))


def md_escape(text: str) -> str:
    """Plain text as Markdown that renders as the same text: no markup, no HTML, no live link."""
    out = []
    position = 0
    for match in _URL.finditer(text):
        out.append(_escape_plain(text[position : match.start()]))
        # A code span is never turned into a link (the URL stays readable, not clickable).
        out.append("`" + match.group(0).replace("`", "") + "`")
        position = match.end()
    out.append(_escape_plain(text[position:]))
    return "".join(out)


def _escape_plain(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def safe_markdown(text: str) -> str:
    """Answer text as safe Markdown, keeping only list items and ``**bold**`` as formatting."""
    lines = []
    for line in strip_media(text).splitlines():
        prefix = ""
        if heading := _HEADING.match(line):
            line = f"**{heading.group(1).strip('* ')}**"
        elif item := _LIST_ITEM.match(line):
            prefix = f"{item.group(2)}. " if item.group(2) else "- "
            line = item.group(3)
        parts = _BOLD.split(line)
        body = "".join(f"**{md_escape(p)}**" if i % 2 else md_escape(p) for i, p in enumerate(parts) if p)
        lines.append(prefix + body)
    return "\n".join(lines)


def h(text: Any) -> str:
    """HTML-escape, also neutralising template syntax (``${…}``, ``{{…}}``, backticks)."""
    escaped = html.escape(str(text), quote=True)
    for char, entity in (("$", "&#36;"), ("{", "&#123;"), ("}", "&#125;"), ("`", "&#96;")):
        escaped = escaped.replace(char, entity)
    return escaped


def highlighted(text: str, span: str, start: int = -1) -> str:
    """The passage text, escaped, with the cited span wrapped in ``<mark>``."""
    if span and (start < 0 or text[start : start + len(span)] != span):
        start = text.find(span)
    if not span or start < 0:
        return h(text)
    end = start + len(span)
    return f"{h(text[:start])}<mark>{h(text[start:end])}</mark>{h(text[end:])}"


def reference(passage: Passage) -> str:
    """« document › section › row », then the page for PDFs."""
    page = passage.page
    return passage.label + (f", p. {page}" if page else "")


def filters_text(filters: dict[str, list[str]] | None) -> str:
    filters = filters or {}
    parts = []
    if filters.get("scenarios"):
        parts.append("scénario : " + ", ".join(SCENARIOS.get(s, s) for s in filters["scenarios"]))
    if filters.get("sections"):
        parts.append("section : " + ", ".join(SECTIONS.get(s, s) for s in filters["sections"]))
    return " ; ".join(parts) if parts else "aucun filtre"


def format_time(value: str) -> str:
    try:
        return datetime.fromisoformat(value).strftime("%d/%m/%Y %H:%M")
    except (TypeError, ValueError):
        return value or ""


def french_error(error: Exception) -> str:
    message = str(error)
    if message and any(c in message for c in "éèàçêù«"):
        return message
    return (
        "Une erreur inattendue est survenue ; elle a été consignée dans le journal de l'application. "
        "Réessayez."
    )


# -- one exchange of the conversation ----------------------------------------------------------------
@dataclass
class Turn:
    """A question and what the assistant gave back, in one of the three modes."""

    question: str
    mode: str
    filters: dict[str, list[str]] = field(default_factory=dict)
    answer: Answer | None = None
    quotes: list[Any] | None = None  # QuoteResult
    comparison: Any = None  # Comparison
    error: str = ""
    passages: list[Passage] = field(default_factory=list)  # retrieved, while streaming
    synthesising: bool = False  # the verbatim answer is shown, a synthesis is being written
    synthesis: list[str] = field(default_factory=list)  # its verified sentences so far
    wait_hint: str = ""  # how long a synthesis takes here (measured), shown while it is written

    @property
    def done(self) -> bool:
        if self.synthesising:
            return False
        return bool(self.error or self.answer or self.quotes is not None or self.comparison is not None)

    def citations(self) -> list[Citation]:
        if self.answer is not None:
            return list(self.answer.citations)
        if self.comparison is not None:
            return list(self.comparison.citations)
        return []

    def as_answer(self) -> Answer | None:
        """What feedback records; Citations and Comparer results are recorded as answers too."""
        if self.answer is not None:
            return self.answer
        if self.quotes is not None:
            passages = [q.passage for q in self.quotes]
            cited = [Citation(q.rank, q.passage, q.text, 0) for q in self.quotes]
            return Answer(
                self.question,
                self.question,
                cited,
                passages,
                body=quotes_markdown(self.quotes),
                mode="quote",
                backend="extractive",
                filters=self.filters,
            )
        if self.comparison is not None:
            cited = self.comparison.citations
            return Answer(
                self.question,
                self.question,
                cited,
                [c.passage for c in cited],
                body=self.comparison.to_markdown(),
                mode="compare",
                backend="extractive",
                filters=self.filters,
            )
        return None


def quotes_markdown(quotes: Sequence[Any]) -> str:
    from assistant.answer.quotes import quotes_to_markdown

    return quotes_to_markdown(quotes)


# -- chat messages (safe Markdown) ---------------------------------------------------------------------
def _header(turn: Turn) -> str:
    note = f"*{md_escape(MODE_LABELS[turn.mode])} — {md_escape(filters_text(turn.filters))}*"
    if turn.mode == "compare" and turn.filters.get("sections"):
        note += (
            "  \n*"
            + md_escape("Le mode Comparer présente toutes les sections : le filtre de section est ignoré.")
            + "*"
        )
    return note


def _answer_message(turn: Turn) -> str:
    answer = turn.answer
    parts = [_header(turn)]
    if answer is None:  # retrieval still running: nothing of the answer is known yet
        parts.append("*" + md_escape("Recherche des passages dans le dossier…") + "*")
        return "\n\n".join(parts)
    verbatim = (answer.lead, answer.body, answer.gap)
    parts.append(safe_markdown("\n\n".join(p for p in verbatim if p)))
    if understood := understood_line(answer):
        parts.append("*" + md_escape(understood) + "*")
    if turn.synthesising:
        # Only verified sentences are ever shown: the model's raw text never reaches the page.
        parts.append(f"**{md_escape(SYNTHESIS_LEAD)}**")
        written = safe_markdown(" ".join(turn.synthesis)) if turn.synthesis else ""
        waiting = f"Synthèse en cours de rédaction et de vérification{turn.wait_hint}…"
        parts.append((written + " " if written else "") + "*" + md_escape(waiting) + "*")
    elif answer.synthesis:
        parts.append(f"**{md_escape(answer.synthesis_lead)}**\n\n" + safe_markdown(answer.synthesis))
    notes = answer_notes(answer)
    if notes and not turn.synthesising:
        parts.append("\n".join(f"> {md_escape(n)}" for n in notes))
    if answer.citations:
        parts.append(_sources_line(answer.citations))
    return "\n\n".join(parts)


def _sources_line(citations: Sequence[Citation]) -> str:
    """One line under an answer: where its citations come from (details in the Sources panel)."""
    groups: dict[str, list[int]] = {}
    for c in citations:
        where = " › ".join(c.passage.label.split(" › ")[:2])
        groups.setdefault(where, []).append(c.marker)
    listed = " ; ".join("".join(f"[{m}]" for m in markers) + f" {where}" for where, markers in groups.items())
    return "*" + md_escape(f"Sources : {listed}.") + "*"


def _quotes_message(turn: Turn) -> str:
    quotes = turn.quotes or []
    if not quotes:
        return _header(turn) + "\n\n" + md_escape("Aucun passage du dossier ne correspond à cette demande.")
    lines = [
        _header(turn),
        f"**{len(quotes)} citations** "
        + md_escape("(texte intégral et export dans le panneau Sources et ci-dessous)"),
    ]
    for q in quotes:
        text = " ".join(q.text.split())
        if len(text) > 280:
            text = text[:280].rsplit(" ", 1)[0] + " …"
        page = f", p. {q.page}" if q.page else ""
        lines.append(f"{q.rank}. « {md_escape(text)} »  \n   — *{md_escape(q.reference + page)}*")
    return "\n\n".join(lines)


def _comparison_message(turn: Turn) -> str:
    """The comparison table: the same cells as the CLI and the exports (``Comparison.table``,
    « | » written « / » as in ``Comparison.to_markdown``), each line escaped for Markdown."""
    from assistant.answer.comparison import column_title, variant_lines
    from assistant.answer.extractive import NOT_COVERED

    comparison = turn.comparison
    names = [column_title(c) for c in comparison.columns]
    lines = [
        _header(turn),
        f"**Comparaison des scénarios : {md_escape(comparison.theme)}**",
        "",
        "| Section | " + " | ".join(md_escape(n) for n in names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for title, cells in comparison.table():
        shown = [
            f"*{md_escape(NOT_COVERED)}*"
            if cell == [NOT_COVERED]
            else "<br>".join(md_escape(line.replace("|", "/")) for line in cell)
            for cell in cells
        ]
        lines.append(f"| **{md_escape(title)}** | " + " | ".join(shown) + " |")
    if comparison.citations:
        lines.append("\n" + _sources_line(comparison.citations))
    for line in variant_lines(comparison):
        lines.append("\n> " + md_escape(line))
    return "\n".join(lines)


def _turn_message(turn: Turn) -> str:
    if turn.error:
        return _header(turn) + "\n\n" + "⚠️ " + md_escape(turn.error)
    if turn.mode == "quote" and turn.quotes is not None:
        return _quotes_message(turn)
    if turn.mode == "compare" and turn.comparison is not None:
        return _comparison_message(turn)
    return _answer_message(turn)


def chat_messages(turns: Sequence[Turn]) -> list[dict[str, str]]:
    messages = []
    for turn in turns:
        messages.append({"role": "user", "content": md_escape(turn.question)})
        messages.append({"role": "assistant", "content": _turn_message(turn)})
    return messages


# -- sources panel (HTML) ---------------------------------------------------------------------------------
def _card(number: str, passage: Passage, span: str = "", start: int = -1) -> str:
    source = passage.metadata.get("source", "")
    return (
        f'<article class="src-card"><header><span class="src-n">{h(number)}</span> '
        f'<span class="src-ref">{h(reference(passage))}</span></header>'
        + (f'<div class="src-file">{h(source)}</div>' if source else "")
        + f'<blockquote class="src-text">{highlighted(passage.text, span, start)}</blockquote></article>'
    )


def sources_html(turn: Turn | None) -> str:
    if turn is None:
        return (
            '<div class="src-empty">Les sources citées s\'afficheront ici : pour chaque passage, '
            "sa référence "
            "(document › section › ligne) et le texte du dossier, l'extrait cité surligné.</div>"
        )
    if turn.error:
        return '<div class="src-empty">Aucune source pour cette demande.</div>'
    if turn.mode == "quote" and turn.quotes is not None:
        title = f"Citations pour « {h(turn.question)} »"
        cards = [_card(str(q.rank), q.passage) for q in turn.quotes]
    elif turn.answer is None and turn.comparison is None:
        title = "Passages retrouvés (réponse en cours de rédaction)"
        cards = [_card(f"[{i}]", p) for i, p in enumerate(turn.passages, start=1)]
    else:
        citations = turn.citations()
        title = "Sources citées" if citations else "Aucun passage n'est cité dans cette réponse"
        cards = [_card(f"[{c.marker}]", c.passage, c.span, c.span_start) for c in citations]
    hint = '<p class="src-hint">Cliquez sur une réponse de la conversation pour afficher ses sources.</p>'
    return f'<div class="src-panel"><h3 class="src-title">{title}</h3>{hint}{"".join(cards)}</div>'


HELP_TEXT = """
### Utiliser l'assistant

**Trois modes**, au-dessus de la conversation :

- **Réponse** : posez une question en français. La réponse commence toujours par les **extraits du
  dossier, mot pour mot**, numérotés [1], [2]… et affichés aussitôt. Quand un modèle de langage est
  installé, une courte **synthèse** suit : chaque phrase n'apparaît qu'une fois vérifiée dans ces
  extraits, avec leurs numéros ; une phrase qui ne s'y retrouve pas est écartée, et si la synthèse
  n'aboutit pas à temps, les extraits font foi. Si le dossier ne traite pas la question, l'assistant
  le dit et indique ce que le dossier couvre à proximité ; il n'invente jamais.
- **Citations** : des passages du dossier, mot pour mot, avec leur référence complète
  (document › section › ligne, page pour les PDF), à coller dans un rapport ; les mêmes que la
  commande `assistant quote`.
- **Comparer** : indiquez un thème (« gouvernance », « finances », « localisation des agents »…).
  Le tableau met les scénarios côte à côte, section par section ; chaque case reprend les mots du
  dossier (intitulé de la ligne et observation), cités, ou « non traité dans le dossier ». La note de
  l'université compte pour le scénario UGE et y est signalée.

**Comparer dans la conversation** : « Quels scénarios… ? », « Lequel des scénarios… ? » citent chaque
scénario qui en parle, avec la ligne de son tableau la plus proche du sujet. L'assistant ne classe
pas les scénarios : à « lequel est le meilleur ? », il cite ce que dit le dossier de chacun et le
rappelle ; la comparaison vous revient.

**Questions de suite** : « Et pour l'UGE ? », « Lesquels exactement ? », « Qui le pilote ? » se lisent
avec la conversation (jusqu'à quatre échanges). Sous chaque réponse, la ligne **Question comprise**
(ou **Question lue comme portant sur**) montre comment la question a été lue (question complétée,
section et scénario retenus : « risques » est lu comme la section Limites) ; si la lecture est
fausse, reformulez. « Lesquels ? » après une réponse qui résume une liste cite la liste entière.
**Nouvelle conversation** repart de zéro.

**Filtres** : limitez la recherche à un ou plusieurs scénarios et sections ; les filtres actifs sont
rappelés sur chaque réponse.

**Sources et exports** : cliquez sur une réponse pour afficher ses sources dans le panneau de droite
(l'extrait cité surligné). Sous le panneau, copiez la réponse en Markdown ou exportez la conversation,
les citations (Markdown, CSV) ou le tableau de comparaison.

**Votre avis** : 👍 ou 👎 sur la dernière réponse, avec un commentaire si vous le souhaitez ; un 👎
devient un cas de test pour améliorer l'assistant.

**Corpus** : liste des documents indexés, ajout d'un document (.md, .txt, .pdf, .docx), réindexation.
**Évaluation** : passez un jeu de questions en mode Recherche ou Réponses ; lisez le résumé et les
questions en échec, téléchargez le rapport.

Vérifiez toujours les sources avant de reprendre une réponse dans un document officiel.
"""


# -- the page's look (system fonts, nothing fetched) --------------------------------------------------
CSS = """
.gradio-container { max-width: 1360px !important; margin: 0 auto !important; }
#app-header { border-bottom: 3px solid #000091; padding: 6px 0 10px 0; margin-bottom: 4px; }
#app-header .brand { display: flex; align-items: center; gap: 14px; }
#app-header .flag {
    width: 6px;
    height: 44px;
    background: linear-gradient(#000091 0 33%, #ffffff 33% 66%, #e1000f 66%);
    border: 1px solid #ddd;
}
#app-header h1 { font-size: 1.55rem; margin: 0; color: #161616; font-weight: 700; }
#app-header p { margin: 2px 0 0 0; color: #3a3a3a; font-size: 0.95rem; }
#status-line {
    font-size: 0.85rem;
    color: #3a3a3a;
    background: #f6f6f6;
    border-left: 4px solid #000091;
    padding: 4px 10px;
}
#status-line p { margin: 0; }
.src-panel { max-height: 640px; overflow-y: auto; padding-right: 4px; }
.src-title { font-size: 1rem; margin: 0 0 8px 0; color: #161616; }
.src-card {
    border: 1px solid #dddddd;
    border-left: 4px solid #000091;
    background: #ffffff;
    padding: 8px 10px;
    margin-bottom: 10px;
    border-radius: 2px;
}
.src-card header { font-size: 0.86rem; color: #161616; font-weight: 600; }
.src-n { color: #000091; margin-right: 4px; }
.src-file { font-size: 0.75rem; color: #666666; margin-top: 2px; }
.src-text {
    white-space: pre-wrap;
    font-size: 0.88rem;
    line-height: 1.45;
    margin: 6px 0 0 0;
    padding-left: 8px;
    border-left: 2px solid #e5e5e5;
    color: #2a2a2a;
}
.src-text mark { background: #fff3b0; color: inherit; padding: 0 1px; }
.src-empty { color: #555555; font-size: 0.9rem; padding: 8px; background: #f6f6f6; }
.docs-table { width: 100%; border-collapse: collapse; font-size: 0.9rem; border: none !important; }
.docs-table th, .docs-table td {
    border: none !important;
    border-bottom: 1px solid #e5e5e5 !important;
    padding: 6px 8px;
    text-align: left;
}
.docs-table th { background: #f0f0f8; border-bottom: 2px solid #000091 !important; }
.msg-error, .msg-ok { padding: 8px 12px; font-size: 0.92rem; border-left: 4px solid; }
.msg-error { color: #b30000; background: #fff4f3; border-color: #b30000; }
.msg-ok { color: #18753c; background: #f0faf3; border-color: #18753c; }
#feedback-status .msg-ok { padding: 4px 10px; }
footer { display: none !important; }
#chat table { table-layout: fixed; width: 100%; font-size: 0.86rem; border-collapse: collapse; }
#chat th:first-child, #chat td:first-child { width: 7.5rem; }
#chat td, #chat th { vertical-align: top; overflow-wrap: break-word; hyphens: auto; }
#chat .message-wrap { font-size: 0.95rem; }
#feedback { border-top: 1px solid #e5e5e5; padding-top: 8px; gap: 6px; }
#feedback p { margin: 0; font-size: 0.9rem; }
.src-hint { font-size: 0.78rem; color: #666666; margin: -4px 0 8px 0; }
"""


def ministry_theme() -> gr.themes.Base:
    """Sober theme: « bleu France » accents on neutral greys, system fonts (nothing fetched)."""
    blue = gr.themes.Color(
        c50="#f5f5fe",
        c100="#ececfe",
        c200="#cacafb",
        c300="#a1a1f8",
        c400="#6a6af4",
        c500="#000091",
        c600="#00006d",
        c700="#000058",
        c800="#000046",
        c900="#000035",
        c950="#00002a",
        name="bleu_france",
    )
    fonts = ("Marianne", "system-ui", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif")
    return gr.themes.Base(
        primary_hue=blue,
        secondary_hue=blue,
        neutral_hue="gray",
        radius_size="sm",
        font=fonts,
        font_mono=("ui-monospace", "Consolas", "monospace"),
    ).set(
        button_primary_background_fill="#000091",
        button_primary_background_fill_hover="#1212ff",
        button_primary_text_color="#ffffff",
        body_background_fill="#ffffff",
        block_title_text_weight="600",
    )
