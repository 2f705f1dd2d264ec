"""JSON Lines read back whole: every Unicode line separator inside a text survives the round trip.

``json.dumps(..., ensure_ascii=False)`` leaves U+0085, U+2028 and U+2029 raw in the file;
``str.splitlines()`` would cut there (and at \\x0b, \\x0c, \\x1c–\\x1e, which JSON escapes anyway).
Feedback, runs, sets and drafts are all read by cutting at ``\\n`` only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from assistant import cli
from assistant.evaluation.dataset import load_cases
from assistant.evaluation.feedback import FeedbackWriter, load_feedback, negative_to_cases
from assistant.evaluation.jsonl import jsonl_lines
from assistant.evaluation.runs import build_run, load_run, write_run

# Every character str.splitlines() treats as a line boundary, besides \n and \r.
SEPARATORS = {
    "U+2028": "\u2028",
    "U+2029": "\u2029",
    "U+0085": "\u0085",
    "\\x1c": "\x1c",
    "\\x1d": "\x1d",
    "\\x1e": "\x1e",
    "\\x0b": "\x0b",
    "\\x0c": "\x0c",
}
ALL = "".join(SEPARATORS.values())


def test_the_separators_are_those_splitlines_cuts_at() -> None:
    for name, char in SEPARATORS.items():
        assert len(f"a{char}b".splitlines()) == 2, name
    assert jsonl_lines(f'{{"a": "x{ALL}y"}}\n{{"b": 1}}\n') == [f'{{"a": "x{ALL}y"}}', '{"b": 1}']
    assert jsonl_lines("") == [] and jsonl_lines("a\r\nb") == ["a\r", "b"]


def _entry(rating: str, question: str, comment: str, noise: str = ALL) -> dict[str, Any]:
    return {
        "format_version": 1,
        "id": f"fb-{abs(hash(question + comment))}",
        "time": "2026-01-01T10:00:00+01:00",
        "rating": rating,
        "comment": comment,
        "question": question,
        "standalone_question": question,
        "history": [],
        "mode": "answer",
        "answer": f"Réponse{noise}donnée.",
        "backend": "extractive",
        "refused": False,
        "flags": [],
        "filters": {},
        "citations": [{"marker": 1, "label": f"Scénario{noise}ENTPE", "span": "…"}],
        "passages": [],
        "settings": {},
    }


@pytest.mark.parametrize("name", list(SEPARATORS))
def test_feedback_with_a_line_separator_is_read_back_whole(name: str, tmp_path: Path) -> None:
    char = SEPARATORS[name]
    path = tmp_path / "avis.jsonl"
    writer = FeedbackWriter(path)
    down = _entry("down", f"Quel budget{char}pour le CMA ?", f"chiffre{char}inventé", noise=char)
    up = _entry("up", "Question appréciée ?", "", noise=char)
    writer.write(down)
    writer.write(up)
    assert load_feedback(path) == [down, up]
    # the 👎 becomes a regression case, its question and comment intact
    (case,) = negative_to_cases(load_feedback(path))
    assert case["question"] == f"Quel budget{char}pour le CMA ?"
    assert case["_feedback"]["comment"] == f"chiffre{char}inventé"


def test_import_feedback_with_every_separator_adds_the_draft_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    feedback = tmp_path / "avis.jsonl"
    FeedbackWriter(feedback).write(_entry("down", f"Quel budget{ALL}pour 2024 ?", f"faux{ALL}!"))
    drafts = tmp_path / "evals" / "drafts.jsonl"
    assert cli.main(["eval", "import-feedback", str(feedback), "--out", str(drafts)]) == 0
    assert "1 brouillon(s) ajouté(s)" in capsys.readouterr().out
    (draft,) = [json.loads(line) for line in jsonl_lines(drafts.read_text(encoding="utf-8"))]
    assert draft["question"] == f"Quel budget{ALL}pour 2024 ?"
    assert draft["_feedback"]["comment"] == f"faux{ALL}!"
    # importing again recognises the draft: nothing is added twice
    assert cli.main(["eval", "import-feedback", str(feedback), "--out", str(drafts), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["added"] == []


def test_a_run_with_every_separator_is_read_back_identical(tmp_path: Path) -> None:
    records = []
    for number, (name, char) in enumerate(SEPARATORS.items(), 1):
        records.append(
            {
                "id": f"q{number:03d}",
                "kind": "fact",
                "question": f"Question{char}{name} ?",
                "history": [{"role": "user", "content": f"avant{char}"}],
                "answerable": True,
                "evidence": [f"extrait{char}attendu"],
                "facts": [f"fait{char}"],
                "passages": [{"rank": 1, "label": f"Doc{char}", "text": f"texte{char}", "relevant": False}],
                "answer": f"Réponse{char}donnée.",
                "refused": False,
                "citations": [],
                "fact_coverage": 0.0,
                "refusal_correct": 1.0,
                "latency_ms": 12.5,
                "reasons": [f"raison{char}"],
                "failed": True,
            }
        )
    run = write_run(build_run("answer", records, {"llm": {"backend": "extractive"}}), tmp_path / "run")
    loaded = load_run(tmp_path / "run")
    assert loaded.results == records and loaded.summary == run.summary


def test_a_set_with_every_separator_is_read_whole(tmp_path: Path) -> None:
    case = {
        "id": "q001",
        "kind": "fact",
        "question": f"Que dit{ALL} le dossier ?",
        "answerable": True,
        "evidence": [f"un extrait{ALL}"],
        "facts": ["un fait"],
    }
    path = tmp_path / "jeu.jsonl"
    path.write_text(json.dumps(case, ensure_ascii=False) + "\n" + "{pas du json\n", encoding="utf-8")
    with pytest.raises(ValueError, match="ligne 2 : JSON invalide"):  # numbering counts \n only
        load_cases(path)
    path.write_text(json.dumps(case, ensure_ascii=False) + "\n", encoding="utf-8")
    (loaded,) = load_cases(path)
    assert loaded.question == case["question"] and loaded.evidence == case["evidence"]
