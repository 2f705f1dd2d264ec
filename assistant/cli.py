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

from assistant.domain import SCENARIOS, SECTIONS
from assistant.logs import setup_logging
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
    parser.add_argument(
        "--embedder", help="modèle d'embeddings : e5, st:minilm, st:<chemin> (ASSISTANT_EMBEDDER)"
    )
    parser.add_argument("--json", action="store_true", help="sortie JSON")


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenario", action="append", choices=sorted(SCENARIOS), help="restreindre à un scénario (répétable)"
    )
    parser.add_argument(
        "--section", action="append", choices=sorted(SECTIONS), help="restreindre à une section (répétable)"
    )
    parser.add_argument("-k", type=int, help="nombre de passages (défaut : 8)")


def report_index(report: Any, out: Any = None) -> None:
    out = out or sys.stderr
    if report is None:
        print("Index à jour : rien à recalculer.", file=out)
        return
    for notice in report.notices:
        print(notice, file=out)
    print(report.summary_fr(), file=out)
    for duplicate in report.duplicates:
        print(f"  Passages en double : {duplicate}", file=out)
    for error in report.refused:
        print(f"  Refusé : {error}", file=out)
    for name in report.kept_previous:
        print(f"  « {name} » : la version précédente reste indexée.", file=out)


def cmd_index(args: argparse.Namespace) -> int:
    from assistant.search.index import CorpusIndex

    index = CorpusIndex(_settings(args))
    report = (
        index.update(progress=_progress_bar(), force=args.rebuild)
        if args.rebuild or index.state() != "fresh"
        else None
    )
    report_index(report)
    if args.json:
        print(
            json.dumps(
                {
                    "state": index.state(),
                    "documents": index.documents(),
                    "refused": [
                        {"file": e.path.name, "reason": e.reason} for e in (report.refused if report else [])
                    ],
                    "notices": report.notices if report else [],
                    "duplicates": report.duplicates if report else [],
                    "seconds": round(report.seconds, 2) if report else 0.0,
                },
                ensure_ascii=False,
            )
        )
    return 0


def open_assistant(settings: Settings, with_model: bool = True) -> Any:
    """The assistant (index made fresh, with a progress bar and a summary of what changed)."""
    from assistant.service import Assistant

    assistant = Assistant.open(settings, progress=_progress_bar(), with_model=with_model)
    if assistant.index_report is not None:
        report_index(assistant.index_report)
    if assistant.index_notice:
        print(f"Attention : {assistant.index_notice}", file=sys.stderr)
    return assistant


def cmd_search(args: argparse.Namespace) -> int:
    assistant = open_assistant(_settings(args), with_model=False)
    result = assistant.search(args.question, scenarios=args.scenario, sections=args.section, k=args.k)
    if args.json:
        print(
            json.dumps(
                {
                    "question": args.question,
                    "passages": [p.to_dict() for p in result.passages],
                    "timings": result.timings,
                },
                ensure_ascii=False,
            )
        )
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


EVAL_ACTIONS = ("compare", "import-feedback")


def cmd_eval(args: argparse.Namespace) -> int:
    """``assistant eval SET.jsonl``, ``assistant eval compare A B``, ``assistant eval import-feedback``."""
    if args.set == "compare":
        return _eval_compare(args)
    if args.set == "import-feedback":
        return _eval_import_feedback(args)
    if args.paths:
        print(
            f"Erreur : argument(s) inattendu(s) : {' '.join(args.paths)} "
            "(un seul jeu de questions par évaluation).",
            file=sys.stderr,
        )
        return 2
    return _eval_run(args)


def _eval_progress(mode: str) -> Any:
    """``run_set``'s progress as tqdm bars on stderr: the run, then the baseline if asked."""
    from tqdm import tqdm

    from assistant.evaluation.evaluate import BASELINE, BASELINE_INDEX, RUN

    labels = {RUN: "Évaluation des réponses" if mode == "answer" else "Évaluation", BASELINE: "Référence"}
    bars: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage == BASELINE_INDEX:
            print("Référence : construction du pipeline LangChain simple…", file=sys.stderr)
            return
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(
                total=total, desc=labels.get(stage, stage), unit="question", file=sys.stderr
            )
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def _eval_run(args: argparse.Namespace) -> int:
    from assistant.evaluation.compare import (
        ThresholdError,
        default_thresholds_path,
        format_gate,
        load_thresholds,
    )
    from assistant.evaluation.dataset import DatasetError, load_cases
    from assistant.evaluation.evaluate import run_set
    from assistant.evaluation.runner import format_table, shown_keys
    from assistant.evaluation.runs import write_run

    settings = _settings(args)
    set_path = Path(args.set)
    try:
        cases = load_cases(set_path)
    except DatasetError as error:
        print(f"Erreur : {error}", file=sys.stderr)
        return 2
    thresholds = Path(args.thresholds) if args.thresholds else default_thresholds_path()
    if args.gate:
        try:
            load_thresholds(thresholds)  # a bad file is refused before the (long) run
        except ThresholdError as error:
            print(f"Erreur : {error}", file=sys.stderr)
            return 2
    if args.mode == "answer":
        assistant = open_assistant(settings)
        print(f"Modèle : {assistant.model_status}", file=sys.stderr)
    else:
        assistant = open_assistant(settings, with_model=False)
    run = run_set(
        assistant,
        cases,
        args.mode,
        set_path=set_path,
        baseline=args.baseline,
        progress=_eval_progress(args.mode),
        thresholds=thresholds if args.gate else None,
    )
    if args.baseline and args.mode != "retrieval":
        print("--baseline ne s'applique qu'au mode retrieval : ignoré.", file=sys.stderr)
    summary = run.summary
    backend = run.settings.get("llm", {}).get("backend")
    columns = {"assistant" if args.mode == "retrieval" else str(backend): summary}
    if "baseline" in run.info:
        columns["référence"] = run.info["baseline"]
    keys = list(shown_keys(args.mode, summary))
    print(format_table(columns, keys))
    print()
    kinds = run.by_kind
    shown = {k: {m: "—" if v is None else v for m, v in s.items()} for k, s in kinds.items()}
    print(format_table(shown, keys))
    failures = run.failures
    if failures:
        title = (
            "Questions sans passage pertinent dans les 5 premiers"
            if args.mode == "retrieval"
            else "Questions en échec"
        )
        print(f"\n{title} ({len(failures)}) :")
        for r in failures:
            print(f"  {r['id']} [{r['kind']}] {r['question']}")
            if args.mode == "answer":
                for reason in r["reasons"]:
                    print(f"      → {reason}")
    code = 0
    gate: dict[str, Any] | None = run.info.get("gate")
    if run.gate_error:
        print(f"Erreur : {run.gate_error}", file=sys.stderr)
        code = 2
    elif gate is not None:
        code = 0 if gate["passed"] else 1
    if args.out:
        write_run(run, Path(args.out))
        print(f"\nRun écrit dans {args.out} : results.jsonl, summary.json, report.md, report.html")
    if gate is not None:
        print("\n" + format_gate(gate))
    if args.json:
        if "référence" in columns:
            print(json.dumps({"baseline": columns["référence"], "by_kind": kinds}, ensure_ascii=False))
        print(json.dumps(summary, ensure_ascii=False))
    return code


def _eval_compare(args: argparse.Namespace) -> int:
    from assistant.evaluation.compare import (
        ThresholdError,
        compare_runs,
        compare_settings,
        default_thresholds_path,
        format_comparison,
        load_thresholds,
    )
    from assistant.evaluation.runs import RunError, load_run

    if len(args.paths) != 2:
        print(
            "Erreur : « eval compare » attend deux dossiers de runs, la référence puis le nouveau "
            "(assistant eval compare runs/A runs/B).",
            file=sys.stderr,
        )
        return 2
    try:
        first, second = load_run(Path(args.paths[0])), load_run(Path(args.paths[1]))
        path = Path(args.thresholds) if args.thresholds else default_thresholds_path()
        thresholds = load_thresholds(path) if args.thresholds or path.exists() else {}
        max_drop, max_regressions = compare_settings(thresholds)
        if args.max_regressions is not None:
            max_regressions = args.max_regressions
        comparison = compare_runs(first, second, max_drop, max_regressions)
    except (RunError, ThresholdError, ValueError) as error:
        print(f"Erreur : {error}", file=sys.stderr)
        return 2
    print(format_comparison(comparison))
    if args.json:
        print(json.dumps(comparison.to_dict(), ensure_ascii=False))
    return comparison.exit_code


def _case_ids_and_keys(path: Path) -> tuple[list[int], set[str]]:
    """Numeric ids (``q123`` → 123) and (question, history) keys of a JSONL set, read leniently."""
    import re

    from assistant.evaluation.jsonl import jsonl_lines

    numbers: list[int] = []
    keys: set[str] = set()
    if not path.is_file():
        return numbers, keys
    for line in jsonl_lines(path.read_text(encoding="utf-8")):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        match = re.fullmatch(r"q(\d+)", str(obj.get("id", "")))
        if match:
            numbers.append(int(match.group(1)))
        question = str(obj.get("question", "")).strip()
        keys.add(json.dumps([question, obj.get("history") or []], ensure_ascii=False))
    return numbers, keys


def _eval_import_feedback(args: argparse.Namespace) -> int:
    from assistant.evaluation.feedback import FeedbackError, load_feedback, negative_to_cases
    from assistant.settings import PROJECT_ROOT

    if len(args.paths) > 1:
        print("Erreur : « eval import-feedback » prend au plus un fichier d'avis.", file=sys.stderr)
        return 2
    source = Path(args.paths[0]) if args.paths else _settings(args).feedback_path
    if not source.is_file():
        print(f"Erreur : fichier d'avis introuvable : {source}", file=sys.stderr)
        return 2
    try:
        entries = load_feedback(source)
    except (FeedbackError, UnicodeDecodeError) as error:
        print(f"Erreur : {error}", file=sys.stderr)
        return 2
    out = Path(args.out or "evals/drafts.jsonl")
    reference = Path("evals/qa.jsonl")
    if not reference.is_file():
        reference = PROJECT_ROOT / "evals" / "qa.jsonl"
    set_ids, set_keys = _case_ids_and_keys(reference)
    draft_ids, draft_keys = _case_ids_and_keys(out)
    drafts = negative_to_cases(entries)
    known = set_keys | draft_keys
    fresh = [
        d
        for d in drafts
        if json.dumps([d["question"], d.get("history") or []], ensure_ascii=False) not in known
    ]
    next_id = max([*set_ids, *draft_ids, 0]) + 1
    for offset, draft in enumerate(fresh):
        draft["id"] = f"q{next_id + offset:03d}"
    if fresh:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a", encoding="utf-8") as handle:
            for draft in fresh:
                handle.write(json.dumps(draft, ensure_ascii=False) + "\n")
    negatives = sum(1 for e in entries if e.get("rating") == "down")
    print(
        f"{len(entries)} avis lus dans {source}, dont {negatives} 👎 : {len(fresh)} brouillon(s) ajouté(s) "
        f"à {out}"
        + (
            f" ({len(drafts) - len(fresh)} déjà présent(s) dans le jeu ou les brouillons)"
            if len(drafts) > len(fresh)
            else ""
        )
        + "."
    )
    if fresh:
        print(
            "À compléter avant d'entrer dans le jeu : « evidence » et « facts » copiés du dossier (ou "
            "« kind »: « unanswerable », « answerable »: false), puis retirer la clé « _feedback » et "
            "lancer python3 evals/check_set.py (voir evals/README.md)."
        )
    if args.json:
        print(
            json.dumps(
                {
                    "source": str(source),
                    "out": str(out),
                    "entries": len(entries),
                    "negative": negatives,
                    "added": [d["id"] for d in fresh],
                    "skipped": len(drafts) - len(fresh),
                },
                ensure_ascii=False,
            )
        )
    return 0


def _add_llm(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--llm",
        choices=["auto", "local", "openai", "extractive"],
        help="modèle de langage : auto (défaut), local, openai ou extractive (ASSISTANT_LLM)",
    )


def _print_sources(answer: Any) -> None:
    if answer.citations:
        print("\nSources :")
    for citation in answer.citations:
        page = f", p. {citation.passage.page}" if citation.passage.page else ""
        print(f"[{citation.marker}] {citation.passage.label}{page}")
        print(f"    « {citation.span} »")
    for notice in answer.notices:
        print(f"\nNote : {notice}")


def cmd_ask(args: argparse.Namespace) -> int:
    from assistant.answer.errors import QuestionError
    from assistant.answer.pipeline import AnswerEvent, SentenceEvent, VerbatimEvent
    from assistant.answer.presentation import method_line, understood_line
    from assistant.answer.synthesis import SYNTHESIS_LEAD

    assistant = open_assistant(_settings(args))
    print(f"Réponses : {method_line(assistant.pipeline.backend)}.", file=sys.stderr)
    answer = None
    synthesis = False
    try:
        for event in assistant.stream(args.question, scenarios=args.scenario, sections=args.section):
            if args.json:
                answer = event.answer if isinstance(event, AnswerEvent) else answer
            elif isinstance(event, VerbatimEvent):
                # The dossier's lines first, at once; a synthesis, if any, follows sentence by
                # sentence, each one verified before it is printed.
                print("\n\n".join(p for p in (event.answer.lead, event.answer.body, event.answer.gap) if p))
                if line := understood_line(event.answer):
                    print(f"\n({line})")
            elif isinstance(event, SentenceEvent):
                if not synthesis:
                    print(f"\n{SYNTHESIS_LEAD}\n")
                    synthesis = True
                print(event.text, end=" ", flush=True)
            elif isinstance(event, AnswerEvent):
                answer = event.answer
    except QuestionError as error:
        print(f"Erreur : {error}", file=sys.stderr)
        return 2
    assert answer is not None
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False))
        return 0
    if synthesis:
        print()
    _print_sources(answer)
    print(f"({answer.timings.get('total_ms', 0):.0f} ms)", file=sys.stderr)
    return 0


def cmd_quote(args: argparse.Namespace) -> int:
    from assistant.answer.errors import QuestionError
    from assistant.answer.quotes import QUOTES_K, quotes_to_csv, quotes_to_markdown

    # Quotes and comparisons are verbatim: no language model is loaded for them.
    assistant = open_assistant(_settings(args), with_model=False)
    try:
        k = args.k or QUOTES_K
        results = assistant.quote(args.request, scenarios=args.scenario, sections=args.section, k=k)
    except QuestionError as error:
        print(f"Erreur : {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([r.to_dict() for r in results], ensure_ascii=False))
    elif not results:
        print("Aucun passage trouvé.")
    else:
        print(quotes_to_csv(results) if args.format == "csv" else quotes_to_markdown(results), end="")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from assistant.answer.errors import QuestionError

    assistant = open_assistant(_settings(args), with_model=False)
    try:
        comparison = assistant.compare(args.theme, scenarios=args.scenario)
    except QuestionError as error:
        print(f"Erreur : {error}", file=sys.stderr)
        return 2
    print(json.dumps(comparison.to_dict(), ensure_ascii=False) if args.json else comparison.to_markdown())
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

    evaluate = commands.add_parser(
        "eval",
        help="évaluer sur un jeu de questions (JSONL), comparer deux runs, importer les avis 👎",
        description="Évaluer l'assistant sur un jeu de questions, comparer deux runs ou transformer "
        "les avis 👎 en brouillons de cas (voir evals/README.md).",
        epilog="exemples :\n"
        "  assistant eval evals/qa.jsonl --mode retrieval --out runs/r1 --gate\n"
        "  assistant eval evals/qa.jsonl --mode answer --llm extractive --out runs/a1 --gate\n"
        "  assistant eval compare runs/r0 runs/r1 [--max-regressions N] [--json]\n"
        "  assistant eval import-feedback [feedback/feedback.jsonl] --out evals/drafts.jsonl\n"
        "(pour compare et import-feedback, les options viennent après les chemins)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument(
        "set", metavar="JEU", help="fichier JSONL (voir evals/README.md), « compare » ou « import-feedback »"
    )
    evaluate.add_argument(
        "paths",
        nargs="*",
        metavar="CHEMIN",
        help="compare : les dossiers des deux runs (référence puis nouveau) ; "
        "import-feedback : le fichier d'avis (défaut : ASSISTANT_FEEDBACK_PATH)",
    )
    evaluate.add_argument(
        "--mode",
        choices=["retrieval", "answer"],
        default="retrieval",
        help="retrieval : passages retrouvés (défaut) ; answer : réponses et citations",
    )
    evaluate.add_argument("--baseline", action="store_true", help="comparer à un pipeline LangChain simple")
    evaluate.add_argument(
        "--out",
        help="dossier du run à écrire (runs/NOM : résultats, résumé, rapports) ; "
        "import-feedback : fichier des brouillons (défaut : evals/drafts.jsonl)",
    )
    evaluate.add_argument(
        "--gate", action="store_true", help="code de sortie 1 si une métrique est hors seuil"
    )
    evaluate.add_argument("--thresholds", help="fichier de seuils (défaut : evals/thresholds.json)")
    evaluate.add_argument(
        "--max-regressions",
        type=int,
        help="compare : questions en régression tolérées (défaut : fichier de seuils, sinon 0)",
    )
    _add_common(evaluate)
    _add_llm(evaluate)
    evaluate.set_defaults(func=cmd_eval)

    ask = commands.add_parser("ask", help="poser une question sur le dossier (réponse citée)")
    ask.add_argument("question")
    _add_common(ask)
    _add_llm(ask)
    ask.add_argument(
        "--scenario", action="append", choices=sorted(SCENARIOS), help="restreindre à un scénario (répétable)"
    )
    ask.add_argument(
        "--section", action="append", choices=sorted(SECTIONS), help="restreindre à une section (répétable)"
    )
    ask.set_defaults(func=cmd_ask)

    quote = commands.add_parser("quote", help="citations textuelles avec leur référence (Markdown ou CSV)")
    quote.add_argument("request")
    _add_common(quote)
    _add_filters(quote)
    quote.add_argument("--format", choices=["md", "csv"], default="md", help="format de sortie (défaut : md)")
    quote.set_defaults(func=cmd_quote)

    compare = commands.add_parser("compare", help="comparer les scénarios sur un thème (tableau cité)")
    compare.add_argument("theme")
    _add_common(compare)
    compare.add_argument(
        "--scenario",
        action="append",
        choices=["cmvrh", "entpe", "uge"],
        help="scénarios à comparer (répétable ; défaut : les trois)",
    )
    compare.set_defaults(func=cmd_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.INFO if args.verbose else logging.WARNING
    try:  # one line per error on stderr, the traceback in the log file
        setup_logging(Settings.from_env(), level)
    except SettingsError:  # the command reports the bad setting itself
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
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
