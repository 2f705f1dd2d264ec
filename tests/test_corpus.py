"""The corpus is the dossier, whole: every line of text, in the right document, reproducibly.

The dossier's line ranges come from its README (not from the converter), so a converter that
put a line in the wrong document, dropped one or rewrote a word fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.domain import SCENARIOS
from assistant.ingest.formats import load_document
from assistant.ingest.structure import build_blocks
from assistant.text import clean_markup, match_key
from tests.conftest import CORPUS_FILES, CORPUS_SOURCE, DOSSIER, PROJECT_ROOT

# (first line, last line, corpus file, scenario, label) — from tools/dossier/README.md.
DOCUMENTS = [
    (1, 105, "01_scenario_cmvrh.md", "cmvrh", "Scénario CMVRH"),
    (106, 182, "02_scenario_entpe.md", "entpe", "Scénario ENTPE"),
    (183, 261, "03_scenario_uge.md", "uge", "Scénario UGE"),
    (262, 361, "04_note_uge_cipen.md", "note", "Note UGE-CIPEN"),
]
_FRONT = re.compile(r"\A---\n(.*?)\n---\n", re.S)


def _dossier_lines() -> list[str]:
    return DOSSIER.read_text(encoding="utf-8").split("\n")


def _cell_keys(line: str) -> list[str]:
    """Match keys of a line's cells (TAB-separated in the dossier, ``|`` in Markdown tables)."""
    cells = line.split("\t")
    if line.lstrip().startswith("|"):
        cells = line.strip().strip("|").split("|")
    keys = [match_key(clean_markup(cell)) for cell in cells]
    return [key for key in keys if key]


def _front_matter(text: str) -> dict[str, str]:
    match = _FRONT.match(text)
    assert match, "front matter manquant"
    meta = {}
    for line in match.group(1).splitlines():
        key, _, value = line.partition(":")
        meta[key.strip()] = value.strip()
    return meta


def test_the_dossier_has_the_expected_shape() -> None:
    lines = _dossier_lines()
    assert len([line for line in lines if line.strip()]) > 150
    assert lines[261].startswith("Proposition de rattachement du Centre ministériel")  # line 262
    assert "\t" in "".join(lines)


def test_every_dossier_line_is_in_its_corpus_document() -> None:
    lines = _dossier_lines()
    missing: list[str] = []
    checked = 0
    for first, last, name, _, _ in DOCUMENTS:
        corpus_lines = (CORPUS_SOURCE / name).read_text(encoding="utf-8").splitlines()
        corpus_cells = [key for line in corpus_lines for key in _cell_keys(line)]
        for number in range(first, min(last, len(lines)) + 1):
            for key in _cell_keys(lines[number - 1]):
                checked += 1
                # a cell of the dossier is inside one line/cell of the corpus, not across two
                if not any(key in cell for cell in corpus_cells):
                    missing.append(f"{name}: ligne {number} : {lines[number - 1][:100]!r}")
    assert checked > 250
    assert not missing, "\n".join(missing)


def test_nothing_in_the_corpus_is_foreign_to_the_dossier() -> None:
    """The converter adds structure, never words: every corpus cell is in the dossier."""
    dossier_cells = [key for line in _dossier_lines() for key in _cell_keys(line)]
    foreign: list[str] = []
    for name in CORPUS_FILES:
        text = (CORPUS_SOURCE / name).read_text(encoding="utf-8")
        body = text[_FRONT.match(text).end() :]  # type: ignore[union-attr]
        for line in body.splitlines():
            if re.fullmatch(r"\|?[\s|:-]*", line.strip()):
                continue  # blank lines and table separators
            stripped = re.sub(r"^\s*(#{1,6}|-|\d+\.)\s+", "", line)
            for key in _cell_keys(stripped):
                if not any(key in cell for cell in dossier_cells):
                    foreign.append(f"{name}: {line[:100]!r}")
    assert not foreign, "\n".join(foreign)


def test_the_corpus_has_the_four_documents() -> None:
    assert sorted(p.name for p in CORPUS_SOURCE.iterdir() if p.is_file()) == sorted(CORPUS_FILES)


@pytest.mark.parametrize(("first", "last", "name", "scenario", "label"), DOCUMENTS)
def test_front_matter_names_the_scenario(first: int, last: int, name: str, scenario: str, label: str) -> None:
    path = CORPUS_SOURCE / name
    meta = _front_matter(path.read_text(encoding="utf-8"))
    assert meta["scenario"] == scenario
    assert meta["label"] == label
    assert scenario in SCENARIOS
    assert meta["source"] == f"{DOSSIER.name}, lignes {first}-{last}"
    # the title is the document's first line in the dossier, word for word
    first_text = next(line for line in _dossier_lines()[first - 1 :] if line.strip())
    assert meta["title"] == first_text.strip()
    # and the loaders read it: every block carries this scenario and label
    blocks = build_blocks(load_document(path))
    assert blocks
    assert {b.scenario for b in blocks} == {scenario}
    assert {b.doc_label for b in blocks} == {label}
    assert {b.doc_title for b in blocks} == {meta["title"]}


def test_the_scenario_sheets_have_their_tables() -> None:
    for _, _, name, scenario, _ in DOCUMENTS:
        blocks = build_blocks(load_document(CORPUS_SOURCE / name))
        kinds = {b.section_kind for b in blocks if b.kind == "table_row"}
        if scenario == "note":
            assert kinds == set()
            assert {b.section_kind for b in blocks} == {"note", "synthese"}
        else:
            assert kinds == {"opportunites", "limites", "questions"}


def test_converter_reproduces_the_corpus_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    run = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "tools" / "convert_dossier.py"), str(DOSSIER), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(CORPUS_FILES)
    for name in CORPUS_FILES:
        assert (out / name).read_bytes() == (CORPUS_SOURCE / name).read_bytes(), name
