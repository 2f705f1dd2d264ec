"""The ``assistant`` command: index, search, eval (and the answer commands).

Every option that has a setting also reads its environment variable (through ``Settings``);
flags win. Output is French; ``--json`` prints machine-readable results, the last line of
stdout being one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from assistant.schema import SCENARIOS, SECTIONS
from assistant.settings import Settings, SettingsError

log = logging.getLogger("assistant")


def _progress_bar(desc: str = "Indexation") -> Any:
    from tqdm import tqdm

    state: dict[str, Any] = {}

    def update(done: int, total: int, message: str) -> None:
        bar = state.get("bar")
        if bar is None and total:
            bar = state["bar"] = tqdm(total=total, desc=message or desc, unit="passage", file=sys.stderr)
        if bar is not None:
            bar.n = done
            bar.refresh()
            if done >= total:
                bar.close()

    return update


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env().replace(
        corpus_dir=getattr(args, "corpus", None),
        index_dir=getattr(args, "index", None),
        embedder=getattr(args, "embedder", None),
        llm=getattr(args, "llm", None),
        top_k=getattr(args, "k", None),
    )
    settings.validate()
    return settings


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", help="dossier du corpus (ASSISTANT_CORPUS_DIR, défaut : corpus/)")
    parser.add_argument("--index", help="dossier de l'index (ASSISTANT_INDEX_DIR, défaut : index/)")
    parser.add_argument("--embedder", help="modèle d'embeddings : e5, st:minilm, st:<chemin> (ASSISTANT_EMBEDDER)")
    parser.add_argument("--json", action="store_true", help="sortie JSON")


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                        help="restreindre à un scénario (répétable)")
    parser.add_argument("--section", action="append", choices=sorted(SECTIONS),
                        help="restreindre à une section (répétable)")
    parser.add_argument("-k", type=int, help="nombre de passages (défaut : 8)")


def report_index(report: Any, out: Any = sys.stderr) -> None:
    if report is None:
        print("Index à jour : rien à recalculer.", file=out)
        return
    parts = []
    for label, names in (("ajouté(s)", report.added), ("mis à jour", report.updated),
                         ("retiré(s)", report.removed), ("inchangé(s)", report.unchanged)):
        if names:
            parts.append(f"{len(names)} {label}")
    print(f"Index construit en {report.seconds:.1f} s : {', '.join(parts) or 'aucun document'} ; "
          f"{report.total_chunks} passages dont {report.embedded_chunks} calculés.", file=out)
    for error in report.refused:
        print(f"  Refusé : {error}", file=out)
    for name in report.kept_previous:
        print(f"  « {name} » : la version précédente reste indexée.", file=out)


def cmd_index(args: argparse.Namespace) -> int:
    from assistant.index import CorpusIndex

    index = CorpusIndex(_settings(args))
    report = index.update(progress=_progress_bar(), force=args.rebuild) if args.rebuild or index.state() != "fresh" else None
    report_index(report)
    if args.json:
        print(json.dumps({
            "state": index.state(), "documents": index.documents(),
            "refused": [{"file": e.path.name, "reason": e.reason} for e in (report.refused if report else [])],
            "seconds": round(report.seconds, 2) if report else 0.0,
        }, ensure_ascii=False))
    return 0


def open_retriever(settings: Settings) -> Any:
    from assistant.index import CorpusIndex
    from assistant.retrieval import Retriever

    index = CorpusIndex(settings)
    report = index.ensure(progress=_progress_bar())
    if report is not None:
        report_index(report)
    return Retriever(index, settings)


def cmd_search(args: argparse.Namespace) -> int:
    settings = _settings(args)
    retriever = open_retriever(settings)
    result = retriever.search(args.question, scenarios=args.scenario, sections=args.section, k=args.k)
    if args.json:
        print(json.dumps({"question": args.question, "passages": [p.to_dict() for p in result.passages],
                          "timings": result.timings}, ensure_ascii=False))
        return 0
    if not result.passages:
        print("Aucun passage trouvé.")
    for passage in result.passages:
        page = f", p. {passage.page}" if passage.page else ""
        print(f"[{passage.rank}] {passage.label}{page}  (score {passage.score:.4f})")
        for line in passage.text.splitlines():
            print(f"    {line}")
        print()
    print(f"({result.timings['total_ms']:.0f} ms)", file=sys.stderr)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from assistant.evaluation.dataset import DatasetError, load_cases
    from assistant.evaluation.runner import (
        RETRIEVAL_KEYS,
        BaselinePipeline,
        by_kind,
        evaluate_retrieval,
        format_table,
        summarize,
    )
    from assistant.index import corpus_files

    settings = _settings(args)
    try:
        cases = load_cases(Path(args.set))
    except DatasetError as error:
        print(f"Erreur : {error}", file=sys.stderr)
        return 2
    retriever = open_retriever(settings)

    def search(case: Any) -> list[str]:
        result = retriever.search(case.question, history=case.history, k=10)
        return [p.text for p in result.passages]

    with tqdm(total=len(cases), desc="Évaluation", unit="question", file=sys.stderr) as bar:
        results = evaluate_retrieval(cases, search, tick=bar.update)
    summary = summarize(results)
    columns = {"assistant": summary}
    if args.baseline:
        raw = [(p.name, p.read_text(encoding="utf-8", errors="replace"))
               for p in corpus_files(settings.corpus_dir) if p.suffix.lower() in {".md", ".txt"}]
        print("Référence : construction du pipeline LangChain simple…", file=sys.stderr)
        baseline = BaselinePipeline(raw, retriever.embeddings)
        with tqdm(total=len(cases), desc="Référence", unit="question", file=sys.stderr) as bar:
            columns["référence"] = summarize(evaluate_retrieval(cases, baseline.search, tick=bar.update))
    keys = [*RETRIEVAL_KEYS, "latency_p50_ms", "latency_p95_ms", "questions"]
    print(format_table(columns, keys))
    print()
    kinds = by_kind(results)
    print(format_table(kinds, keys))
    failures = [r for r in results if r.get("answerable") and r.get("hit@5", 0.0) < 1.0]
    if failures:
        print(f"\nQuestions sans passage pertinent dans les 5 premiers ({len(failures)}) :")
        for r in failures:
            print(f"  {r['id']} [{r['kind']}] {r['question']}")
    if args.json:
        if args.baseline:
            print(json.dumps({"baseline": columns["référence"], "by_kind": kinds}, ensure_ascii=False))
        print(json.dumps(summary, ensure_ascii=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assistant", description="Assistant sur le dossier du CMA : indexation, recherche, évaluation."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="journal détaillé (anglais)")
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="construire ou mettre à jour l'index du corpus")
    _add_common(index)
    index.add_argument("--rebuild", action="store_true", help="tout recalculer")
    index.set_defaults(func=cmd_index)

    search = commands.add_parser("search", help="chercher les passages du dossier")
    search.add_argument("question")
    _add_common(search)
    _add_filters(search)
    search.set_defaults(func=cmd_search)

    evaluate = commands.add_parser("eval", help="évaluer sur un jeu de questions (JSONL)")
    evaluate.add_argument("set", help="fichier JSONL (voir evals/README.md)")
    evaluate.add_argument("--mode", choices=["retrieval"], default="retrieval")
    evaluate.add_argument("--baseline", action="store_true", help="comparer à un pipeline LangChain simple")
    _add_common(evaluate)
    evaluate.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except SettingsError as error:
        print(f"Erreur de configuration : {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrompu.", file=sys.stderr)
        return 130
    except Exception as error:  # the user reads French; the traceback goes to the log
        log.debug("unexpected error", exc_info=True)
        message = str(error) if any(c in str(error) for c in "éèàç«") else f"erreur inattendue ({error})"
        print(f"Erreur : {message}", file=sys.stderr)
        return 1
