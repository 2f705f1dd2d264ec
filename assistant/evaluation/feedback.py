"""User feedback (👍/👎 + optional comment) as an append-only JSONL file, and its reader.

Each line is one JSON object carrying ``format_version``, the rating, the comment, the question
(and the standalone question the assistant searched with), the answer text, the passages it cited
and the ones it retrieved, the filters, and the settings that produced it (embedder, LLM, top_k…),
so that a 👎 can be replayed later. Lines are only ever appended, under a lock, one ``write`` per
line: two app workers never interleave half lines, and a crash loses at most the line being
written (the reader skips a truncated last line). Lines are cut at ``\n`` only
(``jsonl.jsonl_lines``): a comment holding U+2028 or another Unicode line separator is read back
whole.

``negative_to_cases`` turns 👎 entries into *draft* regression cases in the ``evals/qa.jsonl``
format (``evals/README.md``): ``"answerable": true`` and empty ``evidence``/``facts`` that an
evaluator must fill from the dossier (or switch to ``"kind": "unanswerable"``,
``"answerable": false``) before the case joins the set. Each draft also carries a ``_feedback``
key (the comment, the answer given, the sources cited) to help that review; ``evals/check_set.py``
refuses unknown keys, so it must be removed when the case is merged.

Deliberately left out: rotation, de-duplication at write time, any network sink.
"""

from __future__ import annotations

import fcntl
import json
import logging
import threading
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assistant.evaluation.jsonl import jsonl_lines
from assistant.schema import Answer
from assistant.settings import Settings

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
RATINGS = ("up", "down")
MAX_COMMENT_CHARS = 2000
# Settings worth keeping with a feedback entry: what changes an answer, never secrets.
_SETTINGS_KEPT = (
    "embedder",
    "llm",
    "llm_model_path",
    "openai_model",
    "top_k",
    "dense_k",
    "lexical_k",
    "use_dense",
    "use_lexical",
    "reranker_path",
    "llm_max_tokens",
    "collection",
)


class FeedbackError(ValueError):
    """Feedback cannot be recorded (French message)."""


def settings_snapshot(settings: Settings) -> dict[str, Any]:
    """The answer-shaping settings, as JSON-friendly values (no keys, no passwords)."""
    snapshot: dict[str, Any] = {}
    for name in _SETTINGS_KEPT:
        value = getattr(settings, name, None)
        snapshot[name] = str(value) if isinstance(value, Path) else value
    return snapshot


def _passage_entry(passage: Any) -> dict[str, Any]:
    return {
        "chunk_id": passage.chunk_id,
        "label": passage.label,
        "text": passage.text,
        "score": round(float(passage.score), 6),
        "page": passage.page,
    }


def build_entry(
    rating: str,
    answer: Answer,
    settings: Settings,
    comment: str = "",
    history: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The JSON object written for one rating of one answer."""
    if rating not in RATINGS:
        raise FeedbackError(f"Avis inconnu : « {rating} » (attendu : up ou down).")
    return {
        "format_version": FORMAT_VERSION,
        "id": uuid.uuid4().hex,
        "time": datetime.now(UTC).astimezone().isoformat(timespec="seconds"),
        "rating": rating,
        "comment": comment.strip()[:MAX_COMMENT_CHARS],
        "question": answer.question,
        "standalone_question": answer.standalone_question,
        "history": list(history or []),
        "mode": answer.mode,
        "answer": answer.text,
        "backend": answer.backend,
        "refused": answer.refused,
        "flags": list(answer.flags),
        "filters": dict(answer.filters),
        "citations": [
            {"marker": c.marker, "span": c.span, **_passage_entry(c.passage)} for c in answer.citations
        ],
        "passages": [_passage_entry(p) for p in answer.passages],
        "settings": settings_snapshot(settings),
    }


class FeedbackWriter:
    """Appends feedback entries to one JSONL file (created with its folder on first write)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def write(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        line = json.dumps(dict(entry), ensure_ascii=False) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock, self.path.open("a", encoding="utf-8") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)  # other processes writing the same file
                try:
                    handle.write(line)
                    handle.flush()
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        except OSError as exc:
            log.exception("cannot write feedback to %s", self.path)
            raise FeedbackError(
                f"Votre avis n'a pas pu être enregistré (fichier {self.path.name} : "
                f"{exc.strerror or exc}). Prévenez l'administrateur de l'outil."
            ) from exc
        return dict(entry)

    def record(
        self,
        rating: str,
        answer: Answer,
        settings: Settings,
        comment: str = "",
        history: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        return self.write(build_entry(rating, answer, settings, comment, history))


def load_feedback(path: Path) -> list[dict[str, Any]]:
    """Every readable entry of a feedback file, oldest first; ``[]`` when there is none.

    Lines of another format version are refused with a French error (never mixed silently);
    a line that is not JSON (a write cut by a crash) is skipped and logged.
    """
    path = Path(path)
    if not path.exists():
        return []
    entries: list[dict[str, Any]] = []
    for number, line in enumerate(jsonl_lines(path.read_text(encoding="utf-8")), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            log.warning("feedback %s line %d is not JSON: skipped", path, number)
            continue
        if not isinstance(entry, dict):
            continue
        if entry.get("format_version") != FORMAT_VERSION:
            raise FeedbackError(
                f"{path.name}, ligne {number} : format d'avis inconnu "
                f"(version {entry.get('format_version')!r}, attendue : {FORMAT_VERSION})."
            )
        entries.append(entry)
    return entries


def _kind(entry: Mapping[str, Any]) -> str:
    if entry.get("history"):
        return "multiturn"
    return {"compare": "compare", "quote": "quote"}.get(str(entry.get("mode", "")), "fact")


def negative_to_cases(entries: Iterable[Mapping[str, Any]], first_id: int = 900) -> list[dict[str, Any]]:
    """Draft evaluation cases from the 👎 entries (one per distinct question and history).

    Ids run from ``q{first_id}``; pick a start above the set's last id. See the module docstring
    for what the evaluator fills in and the ``_feedback`` key to remove.
    """
    cases: list[dict[str, Any]] = []
    seen: set[str] = set()
    for entry in entries:
        if entry.get("rating") != "down" or not str(entry.get("question", "")).strip():
            continue
        history = [
            {"role": m["role"], "content": m["content"]}
            for m in entry.get("history", [])
            if isinstance(m, Mapping) and m.get("role") in {"user", "assistant"}
        ]
        key = json.dumps([entry["question"], history], ensure_ascii=False)
        if key in seen:
            continue
        seen.add(key)
        case: dict[str, Any] = {
            "id": f"q{first_id + len(cases):03d}",
            "kind": _kind(entry),
            "question": str(entry["question"]).strip(),
            "answerable": True,
            "evidence": [],
            "facts": [],
        }
        if history:
            case["history"] = history
        case["_feedback"] = {
            "comment": entry.get("comment", ""),
            "answer": entry.get("answer", ""),
            "cited": [c.get("label", "") for c in entry.get("citations", [])],
            "time": entry.get("time", ""),
            "feedback_id": entry.get("id", ""),
        }
        cases.append(case)
    return cases
