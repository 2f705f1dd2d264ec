"""The « Évaluation » tab: run a question set against the app's assistant, read and download the report.

An evaluator picks a set (the ``.jsonl`` files of the project's ``evals/`` folder) or uploads one
(``.jsonl``, size-capped, validated by ``dataset.load_cases``: a faulty set is refused whole, every
bad line named), chooses the mode — Recherche (the retriever alone) or Réponses (the answer
pipeline, with the app's current backend) — and runs it with a progress bar. The run is made by
``evaluation.evaluate.run_set``, as for ``assistant eval``: same records, summary, settings and
reports, and the quality gate of ``evals/thresholds.json`` when asked. The tab shows the summary,
the figures per question kind and the failing questions (what was expected, what came back), and offers
``report.html`` / ``report.md`` for download. Everything is written under the app's export folder,
the only folder Gradio serves; one run at a time, beside the questions (``EVAL_SLOT``).

Deliberately left out: run-to-run comparison (``assistant eval compare``) and keeping runs beyond
the export folder's one-day lifetime.
"""

from __future__ import annotations

import logging
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import gradio as gr

from assistant.app.rendering import EVAL_SLOT, french_error, h
from assistant.app.uploads import safe_filename
from assistant.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

EVALS_DIR = PROJECT_ROOT / "evals"
# The reference set (134 questions) weighs ~70 ko: 2 Mo leaves room for any hand-made set.
SET_MAX_BYTES = 2 * 1024 * 1024
EVAL_MODES = {"Recherche": "retrieval", "Réponses": "answer"}
FAILURES_SHOWN = 30  # the rest is in the report
ERRORS_SHOWN = 20
PROGRESS = gr.Progress()
EVAL_CSS = """
#eval-summary table, #eval-failures table { margin-bottom: 10px; }
.eval-head { font-size: 0.95rem; margin: 0 0 8px 0; }
.eval-gate-ok, .eval-gate-ko { padding: 6px 10px; margin-bottom: 8px; border-left: 4px solid; }
.eval-gate-ok { color: #18753c; background: #f0faf3; border-color: #18753c; }
.eval-gate-ko { color: #b30000; background: #fff4f3; border-color: #b30000; }
.docs-table td.ko { color: #b30000; font-weight: 700; }
#eval-summary td:last-child { white-space: nowrap; }
.eval-failure { border: 1px solid #dddddd; border-left: 4px solid #b30000; padding: 8px 10px;
                margin-bottom: 10px; font-size: 0.88rem; }
.eval-failure h4 { margin: 0 0 4px 0; font-size: 0.92rem; }
.eval-failure .cols { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.eval-failure .ok { color: #18753c; font-weight: 700; }
.eval-answer { white-space: pre-wrap; background: #f6f6f6; padding: 4px 6px; }
"""


class EvalRejected(ValueError):
    """The set cannot be run (French message)."""


# The development set: the one the quality thresholds (evals/thresholds.json) were set on.
DEFAULT_SET = "qa.jsonl"


def available_sets(folder: Path = EVALS_DIR) -> list[str]:
    """The names of the ``.jsonl`` sets of ``folder``, sorted."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.glob("*.jsonl") if p.is_file())


class EvaluationTab:
    """The Évaluation tab of ``AssistantApp``."""

    def __init__(self, app: Any, sets_dir: Path = EVALS_DIR) -> None:
        self.app = app  # the AssistantApp: its assistant, settings and export folder
        self.sets_dir = sets_dir

    def build(self) -> None:
        """The tab's content and events (inside ``gr.Tab``)."""
        sets = available_sets(self.sets_dir)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                gr.Markdown(
                    "### Jeu de questions\nChoisissez un jeu du dossier `evals/` ou déposez le vôtre "
                    f"(.jsonl, {SET_MAX_BYTES // (1024 * 1024)} Mo au plus, format décrit dans "
                    "`evals/README.md`). Un fichier déposé remplace le jeu choisi."
                )
                default = DEFAULT_SET if DEFAULT_SET in sets else (sets[0] if sets else None)
                chosen = gr.Dropdown(sets, value=default, label="Jeu du projet", elem_id="eval-set")
                upload = gr.File(
                    label="Ou déposez un jeu (.jsonl)", type="filepath", elem_id="eval-upload", height=120
                )
                mode = gr.Radio(
                    list(EVAL_MODES),
                    value="Recherche",
                    label="Mode",
                    info="Recherche : passages retrouvés · Réponses : réponses et citations du moteur actuel",
                    elem_id="eval-mode",
                )
                gate = gr.Checkbox(
                    value=True, label="Contrôler les seuils de qualité (evals/thresholds.json)"
                )
                run = gr.Button("Lancer l'évaluation", variant="primary", elem_id="eval-run")
            with gr.Column(scale=3, min_width=480):
                status = gr.HTML("", elem_id="eval-status", js_on_load=None)
                summary = gr.HTML("", elem_id="eval-summary", js_on_load=None)
                reports = gr.File(
                    label="Rapports", file_count="multiple", interactive=False, elem_id="eval-reports"
                )
        failures = gr.HTML("", elem_id="eval-failures", js_on_load=None)
        run.click(
            self.run,
            [chosen, upload, mode, gate],
            [status, summary, failures, reports],
            api_name="evaluate",
            **EVAL_SLOT,
        )

    # -- the run -------------------------------------------------------------------------------
    def run(
        self,
        set_name: str | None,
        uploaded: str | None,
        mode_label: str,
        gate: bool,
        progress: gr.Progress = PROGRESS,
    ) -> tuple[str, str, str, list[str] | None]:
        """Run the set; returns (status, summary, failures, [report.html, report.md])."""
        from assistant.evaluation.dataset import DatasetError

        try:
            return self._run(set_name, uploaded, mode_label, gate, progress)
        except (EvalRejected, DatasetError) as error:
            return _error_html(str(error)), "", "", None
        except Exception as error:  # the user reads French; the traceback goes to the log
            log.exception("evaluation failed")
            return _error_html(french_error(error)), "", "", None
        finally:
            # The uploaded copy in Gradio's cache is not kept.
            if uploaded and Path(uploaded).resolve().is_relative_to(self.app.settings.app_temp_dir.resolve()):
                Path(uploaded).unlink(missing_ok=True)

    def _run(
        self, set_name: str | None, uploaded: str | None, mode_label: str, gate: bool, progress: gr.Progress
    ) -> tuple[str, str, str, list[str] | None]:
        from assistant.evaluation.compare import default_thresholds_path
        from assistant.evaluation.dataset import load_cases
        from assistant.evaluation.evaluate import RUN, run_set
        from assistant.evaluation.runs import REPORT_HTML, REPORT_MD, write_run

        mode = EVAL_MODES.get(mode_label)
        if mode is None:
            raise EvalRejected(f"Mode inconnu : « {mode_label} » (attendu : {', '.join(EVAL_MODES)}).")
        folder = self.app.exports.folder()
        set_path = self._set_path(set_name, uploaded, folder)
        cases = load_cases(set_path)
        desc = "Évaluation : " + ("recherche des passages" if mode == "retrieval" else "réponses")

        def report(stage: str, done: int, total: int) -> None:
            if stage == RUN:
                progress((done, total), desc=desc, unit="questions")

        started = time.monotonic()
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run = run_set(
            self.app.assistant,
            cases,
            mode,
            set_path=set_path,
            progress=report,
            thresholds=default_thresholds_path() if gate else None,
            name=f"{set_path.stem}-{mode}-{stamp}",
            command="application web, onglet « Évaluation »",
        )
        progress(None, desc="Rédaction du rapport")
        out = folder / f"evaluation-{set_path.stem}"
        write_run(run, out)
        seconds = f"{time.monotonic() - started:.1f}".replace(".", ",")
        ok = f"Évaluation terminée en {seconds} s : {len(cases)} questions de « {set_path.name} »."
        return (
            f'<div class="msg-ok">{h(ok)}</div>',
            summary_html(run, mode_label, run.gate_error),
            failures_html(run),
            [str(out / REPORT_HTML), str(out / REPORT_MD)],
        )

    def _set_path(self, set_name: str | None, uploaded: str | None, folder: Path) -> Path:
        """The set to run: an uploaded file (checked, copied into ``folder``) or one of ``evals/``."""
        if uploaded:
            source = Path(uploaded)
            name = safe_filename(source.name)
            if Path(name).suffix.lower() != ".jsonl":
                raise EvalRejected(
                    f"« {name} » : un jeu d'évaluation est un fichier .jsonl (une question JSON par "
                    "ligne, format décrit dans evals/README.md)."
                )
            size = source.stat().st_size
            if size > SET_MAX_BYTES:
                megabytes = f"{size / (1024 * 1024):.1f}".replace(".", ",")
                limit = SET_MAX_BYTES // (1024 * 1024)
                raise EvalRejected(
                    f"« {name} » fait {megabytes} Mo : la taille maximale d'un jeu est de {limit} Mo."
                )
            target = folder / name
            shutil.copyfile(source, target)
            return target
        # Only a name offered by the dropdown: never a path sent by the client.
        if not set_name or set_name not in available_sets(self.sets_dir):
            raise EvalRejected("Choisissez un jeu de questions dans la liste, ou déposez un fichier .jsonl.")
        return self.sets_dir / set_name


# -- what the tab shows (every text escaped) ---------------------------------------------------------
def _error_html(message: str) -> str:
    first, *rest = message.splitlines()
    items = [line.strip() for line in rest if line.strip()]
    more = len(items) - ERRORS_SHOWN
    listed = "".join(f"<li>{h(line)}</li>" for line in items[:ERRORS_SHOWN])
    if more > 0:
        listed += f"<li>… et {more} autre(s) ligne(s) invalide(s).</li>"
    return f'<div class="msg-error">{h(first)}' + (f"<ul>{listed}</ul>" if listed else "") + "</div>"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """A table whose cells are already-escaped HTML."""
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f'<table class="docs-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def summary_html(run: Any, mode_label: str, gate_note: str = "") -> str:
    """The headline, the gate outcome, the summary table and the table per question kind."""
    from assistant.evaluation.report import METRIC_LABELS, describe_check, fmt, kind_label
    from assistant.evaluation.runner import shown_keys

    summary = run.summary
    keys = shown_keys(run.mode, summary)
    dataset = run.settings.get("set", {})
    head = (
        f"Jeu « {Path(str(dataset.get('path', '?'))).name} » · mode {mode_label} · "
        f"{summary.get('questions', len(run.results))} questions · {len(run.failures)} en échec"
    )
    backend = (run.settings.get("llm") or {}).get("backend")
    if run.mode == "answer" and backend:
        head += f" · moteur : {backend}"
    parts = [f'<p class="eval-head"><strong>{h(head)}</strong></p>']
    gate = run.info.get("gate")
    checks = {c["metric"]: c for c in (gate or {}).get("checks", [])}
    if gate:
        failed = [c for c in gate["checks"] if not c["ok"]]
        text = (
            f"Contrôle qualité réussi : {len(checks)} seuils respectés."
            if not failed
            else "Contrôle qualité en échec : " + " ; ".join(describe_check(c) for c in failed) + "."
        )
        parts.append(f'<div class="eval-gate-{"ko" if failed else "ok"}">{h(text)}</div>')
    elif gate_note:
        parts.append(f'<div class="eval-gate-ko">{h("Seuils non contrôlés : " + gate_note)}</div>')
    rows = []
    for key in keys:
        check = checks.get(key)
        bad = ' class="ko"' if check and not check["ok"] else ""
        limit = f"{'≥' if check['op'] == 'min' else '≤'} {fmt(check['limit'], key)}" if check else ""
        rows.append(
            [
                f"<td><code>{h(key)}</code></td>",
                f"<td>{h(METRIC_LABELS.get(key, ''))}</td>",
                f"<td{bad}>{h(fmt(summary.get(key), key))}</td>",
                f"<td>{h(limit)}</td>",
            ]
        )
    parts.append(_table(["Métrique", "Signification", "Valeur", "Seuil"], rows))
    kinds = run.by_kind
    parts.append("<p><strong>Par type de question</strong> (« — » : ne s'applique pas à ce type)</p>")
    header = ["Métrique", *(h(kind_label(k)) for k in kinds)]
    parts.append(
        _table(
            header,
            [
                [
                    f"<td><code>{h(key)}</code></td>",
                    *(f"<td>{h(fmt(kinds[k].get(key), key))}</td>" for k in kinds),
                ]
                for key in keys
            ],
        )
    )
    return "".join(parts)


def failures_html(run: Any) -> str:
    """Each failing question: why, what was expected, what came back (the first ones; all in the report)."""
    from assistant.evaluation.report import clip, excerpt, kind_label

    failures = run.failures
    if not failures:
        return '<div class="msg-ok">Aucune question en échec.</div>'
    shown = failures[:FAILURES_SHOWN]
    title = f"Questions en échec ({len(failures)})"
    if len(failures) > len(shown):
        title += f" : les {len(shown)} premières, toutes dans le rapport"
    out = [f"<h3>{h(title)}</h3>"]
    for r in shown:
        out.append(f'<article class="eval-failure"><h4>{h(r["id"])} · {h(kind_label(str(r["kind"])))}</h4>')
        out.append(f"<div><strong>{h(r['question'])}</strong></div>")
        out.append("<ul>" + "".join(f"<li>{h(reason)}</li>" for reason in r.get("reasons", [])) + "</ul>")
        if r.get("answerable"):
            expected = [f"Extrait : « {e} »" for e in r.get("evidence", [])]
            expected += [f"Fait : « {f} »" for f in r.get("facts", [])]
        else:
            expected = ["Un refus : le dossier ne contient pas la réponse."]
        got = []
        if r.get("answer") is not None:
            refused = " (refus)" if r.get("refused") else ""
            got.append(f'Réponse{h(refused)} :<div class="eval-answer">{h(clip(r["answer"], 800))}</div>')
            got += [f"[{h(c.get('marker'))}] {h(c.get('label'))}" + _mark(c) for c in r.get("citations", [])]
        else:
            got += [
                f"{h(p.get('rank'))}. {h(p.get('label'))}{_mark(p)}<br>{h(excerpt(p.get('text', ''), 240))}"
                for p in (r.get("passages") or [])[:3]
            ] or ["Aucun passage."]
        out.append(
            '<div class="cols"><div><em>Attendu</em><ul>'
            + "".join(f"<li>{h(e)}</li>" for e in expected)
            + "</ul></div><div><em>Obtenu</em><ul>"
            + "".join(f"<li>{g}</li>" for g in got)
            + "</ul></div></div></article>"
        )
    return "".join(out)


def _mark(item: dict[str, Any]) -> str:
    return ' <span class="ok">✓ pertinent</span>' if item.get("relevant") else ""
