"""Evaluation: every metric on hand-made cases, the runner's summary, and ``assistant eval``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from assistant import cli
from assistant.evaluation.dataset import KINDS, Case, DatasetError, load_cases
from assistant.evaluation.metrics import (
    citation_precision,
    evidence_recall_at,
    fact_coverage,
    first_relevant_rank,
    hit_at,
    mean,
    mrr_at,
    ndcg_at,
    percentile,
    quote_fidelity,
    relevant,
    retrieval_metrics,
)
from assistant.evaluation.runner import RETRIEVAL_KEYS, by_kind, evaluate_retrieval, format_table, summarize
from assistant.settings import Settings
from assistant.text import clean_markup, contains, match_key
from tests.conftest import CORPUS_SOURCE, PROJECT_ROOT

SUMMARY_KEYS = {
    "hit@1",
    "hit@5",
    "mrr@10",
    "ndcg@10",
    "evidence_recall@5",
    "latency_p50_ms",
    "latency_p95_ms",
    "questions",
}
A = "Environ 780 k€ de masse salariale chargée"
B = "Résidence administrative à proximité d'Aix et Valenciennes"
C = "Le CIPEN est composé de 70 agents"
NOISE = [
    "Gouvernance — Liens et modalités à redéfinir.",
    "Culture de l'innovation.",
    "Projets à l'international.",
]


def _inv_log2(rank: int) -> float:
    return 1.0 / math.log2(rank + 1)


# ------------------------------------------------------------------ matching rule


def test_matching_rule_ignores_case_and_punctuation_but_not_accents() -> None:
    assert match_key("Vaulx-en-Velin, 28/07/2014 : « Centrif' » !") == "vaulxenvelin28072014centrif"
    assert contains("… à VAULX EN VELIN (28-07-2014) …", "Vaulx-en-Velin, 28/07/2014")
    assert not contains("A redefinir.", "À redéfinir.")  # accents are kept
    assert not contains("anything", "  ,;  ")  # an excerpt with no letters matches nothing
    assert relevant(f"Finances — {A} + budget.", [C, A])
    assert not relevant("Finances — budget.", [C, A])


# ------------------------------------------------------------------ retrieval metrics


def test_hit_at_k() -> None:
    assert hit_at([A, *NOISE], [A], 1) == 1.0
    assert hit_at([], [A], 5) == 0.0
    assert hit_at([*NOISE, A], [A], 1) == 0.0
    assert hit_at([*NOISE, A], [A], 4) == 1.0
    assert hit_at([*NOISE, NOISE[0], A], [A], 4) == 0.0  # rank 5 is not in the top 4


def test_first_relevant_rank() -> None:
    assert first_relevant_rank([*NOISE, A, B], [B, A]) == 4
    assert first_relevant_rank(NOISE, [A]) is None


def test_mrr() -> None:
    assert mrr_at([A], [A]) == 1.0
    assert mrr_at([], [A]) == 0.0
    assert mrr_at([NOISE[0], NOISE[1], A], [A]) == pytest.approx(1 / 3)
    assert mrr_at([*NOISE, A], [A], k=3) == 0.0


def test_ndcg() -> None:
    assert ndcg_at([A, B], [A, B]) == 1.0
    assert ndcg_at([], [A, B]) == 0.0
    assert ndcg_at([A], []) == 0.0
    # relevant at ranks 2 and 4 of two excerpts: (1/log2 3 + 1/log2 5) / (1 + 1/log2 3)
    expected = (_inv_log2(2) + _inv_log2(4)) / (_inv_log2(1) + _inv_log2(2))
    assert ndcg_at([NOISE[0], A, NOISE[1], B], [A, B]) == pytest.approx(expected)
    assert ndcg_at([NOISE[0], A, NOISE[1], B], [A, B]) == pytest.approx(0.650921, abs=1e-6)
    # repeating an excerpt gains nothing: A, A, B scores below A, B
    assert ndcg_at([A, A, B], [A, B]) == pytest.approx((1 + _inv_log2(3)) / (1 + _inv_log2(2)))
    assert ndcg_at([A, A, B], [A, B]) < ndcg_at([A, B], [A, B])
    # one passage bringing both excerpts is perfect, and never above 1
    assert ndcg_at([f"{A}. {B}."], [A, B]) == pytest.approx(1 / (1 + _inv_log2(2)))
    assert ndcg_at([A, f"{A} {B}", B], [A, B]) <= 1.0


def test_evidence_recall() -> None:
    assert evidence_recall_at([A, B, C], [A, B, C]) == 1.0
    assert evidence_recall_at([], [A]) == 0.0
    assert evidence_recall_at([A], []) == 0.0
    assert evidence_recall_at([A, *NOISE, C], [A, B, C]) == pytest.approx(2 / 3)
    assert evidence_recall_at([A, *NOISE, NOISE[0], C], [A, B, C]) == pytest.approx(1 / 3)  # C at rank 6


def test_retrieval_metrics_bundle() -> None:
    metrics = retrieval_metrics([NOISE[0], A, NOISE[1], B], [A, B])
    assert set(metrics) == set(RETRIEVAL_KEYS)
    assert metrics["hit@1"] == 0.0 and metrics["hit@5"] == 1.0
    assert metrics["mrr@10"] == 0.5
    assert metrics["evidence_recall@5"] == 1.0
    assert metrics["ndcg@10"] == pytest.approx(0.650921, abs=1e-6)


# ------------------------------------------------------------------ answer metrics and helpers


def test_fact_coverage() -> None:
    assert fact_coverage("Le coût est de 780 k€, à Vaulx-en-Velin.", ["780 k€", "Vaulx-en-Velin"]) == 1.0
    assert fact_coverage("", ["780 k€"]) == 0.0
    assert fact_coverage("Rien.", []) == 0.0
    assert fact_coverage("Le COSA se réunit.", ["COSA", "CIPEN", "MENTOR"]) == pytest.approx(1 / 3)


def test_citation_precision() -> None:
    assert citation_precision([A, B], [A, B]) == 1.0
    assert citation_precision([], [A]) is None
    assert citation_precision(NOISE, [A]) == 0.0
    assert citation_precision([A, *NOISE], [A]) == pytest.approx(1 / 4)


def test_quote_fidelity() -> None:
    corpus = [f"Finances — {A} + budget.", C]
    assert quote_fidelity(["masse salariale chargée", "composé de 70 agents"], corpus) == 1.0
    assert quote_fidelity([], corpus) is None
    assert quote_fidelity(["une phrase inventée"], corpus) == 0.0
    assert quote_fidelity(["masse salariale", "masse salariale brute"], corpus) == 0.5


def test_percentile() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([4, 1, 3, 2], 50) == 2.5
    values = list(range(1, 21))  # 1..20
    assert percentile(values, 95) == pytest.approx(19.05)
    assert percentile(values, 0) == 1 and percentile(values, 100) == 20
    assert percentile([10, 20, 30], 95) == pytest.approx(29.0)


def test_mean() -> None:
    assert mean([]) == 0.0
    assert mean([1.0, 0.0, 0.5]) == 0.5


# ------------------------------------------------------------------ runner


def _result(kind: str, answerable: bool, latency: float, **metrics: float) -> dict:
    result = {"id": kind, "kind": kind, "question": "?", "answerable": answerable, "latency_ms": latency}
    return result | metrics


def test_summarize_means_answerable_questions_and_latencies_of_all() -> None:
    full = dict.fromkeys(RETRIEVAL_KEYS, 1.0)
    half = {"hit@1": 0.0, "hit@5": 1.0, "mrr@10": 0.5, "ndcg@10": 0.5, "evidence_recall@5": 0.5}
    results = [
        _result("fact", True, 10.0, **full),
        _result("paraphrase", True, 30.0, **half),
        _result("unanswerable", False, 20.0),
    ]
    summary = summarize(results)
    assert set(summary) == SUMMARY_KEYS
    assert summary["hit@1"] == 0.5 and summary["hit@5"] == 1.0
    assert summary["mrr@10"] == 0.75 and summary["evidence_recall@5"] == 0.75
    assert summary["latency_p50_ms"] == 20.0 and summary["latency_p95_ms"] == 29.0
    assert summary["questions"] == 3
    kinds = by_kind(results)
    assert list(kinds) == ["fact", "paraphrase", "unanswerable"]
    assert kinds["paraphrase"]["mrr@10"] == 0.5 and kinds["unanswerable"]["questions"] == 1
    assert kinds["unanswerable"]["hit@5"] == 0.0


def test_evaluate_retrieval_runs_every_case_after_a_warm_up() -> None:
    cases = [
        Case(id="q1", kind="fact", question="coût ?", answerable=True, evidence=[A]),
        Case(id="q2", kind="compare", question="agents ?", answerable=True, evidence=[B, C]),
        Case(id="q3", kind="unanswerable", question="directeur ?", answerable=False),
    ]
    answers = {"coût ?": [A, *NOISE], "agents ?": [NOISE[0], C, NOISE[1]], "directeur ?": NOISE}
    calls: list[str] = []
    ticks: list[int] = []

    def search(case: Case) -> list[str]:
        calls.append(case.id)
        return answers[case.question]

    results = evaluate_retrieval(cases, search, tick=lambda: ticks.append(1))
    assert calls == ["q1", "q1", "q2", "q3"]  # one warm-up query first
    assert len(ticks) == 3
    assert [r["id"] for r in results] == ["q1", "q2", "q3"]
    assert results[0]["hit@1"] == 1.0
    assert results[1]["mrr@10"] == 0.5 and results[1]["evidence_recall@5"] == 0.5
    assert "hit@1" not in results[2] and results[2]["latency_ms"] >= 0
    assert summarize(results)["hit@5"] == 1.0


def test_format_table_has_one_column_per_run() -> None:
    columns = {"assistant": {"hit@5": 0.95, "questions": 3}, "référence": {"hit@5": 0.5, "questions": 3}}
    table = format_table(columns, ["hit@5", "questions"])
    lines = table.splitlines()
    assert "assistant" in lines[0] and "référence" in lines[0]
    assert lines[1].split() == ["hit@5", "0.950", "0.500"]
    assert lines[2].split() == ["questions", "3", "3"]


# ------------------------------------------------------------------ sets


@pytest.mark.parametrize("name", ["qa.jsonl", "heldout.jsonl"])
def test_the_question_sets_are_valid_and_grounded(name: str) -> None:
    cases = load_cases(PROJECT_ROOT / "evals" / name)
    if name == "qa.jsonl":  # the development set has every kind; the held-out set is smaller
        assert len(cases) >= 60
        assert {c.kind for c in cases} == set(KINDS)
    assert all(c.history for c in cases if c.kind == "multiturn")
    corpus = [match_key(clean_markup(p.read_text(encoding="utf-8"))) for p in CORPUS_SOURCE.glob("*.md")]
    missing = [
        f"{c.id}: {excerpt}"
        for c in cases
        for excerpt in c.evidence
        if not any(match_key(excerpt) in text for text in corpus)
    ]
    assert not missing, "\n".join(missing)


INVALID_SET = [
    '{"id": "q1", "kind": "fact", "question": "Quand ?", "answerable": true, "evidence": ["en 2015"]}',
    '{"id": "q2", "kind": "fact", "question": ',
    "",
    '{"id": "q3", "kind": "fact", "evidence": ["x"]}',
    '{"id": "q4", "kind": "devinette", "question": "?", "evidence": ["x"]}',
    '{"id": "q1", "kind": "fact", "question": "Encore ?", "evidence": ["x"]}',
    '{"id": "q5", "kind": "fact", "question": "Sans preuve ?", "answerable": true, "evidence": []}',
    '{"id": "q6", "kind": "multiturn", "question": "Et ?", "evidence": ["x"], "history": [{"role": "bot"}]}',
    '["pas", "un", "objet"]',
]


def test_invalid_lines_are_reported_with_their_numbers(tmp_path: Path) -> None:
    path = tmp_path / "jeu.jsonl"
    path.write_text("\n".join(INVALID_SET) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        load_cases(path)
    message = str(caught.value)
    assert message.startswith("« jeu.jsonl » contient des lignes invalides")
    for number in (2, 4, 5, 6, 7, 8, 9):
        assert f"ligne {number} :" in message
    assert "ligne 1 :" not in message and "ligne 3 :" not in message
    assert "JSON invalide" in message and "« question » manquant" in message
    assert "« kind » inconnu : devinette" in message and "identifiant « q1 » déjà utilisé" in message


def test_cli_eval_refuses_an_invalid_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "jeu.jsonl"
    path.write_text("\n".join(INVALID_SET) + "\n", encoding="utf-8")
    assert cli.main(["eval", str(path), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "Erreur : « jeu.jsonl » contient des lignes invalides" in err
    assert "ligne 2 :" in err and "ligne 9 :" in err


def test_an_empty_or_missing_set_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "vide.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="ne contient aucune question"):
        load_cases(empty)
    with pytest.raises(DatasetError, match="introuvable"):
        load_cases(tmp_path / "absent.jsonl")


# ------------------------------------------------------------------ assistant eval

ENTPE_LIMITS = (
    "Géographie : capacité à accueillir des agents du CMA aujourd'hui basés à Aix et Valenciennes ?"
)
SMALL_SET = [
    {
        "id": "q001",
        "kind": "fact",
        "question": "En quelle année le CMA a-t-il été préfiguré ?",
        "answerable": True,
        "evidence": ["Cela a conduit à la préfiguration du CMA en 2015"],
        "facts": ["2015"],
    },
    {
        "id": "q002",
        "kind": "section",
        "question": "Quelles sont les limites du scénario ENTPE ?",
        "answerable": True,
        "evidence": [ENTPE_LIMITS],
        "facts": [],
    },
    {
        "id": "q003",
        "kind": "multiturn",
        "question": "Et pour l'UGE ?",
        "history": [
            {"role": "user", "content": "Quelles sont les limites du scénario ENTPE ?"},
            {"role": "assistant", "content": "La géographie, les finances…"},
        ],
        "answerable": True,
        "evidence": ["Absence d'expérience de travail conjoint"],
        "facts": [],
    },
    {
        "id": "q004",
        "kind": "unanswerable",
        "question": "Qui dirige le CMA aujourd'hui ?",
        "answerable": False,
        "evidence": [],
        "facts": [],
    },
]


def _write_set(path: Path, cases: list[dict]) -> Path:
    path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases), encoding="utf-8")
    return path


def test_cli_eval_json_last_line(
    cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_set(tmp_path / "petit.jsonl", SMALL_SET)
    assert cli.main(["eval", str(path), "--mode", "retrieval", "--json"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    assert set(summary) == SUMMARY_KEYS
    assert summary["questions"] == 4
    assert summary["hit@5"] == 1.0 and summary["evidence_recall@5"] == 1.0
    assert all(0.0 <= summary[k] <= 1.0 for k in RETRIEVAL_KEYS)
    assert 0.0 < summary["latency_p50_ms"] <= summary["latency_p95_ms"]
    # the human-readable tables come first: overall, then per kind
    assert "assistant" in out.splitlines()[0]
    for kind in ("fact", "section", "multiturn", "unanswerable"):
        assert kind in out


def test_cli_eval_baseline_prints_both_columns(
    small_settings: Settings,
    small_index: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("CHROMA_HOST", "CHROMA_PORT", "ASSISTANT_TOP_K"):
        monkeypatch.delenv(name, raising=False)
    # The session index is built with e5: opened with another embedder, it would be rebuilt in
    # place, under the feet of every later test that copies it.
    monkeypatch.setenv("ASSISTANT_EMBEDDER", small_settings.embedder)
    cases = [
        SMALL_SET[1],
        SMALL_SET[2],
        SMALL_SET[3],
        {
            "id": "q005",
            "kind": "fact",
            "question": "Quelle masse salariale l'ENTPE reprendrait-elle ?",
            "answerable": True,
            "evidence": ["Environ 780 k€ de masse salariale chargée"],
            "facts": ["780 k€"],
        },
    ]
    path = _write_set(tmp_path / "petit.jsonl", cases)
    code = cli.main(
        [
            "eval",
            str(path),
            "--baseline",
            "--json",
            "--corpus",
            str(small_settings.corpus_dir),
            "--index",
            str(small_settings.index_dir),
        ]
    )
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    header = lines[0].split()
    assert header == ["assistant", "référence"]
    hit5 = next(line.split() for line in lines if line.startswith("hit@5 "))
    assert len(hit5) == 3 and all(0.0 <= float(v) <= 1.0 for v in hit5[1:])
    summary = json.loads(lines[-1])
    extra = json.loads(lines[-2])
    assert set(summary) == SUMMARY_KEYS and set(extra["baseline"]) == SUMMARY_KEYS
    assert extra["baseline"]["questions"] == summary["questions"] == 4
    assert float(hit5[1]) == pytest.approx(summary["hit@5"], abs=5e-4)
    assert float(hit5[2]) == pytest.approx(extra["baseline"]["hit@5"], abs=5e-4)
    assert set(extra["by_kind"]) == {"fact", "section", "multiturn", "unanswerable"}
