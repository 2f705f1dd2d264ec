"""Reports of an evaluation run, in Markdown and in self-contained HTML (French).

Both show: the summary (with the baseline and the gate thresholds when the run has them), the
metrics per question kind, the latency distribution, every failing question with what was
expected (evidence excerpts, facts) and what came back (top passages, or the answer and its
citations), and the settings of the run. The HTML draws its two charts as inline SVG written
here (no script, no external resource, every text escaped) and is well-formed XML, so a test can
parse it; the Markdown gives the same figures as tables.

Deliberately left out: interactive charts, and run-to-run charts (``compare`` prints a table).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from assistant.evaluation.runner import summary_keys

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


def _gate_rows(run: Run) -> dict[str, dict[str, Any]]:
    gate = run.info.get("gate") or {}
    return {c["metric"]: c for c in gate.get("checks", []) if isinstance(c, dict) and "metric" in c}


def _setting_rows(run: Run) -> list[tuple[str, str]]:
    s = run.settings
    llm = s.get("llm", {}) if isinstance(s.get("llm"), dict) else {}
    index = s.get("index", {}) if isinstance(s.get("index"), dict) else {}
    dataset = s.get("set", {}) if isinstance(s.get("set"), dict) else {}
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


def _failures(run: Run) -> list[dict[str, Any]]:
    return run.failures


# -- charts (inline SVG) ---------------------------------------------------------------------


def _svg_text(x: float, y: float, text: str, size: int = 11, anchor: str = "middle", extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>'
        f"{escape(text)}</text>"
    )


def kind_chart_svg(by_kind: Mapping[str, Mapping[str, Any]], keys: Sequence[str], title: str) -> str:
    """Grouped bars: one group per question kind, one bar per metric (0 to 1)."""
    kinds = list(by_kind)
    width, height = 900, 360
    left, right, top, bottom = 48, 16, 64, 54
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="{escape(title)}" class="chart kind-chart">',
        f"<title>{escape(title)}</title>",
        _svg_text(left, 18, title, 14, "start", ' font-weight="bold"'),
    ]
    for step in range(5):  # horizontal grid at 0, .25, .5, .75, 1
        level = step / 4
        y = top + plot_h * (1 - level)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
            'stroke="#d0d0d0" stroke-width="1"/>'
        )
        parts.append(_svg_text(left - 6, y + 4, fmt(level).rstrip("0").rstrip(",") or "0", 10, "end"))
    for i, key in enumerate(keys):  # legend
        x = left + i * (plot_w / max(len(keys), 1))
        parts.append(f'<rect x="{x:.1f}" y="30" width="12" height="12" fill="{PALETTE[i % len(PALETTE)]}"/>')
        parts.append(_svg_text(x + 16, 40, key, 11, "start"))
    group_w = plot_w / max(len(kinds), 1)
    bar_w = group_w * 0.8 / max(len(keys), 1)
    for g, kind in enumerate(kinds):
        x0 = left + g * group_w + group_w * 0.1
        summary = by_kind[kind]
        for i, key in enumerate(keys):
            value = summary.get(key)
            x = x0 + i * bar_w
            if value is None:
                parts.append(_svg_text(x + bar_w / 2, top + plot_h - 3, "–", 10, "middle", ' fill="#999999"'))
                continue
            bar_h = plot_h * max(0.0, min(1.0, float(value)))
            y = top + plot_h - bar_h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bar_w - 2, 1):.1f}" height="{bar_h:.1f}" '
                f'fill="{PALETTE[i % len(PALETTE)]}">'
                f"<title>{escape(f'{kind_label(kind)} · {key} = {fmt(value)}')}"
                "</title></rect>"
            )
            parts.append(_svg_text(x + bar_w / 2 - 1, y - 3, f"{float(value):.2f}".replace(".", ","), 8))
        count = summary.get("questions", "")
        parts.append(_svg_text(x0 + group_w * 0.4, top + plot_h + 18, kind_label(kind), 12))
        parts.append(
            _svg_text(x0 + group_w * 0.4, top + plot_h + 34, f"({count} q.)", 10, "middle", ' fill="#555555"')
        )
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#333333"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _nice_step(span: float, bins: int) -> float:
    raw = max(span / bins, 1e-9)
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def latency_histogram_svg(latencies: Sequence[float], p50: float, p95: float, title: str) -> str:
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
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="{escape(title)}" class="chart latency-chart">',
        f"<title>{escape(title)}</title>",
        _svg_text(left, 18, title, 14, "start", ' font-weight="bold"'),
    ]
    for step_y in range(5):
        y = top + plot_h * (1 - step_y / 4)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e0e0e0"/>')
        parts.append(_svg_text(left - 6, y + 4, str(tick * step_y), 10, "end"))
    bar_w = plot_w / bins
    for i, count in enumerate(counts):
        if not count:
            continue
        bar_h = plot_h * count / highest
        x = left + i * bar_w
        label = f"{i * step:.0f}–{(i + 1) * step:.0f} ms : {count} question(s)"
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{top + plot_h - bar_h:.1f}" width="{max(bar_w - 2, 1):.1f}" '
            f'height="{bar_h:.1f}" fill="#1b6ca8"><title>{escape(label)}</title></rect>'
        )
    for i in range(0, bins + 1, max(1, bins // 10)):  # x ticks
        x = left + i * bar_w
        parts.append(_svg_text(x, top + plot_h + 16, f"{i * step:.0f}", 10))
    parts.append(_svg_text(left + plot_w / 2, height - 8, "latence par question (ms)", 11))
    for value, name, color in ((p50, "médiane", "#59a14f"), (p95, "p95", "#e15759")):
        x = left + plot_w * min(value / span, 1.0) if span else left
        parts.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" stroke="{color}" '
            'stroke-width="2" stroke-dasharray="5,3"/>'
        )
        anchor = "end" if x > left + plot_w * 0.8 else "start"
        dx = -4 if anchor == "end" else 4
        parts.append(
            _svg_text(
                x + dx,
                top + 12 if name == "p95" else top + 26,
                f"{name} {value:.0f} ms",
                11,
                anchor,
                f' fill="{color}"',
            )
        )
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#333333"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


# -- HTML ------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; margin: 0;
       background: #f6f7f9; }
main { max-width: 1000px; margin: 0 auto; padding: 24px 28px 48px; background: #ffffff; }
h1 { font-size: 1.6em; margin-bottom: 4px; }
h2 { border-bottom: 2px solid #1b6ca8; padding-bottom: 4px; margin-top: 36px; }
h3 { margin: 0 0 6px; font-size: 1.05em; }
h4 { margin: 8px 0 4px; font-size: 0.95em; color: #444444; }
p.meta { color: #555555; margin-top: 0; }
table { border-collapse: collapse; margin: 10px 0; font-size: 0.92em; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eef2f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.ko { background: #fde2e1; }
.gate { padding: 10px 14px; border-radius: 6px; margin: 14px 0; }
.gate.ok { background: #e6f4ea; border: 1px solid #59a14f; }
.gate.ko { background: #fde2e1; border: 1px solid #e15759; }
.failure { border: 1px solid #d0d7de; border-left: 4px solid #e15759; border-radius: 4px;
           padding: 10px 14px; margin: 14px 0; }
.failure .question { font-weight: 600; }
.failure .history { color: #555555; font-size: 0.9em; }
.reasons { color: #b3261e; margin: 4px 0; }
.cols { display: flex; gap: 18px; }
.cols > div { flex: 1; min-width: 0; }
ol.passages li, ul.expected li { margin-bottom: 6px; font-size: 0.9em; }
.label { color: #1b6ca8; font-weight: 600; }
.relevant { color: #2e7d32; font-weight: 700; }
.answer { white-space: pre-wrap; background: #f6f8fa; padding: 6px 8px; border-radius: 4px;
          font-size: 0.9em; }
.small { font-size: 0.85em; color: #555555; }
code { font-size: 0.9em; }
"""


def _html_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    numeric_from: int = 1,
    bad: set[tuple[int, int]] | None = None,
) -> str:
    """A table whose cells are already-escaped HTML."""
    out = ["<table><thead><tr>", *(f"<th>{h}</th>" for h in header), "</tr></thead><tbody>"]
    for r, row in enumerate(rows):
        out.append("<tr>")
        for c, cell in enumerate(row):
            classes = []
            if c >= numeric_from:
                classes.append("num")
            if bad and (r, c) in bad:
                classes.append("ko")
            cls = f' class="{" ".join(classes)}"' if classes else ""
            out.append(f"<td{cls}>{cell}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _html_summary(run: Run) -> str:
    keys = summary_keys(run.mode)
    summary = run.summary
    baseline = run.info.get("baseline")
    gate = _gate_rows(run)
    header = ["Métrique", "Signification", "Valeur"]
    if baseline:
        header.append("Référence LangChain")
    if gate:
        header.append("Seuil")
    rows, bad = [], set()
    for r, key in enumerate(keys):
        row = [
            f"<code>{escape(key)}</code>",
            escape(METRIC_LABELS.get(key, "")),
            escape(fmt(summary.get(key), key)),
        ]
        if baseline:
            row.append(escape(fmt(baseline.get(key), key)))
        if gate:
            check = gate.get(key)
            row.append(
                escape(f"{'≥' if check['op'] == 'min' else '≤'} {fmt(check['limit'], key)}") if check else ""
            )
            if check and not check["ok"]:
                bad.add((r, 2))
        rows.append(row)
    return _html_table(header, rows, numeric_from=2, bad=bad)


def _html_kinds(run: Run) -> str:
    keys = summary_keys(run.mode)
    kinds = run.by_kind
    header = ["Métrique", *(f"{escape(kind_label(k))}" for k in kinds)]
    rows = [
        [f"<code>{escape(key)}</code>", *(escape(fmt(kinds[k].get(key), key)) for k in kinds)] for key in keys
    ]
    return _html_table(header, rows)


def _html_gate(run: Run) -> str:
    gate = run.info.get("gate")
    if not gate:
        return ""
    failed = [c for c in gate.get("checks", []) if not c.get("ok")]
    cls = "ko" if failed else "ok"
    title = "Contrôle qualité : échec" if failed else "Contrôle qualité : réussi"
    lines = [
        f'<div class="gate {cls}"><strong>{escape(title)}</strong> '
        f'<span class="small">(seuils : {escape(str(gate.get("thresholds", "")))})</span>'
    ]
    if failed:
        lines.append("<ul>")
        lines.extend(f"<li>{escape(describe_check(c))}</li>" for c in failed)
        lines.append("</ul>")
    else:
        lines.append(f"<div>{len(gate.get('checks', []))} seuils respectés.</div>")
    lines.append("</div>")
    return "".join(lines)


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


def _html_failure(record: Mapping[str, Any]) -> str:
    out = ['<section class="failure">']
    out.append(f"<h3>{escape(str(record['id']))} · {escape(kind_label(str(record['kind'])))}</h3>")
    out.append(f'<div class="question">{escape(str(record["question"]))}</div>')
    history = record.get("history") or []
    if history:
        turns = " / ".join(
            f"{'Q' if m.get('role') == 'user' else 'R'} : {excerpt(m.get('content', ''), 160)}"
            for m in history
        )
        out.append(f'<div class="history">Échanges précédents : {escape(turns)}</div>')
    out.append('<ul class="reasons">')
    out.extend(f"<li>{escape(reason)}</li>" for reason in record.get("reasons", []))
    out.append("</ul>")
    out.append('<div class="cols"><div><h4>Attendu</h4>')
    if not record.get("answerable"):
        out.append("<p>Un refus : le dossier ne contient pas la réponse.</p>")
    else:
        out.append('<ul class="expected">')
        out.extend(f"<li>Extrait : « {escape(e)} »</li>" for e in record.get("evidence", []))
        out.extend(f"<li>Fait : « {escape(f)} »</li>" for f in record.get("facts", []))
        out.append("</ul>")
    out.append("</div><div><h4>Obtenu</h4>")
    if record.get("answer") is not None:
        refused = " (refus)" if record.get("refused") else ""
        out.append(f'<div class="small">Réponse{escape(refused)} :</div>')
        out.append(f'<div class="answer">{escape(clip(record["answer"], 1500))}</div>')
        citations = record.get("citations") or []
        if citations:
            out.append('<div class="small">Sources citées :</div><ul class="expected">')
            for c in citations:
                mark = ' <span class="relevant">✓</span>' if c.get("relevant") else ""
                out.append(
                    f"<li>[{escape(str(c.get('marker', '')))}] "
                    f'<span class="label">{escape(str(c.get("label", "")))}'
                    f"</span>{mark} — « {escape(excerpt(c.get('span', ''), 240))} »</li>"
                )
            out.append("</ul>")
    else:
        passages = list(record.get("passages") or [])[:TOP_PASSAGES]
        if not passages:
            out.append("<p>Aucun passage.</p>")
        else:
            out.append('<ol class="passages">')
            for p in passages:
                mark = ' <span class="relevant">✓ pertinent</span>' if p.get("relevant") else ""
                out.append(
                    f'<li><span class="label">{escape(str(p.get("label", "")))}</span>{mark}<br/>'
                    f"{escape(excerpt(p.get('text', '')))}</li>"
                )
            out.append("</ol>")
            later = [p["rank"] for p in record.get("passages", [])[TOP_PASSAGES:] if p.get("relevant")]
            if later:
                out.append(f'<div class="small">Passage pertinent plus bas : rang {later[0]}.</div>')
    out.append("</div></div></section>")
    return "".join(out)


def _html_settings(run: Run) -> str:
    s = run.settings
    parts = [
        _html_table(
            ["Réglage", "Valeur"], [[escape(k), escape(v)] for k, v in _setting_rows(run)], numeric_from=9
        )
    ]
    packages = s.get("packages")
    if isinstance(packages, dict) and packages:
        parts.append("<h3>Versions des paquets</h3>")
        parts.append(
            _html_table(
                ["Paquet", "Version"],
                [[escape(k), escape(str(v))] for k, v in packages.items()],
                numeric_from=9,
            )
        )
    files = (s.get("index") or {}).get("files") if isinstance(s.get("index"), dict) else None
    if files:
        parts.append("<h3>Fichiers indexés</h3>")
        parts.append(
            _html_table(
                ["Fichier", "SHA-256"],
                [[escape(k), f"<code>{escape(str(v))}</code>"] for k, v in files.items()],
                numeric_from=9,
            )
        )
    return "".join(parts)


def render_html(run: Run) -> str:
    """The whole report as one self-contained, well-formed HTML page."""
    s = run.settings
    dataset = s.get("set", {}) if isinstance(s.get("set"), dict) else {}
    summary = run.summary
    title = f"Rapport d'évaluation — {run.name}"
    failures = _failures(run)
    latencies = [float(r.get("latency_ms", 0.0)) for r in run.results]
    meta = (
        f"Mode : {MODE_LABELS.get(run.mode, run.mode)} · jeu : {dataset.get('path', '—')} · "
        f"{summary.get('questions', len(run.results))} questions · {len(failures)} en échec · "
        f"date : {s.get('date', '—')} · commit : {str(s.get('git_commit', '—'))[:12]}"
    )
    if run.mode == "answer":
        meta += f" · moteur : {(s.get('llm') or {}).get('backend', '—')}"
    body = [
        "<!DOCTYPE html>\n",
        '<html lang="fr" xmlns="http://www.w3.org/1999/xhtml"><head><meta charset="utf-8"/>',
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">{escape(meta)}</p>',
        _html_gate(run),
        "<h2>Résumé</h2>",
        _html_summary(run),
        "<h2>Résultats par type de question</h2>",
        kind_chart_svg(run.by_kind, CHART_KEYS.get(run.mode, ()), "Métriques par type de question"),
        '<p class="small">« – » : la métrique ne s\'applique pas à ce type (par exemple hit@5 pour les '
        "questions sans réponse).</p>",
        _html_kinds(run),
        "<h2>Distribution des latences</h2>",
        latency_histogram_svg(
            latencies,
            float(summary.get("latency_p50_ms", 0.0) or 0.0),
            float(summary.get("latency_p95_ms", 0.0) or 0.0),
            "Latence par question",
        )
        if latencies
        else "<p>Aucune mesure.</p>",
        f"<h2>Questions en échec ({len(failures)})</h2>",
    ]
    if not failures:
        body.append("<p>Aucune question en échec.</p>")
    body.extend(_html_failure(r) for r in failures)
    body.append("<h2>Réglages du run</h2>")
    body.append(_html_settings(run))
    body.append("</main></body></html>\n")
    return "".join(body)


# -- Markdown --------------------------------------------------------------------------------


def md_escape(text: str) -> str:
    text = " ".join(str(text).split())
    for char in "\\`*_[]|":
        text = text.replace(char, "\\" + char)
    return text.replace("<", "&lt;")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _md_bar(value: Any, width: int = 20) -> str:
    if value is None:
        return ""
    filled = round(max(0.0, min(1.0, float(value))) * width)
    return "█" * filled + "░" * (width - filled)


def render_markdown(run: Run) -> str:
    s = run.settings
    dataset = s.get("set", {}) if isinstance(s.get("set"), dict) else {}
    summary = run.summary
    keys = summary_keys(run.mode)
    failures = _failures(run)
    lines = [
        f"# Rapport d'évaluation — {md_escape(run.name)}",
        "",
        f"Mode : {MODE_LABELS.get(run.mode, run.mode)} · jeu : `{dataset.get('path', '—')}` · "
        f"{summary.get('questions', len(run.results))} questions · {len(failures)} en échec · "
        f"date : {s.get('date', '—')} · commit : `{str(s.get('git_commit', '—'))[:12]}`",
        "",
    ]
    gate = run.info.get("gate")
    if gate:
        failed = [c for c in gate.get("checks", []) if not c.get("ok")]
        lines.append(
            f"**Contrôle qualité : {'échec' if failed else 'réussi'}** "
            f"(seuils : `{gate.get('thresholds', '')}`)"
        )
        lines.extend(f"- {md_escape(describe_check(c))}" for c in failed)
        lines.append("")
    lines += ["## Résumé", ""]
    header = ["Métrique", "Signification", "Valeur"]
    baseline = run.info.get("baseline")
    checks = _gate_rows(run)
    if baseline:
        header.append("Référence LangChain")
    if checks:
        header.append("Seuil")
    rows = []
    for key in keys:
        row = [f"`{key}`", md_escape(METRIC_LABELS.get(key, "")), fmt(summary.get(key), key)]
        if baseline:
            row.append(fmt(baseline.get(key), key))
        if checks:
            check = checks.get(key)
            row.append(
                (
                    f"{'≥' if check['op'] == 'min' else '≤'} {fmt(check['limit'], key)}"
                    + ("" if check["ok"] else " ✗")
                )
                if check
                else ""
            )
        rows.append(row)
    lines += [*_md_table(header, rows), ""]
    lines += ["## Résultats par type de question", ""]
    kinds = run.by_kind
    lines += _md_table(
        ["Métrique", *(kind_label(k) for k in kinds)],
        [[f"`{key}`", *(fmt(kinds[k].get(key), key) for k in kinds)] for key in keys],
    )
    headline = "hit@5" if run.mode == "retrieval" else "fact_coverage"
    lines += ["", f"`{headline}` par type :", "", "```"]
    width = max((len(kind_label(k)) for k in kinds), default=0)
    for kind, values in kinds.items():
        value = values.get(headline)
        lines.append(f"{kind_label(kind):<{width}}  {_md_bar(value)} {fmt(value)}")
    lines += ["```", ""]
    lines += ["## Distribution des latences", ""]
    latencies = sorted(float(r.get("latency_ms", 0.0)) for r in run.results)
    if latencies:
        lines.append(
            f"Médiane {fmt(summary.get('latency_p50_ms'), '_ms')} ms, "
            f"p95 {fmt(summary.get('latency_p95_ms'), '_ms')} ms, "
            f"minimum {latencies[0]:.0f} ms, maximum {latencies[-1]:.0f} ms."
        )
        step = _nice_step(latencies[-1], 10)
        bins = max(1, math.ceil((latencies[-1] + 1e-9) / step))
        counts = [0] * bins
        for v in latencies:
            counts[min(int(v // step), bins - 1)] += 1
        lines += ["", "```"]
        for i, count in enumerate(counts):
            bar = "█" * round(30 * count / max(counts))
            lines.append(f"{i * step:>7.0f}–{(i + 1) * step:<7.0f} ms {bar} {count}")
        lines.append("```")
    lines += ["", f"## Questions en échec ({len(failures)})", ""]
    if not failures:
        lines.append("Aucune question en échec.")
    for record in failures:
        lines += [
            f"### {record['id']} · {kind_label(str(record['kind']))}",
            "",
            f"**Question** : {md_escape(record['question'])}",
        ]
        for m in record.get("history") or []:
            who = "Q" if m.get("role") == "user" else "R"
            lines.append(f"> {who} : {md_escape(excerpt(m.get('content', ''), 200))}")
        lines.append("")
        lines.extend(f"- ✗ {md_escape(reason)}" for reason in record.get("reasons", []))
        lines += ["", "**Attendu** :", ""]
        if not record.get("answerable"):
            lines.append("- un refus : le dossier ne contient pas la réponse")
        lines.extend(f"- extrait : « {md_escape(e)} »" for e in record.get("evidence", []))
        lines.extend(f"- fait : « {md_escape(f)} »" for f in record.get("facts", []))
        lines += ["", "**Obtenu** :", ""]
        if record.get("answer") is not None:
            lines.append(f"> {md_escape(excerpt(record['answer'], 1200))}")
            lines.append("")
            for c in record.get("citations") or []:
                mark = " ✓" if c.get("relevant") else ""
                lines.append(
                    f"- [{c.get('marker')}] {md_escape(c.get('label', ''))}{mark} — "
                    f"« {md_escape(excerpt(c.get('span', ''), 240))} »"
                )
        else:
            for p in list(record.get("passages") or [])[:TOP_PASSAGES]:
                mark = " ✓ pertinent" if p.get("relevant") else ""
                lines.append(
                    f"{p.get('rank')}. **{md_escape(p.get('label', ''))}**{mark} — "
                    f"{md_escape(excerpt(p.get('text', ''), 300))}"
                )
        lines.append("")
    lines += ["## Réglages du run", ""]
    lines += _md_table(["Réglage", "Valeur"], [[k, md_escape(v)] for k, v in _setting_rows(run)])
    packages = s.get("packages")
    if isinstance(packages, dict) and packages:
        lines += ["", "Versions des paquets : " + ", ".join(f"{k} {v}" for k, v in packages.items()) + "."]
    files = (s.get("index") or {}).get("files") if isinstance(s.get("index"), dict) else None
    if files:
        lines += ["", "Fichiers indexés (SHA-256) :", ""]
        lines.extend(f"- `{name}` `{digest}`" for name, digest in files.items())
    return "\n".join(lines) + "\n"
