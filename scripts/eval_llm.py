"""The answer evaluation with the local LLM (``make eval-llm``): the whole development set, or
its first ``--limit N`` questions, streamed so that the time to the first token is measured.

    python scripts/eval_llm.py [--limit N | --per-kind N] [--max-tokens 320] [--out runs/llm.json]

Prints, in French, the summary table (the issue's figures), the time to the first token
(médiane, p95) and the generation speed (tokens/s, counted with the model's own tokenizer).
On 2 cores a question takes ~30 s to 1 min: the whole set is long.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.answer.llm import build_chat_model  # noqa: E402
from assistant.answer.model_files import ensure_local_model  # noqa: E402
from assistant.answer.pipeline import AnswerPipeline  # noqa: E402
from assistant.evaluation.answers import ANSWER_KEYS, evaluate_answers, summarize_answers  # noqa: E402
from assistant.evaluation.dataset import load_cases  # noqa: E402
from assistant.evaluation.metrics import percentile  # noqa: E402
from assistant.search.index import CorpusIndex  # noqa: E402
from assistant.search.retrieval import Retriever  # noqa: E402
from assistant.settings import Settings  # noqa: E402

TARGETS = {  # the targets for the local LLM
    "fact_coverage": (">=", 0.85),
    "citation_precision": (">=", 0.90),
    "refusal_accuracy": (">=", 0.95),
    "quote_fidelity": (">=", 1.0),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Évaluation des réponses avec le modèle local.")
    parser.add_argument("qa", nargs="?", default=str(ROOT / "evals" / "qa.jsonl"))
    parser.add_argument("--limit", type=int, default=0, help="seulement les N premières questions")
    parser.add_argument(
        "--per-kind", type=int, default=0, help="seulement les N premières questions de chaque type"
    )
    parser.add_argument("--max-tokens", type=int, default=None, help="jetons générés au plus")
    parser.add_argument("--threads", type=int, default=None, help="fils de calcul du modèle")
    parser.add_argument("--out", default="", help="fichier JSON des résultats détaillés")
    args = parser.parse_args(argv)

    settings = Settings.from_env().replace(llm="local")
    if args.max_tokens:
        settings = settings.replace(llm_max_tokens=args.max_tokens)
    if args.threads:
        settings = settings.replace(llm_threads=args.threads)
    if not settings.llm_model_path:
        settings = settings.replace(llm_model_path=str(ensure_local_model(settings)))
    cases = load_cases(Path(args.qa))
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
    pipeline = AnswerPipeline(settings, Retriever(index, settings), model, status)

    done = [0]

    def tick() -> None:
        done[0] += 1
        print(f"\r{done[0]}/{len(cases)} questions", end="", file=sys.stderr, flush=True)

    results = evaluate_answers(cases, pipeline, tick=tick, stream=True)
    print(file=sys.stderr)
    summary = summarize_answers(results)

    # Generation speed (approximate): tokens the model streamed over the time after its first
    # token (verification and the quoted lines added after it take a few milliseconds).
    speeds = []
    for result in results:
        generate_ms = result.get("latency_ms", 0.0) - result.get("ttft_ms", 0.0)
        if result["refused"] or result["backend"] != "local" or generate_ms <= 0:
            continue
        tokens = len(model.client.tokenize(result.get("generated", "").encode("utf-8"), add_bos=False))
        speeds.append(tokens / (generate_ms / 1000))

    print(
        f"Modèle : {Path(settings.llm_model_path or '').name} ({settings.llm_threads} fils, "
        f"{settings.llm_max_tokens} jetons au plus), chargé en {load_s:.1f} s"
    )
    print(f"Questions : {summary['questions']}  (charge de la machine : {os.getloadavg()[0]:.2f})")
    print()
    print("| mesure | valeur | cible |")
    print("|---|---|---|")
    answerable = sum(1 for r in results if r["answerable"])
    for key in ANSWER_KEYS:
        op, target = TARGETS.get(key, ("", None))
        cible = f"{op} {target}" if target is not None else ""
        empty = (key == "refusal_accuracy" and answerable == len(results)) or (
            key != "refusal_accuracy" and key != "quote_fidelity" and not answerable
        )
        value = "— (aucune question concernée)" if empty else f"{summary[key]:.3f}"
        print(f"| {key} | {value} | {cible} |")
    print(f"| latency_p50_ms | {summary['latency_p50_ms']:.0f} | |")
    print(f"| latency_p95_ms | {summary['latency_p95_ms']:.0f} | |")
    if "ttft_p50_ms" in summary:
        print(f"| premier jeton, médiane (ms) | {summary['ttft_p50_ms']:.0f} | ≤ 10000 |")
        print(f"| premier jeton, p95 (ms) | {summary['ttft_p95_ms']:.0f} | |")
    if speeds:
        print(f"| jetons/s (médiane) | {percentile(speeds, 50):.1f} | |")
    fallbacks = sum(1 for r in results if "extractive_fallback" in r["flags"])
    direct = sum(1 for r in results if "verbatim_listing" in r["flags"])
    print(f"\nRéponses extractives de repli (modèle sans réponse vérifiable) : {fallbacks}")
    print(f"Listes données telles quelles, sans le modèle : {direct}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(
            json.dumps({"summary": summary, "results": results}, ensure_ascii=False, indent=1),
            encoding="utf-8",
        )
        print(f"Résultats détaillés : {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
