"""Quality gates and run-to-run comparison.

Thresholds live in a JSON file (``evals/thresholds.json``, documented in ``evals/README.md``)::

    {"retrieval": {"hit@5": {"min": 0.8}, "latency_p95_ms": {"max": 3000}, …},
     "answer": {"extractive": {"refusal_accuracy": {"min": 1.0}, …}, "local": {…}},
     "compare": {"max_regressions": 0, "max_drop": {"hit@5": 0.01, "latency_p95_ms": 1000, …}}}

``check_gate`` tests a run's summary against the thresholds of its mode (and, in answer mode, of
the backend that answered): every metric under its ``min`` or over its ``max`` is named.

``compare_runs`` puts two runs side by side: the delta of every summary metric (flagged when it
worsens by more than its ``max_drop``), the settings that differ, and per question (matched by
id) the regressions and improvements. A question regresses when one of its metrics drops:
``hit@5`` in retrieval mode; ``fact_coverage``, refusal correctness (``refusal_correct``),
``citation_precision`` or ``quote_fidelity`` in answer mode. The comparison fails (exit code 1)
when there are more regressions than allowed or when a summary metric drops beyond its tolerance.

Deliberately left out: statistical significance tests (the sets are small and the extractive
backend is deterministic: one flipped question is a real change, shown by id).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant.evaluation.runs import Run, summary_keys

DEFAULT_THRESHOLDS = Path("evals") / "thresholds.json"
LOWER_IS_BETTER = frozenset({"false_refusal_rate", "latency_p50_ms", "latency_p95_ms"})
QUESTION_METRICS = {
    "retrieval": ("hit@5",),
    "answer": ("fact_coverage", "refusal_correct", "citation_precision", "quote_fidelity"),
}
EPSILON = 1e-9


class ThresholdError(ValueError):
    """The thresholds file cannot be used (French message)."""


# -- thresholds and the gate -------------------------------------------------------------------


def default_thresholds_path() -> Path:
    """``evals/thresholds.json`` from the current folder, else the project's own."""
    from assistant.settings import PROJECT_ROOT

    if DEFAULT_THRESHOLDS.exists():
        return DEFAULT_THRESHOLDS
    return PROJECT_ROOT / DEFAULT_THRESHOLDS


def load_thresholds(path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ThresholdError(f"Fichier de seuils introuvable : {path}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ThresholdError(f"« {path} » n'est pas un JSON valide ({exc}).") from exc
    if not isinstance(data, dict):
        raise ThresholdError(f"« {path} » doit contenir un objet JSON.")
    return data


def _check_limits(limits: Any, where: str) -> dict[str, dict[str, float]]:
    if not isinstance(limits, dict):
        raise ThresholdError(f'{where} : objet {{métrique: {{"min"|"max": nombre}}}} attendu.')
    clean: dict[str, dict[str, float]] = {}
    for metric, rule in limits.items():
        if metric.startswith("_"):  # "_comment" keys
            continue
        if (
            not isinstance(rule, dict)
            or not set(rule) & {"min", "max"}
            or not all(isinstance(rule[k], int | float) for k in rule if k in {"min", "max"})
        ):
            raise ThresholdError(f'{where}, « {metric} » : {{"min": nombre}} ou {{"max": nombre}} attendu.')
        clean[metric] = {k: float(rule[k]) for k in ("min", "max") if k in rule}
    return clean


def gate_limits(
    thresholds: Mapping[str, Any], mode: str, backend: str | None = None
) -> dict[str, dict[str, float]]:
    """The limits that apply to a run of ``mode`` (answer mode: those of ``backend``)."""
    if mode == "retrieval":
        if "retrieval" not in thresholds:
            raise ThresholdError("Aucun seuil « retrieval » dans le fichier de seuils.")
        return _check_limits(thresholds["retrieval"], "retrieval")
    answer = thresholds.get("answer")
    if not isinstance(answer, dict) or backend not in answer:
        known = ", ".join(sorted(k for k in (answer or {}) if not k.startswith("_"))) or "aucun"
        raise ThresholdError(
            f"Aucun seuil pour le moteur de réponse « {backend} » (moteurs prévus : {known})."
        )
    return _check_limits(answer[backend], f"answer.{backend}")


def check_gate(summary: Mapping[str, Any], limits: Mapping[str, Mapping[str, float]]) -> list[dict[str, Any]]:
    """One check per (metric, bound): ``{"metric", "op", "limit", "value", "ok"}``."""
    checks = []
    for metric, rule in limits.items():
        value = summary.get(metric)
        for op, limit in rule.items():
            if not isinstance(value, int | float):
                ok = False
            elif op == "min":
                ok = value >= limit - EPSILON
            else:
                ok = value <= limit + EPSILON
            checks.append({"metric": metric, "op": op, "limit": limit, "value": value, "ok": ok})
    return checks


def gate_outcome(
    summary: Mapping[str, Any], thresholds_path: Path, mode: str, backend: str | None = None
) -> dict[str, Any]:
    """Load the thresholds and check the summary; raises ``ThresholdError``."""
    limits = gate_limits(load_thresholds(thresholds_path), mode, backend)
    checks = check_gate(summary, limits)
    return {
        "thresholds": str(thresholds_path),
        "mode": mode,
        "backend": backend,
        "passed": all(c["ok"] for c in checks),
        "checks": checks,
    }


def format_gate(outcome: Mapping[str, Any]) -> str:
    from assistant.evaluation.report import describe_check

    checks = outcome.get("checks", [])
    failed = [c for c in checks if not c["ok"]]
    scope = (
        "recherche" if outcome.get("mode") == "retrieval" else f"réponses, moteur {outcome.get('backend')}"
    )
    head = f"Contrôle qualité ({outcome.get('thresholds')}, {scope}) : "
    if not failed:
        return head + f"RÉUSSI — {len(checks)} seuils respectés."
    lines = [head + f"ÉCHEC — {len(failed)} métrique(s) hors seuil :"]
    lines.extend(f"  ✗ {describe_check(c)}" for c in failed)
    return "\n".join(lines)


# -- comparison --------------------------------------------------------------------------------


@dataclass
class MetricDelta:
    metric: str
    a: Any
    b: Any
    delta: float | None
    verdict: str  # "mieux", "moins bien", "identique", "—"
    tolerance: float | None = None
    beyond: bool = False


@dataclass
class QuestionChange:
    id: str
    kind: str
    question: str
    changes: list[dict[str, Any]]  # {"metric", "a", "b"}


@dataclass
class Comparison:
    a_name: str
    b_name: str
    a_path: str
    b_path: str
    mode: str
    common: int
    deltas: list[MetricDelta]
    regressions: list[QuestionChange]
    improvements: list[QuestionChange]
    only_a: list[str]
    only_b: list[str]
    setting_changes: list[dict[str, Any]]
    max_regressions: int
    warnings: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """Why the comparison fails (French), empty when it passes."""
        out = []
        if len(self.regressions) > self.max_regressions:
            out.append(
                f"{len(self.regressions)} question(s) en régression "
                f"(maximum autorisé : {self.max_regressions})"
            )
        for d in self.deltas:
            if d.beyond:
                out.append(
                    f"{d.metric} passe de {_num(d.a, d.metric)} à {_num(d.b, d.metric)} "
                    f"(écart {_signed(d.delta, d.metric)}, tolérance {_num(d.tolerance, d.metric)})"
                )
        return out

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        data["problems"] = self.problems
        data["deltas"] = {
            d.metric: {k: v for k, v in asdict(d).items() if k != "metric"} for d in self.deltas
        }
        return data


def _num(value: Any, metric: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if metric.endswith("_ms"):
        return f"{value:.1f}"
    if metric == "questions":
        return f"{value:.0f}"
    return f"{value:.3f}"


def _signed(value: float | None, metric: str) -> str:
    if value is None:
        return "—"
    text = _num(abs(value), metric)
    return ("+" if value >= 0 else "-") + text


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(data, list):
        return {prefix: json.dumps(data, ensure_ascii=False)}
    return {prefix: data}


# Settings worth telling apart (flattened keys of ``summary.json["settings"]``, by prefix).
_SETTING_PREFIXES = (
    "embedder",
    "llm.",
    "chunker_version",
    "index.format_version",
    "index.embedder",
    "index.chunker_version",
    "index.files.",
    "options.",
    "packages.",
    "git_commit",
    "set.sha256",
    "set.path",
)


def setting_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    flat_a, flat_b = _flatten(dict(a)), _flatten(dict(b))
    changes = []
    for key in sorted(set(flat_a) | set(flat_b)):
        if not any(key == p or key.startswith(p) for p in _SETTING_PREFIXES):
            continue
        if flat_a.get(key) != flat_b.get(key):
            changes.append({"setting": key, "a": flat_a.get(key), "b": flat_b.get(key)})
    return changes


def compare_runs(
    a: Run,
    b: Run,
    max_drop: Mapping[str, float] | None = None,
    max_regressions: int = 0,
) -> Comparison:
    """Compare run ``b`` (the new one) with run ``a`` (the reference)."""
    if a.mode != b.mode:
        raise ValueError(
            f"Les deux runs n'ont pas le même mode ({a.mode} contre {b.mode}) : comparaison impossible."
        )
    tolerances = {k: float(v) for k, v in (max_drop or {}).items() if not k.startswith("_")}
    deltas = []
    for metric in summary_keys(a.mode):
        va, vb = a.summary.get(metric), b.summary.get(metric)
        if not isinstance(va, int | float) or not isinstance(vb, int | float):
            deltas.append(MetricDelta(metric, va, vb, None, "—", tolerances.get(metric)))
            continue
        delta = float(vb) - float(va)
        worse = delta > EPSILON if metric in LOWER_IS_BETTER else delta < -EPSILON
        better = delta < -EPSILON if metric in LOWER_IS_BETTER else delta > EPSILON
        verdict = (
            "—" if metric == "questions" else "moins bien" if worse else "mieux" if better else "identique"
        )
        tolerance = tolerances.get(metric)
        beyond = bool(worse and tolerance is not None and abs(delta) > tolerance + EPSILON)
        deltas.append(MetricDelta(metric, va, vb, delta, verdict, tolerance, beyond))

    by_id_a = {r["id"]: r for r in a.results}
    by_id_b = {r["id"]: r for r in b.results}
    common_ids = [i for i in by_id_a if i in by_id_b]
    warnings = []
    regressions, improvements = [], []
    for qid in common_ids:
        ra, rb = by_id_a[qid], by_id_b[qid]
        if ra.get("question") != rb.get("question"):
            warnings.append(f"{qid} : la question n'est pas la même dans les deux runs")
        drops: list[dict[str, Any]] = []
        gains: list[dict[str, Any]] = []
        for metric in QUESTION_METRICS[a.mode]:
            va, vb = ra.get(metric), rb.get(metric)
            if not isinstance(va, int | float) or not isinstance(vb, int | float):
                continue
            if vb < va - EPSILON:
                drops.append({"metric": metric, "a": va, "b": vb})
            elif vb > va + EPSILON:
                gains.append({"metric": metric, "a": va, "b": vb})
        kind, question = str(rb.get("kind", "")), str(rb.get("question", ""))
        if drops:
            regressions.append(QuestionChange(qid, kind, question, drops))
        if gains:
            improvements.append(QuestionChange(qid, kind, question, gains))
    if not a.results or not b.results:
        warnings.append(
            "un des runs n'a pas de résultats par question (results.jsonl) : seules les "
            "moyennes sont comparées"
        )
    changes = setting_changes(a.settings, b.settings)
    if any(c["setting"] == "set.sha256" for c in changes):
        warnings.append("les deux runs n'ont pas été faits sur le même jeu de questions (sha256 différent)")
    return Comparison(
        a_name=a.name,
        b_name=b.name,
        a_path=str(a.path or ""),
        b_path=str(b.path or ""),
        mode=a.mode,
        common=len(common_ids),
        deltas=deltas,
        regressions=regressions,
        improvements=improvements,
        only_a=[i for i in by_id_a if i not in by_id_b],
        only_b=[i for i in by_id_b if i not in by_id_a],
        setting_changes=changes,
        max_regressions=max_regressions,
        warnings=warnings,
    )


def _change_text(change: QuestionChange) -> str:
    moves = ", ".join(
        f"{c['metric']} {_num(c['a'], c['metric'])} → {_num(c['b'], c['metric'])}" for c in change.changes
    )
    question = change.question if len(change.question) <= 90 else change.question[:89] + "…"
    return f"  {change.id} [{change.kind}] {moves} — {question}"


def format_comparison(c: Comparison) -> str:
    """The comparison as a French plain-text report (tables aligned for a terminal)."""
    from assistant.evaluation.report import MODE_LABELS

    lines = [
        "Comparaison de deux runs",
        f"  A (référence) : {c.a_name}  {c.a_path}",
        f"  B (nouveau)   : {c.b_name}  {c.b_path}",
        f"Mode : {MODE_LABELS.get(c.mode, c.mode)} ; {c.common} question(s) communes",
        "",
    ]
    width = max(len(d.metric) for d in c.deltas) + 2
    lines.append(f"{'Métrique':<{width}}{'A':>12}{'B':>12}{'Écart':>12}  Verdict")
    for d in c.deltas:
        note = d.verdict
        if d.beyond:
            note += f" — au-delà de la tolérance ({_num(d.tolerance, d.metric)})"
        lines.append(
            f"{d.metric:<{width}}{_num(d.a, d.metric):>12}{_num(d.b, d.metric):>12}"
            f"{_signed(d.delta, d.metric):>12}  {note}"
        )
    if c.setting_changes:
        lines += ["", "Réglages qui diffèrent :"]
        for change in c.setting_changes[:40]:
            lines.append(f"  {change['setting']} : {change['a']} → {change['b']}")
        if len(c.setting_changes) > 40:
            lines.append(f"  … et {len(c.setting_changes) - 40} autre(s)")
    lines += ["", f"Régressions ({len(c.regressions)}) :" if c.regressions else "Régressions : aucune"]
    lines.extend(_change_text(r) for r in c.regressions)
    lines += [f"Améliorations ({len(c.improvements)}) :" if c.improvements else "Améliorations : aucune"]
    lines.extend(_change_text(r) for r in c.improvements)
    if c.only_a or c.only_b:
        lines.append(
            "Questions présentes dans un seul run : "
            f"A seulement : {', '.join(c.only_a) or 'aucune'} ; "
            f"B seulement : {', '.join(c.only_b) or 'aucune'}"
        )
    for warning in c.warnings:
        lines.append(f"Attention : {warning}")
    lines.append("")
    if c.passed:
        lines.append(
            f"Verdict : RÉUSSI — {len(c.regressions)} régression(s) "
            f"(maximum autorisé : {c.max_regressions}), "
            "aucune métrique au-delà de sa tolérance."
        )
    else:
        lines.append("Verdict : ÉCHEC — " + " ; ".join(c.problems) + ".")
    return "\n".join(lines)


def compare_settings(thresholds: Mapping[str, Any]) -> tuple[dict[str, float], int]:
    """``(max_drop, max_regressions)`` from the ``compare`` section of a thresholds file."""
    section = thresholds.get("compare", {})
    if not isinstance(section, dict):
        raise ThresholdError('« compare » doit être un objet {"max_regressions": n, "max_drop": {…}}.')
    drops = section.get("max_drop", {})
    if not isinstance(drops, dict) or not all(
        isinstance(v, int | float) for k, v in drops.items() if not k.startswith("_")
    ):
        raise ThresholdError(
            "« compare.max_drop » doit associer à chaque métrique un nombre (baisse tolérée)."
        )
    limit = section.get("max_regressions", 0)
    if not isinstance(limit, int) or limit < 0:
        raise ThresholdError("« compare.max_regressions » doit être un entier positif ou nul.")
    return {k: float(v) for k, v in drops.items() if not k.startswith("_")}, limit
