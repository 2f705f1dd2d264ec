"""Checks on an uploaded document before it reaches the corpus: real file type, size, safe name.

A file is judged by its content, not its name: a PDF must start with ``%PDF-``, a DOCX must be a
zip holding ``word/document.xml`` that really decompresses to a bounded size
(``assistant/ingest/archive.py``: no zip bomb), a text file must be UTF-8
without binary data. Every refusal is an ``UploadRejected`` with a French message that names the
file and says what to do.

Deliberately left out: parsing the document (``assistant/loaders.py`` does it, and refuses what
it cannot read) and indexing it (``Assistant.add_document``).
"""

from __future__ import annotations

import logging
import re
import shutil
import unicodedata
import uuid
from pathlib import Path
from typing import Any

import gradio as gr

from assistant.app.rendering import format_time, french_error, h

log = logging.getLogger(__name__)


UPLOAD_TYPES = {".pdf": "PDF", ".docx": "Word (.docx)", ".txt": "texte (.txt)", ".md": "Markdown (.md)"}
# Adding a document and re-indexing take turns with each other, not with questions: the document
# is read and embedded in a child process (``prepare_document``) while questions are answered.
CORPUS_SLOT: dict[str, Any] = {"concurrency_id": "corpus", "concurrency_limit": 1}
# Marks the handlers that report progress; Gradio gives each call its own tracker.
PROGRESS = gr.Progress()


class UploadRejected(ValueError):
    """An uploaded file is refused before it reaches the corpus (French message)."""


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
    from assistant.ingest.archive import NotWordArchive, check_docx_archive
    from assistant.ingest.errors import IngestError

    try:
        check_docx_archive(path)
    except NotWordArchive as error:
        raise UploadRejected(
            f"« {shown} » porte l'extension .docx mais ce n'est pas un document Word (.docx). "
            "Les anciens fichiers .doc doivent d'abord être enregistrés au format .docx."
        ) from error
    except IngestError as error:
        raise UploadRejected(f"« {shown} » : {error.reason}") from error


# -- the Corpus tab -------------------------------------------------------------------------------------
class CorpusTab:
    """The Corpus tab of ``AssistantApp``: the indexed documents, adding one, re-indexing."""

    def __init__(self, app: Any) -> None:
        self.app = app  # the AssistantApp: its assistant, settings and status views
        self.assistant = app.assistant
        self.settings = app.settings
        self.staging = app.settings.app_temp_dir / "staging"

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
        from assistant.ingest.errors import IngestError

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
            return self._corpus_result(french_error(error) + unchanged, ok=False)
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
            return self._corpus_result(french_error(error), ok=False)
        return self._corpus_result(index_summary(report), ok=not getattr(report, "refused", []))

    def _corpus_result(self, message: str, ok: bool) -> tuple[str, str, str, None]:
        css = "msg-ok" if ok else "msg-error"
        return (
            f'<div class="{css}">{h(message)}</div>',
            self.documents_html(),
            self.app.status_markdown(),
            None,
        )

    def documents_html(self) -> str:
        documents = self.app._status().get("documents", [])
        if not isinstance(documents, list) or not documents:
            return '<div class="src-empty">Aucun document indexé.</div>'
        rows = "".join(
            f"<tr><td>{h(d.get('fichier', ''))}</td><td>{h(d.get('document', ''))}</td>"
            f"<td>{h(d.get('passages', 0))}</td><td>{h(format_time(str(d.get('indexé le', ''))))}</td></tr>"
            for d in documents
        )
        return (
            '<table class="docs-table"><thead><tr><th>Fichier</th><th>Document</th><th>Passages</th>'
            f"<th>Dernière indexation</th></tr></thead><tbody>{rows}</tbody></table>"
        )

    def build(self, status: gr.Markdown) -> None:
        """The tab's content and events (inside ``gr.Tab``); ``status`` is the page's status line."""
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
            **CORPUS_SLOT,
        )
        reindex.click(
            self.reindex,
            None,
            [reindex_status, documents, status, upload],
            api_name="reindex",
            **CORPUS_SLOT,
        )


def index_summary(report: Any) -> str:
    if report is None or not (report.changed or report.refused):
        total = getattr(report, "total_chunks", 0)
        return "L'index est à jour : aucun document n'a changé" + (f" ({total} passages)." if total else ".")
    text = str(report.summary_fr())
    for error in report.refused:
        text += f" Refusé : {error}"
    return text
