"""The web interface: a thin Gradio layer around an opened ``Assistant`` (``assistant/service.py``).

``AssistantApp`` builds the page — chat with streamed answers, sources panel, filters, the
Réponse / Citations / Comparer modes, exports, 👍/👎 feedback, the Corpus tab, the backend status —
and launches it with safe defaults. Every answer, quote, comparison and index operation is the
Assistant's; this module only renders, validates what users send, and writes files they asked for.

Rendering rule: document text and model output are untrusted. Panels are HTML built here with
``html.escape`` (no tag of theirs survives); chat messages are Markdown where every character
that Markdown could turn into an image, a link or HTML is escaped, and URLs become inert code
spans. Nothing they contain can run a script or make the browser fetch anything
(``/work/shared/RELIABILITY.md``, Gradio section).

Deliberately left out: per-user accounts beyond Gradio's optional login, and rate limiting.
"""

from __future__ import annotations

import html
import logging
import re
import shutil
import tempfile
import time
import unicodedata
import uuid
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr

from assistant.feedback import FeedbackError, FeedbackWriter
from assistant.schema import SCENARIOS, SECTIONS, Answer, Citation, Passage
from assistant.settings import PROJECT_ROOT, Settings, SettingsError

log = logging.getLogger(__name__)

TITLE = "Assistant du dossier CMA"
SUBTITLE = (
    "Devenir du Centre ministériel d'appui à la formation à distance : "
    "questions, citations et comparaison des scénarios"
)
MODES = {"Réponse": "answer", "Citations": "quote", "Comparer": "compare"}
MODE_LABELS = {code: label for label, code in MODES.items()}
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
QUOTES_K = 8
UPLOAD_TYPES = {".pdf": "PDF", ".docx": "Word (.docx)", ".txt": "texte (.txt)", ".md": "Markdown (.md)"}
# A DOCX is a zip: refuse archives that would expand beyond this (zip bombs) before any parser runs.
DOCX_MAX_UNCOMPRESSED = 300 * 1024 * 1024
DOCX_MAX_MEMBERS = 5000
EXPORT_MAX_AGE_S = 24 * 3600
# Marks the handlers that report progress; Gradio gives each call its own tracker.
PROGRESS = gr.Progress()
NOTHING_TO_EXPORT = (
    "<div class=\"msg-error\">Aucune réponse à exporter pour l'instant : posez d'abord une question.</div>"
)
NO_QUOTES_TO_EXPORT = (
    '<div class="msg-error">Aucun résultat du mode Citations à exporter : choisissez le mode « Citations », '
    "posez votre demande, puis exportez.</div>"
)
FLAG_NOTES = {
    "unsupported_removed": "Des phrases que le dossier n'étaye pas ont été retirées de la réponse.",
    "quote_removed": "Une citation introuvable mot pour mot dans le dossier a été retirée.",
}


class UploadRejected(ValueError):
    """An uploaded file is refused before it reaches the corpus (French message)."""


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


def _format_time(value: str) -> str:
    try:
        return datetime.fromisoformat(value).strftime("%d/%m/%Y %H:%M")
    except (TypeError, ValueError):
        return value or ""


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
    partial: str = ""  # streamed text, before the verified answer arrives
    passages: list[Passage] = field(default_factory=list)  # retrieved, while streaming
    wait_hint: str = ""  # how long the model usually takes, shown while it writes

    @property
    def done(self) -> bool:
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
                quotes_markdown(self.quotes),
                cited,
                passages,
                mode="quote",
                backend="extractive",
                filters=self.filters,
            )
        if self.comparison is not None:
            cited = self.comparison.citations
            return Answer(
                self.question,
                self.question,
                self.comparison.to_markdown(),
                cited,
                [c.passage for c in cited],
                mode="compare",
                backend="extractive",
                filters=self.filters,
            )
        return None


def quotes_markdown(quotes: Sequence[Any]) -> str:
    from assistant.extractive import quotes_to_markdown

    return quotes_to_markdown(quotes)


def quotes_csv(quotes: Sequence[Any]) -> str:
    from assistant.extractive import quotes_to_csv

    return quotes_to_csv(quotes)


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
    if answer is None:  # still streaming
        if turn.partial:
            parts.append(safe_markdown(turn.partial) + "▍")
        elif turn.passages:
            writing = f"{len(turn.passages)} passages retrouvés : rédaction de la réponse{turn.wait_hint}…"
            parts.append("*" + md_escape(writing) + "*")
        else:
            parts.append("*" + md_escape("Recherche des passages dans le dossier…") + "*")
        return "\n\n".join(parts)
    parts.append(safe_markdown(answer.text))
    notes = [*getattr(answer, "notices", []), *(FLAG_NOTES[f] for f in answer.flags if f in FLAG_NOTES)]
    if notes:
        parts.append("\n".join(f"> {md_escape(n)}" for n in dict.fromkeys(notes)))
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
    from assistant.extractive import NOT_COVERED, short

    comparison = turn.comparison
    names = [SCENARIOS.get(c, c) + (" (et sa note)" if c == "uge" else "") for c in comparison.columns]
    lines = [
        _header(turn),
        f"**Comparaison des scénarios : {md_escape(comparison.theme)}**",
        "",
        "| Section | " + " | ".join(md_escape(n) for n in names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for row in comparison.rows:
        title = "Synthèse et note" if row == "synthese" else SECTIONS.get(row, row)
        cells = []
        for column in comparison.columns:
            cited = comparison.cells.get((column, row), [])
            cells.append(
                "<br>".join(
                    f"« {md_escape(short(c.span))} » [{c.marker}]".replace("[", "\\[").replace("]", "\\]")
                    for c in cited
                )
                or f"*{md_escape(NOT_COVERED)}*"
            )
        lines.append(f"| **{md_escape(title)}** | " + " | ".join(cells) + " |")
    if comparison.citations:
        lines.append("\n" + _sources_line(comparison.citations))
    for v in comparison.variants:
        lines.append(
            "\n> "
            + md_escape(
                f"Incohérence du dossier : « {v.first_span} » ({v.first.label}) / "
                f"« {v.second_span} » ({v.second.label})."
            )
        )
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


# -- exports (Markdown, CSV) ----------------------------------------------------------------------------
def turn_markdown(turn: Turn) -> str:
    lines = [
        f"## Question\n\n{turn.question}\n",
        f"*Mode : {MODE_LABELS[turn.mode]} — {filters_text(turn.filters)}*\n",
    ]
    if turn.error:
        lines.append(f"## Réponse\n\n{turn.error}\n")
    elif turn.quotes is not None:
        lines.append(f"## Citations\n\n{quotes_markdown(turn.quotes)}")
    elif turn.comparison is not None:
        lines.append(f"## Comparaison\n\n{strip_media(turn.comparison.to_markdown())}\n")
    elif turn.answer is not None:
        lines.append(f"## Réponse\n\n{strip_media(turn.answer.text)}\n")
        notes = [
            *getattr(turn.answer, "notices", []),
            *(FLAG_NOTES[f] for f in turn.answer.flags if f in FLAG_NOTES),
        ]
        lines += [f"> {n}\n" for n in dict.fromkeys(notes)]
    citations = turn.citations()
    if citations:
        lines.append("## Références\n")
        for c in citations:
            source = c.passage.metadata.get("source", "")
            lines.append(f"[{c.marker}] {reference(c.passage)}" + (f" ({source})" if source else ""))
            lines.append(f"> « {' '.join(c.span.split())} »\n")
    return "\n".join(lines).rstrip() + "\n"


def conversation_markdown(turns: Sequence[Turn]) -> str:
    head = f"# {TITLE} — conversation du {datetime.now().strftime('%d/%m/%Y à %H:%M')}\n\n"
    return head + "\n---\n\n".join(turn_markdown(t) for t in turns if t.done)


class ExportFolder:
    """The only folder the app writes files to for download (inside Gradio's dedicated temp dir)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, stem: str, suffix: str, text: str) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        self._prune()
        folder = Path(tempfile.mkdtemp(prefix="export-", dir=self.root))
        path = folder / f"{stem}-{datetime.now().strftime('%Y%m%d-%H%M%S')}{suffix}"
        # Excel opens a UTF-8 CSV correctly only with a BOM.
        path.write_text(text, encoding="utf-8-sig" if suffix == ".csv" else "utf-8")
        return str(path)

    def _prune(self) -> None:
        limit = time.time() - EXPORT_MAX_AGE_S
        for folder in self.root.glob("export-*"):
            try:
                if folder.stat().st_mtime < limit:
                    shutil.rmtree(folder, ignore_errors=True)
            except OSError:
                continue


# -- uploads ------------------------------------------------------------------------------------------------
def safe_filename(name: str) -> str:
    """A file name that is only a name: no folder, no leading dot, no control or odd characters."""
    name = unicodedata.normalize("NFC", Path(name.replace("\\", "/")).name)
    stem, suffix = Path(name).stem, Path(name).suffix.lower()
    stem = re.sub(r"[^\w\-. ()'’,àâäçéèêëîïôöùûüÿœæÀÂÄÇÉÈÊËÎÏÔÖÙÛÜŸŒÆ]+", "_", stem).strip(" ._")[:100]
    return f"{stem or 'document'}{suffix}"


def check_upload(path: Path, name: str, max_mb: int) -> str:
    """Check an uploaded file by its content, not its name; return the safe name or raise."""
    suffix = Path(name).suffix.lower()
    shown = safe_filename(name)
    if suffix not in UPLOAD_TYPES:
        accepted = ", ".join(UPLOAD_TYPES.values())
        raise UploadRejected(
            f"« {shown} » : format non pris en charge ({suffix or 'sans extension'}). "
            f"Formats acceptés : {accepted}."
        )
    size = path.stat().st_size
    if size == 0:
        raise UploadRejected(f"« {shown} » est vide : aucun document n'a été ajouté.")
    if size > max_mb * 1024 * 1024:
        megabytes = f"{size / (1024 * 1024):.1f}".replace(".", ",")
        raise UploadRejected(f"« {shown} » fait {megabytes} Mo : la taille maximale est de {max_mb} Mo.")
    with path.open("rb") as handle:
        head = handle.read(4096)
    if suffix == ".pdf":
        if b"%PDF-" not in head[:1024]:
            raise UploadRejected(
                f"« {shown} » porte l'extension .pdf mais ce n'est pas un PDF "
                "(son contenu ne commence pas par "
                "« %PDF- »). Exportez le document en PDF depuis son logiciel d'origine, puis réessayez."
            )
    elif suffix == ".docx":
        _check_docx(path, shown)
    else:
        data = path.read_bytes()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UploadRejected(
                f"« {shown} » n'est pas un texte encodé en UTF-8 (octet invalide en position {exc.start}). "
                "Enregistrez-le en UTF-8 (ou ajoutez le document d'origine en PDF ou Word), puis réessayez."
            ) from exc
        if "\x00" in text:
            raise UploadRejected(
                f"« {shown} » contient des données binaires : ce n'est pas un fichier texte."
            )
        if not text.strip():
            raise UploadRejected(f"« {shown} » ne contient que des espaces ou des lignes vides.")
    return shown


def _check_docx(path: Path, shown: str) -> None:
    not_docx = UploadRejected(
        f"« {shown} » porte l'extension .docx mais ce n'est pas un document Word (.docx). "
        "Les anciens fichiers .doc doivent d'abord être enregistrés au format .docx."
    )
    if not zipfile.is_zipfile(path):
        raise not_docx
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            names = {m.filename for m in members}
            total = sum(m.file_size for m in members)
    except (zipfile.BadZipFile, OSError) as exc:
        raise not_docx from exc
    if "word/document.xml" not in names:
        raise not_docx
    if len(members) > DOCX_MAX_MEMBERS or total > DOCX_MAX_UNCOMPRESSED:
        raise UploadRejected(
            f"« {shown} » est anormalement volumineux une fois décompressé : il a été refusé."
        )


# -- the application ----------------------------------------------------------------------------------------
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


class AssistantApp:
    """The Gradio interface around an opened ``Assistant``."""

    def __init__(self, assistant: Any, settings: Settings, startup_note: str = "") -> None:
        self.assistant = assistant
        self.settings = settings
        self.startup_note = startup_note
        self.exports = ExportFolder(settings.app_temp_dir / "exports")
        self.staging = settings.app_temp_dir / "staging"
        self.feedback = FeedbackWriter(settings.feedback_path)
        self.demo: gr.Blocks | None = None
        # Measured on two cores: the local model needs ~25 s before its first token (MODELS.md).
        backend = self._status().get("backend", "")
        self.wait_hint = " (modèle local : comptez 30 s à 1 min)" if backend == "local" else ""

    def _status(self) -> dict[str, Any]:
        try:
            status = self.assistant.status()
        except Exception:  # the status line must never break the page
            log.exception("status failed")
            return {}
        return status if isinstance(status, dict) else {}

    # -- status and corpus views ---------------------------------------------------------------
    def status_markdown(self) -> str:
        status = self._status()
        llm = str(status.get("llm") or "mode extractif, sans LLM")
        chunks = status.get("chunks", status.get("chunk_count", "?"))
        documents = status.get("documents", [])
        count = len(documents) if isinstance(documents, list) else documents
        parts = [
            f"**Embeddings** : {md_escape(str(status.get('embedder', '?')))}",
            f"**Modèle de langage** : {md_escape(llm)}",
            f"**Index** : {chunks} passages, {count} documents",
        ]
        text = " · ".join(parts)
        if self.startup_note:
            text += "  \n" + md_escape(self.startup_note)
        return text

    def documents_html(self) -> str:
        documents = self._status().get("documents", [])
        if not isinstance(documents, list) or not documents:
            return '<div class="src-empty">Aucun document indexé.</div>'
        rows = "".join(
            f"<tr><td>{h(d.get('fichier', ''))}</td><td>{h(d.get('document', ''))}</td>"
            f"<td>{h(d.get('passages', 0))}</td><td>{h(_format_time(str(d.get('indexé le', ''))))}</td></tr>"
            for d in documents
        )
        return (
            '<table class="docs-table"><thead><tr><th>Fichier</th><th>Document</th><th>Passages</th>'
            f"<th>Dernière indexation</th></tr></thead><tbody>{rows}</tbody></table>"
        )

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
            problem = (
                "L'assistant traite déjà le nombre maximal de demandes. Patientez une minute, puis "
                "renvoyez votre question (elle est restée dans la zone de saisie)."
            )
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

    def _history(self, turns: Sequence[Turn]) -> list[dict[str, str]]:
        history: list[dict[str, str]] = []
        for turn in turns:
            if turn.answer is not None and turn.mode == "answer":
                history += [
                    {"role": "user", "content": turn.question},
                    {"role": "assistant", "content": turn.answer.text},
                ]
        return history

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
            turn.error = _french_error(error)
        yield chat_messages(turns), sources_html(turn), turns, turn_markdown(turn) if turn.done else ""

    def _stream_answer(
        self, turn: Turn, turns: list[Turn], history: list[dict[str, str]]
    ) -> Iterator[tuple[Any, ...]]:
        from assistant.answering import AnswerEvent, PassagesEvent, TokenEvent

        filters = turn.filters
        events = self.assistant.stream(
            turn.question, history, filters["scenarios"] or None, filters["sections"] or None
        )
        last = 0.0
        for event in events:
            if isinstance(event, PassagesEvent):
                turn.passages = list(event.passages)
                yield chat_messages(turns), sources_html(turn), turns, ""
            elif isinstance(event, TokenEvent):
                turn.partial += event.text
                if time.monotonic() - last > 0.2:  # enough for reading; spares the browser
                    last = time.monotonic()
                    yield chat_messages(turns), sources_html(turn), turns, ""
            elif isinstance(event, AnswerEvent):
                turn.answer = event.answer
                turn.filters = dict(event.answer.filters) or turn.filters

    def show_sources(self, turns: list[Turn], event: gr.SelectData) -> str:
        """A click on a message shows the sources of that exchange in the panel."""
        index = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        try:
            return sources_html(list(turns or [])[int(index) // 2])
        except (IndexError, TypeError, ValueError):
            return sources_html(turns[-1] if turns else None)

    # -- exports ----------------------------------------------------------------------------------
    # Each returns (file or None, status): the status says in French what was exported or why not.
    @staticmethod
    def _last(turns: Sequence[Turn], mode: str | None = None) -> Turn | None:
        for turn in reversed(turns or []):
            if turn.done and (mode is None or (turn.mode == mode and turn.quotes is not None)):
                return turn
        return None

    def _exported(self, stem: str, suffix: str, text: str, what: str) -> tuple[str | None, str]:
        path = self.exports.write(stem, suffix, text)
        return (
            path,
            f'<div class="msg-ok">{h(what)} : fichier prêt, cliquez dessus pour le télécharger.</div>',
        )

    def export_answer(self, turns: list[Turn]) -> tuple[str | None, str]:
        turn = self._last(turns)
        if turn is None:
            return None, NOTHING_TO_EXPORT
        return self._exported("reponse", ".md", turn_markdown(turn), "Réponse et références (Markdown)")

    def export_conversation(self, turns: list[Turn]) -> tuple[str | None, str]:
        if self._last(turns) is None:
            return None, NOTHING_TO_EXPORT
        return self._exported("conversation", ".md", conversation_markdown(turns), "Conversation (Markdown)")

    def export_quotes(self, fmt: str, turns: list[Turn]) -> tuple[str | None, str]:
        turn = self._last(turns, "quote")
        if turn is None:
            return None, NO_QUOTES_TO_EXPORT
        quotes = turn.quotes or []
        if fmt == "csv":
            return self._exported("citations", ".csv", quotes_csv(quotes), "Citations (CSV)")
        text = f"# Citations : {turn.question}\n\n{quotes_markdown(quotes)}"
        return self._exported("citations", ".md", text, "Citations (Markdown)")

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
            self.feedback.record(rating, answer, self.settings, comment or "", self._history(turns[:index]))
        except FeedbackError as error:
            return f'<span class="msg-error">{h(str(error))}</span>', gr.skip()
        thanks = (
            "Merci : votre avis positif a été enregistré."
            if rating == "up"
            else "Merci : votre avis a été enregistré ; la réponse sera revue pour améliorer l'assistant."
        )
        return f'<span class="msg-ok">{h(thanks)}</span>', ""

    # -- corpus -------------------------------------------------------------------------------------
    def upload(self, file_path: str | None, progress: gr.Progress = PROGRESS) -> tuple[str, str, str, None]:
        if not file_path:
            return self._corpus_result(
                "Choisissez d'abord un fichier à ajouter (PDF, DOCX, TXT ou MD).", ok=False
            )
        path = Path(file_path)
        try:
            return self._add_upload(path, progress)
        finally:
            # The uploaded copy in Gradio's cache is not kept, accepted or not.
            if path.resolve().is_relative_to(self.settings.app_temp_dir.resolve()):
                path.unlink(missing_ok=True)

    def _add_upload(self, path: Path, progress: gr.Progress) -> tuple[str, str, str, None]:
        from assistant.loaders import IngestError

        def tick(done: int, total: int, message: str) -> None:
            progress((done, total) if total else None, desc=message or "Indexation", unit="passages")

        unchanged = " Le corpus n'a pas été modifié."
        try:
            name = check_upload(path, path.name, self.settings.upload_max_mb)
            known = {str(d.get("fichier", "")).lower() for d in self.assistant.status().get("documents", [])}
            if name.lower() in known:
                # Adding never overwrites: replacing an original is done in the corpus folder.
                raise UploadRejected(
                    f"Un document nommé « {name} » figure déjà dans le corpus. Renommez le fichier pour "
                    "l'ajouter ; pour remplacer ce document, remplacez le fichier dans le dossier du corpus "
                    "puis cliquez sur « Réindexer le corpus »."
                )
            staged_dir = self.staging / uuid.uuid4().hex
            staged_dir.mkdir(parents=True)
            try:
                shutil.copyfile(path, staged_dir / name)  # under its checked, safe name
                progress(None, desc="Lecture du document")
                self.assistant.add_document(staged_dir / name, progress=tick)
            finally:
                shutil.rmtree(staged_dir, ignore_errors=True)
        except UploadRejected as error:
            return self._corpus_result(str(error) + unchanged, ok=False)
        except IngestError as error:
            return self._corpus_result(f"Document refusé : {error}{unchanged}", ok=False)
        except Exception as error:
            log.exception("upload failed")
            return self._corpus_result(_french_error(error) + unchanged, ok=False)
        documents = self.assistant.status().get("documents", [])
        passages = next((d.get("passages") for d in documents if d.get("fichier") == name), None)
        plural = "s" if passages != 1 else ""
        detail = f" : {passages} passage{plural} indexé{plural}" if passages is not None else ""
        return self._corpus_result(
            f"« {name} » a été ajouté au corpus{detail}. Il est interrogeable dès maintenant.", ok=True
        )

    def reindex(self, progress: gr.Progress = PROGRESS) -> tuple[str, str, str, None]:
        def tick(done: int, total: int, message: str) -> None:
            progress((done, total) if total else None, desc=message or "Indexation", unit="passages")

        progress(None, desc="Lecture du corpus")
        try:
            report = self.assistant.reindex(tick)
        except Exception as error:
            log.exception("reindex failed")
            return self._corpus_result(_french_error(error), ok=False)
        return self._corpus_result(index_summary(report), ok=not getattr(report, "refused", []))

    def _corpus_result(self, message: str, ok: bool) -> tuple[str, str, str, None]:
        css = "msg-ok" if ok else "msg-error"
        return f'<div class="{css}">{h(message)}</div>', self.documents_html(), self.status_markdown(), None

    # -- the page -------------------------------------------------------------------------------------
    def build(self) -> gr.Blocks:
        with gr.Blocks(title=TITLE, delete_cache=(3600, EXPORT_MAX_AGE_S)) as demo:
            gr.HTML(
                f'<div id="app-header"><div class="brand"><div class="flag"></div><div><h1>{h(TITLE)}</h1>'
                f"<p>{h(SUBTITLE)}</p></div></div></div>",
                js_on_load=None,
            )
            status = gr.Markdown(self.status_markdown(), elem_id="status-line")
            turns = gr.State([])
            pending = gr.State("")
            busy = gr.State(False)
            with gr.Tabs():
                with gr.Tab("Questions", id="questions"):
                    self._questions_tab(turns, pending, busy)
                with gr.Tab("Corpus", id="corpus"):
                    self._corpus_tab(status)
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
                    height=560,
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
                with gr.Accordion("Copier et exporter", open=False, elem_id="exports"):
                    with gr.Row():
                        export_answer = gr.Button(
                            "Réponse et références (.md)", size="sm", elem_id="export-answer"
                        )
                        export_conv = gr.Button(
                            "Conversation (.md)", size="sm", elem_id="export-conversation"
                        )
                    with gr.Row():
                        export_qmd = gr.Button("Citations (.md)", size="sm", elem_id="export-quotes-md")
                        export_qcsv = gr.Button("Citations (.csv)", size="sm", elem_id="export-quotes-csv")
                    export_file = gr.File(label="Fichier exporté", interactive=False, elem_id="export-file")
                    export_status = gr.HTML("", elem_id="export-status", js_on_load=None)
                    copy_box = gr.Textbox(
                        label="Dernière réponse au format Markdown",
                        lines=6,
                        max_lines=12,
                        interactive=False,
                        buttons=["copy"],
                        elem_id="copy-box",
                    )

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
                concurrency_id="assistant",
                concurrency_limit=1,
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
            concurrency_id="assistant",
            concurrency_limit=1,
        )
        exports = {
            "export_answer": (export_answer, self.export_answer),
            "export_conversation": (export_conv, self.export_conversation),
            "export_quotes_md": (export_qmd, partial(self.export_quotes, "md")),
            "export_quotes_csv": (export_qcsv, partial(self.export_quotes, "csv")),
        }
        for name, (button, handler) in exports.items():
            button.click(
                handler, [turns], [export_file, export_status], api_name=name, show_progress="hidden"
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
        chatbot.clear(
            lambda: ([], sources_html(None), "", ""),
            None,
            [turns, sources, copy_box, feedback_status],
            queue=False,
            api_visibility="private",
        )
        chatbot.change(
            lambda: "", None, [feedback_status], queue=False, api_visibility="private", show_progress="hidden"
        )

    def _corpus_tab(self, status: gr.Markdown) -> None:
        gr.Markdown("### Documents indexés")
        documents = gr.HTML(self.documents_html(), elem_id="documents", js_on_load=None)
        with gr.Row(equal_height=False):
            with gr.Column():
                gr.Markdown(
                    f"### Ajouter un document\nPDF, Word (.docx), texte (.txt) ou Markdown (.md), "
                    f"{self.settings.upload_max_mb} Mo au plus. "
                    "Le fichier est vérifié (type réel, taille, texte "
                    "exploitable) avant d'entrer dans le corpus ; en cas de refus, rien n'est modifié."
                )
                # No ``file_types``: Gradio would refuse other extensions with an English message;
                # ``check_upload`` refuses them (and checks the content) in French.
                upload = gr.File(
                    label="Document à ajouter (PDF, DOCX, TXT ou MD)",
                    type="filepath",
                    elem_id="upload",
                    height=180,
                )
                add = gr.Button("Ajouter au corpus", variant="primary", elem_id="upload-button")
                upload_status = gr.HTML("", elem_id="corpus-status", js_on_load=None)
            with gr.Column():
                gr.Markdown(
                    "### Réindexer\nRelit le dossier du corpus et recalcule ce qui a changé "
                    "(les documents inchangés ne sont pas recalculés)."
                )
                reindex = gr.Button("Réindexer le corpus", elem_id="reindex-button")
                reindex_status = gr.HTML("", elem_id="reindex-status", js_on_load=None)
        add.click(
            self.upload,
            [upload],
            [upload_status, documents, status, upload],
            api_name="upload",
            concurrency_id="assistant",
            concurrency_limit=1,
        )
        reindex.click(
            self.reindex,
            None,
            [reindex_status, documents, status, upload],
            api_name="reindex",
            concurrency_id="assistant",
            concurrency_limit=1,
        )

    # -- launching --------------------------------------------------------------------------------------
    def launch(self, **overrides: Any) -> Any:
        demo = self.demo or self.build()
        demo.queue(max_size=self.settings.app_queue_size, default_concurrency_limit=1)
        options: dict[str, Any] = {
            "auth": parse_auth(self.settings.app_auth),
            "auth_message": f"{TITLE} : identifiez-vous.",
            "allowed_paths": [str(self.exports.root)],
            "blocked_paths": blocked_paths(self.settings),
            # A backstop for huge bodies; the real limit is checked in ``upload`` with a French
            # message (Gradio's own refusal is in English).
            "max_file_size": f"{2 * self.settings.upload_max_mb + 1}mb",
            "show_error": False,
            "footer_links": [],
            "theme": ministry_theme(),
            "css": CSS,
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
    """What Gradio must never serve: the index, the corpus originals, feedback, caches, secrets."""
    paths = [
        settings.index_dir,
        settings.corpus_dir,
        settings.cache_dir,
        settings.feedback_path.parent,
        PROJECT_ROOT / ".env",
    ]
    temp = settings.app_temp_dir.resolve()
    if not temp.is_relative_to(PROJECT_ROOT.resolve()):
        paths.append(PROJECT_ROOT)  # nothing of the project itself is ever served
    return [str(Path(p).resolve()) for p in paths]


def index_summary(report: Any) -> str:
    if report is None or not (report.changed or report.refused):
        total = getattr(report, "total_chunks", 0)
        return "L'index est à jour : aucun document n'a changé" + (f" ({total} passages)." if total else ".")
    parts = []
    for label, names in (
        ("ajouté(s)", report.added),
        ("mis à jour", report.updated),
        ("retiré(s)", report.removed),
        ("inchangé(s)", report.unchanged),
    ):
        if names:
            parts.append(f"{len(names)} document(s) {label}")
    seconds = f"{report.seconds:.1f}".replace(".", ",")
    text = (
        f"Index mis à jour en {seconds} s : {', '.join(parts) or 'aucun document'} ; "
        f"{report.total_chunks} passages, dont {report.embedded_chunks} recalculés."
    )
    for error in report.refused:
        text += f" Refusé : {error}"
    return text


def _french_error(error: Exception) -> str:
    message = str(error)
    if message and any(c in message for c in "éèàçêù«"):
        return message
    return (
        "Une erreur inattendue est survenue ; elle a été consignée dans le journal de l'application. "
        "Réessayez."
    )


HELP_TEXT = """
### Utiliser l'assistant

- **Réponse** : posez une question en français. La réponse s'affiche au fil de sa rédaction ; chaque
  affirmation renvoie à ses sources par un numéro [1], [2]… Le panneau **Sources** donne, pour chaque
  numéro, la référence (document › section › ligne, page pour les PDF) et le texte du dossier, l'extrait
  cité surligné. Si le dossier ne traite pas la question, l'assistant le dit.
- **Citations** : des passages du dossier, mot pour mot, avec leur référence complète, à coller dans un
  rapport (export Markdown ou CSV).
- **Comparer** : indiquez un thème (« gouvernance », « finances », « localisation des agents »…) ; le
  tableau met les scénarios côte à côte, section par section, chaque case citée.
- **Filtres** : limitez la recherche à un ou plusieurs scénarios et sections ; les filtres actifs sont
  rappelés sur chaque réponse.
- **Votre avis** : 👍 ou 👎 sur la dernière réponse, avec un commentaire si vous le souhaitez.
- **Corpus** : liste des documents indexés, ajout d'un document, réindexation.

Les réponses sont produites à partir du seul dossier. Vérifiez toujours les sources avant de reprendre
une réponse dans un document officiel.
"""
