"""Run a question set through the assistant: the one way a set is evaluated.

``run_set`` is what ``assistant eval``, the app's « Évaluation » tab and
``scripts/eval_llm.py`` call. It takes an opened ``assistant.service.Assistant`` and:

1. runs every case — the retriever alone (``retrieval``) or the answer pipeline with whatever
   backend the assistant has (``answer``) — on the pipeline read once at the start (the app may
   re-index meanwhile and replace it);
2. reads a language model's answers as a stream, so the time to its first token is measured;
   the extractive backend's are read whole, so its runs stay comparable with earlier ones;
3. with ``baseline=True`` in retrieval mode, measures the plain LangChain pipeline
   (``runner.BaselinePipeline``) on the same set, stored beside the summary;
4. builds the ``Run``: records, summaries, ``describe_settings``, and the gate outcome when a
   thresholds file is given. A gate that cannot be checked (file unreadable, no thresholds for
   this backend) does not lose the run: ``Run.gate_error`` says why, in French.

Progress is reported through one callable, ``progress(stage, done, total)``, with the stages
``RUN`` (one call per question, from 0), ``BASELINE_INDEX`` (once, before the baseline's index is
built) and ``BASELINE``; each caller draws it its own way (tqdm, Gradio, a counter line).

Deliberately left out: opening the assistant (each caller knows which model it wants), printing,
and writing the run folder (``runs.write_run``, when the caller wants one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.evaluation.compare import ThresholdError, gate_outcome
from assistant.evaluation.dataset import Case
from assistant.evaluation.runner import BaselinePipeline, evaluate_retrieval, summarize
from assistant.evaluation.runs import (
    MODES,
    Run,
    RunError,
    answer_records,
    build_run,
    describe_settings,
    retrieval_records,
)

if TYPE_CHECKING:  # the facade is what this module drives; nothing here needs it at run time
    from assistant.service import Assistant

RUN, BASELINE_INDEX, BASELINE = "run", "baseline_index", "baseline"
EXTRACTIVE = "extractive"
# What the baseline indexes: the raw text files of the corpus, as a plain pipeline would.
BASELINE_SUFFIXES = frozenset({".md", ".txt"})
Progress = Callable[[str, int, int], None]


def run_set(
    assistant: Assistant,
    cases: Sequence[Case],
    mode: str,
    *,
    set_path: Path,
    baseline: bool = False,
    progress: Progress | None = None,
    thresholds: Path | None = None,
    name: str = "",
    command: str | None = None,
) -> Run:
    """Evaluate ``cases`` (read from ``set_path``) in ``mode``; the run, not yet written.

    ``baseline`` applies to retrieval mode only (ignored in answer mode). ``thresholds``: a
    thresholds file (``evals/thresholds.json``) to gate the summary with. ``command`` replaces
    the command line recorded in the settings (the app and the scripts are not ``assistant``)."""
    if mode not in MODES:
        raise RunError(f"Mode d'évaluation inconnu : « {mode} » (attendu : retrieval ou answer).")
    pipeline = assistant.pipeline  # read once: a re-index replaces it
    tick = _ticker(progress, RUN, len(cases))
    backend: str | None = None
    status: str | None = None
    if mode == "retrieval":
        records = retrieval_records(cases, pipeline.retriever, tick=tick, pipeline=pipeline)
    else:
        backend, status = pipeline.backend, assistant.model_status
        records = answer_records(cases, pipeline, tick=tick)
    info = describe_settings(assistant.settings, mode, set_path, pipeline.retriever, backend, status)
    if command is not None:
        info["command"] = command
    base = None
    if baseline and mode == "retrieval":
        base = _baseline_summary(assistant, pipeline.retriever.embeddings, cases, progress)
    run = build_run(mode, records, info, name=name, baseline=base)
    if thresholds is not None:
        try:
            run.info["gate"] = gate_outcome(run.summary, thresholds, mode, backend)
        except ThresholdError as error:
            run.gate_error = str(error)
    return run


def _ticker(progress: Progress | None, stage: str, total: int) -> Callable[[], None] | None:
    """A ``tick()`` for the runners that reports ``(stage, done, total)``; announces 0 at once."""
    if progress is None:
        return None
    report = progress  # bound for the closure (mypy narrows it there)
    done = 0
    report(stage, 0, total)

    def tick() -> None:
        nonlocal done
        done += 1
        report(stage, done, total)

    return tick


def _baseline_summary(
    assistant: Assistant, embeddings: Any, cases: Sequence[Case], progress: Progress | None
) -> dict[str, Any]:
    """The summary of the plain LangChain pipeline on the same set, with the same embedder."""
    raw = baseline_documents(assistant.settings.corpus_dir)
    if progress is not None:
        progress(BASELINE_INDEX, 0, 0)
    reference = BaselinePipeline(raw, embeddings)
    return summarize(
        evaluate_retrieval(cases, reference.search, tick=_ticker(progress, BASELINE, len(cases)))
    )


def baseline_documents(corpus_dir: Path) -> list[tuple[str, str]]:
    """``(file name, raw text)`` of the corpus files the plain pipeline indexes (``.md``, ``.txt``):
    read as they are, with no parsing of the dossier's structure."""
    from assistant.search.index import corpus_files

    return [
        (p.name, p.read_text(encoding="utf-8", errors="replace"))
        for p in corpus_files(corpus_dir)
        if p.suffix.lower() in BASELINE_SUFFIXES
    ]
