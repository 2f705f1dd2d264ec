"""The « Comparer » mode measured on a set of themes with expected cells.

    python evals/eval_compare.py evals/compare_dev.jsonl [--out runs/compare-dev.json]
    python evals/eval_compare.py evals/compare_dev.jsonl --curve 1.5,2,2.25,2.5,3

Each theme goes through the assistant's own ``compare`` (the one the app and the CLI call),
with the settings of the environment (default: EmbeddingGemma, the index of ``index/``). Prints
cell precision and recall, empty accuracy, row precision and recall (defined in
``assistant/evaluation/comparisons.py``), then each theme's misses; writes the figures, the
per-theme results and the tables shown as JSON (``--out``). ``--curve`` prints the figures for
several values of ``compare_threshold`` instead: tune on the development set only, and read a
blind set once, at the default.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from assistant.answer.comparison import cell_of
from assistant.evaluation.comparisons import CompareSetError, load_set, score_theme, summary, unknown_excerpts
from assistant.service import Assistant
from assistant.settings import Settings

FIGURES = ("cell_precision", "cell_recall", "empty_accuracy", "row_precision", "row_recall")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("set", type=Path, help="jeu de thèmes (JSONL, voir evals/compare_dev.jsonl)")
    parser.add_argument(
        "--out", type=Path, help="fichier JSON des résultats (défaut : runs/compare-<jeu>.json)"
    )
    parser.add_argument("--curve", help="valeurs du seuil à essayer, séparées par des virgules")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    try:
        themes = load_set(args.set)
    except (OSError, CompareSetError) as exc:
        print(f"Erreur : {exc}", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    assistant = Assistant.open(settings, with_model=False)
    pipeline = assistant.pipeline

    cell_texts: dict[str, list[str]] = {}
    for passage in pipeline.trusted:
        cell = cell_of(passage)
        if cell:
            cell_texts.setdefault("/".join(cell), []).append(passage.text)
    for problem in unknown_excerpts(themes, cell_texts):
        print(f"ERREUR du jeu : {problem}")

    if args.curve:
        print("seuil | " + " | ".join(FIGURES))
        for value in (float(v) for v in args.curve.split(",")):
            pipeline.settings = settings.replace(compare_threshold=value)
            figures = summary([score_theme(t, pipeline.compare(t.theme)) for t in themes])
            print(f"{value:g} | " + " | ".join(f"{figures[f]:.3f}" for f in FIGURES))
        return 0

    results, tables = [], {}
    for theme in themes:
        comparison = pipeline.compare(theme.theme)
        results.append(score_theme(theme, comparison))
        tables[theme.id] = comparison.to_dict()["table"]
    figures = summary(results)
    print(
        f"{args.set} — {figures['themes']} thèmes, embedder {settings.embedder}, "
        f"seuil {settings.compare_threshold:g}"
    )
    for name in FIGURES:
        print(f"  {name:15} {figures[name]:.3f}")
    print(
        f"  cellules remplies {figures['cells_shown']} (attendues {figures['cells_expected']}), "
        f"lignes montrées {figures['rows_shown']}"
    )
    for result in results:
        if result.misses:
            print(f"\n{result.id} « {result.theme} »")
            for miss in result.misses:
                print(f"  {miss}")
    out = args.out or Path("runs") / f"compare-{args.set.stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "set": str(args.set),
                "embedder": settings.embedder,
                "compare_threshold": settings.compare_threshold,
                "summary": figures,
                "themes": [r.to_dict() for r in results],
                "tables": tables,
            },
            ensure_ascii=False,
            indent=1,
        ),
        encoding="utf-8",
    )
    print(f"\nRésultats : {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
