"""Evaluation sets: one JSON object per line (format in ``evals/README.md``), validated.

Every invalid line is reported with its number; a set with errors is refused whole, because a
silently skipped question changes every metric.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.evaluation.jsonl import jsonl_lines

KINDS = ("fact", "section", "paraphrase", "compare", "quote", "unanswerable", "multiturn")


class DatasetError(ValueError):
    """The set cannot be used; the message lists every faulty line (French)."""


@dataclass
class Case:
    id: str
    kind: str
    question: str
    answerable: bool
    evidence: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    history: list[dict[str, str]] = field(default_factory=list)
    scenarios: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "question": self.question,
            "answerable": self.answerable,
            "evidence": self.evidence,
            "facts": self.facts,
        }
        if self.history:
            data["history"] = self.history
        return data


def _check(obj: Any) -> list[str]:
    problems: list[str] = []
    if not isinstance(obj, dict):
        return ["ce n'est pas un objet JSON"]
    for key in ("id", "kind", "question"):
        if not isinstance(obj.get(key), str) or not obj.get(key, "").strip():
            problems.append(f"champ « {key} » manquant ou vide")
    if obj.get("kind") not in KINDS and isinstance(obj.get("kind"), str):
        problems.append(f"« kind » inconnu : {obj.get('kind')} (attendu : {', '.join(KINDS)})")
    answerable = obj.get("answerable", True)
    if not isinstance(answerable, bool):
        problems.append("« answerable » doit valoir true ou false")
    for key in ("evidence", "facts"):
        value = obj.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"« {key} » doit être une liste de textes")
    if answerable is True and not obj.get("evidence"):
        problems.append("une question « answerable » doit avoir au moins un extrait « evidence »")
    history = obj.get("history", [])
    if not isinstance(history, list) or not all(
        isinstance(m, dict) and m.get("role") in {"user", "assistant"} and isinstance(m.get("content"), str)
        for m in history
    ):
        problems.append('« history » doit être une liste de {"role": "user"|"assistant", "content": "…"}')
    return problems


def load_cases(path: Path) -> list[Case]:
    """Read and validate a set; raise ``DatasetError`` naming every bad line."""
    try:
        lines = jsonl_lines(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DatasetError(f"Jeu d'évaluation introuvable : {path}") from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(f"« {path.name} » n'est pas encodé en UTF-8.") from exc
    cases: list[Case] = []
    errors: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"ligne {number} : JSON invalide ({exc.msg}, colonne {exc.colno})")
            continue
        problems = _check(obj)
        if not problems and obj["id"] in seen:
            problems.append(f"identifiant « {obj['id']} » déjà utilisé")
        if problems:
            errors.extend(f"ligne {number} : {p}" for p in problems)
            continue
        seen.add(obj["id"])
        cases.append(
            Case(
                id=obj["id"],
                kind=obj["kind"],
                question=obj["question"],
                answerable=obj.get("answerable", True),
                evidence=obj.get("evidence", []),
                facts=obj.get("facts", []),
                history=obj.get("history", []),
                scenarios=obj.get("scenarios", []),
                sections=obj.get("sections", []),
            )
        )
    if errors:
        raise DatasetError(f"« {path.name} » contient des lignes invalides :\n  " + "\n  ".join(errors))
    if not cases:
        raise DatasetError(f"« {path.name} » ne contient aucune question.")
    return cases


def save_cases(path: Path, cases: list[Case]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for case in cases:
            handle.write(json.dumps(case.to_dict(), ensure_ascii=False) + "\n")
