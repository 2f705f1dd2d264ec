"""Files users ask for: an answer, the conversation or a Citations result, as Markdown or CSV.

Every file is written into the app's export folder (``ExportFolder``, inside Gradio's dedicated
temp dir), the only folder Gradio may serve, in a fresh sub-folder per file; sub-folders older
than a day are removed. ``TurnExports`` holds the handlers of the export buttons: each returns
(file or None, status), the status saying in French what was exported or why not.

Deliberately left out: rendering for the page (``assistant/rendering.py``) and anything written
outside the export folder.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr

from assistant.app.rendering import (
    MODE_LABELS,
    TITLE,
    Turn,
    answer_notes,
    filters_text,
    h,
    quotes_markdown,
    reference,
    strip_media,
)

EXPORT_MAX_AGE_S = 24 * 3600
NOTHING_TO_EXPORT = (
    "<div class=\"msg-error\">Aucune réponse à exporter pour l'instant : posez d'abord une question.</div>"
)
NO_QUOTES_TO_EXPORT = (
    '<div class="msg-error">Aucun résultat du mode Citations à exporter : choisissez le mode « Citations », '
    "posez votre demande, puis exportez.</div>"
)


def quotes_csv(quotes: Sequence[Any]) -> str:
    from assistant.answer.quotes import quotes_to_csv

    return quotes_to_csv(quotes)


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
        lines += [f"> {n}\n" for n in answer_notes(turn.answer)]
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

    def folder(self, prefix: str = "export-") -> Path:
        """A fresh, private sub-folder (old ones are pruned first)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._prune()
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.root))

    def write(self, stem: str, suffix: str, text: str) -> str:
        folder = self.folder()
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


class TurnExports:
    """The export buttons' handlers, writing into one ``ExportFolder``."""

    def __init__(self, folder: ExportFolder) -> None:
        self.folder = folder

    def build(self, turns: gr.State) -> gr.Textbox:
        """The « Copier et exporter » accordion and its events; returns the box to copy from."""
        with gr.Accordion("Copier et exporter", open=False, elem_id="exports"):
            with gr.Row():
                answer = gr.Button("Réponse et références (.md)", size="sm", elem_id="export-answer")
                conversation = gr.Button("Conversation (.md)", size="sm", elem_id="export-conversation")
            with gr.Row():
                quotes_md = gr.Button("Citations (.md)", size="sm", elem_id="export-quotes-md")
                quotes_csv = gr.Button("Citations (.csv)", size="sm", elem_id="export-quotes-csv")
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
        handlers = {
            "export_answer": (answer, self.answer),
            "export_conversation": (conversation, self.conversation),
            "export_quotes_md": (quotes_md, partial(self.quotes, "md")),
            "export_quotes_csv": (quotes_csv, partial(self.quotes, "csv")),
        }
        for name, (button, handler) in handlers.items():
            button.click(
                handler, [turns], [export_file, export_status], api_name=name, show_progress="hidden"
            )
        return copy_box

    # Each returns (file or None, status): the status says in French what was exported or why not.
    @staticmethod
    def _last(turns: Sequence[Turn], mode: str | None = None) -> Turn | None:
        for turn in reversed(turns or []):
            if turn.done and (mode is None or (turn.mode == mode and turn.quotes is not None)):
                return turn
        return None

    def _exported(self, stem: str, suffix: str, text: str, what: str) -> tuple[str | None, str]:
        path = self.folder.write(stem, suffix, text)
        return (
            path,
            f'<div class="msg-ok">{h(what)} : fichier prêt, cliquez dessus pour le télécharger.</div>',
        )

    def answer(self, turns: list[Turn]) -> tuple[str | None, str]:
        turn = self._last(turns)
        if turn is None:
            return None, NOTHING_TO_EXPORT
        return self._exported("reponse", ".md", turn_markdown(turn), "Réponse et références (Markdown)")

    def conversation(self, turns: list[Turn]) -> tuple[str | None, str]:
        if self._last(turns) is None:
            return None, NOTHING_TO_EXPORT
        return self._exported("conversation", ".md", conversation_markdown(turns), "Conversation (Markdown)")

    def quotes(self, fmt: str, turns: list[Turn]) -> tuple[str | None, str]:
        turn = self._last(turns, "quote")
        if turn is None:
            return None, NO_QUOTES_TO_EXPORT
        quotes = turn.quotes or []
        if fmt == "csv":
            return self._exported("citations", ".csv", quotes_csv(quotes), "Citations (CSV)")
        text = f"# Citations : {turn.question}\n\n{quotes_markdown(quotes)}"
        return self._exported("citations", ".md", text, "Citations (Markdown)")
