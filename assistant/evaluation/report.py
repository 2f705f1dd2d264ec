"""Reports of an evaluation run, in Markdown and in self-contained HTML (French).

Both show: the summary (with the baseline and the gate thresholds when the run has them), the
metrics per question kind, the latency distribution, every failing question with what was
expected (evidence excerpts, facts) and what came back (top passages, or the answer and its
citations), and the settings of the run.

The pages are Jinja2 templates stored with the package (``templates/report.html.j2``,
``templates/report.md.j2``, the two SVG charts in ``templates/charts.html.j2``); this module
computes what they show — formatted figures, table rows, chart geometry — and leaves the markup
to them. The HTML is autoescaped (every text from a run is escaped), has no script and no
external resource, and is well-formed XML, so a test can parse it; the Markdown gives the same
figures as tables, its texts escaped by ``md_escape``.

Deliberately left out: interactive charts, and run-to-run charts (``compare`` prints a table).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import jinja2

from assistant.evaluation.runner import shown_keys

if TYPE_CHECKING:  # a run is what this module renders; runs.py calls the renderers
    from assistant.evaluation.runs import Run

KIND_LABELS = {
    "fact": "fait",
    "section": "section",
    "paraphrase": "paraphrase",
    "compare": "comparaison",
    "quote": "citation",
    "unanswerable": "sans réponse",
    "multiturn": "relance",
}
METRIC_LABELS = {
    "hit@1": "passage pertinent en première position",
    "hit@5": "passage pertinent dans les 5 premiers",
    "mrr@10": "rang réciproque moyen du premier passage pertinent",
    "ndcg@10": "qualité du classement des preuves (nDCG)",
    "evidence_recall@5": "part des extraits attendus retrouvés dans les 5 premiers",
    "fact_coverage": "part des faits attendus présents dans la réponse",
    "citation_precision": "part des sources citées contenant un extrait attendu",
    "refusal_accuracy": "part des questions sans réponse refusées",
    "false_refusal_rate": "part des questions avec réponse refusées à tort (plus bas = mieux)",
    "quote_fidelity": "part des citations entre guillemets retrouvées mot pour mot",
    "latency_p50_ms": "latence médiane (ms)",
    "latency_p95_ms": "latence au 95e centile (ms)",
    "questions": "nombre de questions",
    "ttft_p50_ms": "premier jeton du modèle, médiane (ms)",
    "ttft_p95_ms": "premier jeton du modèle, 95e centile (ms)",
    "verbatim_p50_ms": "réponse mot pour mot affichée, médiane (ms)",
    "verbatim_p95_ms": "réponse mot pour mot affichée, 95e centile (ms)",
    "synthesis_kept_share": "part des phrases de synthèse vérifiées et gardées",
    "synthesis_answers": "réponses avec une synthèse",
}
MODE_LABELS = {"retrieval": "recherche de passages", "answer": "réponses"}
# Metrics drawn per kind (rates in [0, 1]).
CHART_KEYS = {
    "retrieval": ("hit@1", "hit@5", "mrr@10", "ndcg@10", "evidence_recall@5"),
    "answer": (
        "fact_coverage",
        "citation_precision",
        "refusal_accuracy",
        "false_refusal_rate",
        "quote_fidelity",
    ),
}
PALETTE = ("#1b6ca8", "#f28e2b", "#59a14f", "#b07aa1", "#e15759", "#76b7b2")
TOP_PASSAGES = 5
EXCERPT_CHARS = 420


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)


def fmt(value: Any, key: str = "") -> str:
    """A figure as a French reader expects it: decimal comma, « — » for « not applicable »."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if key.endswith("_ms"):
            return f"{value:.0f}"
        return f"{value:.3f}".replace(".", ",")
    return str(value)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, line breaks kept (answers are read as written)."""
    text = str(text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def md_escape(text: str) -> str:
    text = " ".join(str(text).split())
    for char in "\\`*_[]|":
        text = text.replace(char, "\\" + char)
    return text.replace("<", "&lt;")


def describe_check(check: Mapping[str, Any]) -> str:
    """« hit@5 = 0,812 sous le seuil 0,850 » (French)."""
    key = str(check["metric"])
    value = fmt(check.get("value"), key)
    limit = fmt(check.get("limit"), key)
    if check.get("value") is None:
        return f"{key} : absent du résumé (seuil {limit})"
    if check.get("op") == "min":
        return (
            f"{key} = {value} sous le seuil {limit}" if not check.get("ok") else f"{key} = {value} ≥ {limit}"
        )
    return (
        f"{key} = {value} au-dessus du seuil {limit}" if not check.get("ok") else f"{key} = {value} ≤ {limit}"
    )


# -- what the templates show -------------------------------------------------------------------


def _section(settings: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = settings.get(key)
    return value if isinstance(value, dict) else {}


def _setting_rows(run: Run) -> list[tuple[str, str]]:
    s = run.settings
    llm, index, dataset = _section(s, "llm"), _section(s, "index"), _section(s, "set")
    rows = [
        ("Mode", MODE_LABELS.get(run.mode, run.mode)),
        ("Date", str(s.get("date", "—"))),
        ("Jeu de questions", f"{dataset.get('path', '—')} (sha256 {dataset.get('sha256', '—')})"),
        ("Modèle d'embeddings", str(s.get("embedder", "—"))),
        ("Modèle de langage (demandé)", str(llm.get("requested", "—"))),
        ("Moteur de réponse utilisé", str(llm.get("backend", "—"))),
        ("État du modèle de langage", str(llm.get("status") or "—")),
        ("Version du découpage (chunker)", str(s.get("chunker_version", "—"))),
        (
            "Index",
            f"format {index.get('format_version', '—')}, {index.get('embedder', '—')}, "
            f"découpage {index.get('chunker_version', '—')}, {index.get('chunks', '—')} passages, "
            f"construit le {index.get('built_at', '—')}",
        ),
        ("Commit git", str(s.get("git_commit", "—"))),
        (
            "Python / système",
            f"{s.get('python', '—')} / {s.get('platform', '—')} ({s.get('cpus', '—')} cœurs)",
        ),
        ("Commande", str(s.get("command") or "—")),
    ]
    options = s.get("options")
    if isinstance(options, dict) and options:
        rows.append(("Réglages", ", ".join(f"{k}={v}" for k, v in options.items())))
    return rows


def _gate_checks(run: Run) -> dict[str, dict[str, Any]]:
    gate = run.info.get("gate") or {}
    return {c["metric"]: c for c in gate.get("checks", []) if isinstance(c, dict) and "metric" in c}


def _summary_rows(run: Run, keys: Sequence[str]) -> list[dict[str, Any]]:
    """One row per metric: its value, the baseline's, and the gate's limit (« ≥ 0,860 »)."""
    checks = _gate_checks(run)
    baseline = run.info.get("baseline") or {}
    rows = []
    for key in keys:
        check = checks.get(key)
        rows.append(
            {
                "key": key,
                "label": METRIC_LABELS.get(key, ""),
                "value": fmt(run.summary.get(key), key),
                "baseline": fmt(baseline.get(key), key),
                "limit": f"{'≥' if check['op'] == 'min' else '≤'} {fmt(check['limit'], key)}"
                if check
                else "",
                "ok": check["ok"] if check else None,
            }
        )
    return rows


def _latency_lines(latencies: Sequence[float]) -> list[str]:
    """The Markdown histogram: one line per bin, a bar of up to 30 blocks and the count."""
    step = _nice_step(latencies[-1], 10)
    bins = max(1, math.ceil((latencies[-1] + 1e-9) / step))
    counts = [0] * bins
    for v in latencies:
        counts[min(int(v // step), bins - 1)] += 1
    return [
        f"{i * step:>7.0f}–{(i + 1) * step:<7.0f} ms {'█' * round(30 * count / max(counts))} {count}"
        for i, count in enumerate(counts)
    ]


def _md_bar(value: Any, width: int = 20) -> str:
    if value is None:
        return ""
    filled = round(max(0.0, min(1.0, float(value))) * width)
    return "█" * filled + "░" * (width - filled)


def _context(run: Run) -> dict[str, Any]:
    """Everything both templates read, computed once."""
    s = run.settings
    summary = run.summary
    keys = shown_keys(run.mode, summary)
    gate = run.info.get("gate")
    latencies = [float(r.get("latency_ms", 0.0)) for r in run.results]
    kinds = run.by_kind
    headline = "hit@5" if run.mode == "retrieval" else "fact_coverage"
    width = max((len(kind_label(k)) for k in kinds), default=0)
    files = _section(s, "index").get("files")
    return {
        "title": f"Rapport d'évaluation — {run.name}",
        "name": run.name,
        "mode": run.mode,
        "mode_label": MODE_LABELS.get(run.mode, run.mode),
        "set_path": _section(s, "set").get("path", "—"),
        "questions": summary.get("questions", len(run.results)),
        "date": s.get("date", "—"),
        "commit": str(s.get("git_commit", "—"))[:12],
        "backend": _section(s, "llm").get("backend", "—"),
        "failures": [_failure_view(r) for r in run.failures],
        "gate": gate,
        "failed_checks": [c for c in (gate or {}).get("checks", []) if not c.get("ok")],
        "baseline": bool(run.info.get("baseline")),
        "checked": bool(_gate_checks(run)),
        "summary_rows": _summary_rows(run, keys),
        "kinds": [kind_label(k) for k in kinds],
        "kind_rows": [(key, [fmt(values.get(key), key) for values in kinds.values()]) for key in keys],
        "kind_chart": kind_chart(kinds, CHART_KEYS.get(run.mode, ()), "Métriques par type de question"),
        "latency_chart": latency_histogram(
            latencies,
            float(summary.get("latency_p50_ms", 0.0) or 0.0),
            float(summary.get("latency_p95_ms", 0.0) or 0.0),
            "Latence par question",
        )
        if latencies
        else None,
        "headline": headline,
        "headline_bars": [
            (kind_label(k).ljust(width), _md_bar(v.get(headline)), fmt(v.get(headline)))
            for k, v in kinds.items()
        ],
        "latency_range": (min(latencies), max(latencies)) if latencies else None,
        "latency_lines": _latency_lines(sorted(latencies)) if latencies else [],
        "p50": fmt(summary.get("latency_p50_ms"), "_ms"),
        "p95": fmt(summary.get("latency_p95_ms"), "_ms"),
        "settings_rows": _setting_rows(run),
        "packages": s.get("packages") if isinstance(s.get("packages"), dict) else {},
        "files": files if isinstance(files, dict) else {},
    }


def _failure_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """A failing record and what its block needs beside it (top passages, a relevant one lower)."""
    passages = list(record.get("passages") or [])
    later = [p["rank"] for p in passages[TOP_PASSAGES:] if p.get("relevant")]
    return {
        "record": record,
        "top": passages[:TOP_PASSAGES],
        "later": later[0] if later else None,
        "history": [m for m in record.get("history") or [] if isinstance(m, Mapping)],
    }


# -- charts (inline SVG: geometry here, markup in templates/charts.html.j2) ------------------


def kind_chart(by_kind: Mapping[str, Mapping[str, Any]], keys: Sequence[str], title: str) -> dict[str, Any]:
    """Grouped bars: one group per question kind, one bar per metric (0 to 1)."""
    kinds = list(by_kind)
    width, height = 900, 360
    left, right, top, bottom = 48, 16, 64, 54
    plot_w, plot_h = width - left - right, height - top - bottom
    group_w = plot_w / max(len(kinds), 1)
    bar_w = group_w * 0.8 / max(len(keys), 1)
    groups = []
    for g, kind in enumerate(kinds):
        x0 = left + g * group_w + group_w * 0.1
        summary = by_kind[kind]
        bars = []
        for i, key in enumerate(keys):
            value = summary.get(key)
            bar: dict[str, Any] = {"x": x0 + i * bar_w, "color": PALETTE[i % len(PALETTE)], "value": value}
            if value is not None:
                bar["height"] = plot_h * max(0.0, min(1.0, float(value)))
                bar["y"] = top + plot_h - bar["height"]
                bar["tip"] = f"{kind_label(kind)} · {key} = {fmt(value)}"
                bar["label"] = f"{float(value):.2f}".replace(".", ",")
            bars.append(bar)
        groups.append(
            {
                "x": x0 + group_w * 0.4,
                "label": kind_label(kind),
                "count": summary.get("questions", ""),
                "bars": bars,
            }
        )
    return {
        "title": title,
        "width": width,
        "height": height,
        "left": left,
        "right": width - right,
        "top": top,
        "bottom": top + plot_h,
        "bar_w": bar_w,
        # Horizontal grid at 0, .25, .5, .75, 1, labelled « 0 », « 0,25 »… « 1 ».
        "grid": [
            {"y": top + plot_h * (1 - step / 4), "label": fmt(step / 4).rstrip("0").rstrip(",") or "0"}
            for step in range(5)
        ],
        "legend": [
            {"x": left + i * (plot_w / max(len(keys), 1)), "key": key, "color": PALETTE[i % len(PALETTE)]}
            for i, key in enumerate(keys)
        ],
        "groups": groups,
    }


def _nice_step(span: float, bins: int) -> float:
    raw = max(span / bins, 1e-9)
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def latency_histogram(latencies: Sequence[float], p50: float, p95: float, title: str) -> dict[str, Any]:
    """Histogram of per-question latencies (ms), with the median and the 95th percentile marked."""
    width, height = 900, 300
    left, right, top, bottom = 48, 16, 40, 48
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [float(v) for v in latencies]
    step = _nice_step(max(values, default=1.0), 20)
    bins = max(1, math.ceil((max(values, default=0.0) + 1e-9) / step))
    counts = [0] * bins
    for v in values:
        counts[min(int(v // step), bins - 1)] += 1
    tick = max(1, math.ceil(max(counts, default=1) / 4))  # whole question counts on the y axis
    highest = 4 * tick
    span = bins * step
    bar_w = plot_w / bins
    markers = []
    for value, name, color in ((p50, "médiane", "#59a14f"), (p95, "p95", "#e15759")):
        x = left + plot_w * min(value / span, 1.0) if span else left
        end = x > left + plot_w * 0.8
        markers.append(
            {
                "x": x,
                "color": color,
                "label_x": x - 4 if end else x + 4,
                "label_y": top + 12 if name == "p95" else top + 26,
                "anchor": "end" if end else "start",
                "label": f"{name} {value:.0f} ms",
            }
        )
    return {
        "title": title,
        "width": width,
        "height": height,
        "left": left,
        "right": width - right,
        "top": top,
        "bottom": top + plot_h,
        "middle": left + plot_w / 2,
        "grid": [{"y": top + plot_h * (1 - n / 4), "label": str(tick * n)} for n in range(5)],
        "bars": [
            {
                "x": left + i * bar_w + 1,
                "y": top + plot_h - plot_h * count / highest,
                "width": max(bar_w - 2, 1),
                "height": plot_h * count / highest,
                "tip": f"{i * step:.0f}–{(i + 1) * step:.0f} ms : {count} question(s)",
            }
            for i, count in enumerate(counts)
            if count
        ],
        "ticks": [
            {"x": left + i * bar_w, "label": f"{i * step:.0f}"}
            for i in range(0, bins + 1, max(1, bins // 10))
        ],
        "markers": markers,
    }


# -- rendering ---------------------------------------------------------------------------------


@cache
def environment() -> jinja2.Environment:
    """The templates of the package; HTML autoescaped, Markdown escaped by ``md_escape``."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("assistant.evaluation", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(
        f1=lambda value: f"{float(value):.1f}",
        fmt=fmt,
        clip=clip,
        excerpt=excerpt,
        md_escape=md_escape,
        kind_label=kind_label,
        describe_check=describe_check,
    )
    return env


def render_html(run: Run) -> str:
    """The whole report as one self-contained, well-formed HTML page."""
    return environment().get_template("report.html.j2").render(_context(run))


def render_markdown(run: Run) -> str:
    return environment().get_template("report.md.j2").render(_context(run))
