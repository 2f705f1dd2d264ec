"""The assistant as the CLI and the Gradio app see it: one object, opened once per process.

``Assistant.open`` makes sure the index is fresh (building it when missing, damaged or stale;
answering from the previous intact generation, with a French notice, when an update cannot be
made — another indexer at work, a full disk, a crash), builds the
retriever and the chat model the settings ask for — falling back to the extractive backend, with
the reason in French, when the model cannot be used — and wires them into the ``AnswerPipeline``.
Every question goes through that pipeline; this class adds no logic of its own beyond keeping
the pieces together, rebuilding the retriever after an index change, and adding documents safely.

Deliberately left out: users, sessions and feedback (the app's business).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from assistant.answer.comparison import Comparison
from assistant.answer.errors import LLMUnavailable
from assistant.answer.llm import EXTRACTIVE_STATUS, build_chat_model
from assistant.answer.model_queue import ModelQueue
from assistant.answer.pipeline import AnswerPipeline, AnswerStreamEvent
from assistant.answer.quotes import QUOTES_K, QuoteResult
from assistant.ingest.errors import SUPPORTED_EXTENSIONS, IngestError, file_sha256
from assistant.schema import Answer, History
from assistant.search.embeddings import embedder_name
from assistant.search.index import CorpusIndex, IndexReport, Progress
from assistant.search.prepare import prepare_document
from assistant.search.retrieval import RetrievalResult, Retriever
from assistant.settings import Settings


class Assistant:
    """Index + retriever + chat model + answer pipeline, for one corpus folder."""

    def __init__(
        self,
        settings: Settings,
        index: CorpusIndex,
        model: Any = None,
        model_status: str = "",
        index_report: IndexReport | None = None,
        index_notice: str = "",
    ) -> None:
        self.settings = settings
        self.index = index
        self.model = model
        self.model_status = model_status
        # What opening the assistant did to the index (``None`` when it was already fresh).
        self.index_report = index_report
        # French, non-empty while answers come from an index that is not up to date.
        self.index_notice = index_notice
        self._lock = threading.RLock()  # one index change at a time within this process
        # One line for the model whatever the pipeline: a re-index must not open a second one.
        self.model_queue = ModelQueue(waiting=settings.llm_queue_size)
        self.pipeline = self._pipeline()

    @classmethod
    def open(
        cls, settings: Settings, progress: Progress | None = None, *, with_model: bool = True
    ) -> Assistant:
        """Ensure the index, build the chat model (or fall back to extractive), wire the pipeline.

        ``with_model=False`` loads no language model: searches, quotes and comparisons are
        verbatim and need none."""
        index = CorpusIndex(settings)
        report, notice = index.open_for_reading(progress)
        model, status = build_model(settings) if with_model else (None, EXTRACTIVE_STATUS)
        return cls(settings, index, model, status, report, notice)

    def attach_model(self, model: Any, status: str) -> None:
        """Answer with ``model`` from now on (a model that became ready after the start: its
        installation finished while the assistant was already answering with the dossier's
        lines). Questions under way finish with the pipeline they started with."""
        with self._lock:
            self.model, self.model_status = model, status
            self.pipeline = self._pipeline()

    def _pipeline(self) -> AnswerPipeline:
        retriever = Retriever(self.index, self.settings)
        return AnswerPipeline(
            self.settings, retriever, self.model, self.model_status, model_queue=self.model_queue
        )

    # -- questions ---------------------------------------------------------------------------
    def search(
        self,
        question: str,
        history: History | None = None,
        scenarios: Sequence[str] | None = None,
        sections: Sequence[str] | None = None,
        k: int | None = None,
    ) -> RetrievalResult:
        """The passages for a question, best first (no answer composed)."""
        return self.pipeline.retriever.search(question, history, scenarios, sections, k)

    def ask(
        self,
        question: str,
        history: History | None = None,
        scenarios: Sequence[str] | None = None,
        sections: Sequence[str] | None = None,
    ) -> Answer:
        return self.pipeline.answer(question, history, scenarios, sections)

    def stream(
        self,
        question: str,
        history: History | None = None,
        scenarios: Sequence[str] | None = None,
        sections: Sequence[str] | None = None,
    ) -> Iterator[AnswerStreamEvent]:
        return self.pipeline.stream(question, history, scenarios, sections)

    def quote(
        self,
        request: str,
        scenarios: Sequence[str] | None = None,
        sections: Sequence[str] | None = None,
        k: int = QUOTES_K,
    ) -> list[QuoteResult]:
        return self.pipeline.quote(request, scenarios, sections, k)

    def compare(self, theme: str, scenarios: Sequence[str] | None = None) -> Comparison:
        return self.pipeline.compare(theme, scenarios)

    def status(self) -> dict[str, Any]:
        return {
            "embedder": embedder_name(self.index.embeddings),
            "llm": self.model_status,
            "backend": self.pipeline.backend,
            "chunks": len(self.pipeline.corpus),
            "index": self.index.state(),
            "index_notice": self.index_notice,
            "documents": self.index.documents(),
        }

    # -- the corpus --------------------------------------------------------------------------
    def reindex(self, progress: Progress | None = None, force: bool = False) -> IndexReport:
        """Bring the index in line with the corpus folder, then rebuild the retriever."""
        with self._lock:
            report = self.index.update(progress=progress, force=force)
            self.index_notice = ""
            self.pipeline = self._pipeline()
            return report

    def add_document(self, src_path: Path | str, progress: Progress | None = None) -> IndexReport:
        """Copy a document into the corpus folder and index it; a failed add changes nothing.

        The file is first read, cut and embedded from a private temporary copy in a bounded child
        process (``prepare_document``: time, memory, passages), while questions are still answered
        from the current index: a file that does not load never reaches the corpus folder. A file
        that replaces one of the same name is restored if indexing then refuses it."""
        source = Path(src_path)
        if source.suffix.lower() not in SUPPORTED_EXTENSIONS:
            raise IngestError(
                source,
                f"format non pris en charge ({source.suffix or 'sans extension'}) ; "
                "formats acceptés : .md, .txt, .pdf, .docx.",
            )
        with self._lock, tempfile.TemporaryDirectory(prefix="assistant-add-") as tmp:
            staged = Path(tmp) / source.name
            try:
                shutil.copyfile(source, staged)
            except OSError as exc:
                raise IngestError(source, f"fichier illisible ({exc.strerror or exc}).") from exc
            # Raises IngestError (French) before anything changes.
            prepared = prepare_document(staged, self.settings, progress)
            corpus = Path(self.settings.corpus_dir)
            corpus.mkdir(parents=True, exist_ok=True)
            target = corpus / source.name
            backup = Path(tmp) / f"previous-{source.name}"
            had_previous = target.exists()
            if had_previous:
                if file_sha256(target) == file_sha256(staged):
                    return IndexReport(unchanged=[target.name])
                shutil.copy2(target, backup)
            shutil.copyfile(staged, target)
            try:
                report = self.index.update(progress=progress, prepared=prepared)
            except Exception:
                self._restore(target, backup if had_previous else None)
                raise
            refused = [e for e in report.refused if e.path.name == target.name]
            if refused:
                self._restore(target, backup if had_previous else None)
                self.index.update(progress=progress)
                raise refused[0]
            self.pipeline = self._pipeline()
            return report

    @staticmethod
    def _restore(target: Path, backup: Path | None) -> None:
        if backup is not None:
            shutil.copy2(backup, target)
        else:
            target.unlink(missing_ok=True)


def build_model(settings: Settings) -> tuple[Any, str]:
    """The chat model for the settings, or ``(None, reason)``: the assistant always starts."""
    try:
        return build_chat_model(settings)
    except LLMUnavailable as error:
        return None, f"{EXTRACTIVE_STATUS} ({str(error).rstrip('.')})"
