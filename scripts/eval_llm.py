"""The answer evaluation with the local LLM (``make eval-llm``): the whole development set, its
first ``--limit N`` questions, or the first ``--per-kind N`` questions of each kind.

    python scripts/eval_llm.py [--limit N | --per-kind N] [--max-tokens 320] [--out runs/llm-local]
                               [--thresholds evals/thresholds.json] [--gate]

The run is the one ``assistant eval --mode answer --llm local`` makes
(``evaluation.evaluate.run_set``: the answers are streamed, so the time to the first token is
measured), checked against the ``answer.local`` thresholds of ``evals/thresholds.json`` (the
issue's targets for the local model). The same questions are also answered by the extractive
backend, printed beside: on a subset (``--limit``, ``--per-kind``), facts and citations are gated
on those figures (the issue's target: at least the extractive backend's), the file's floors being
the whole set's. Prints, in French, the summary table with each target, the time to the first
token (médiane, p95), the generation speed (tokens/s, counted with the model's own tokenizer) and
the gate's verdict; ``--out`` writes the run folder (results, summary, reports) that ``assistant
eval compare`` reads; ``--gate`` exits with 1 when a target is missed. On 2 cores (02/12/2026) a question took
1.5 s (median) to 9.4 s (p95) with its synthesis: 35 questions in about 4 minutes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.answer.llm import build_chat_model  # noqa: E402
from assistant.answer.model_files import ensure_local_model  # noqa: E402
from assistant.evaluation.answers import ANSWER_KEYS  # noqa: E402
from assistant.evaluation.compare import (  # noqa: E402
    ThresholdError,
    check_gate,
    default_thresholds_path,
    format_gate,
    gate_limits,
    load_thresholds,
)
from assistant.evaluation.dataset import load_cases  # noqa: E402
from assistant.evaluation.evaluate import run_set  # noqa: E402
from assistant.evaluation.runs import write_run  # noqa: E402
from assistant.search.index import CorpusIndex  # noqa: E402
from assistant.service import Assistant  # noqa: E402
from assistant.settings import Settings  # noqa: E402

BACKEND = "local"
# Compared with the extractive backend on the same questions when the run is a subset.
SAME_QUESTIONS = ("fact_coverage", "citation_precision")


def target(limits: dict[str, dict[str, float]], key: str) -> str:
    """« ≥ 0.85 » / « ≤ 10000 » from the thresholds file, « » when there is none."""
    rule = limits.get(key, {})
    return " ".join(f"{'≥' if op == 'min' else '≤'} {rule[op]:g}" for op in ("min", "max") if op in rule)


def progress(stage: str, done: int, total: int) -> None:
    if done:
        print(f"\r{done}/{total} questions", end="", file=sys.stderr, flush=True)
    if done >= total:
        print(file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Évaluation des réponses avec le modèle local.")
    parser.add_argument("qa", nargs="?", default=str(ROOT / "evals" / "qa.jsonl"))
    parser.add_argument("--limit", type=int, default=0, help="seulement les N premières questions")
    parser.add_argument(
        "--per-kind", type=int, default=0, help="seulement les N premières questions de chaque type"
    )
    parser.add_argument("--max-tokens", type=int, default=None, help="jetons générés au plus")
    parser.add_argument("--threads", type=int, default=None, help="fils de calcul du modèle")
    parser.add_argument("--out", default="", help="dossier du run à écrire (résultats, résumé, rapports)")
    parser.add_argument("--thresholds", default="", help="fichier de seuils (défaut : evals/thresholds.json)")
    parser.add_argument("--gate", action="store_true", help="code de sortie 1 si une cible n'est pas tenue")
    args = parser.parse_args(argv)

    thresholds = Path(args.thresholds) if args.thresholds else default_thresholds_path()
    try:
        limits = gate_limits(load_thresholds(thresholds), "answer", BACKEND)
    except ThresholdError as error:
        print(f"Erreur : {error}", file=sys.stderr)
        return 2
    settings = Settings.from_env().replace(llm=BACKEND)
    if args.max_tokens:
        settings = settings.replace(llm_max_tokens=args.max_tokens)
    if args.threads:
        settings = settings.replace(llm_threads=args.threads)
    if not settings.llm_model_path:
        settings = settings.replace(llm_model_path=str(ensure_local_model(settings)))
    set_path = Path(args.qa)
    cases = load_cases(set_path)
    if args.per_kind:
        taken: dict[str, int] = {}
        kept = []
        for case in cases:
            if taken.get(case.kind, 0) < args.per_kind:
                kept.append(case)
                taken[case.kind] = taken.get(case.kind, 0) + 1
        cases = kept
    if args.limit:
        cases = cases[: args.limit]

    index = CorpusIndex(settings)
    index.ensure()
    started = time.perf_counter()
    model, status = build_chat_model(settings)
    if model is None:
        print(f"Modèle local indisponible : {status}", file=sys.stderr)
        return 1
    load_s = time.perf_counter() - started
    assistant = Assistant(settings, index, model, status)
    command = " ".join(["python", "scripts/eval_llm.py", *(sys.argv[1:] if argv is None else argv)])
    run = run_set(
        assistant,
        cases,
        "answer",
        set_path=set_path,
        progress=progress,
        thresholds=thresholds,
        command=command,
    )
    results, summary = run.results, run.summary
    # The target for the model: facts and citations at least the extractive backend's
    # on the same questions. Measured here rather than read from the thresholds file, whose
    # floors are the whole set's: on a subset (--limit, --per-kind) they are another set's.
    verbatim_only = Assistant(settings.replace(llm="extractive"), index)
    extractive = run_set(verbatim_only, cases, "answer", set_path=set_path).summary
    subset = bool(args.limit or args.per_kind)
    if subset and run.info.get("gate"):
        same = {key: {"min": float(extractive[key])} for key in SAME_QUESTIONS if key in extractive}
        checks = check_gate(summary, {**limits, **same})
        run.info["gate"] = {**run.info["gate"], "passed": all(c["ok"] for c in checks), "checks": checks}

    print(
        f"Modèle : {Path(settings.llm_model_path or '').name} ({settings.llm_threads} fils, "
        f"{settings.llm_max_tokens} jetons au plus), chargé en {load_s:.1f} s"
    )
    print(f"Questions : {summary['questions']}  (charge de la machine : {os.getloadavg()[0]:.2f})")
    print()
    print("| mesure | modèle local | extractif, mêmes questions | cible |")
    print("|---|---|---|---|")
    answerable = sum(1 for r in results if r["answerable"])
    for key in ANSWER_KEYS:
        empty = (key == "refusal_accuracy" and answerable == len(results)) or (
            key != "refusal_accuracy" and key != "quote_fidelity" and not answerable
        )
        value = "— (aucune question concernée)" if empty else f"{summary[key]:.3f}"
        plain = "—" if empty else f"{extractive[key]:.3f}"
        same = subset and key in SAME_QUESTIONS
        goal = f"≥ extractif ({extractive[key]:.3f})" if same else target(limits, key)
        print(f"| {key} | {value} | {plain} | {goal} |")
    timings = {
        "verbatim_p50_ms": "réponse mot pour mot, médiane (ms)",
        "verbatim_p95_ms": "réponse mot pour mot, p95 (ms)",
        "latency_p50_ms": "réponse entière avec synthèse, médiane (ms)",
        "latency_p95_ms": "réponse entière avec synthèse, p95 (ms)",
        "ttft_p50_ms": "premier jeton, médiane (ms)",
        "ttft_p95_ms": "premier jeton, p95 (ms)",
    }
    for key, label in timings.items():
        if key in summary:
            plain = f"{extractive[key]:.0f}" if key.startswith("verbatim") and key in extractive else "—"
            print(f"| {label} | {summary[key]:.0f} | {plain} | {target(limits, key)} |")
    if "synthesis_kept_share" in summary:
        share, goal = summary["synthesis_kept_share"], target(limits, "synthesis_kept_share")
        print(f"| phrases de synthèse vérifiées et gardées | {share:.3f} | — | {goal} |")
    with_synthesis = sum(1 for r in results if r.get("synthesis_kept"))
    asked = sum(1 for r in results if "synthesis_checked" in r or "llm_timeout" in r["flags"])
    timeouts = sum(1 for r in results if "llm_timeout" in r["flags"])
    direct = sum(1 for r in results if "verbatim_listing" in r["flags"])
    refused = sum(1 for r in results if r["refused"])
    print(f"\nRéponses avec une synthèse vérifiée : {with_synthesis} sur {asked} soumises au modèle")
    print(f"Synthèses interrompues par le délai : {timeouts}")
    print(f"Listes et refus donnés sans le modèle : {direct} listes, {refused} refus")
    gate = run.info.get("gate")
    print("\n" + (format_gate(gate) if gate else f"Seuils non contrôlés : {run.gate_error}"))
    if args.out:
        write_run(run, Path(args.out))
        print(f"Run écrit dans {args.out} : results.jsonl, summary.json, report.md, report.html")
    return 1 if args.gate and not (gate and gate["passed"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
