"""The « Comparer » table on the real index (e5, the session index of ``tests/conftest.py``):
cells show the dossier's words, « non traité » only where nothing was selected, the note marked
in the UGE column, and the app, the CLI and the exports show the same table.

Themes here are written for these tests, not taken from the comparison sets in ``evals/``.
"""

from __future__ import annotations

import html
import re

import pytest

from assistant import cli, domain
from assistant.answer.comparison import NOTE_MARK, Comparison, cell_lines, cell_of
from assistant.answer.extractive import NOT_COVERED
from assistant.answer.pipeline import AnswerPipeline
from assistant.app.exports import turn_markdown
from assistant.app.rendering import Turn, chat_messages
from assistant.evaluation.comparisons import Theme, score_theme, summary
from assistant.search.retrieval import Retriever
from assistant.settings import Settings


@pytest.fixture(scope="module")
def pipeline(settings: Settings, retriever: Retriever) -> AnswerPipeline:
    return AnswerPipeline(settings, retriever)


@pytest.fixture(scope="module")
def governance(pipeline: AnswerPipeline) -> Comparison:
    return pipeline.compare("Compare la gouvernance dans les trois scénarios")


def table_cells(markdown: str) -> list[list[str]]:
    """The body rows of the first Markdown table in ``markdown``, as plain text: the row title
    then each cell's lines joined by « ¶ » (escapes, entities and emphasis removed)."""
    rows = []
    for line in markdown.splitlines():
        if not line.startswith("| ") or line.startswith("| Section"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        plain = []
        for cell in cells:
            parts = [html.unescape(re.sub(r"\\(.)", r"\1", part)) for part in cell.split("<br>")]
            plain.append(" ¶ ".join(part.strip().strip("*") for part in parts))
        rows.append(plain)
    return rows


def test_a_filled_cell_shows_the_rows_subject_and_observation_with_its_marker(governance: Comparison) -> None:
    cell = governance.cells[("cmvrh", "questions")]
    row = next(c for c in cell if c.passage.subject == "Gouvernance")
    lines = cell_lines(governance, "cmvrh", "questions")
    assert f"Gouvernance : « À redéfinir. » [{row.marker}]" in lines
    # The app shows that text too, not the row's title alone.
    message = chat_messages([Turn("gouvernance", "compare", comparison=governance)])[-1]["content"]
    assert "À redéfinir" in message


def test_every_cell_whose_scenario_has_a_governance_row_is_filled(governance: Comparison) -> None:
    for (column, row), cited in governance.cells.items():
        assert NOT_COVERED not in " ".join(cell_lines(governance, column, row))
        assert all(cell_of(c.passage) == (column, row) for c in cited)
    assert governance.cells.get(("uge", "questions"))
    assert any(c.passage.subject == "Gouvernance" for c in governance.cells[("uge", "questions")])


def test_not_covered_only_for_an_empty_cell(pipeline: AnswerPipeline) -> None:
    comparison = pipeline.compare("alternance et apprentissage")
    said_empty = 0
    for column in comparison.columns:
        for row in comparison.rows:
            lines = cell_lines(comparison, column, row)
            if comparison.cells.get((column, row)):
                assert NOT_COVERED not in lines
            else:
                assert lines == [NOT_COVERED]
                said_empty += 1
    assert 0 < said_empty < 12
    assert comparison.cells.get(("entpe", "opportunites")), "the ENTPE sheet's alternance row"
    assert any("alternance" in c.passage.text for c in comparison.cells[("entpe", "opportunites")])


def test_the_note_counts_for_the_uge_column_and_is_marked(pipeline: AnswerPipeline) -> None:
    comparison = pipeline.compare("comité de suivi des activités")
    synthesis = comparison.cells.get(("uge", "synthese"), [])
    cosa = [c for c in synthesis if "COSA" in c.passage.text]
    assert cosa and cosa[0].passage.scenario == domain.NOTE
    lines = cell_lines(comparison, "uge", "synthese")
    assert any(line.endswith(f"[{cosa[0].marker}] {NOTE_MARK}") for line in lines)
    for (column, row), cited in comparison.cells.items():
        for citation, line in zip(cited, cell_lines(comparison, column, row), strict=True):
            assert (NOTE_MARK in line) == (citation.passage.scenario == domain.NOTE)
            assert column == "uge" or NOTE_MARK not in line


def test_app_cli_and_export_render_the_same_table(
    governance: Comparison, cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    theme = "Compare la gouvernance dans les trois scénarios"
    assert cli.main(["compare", theme]) == 0
    printed = capsys.readouterr().out
    turn = Turn(theme, "compare", comparison=governance)
    app = chat_messages([turn])[-1]["content"]
    exported = turn_markdown(turn)
    expected = [[title, *(" ¶ ".join(lines) for lines in cells)] for title, cells in governance.table()]
    assert table_cells(printed) == expected
    assert table_cells(app) == expected
    assert table_cells(exported) == expected
    assert "À redéfinir" in printed and "À redéfinir" in app and "À redéfinir" in exported


def test_the_set_scores_count_cells_and_rows(governance: Comparison) -> None:
    cells = {"cmvrh/questions": ["À redéfinir."], "entpe/questions": ["Principe de continuité des acquis"]}
    theme = Theme("t1", governance.theme, cells, [])
    result = score_theme(theme, governance)
    figures = summary([result])
    assert result.expected_cells == 2 and result.correct_cells >= 1
    assert figures["cell_recall"] == result.correct_cells / 2
    assert any(m.startswith("entpe/questions : manque") for m in result.misses) or result.correct_cells == 2
