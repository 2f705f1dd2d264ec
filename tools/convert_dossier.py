"""Convert the dossier export (one text file, four documents) into the Markdown corpus.

Every line of text is kept word for word, markup included (``**``, ``^{er}``, HTML fragments):
only the structure is made explicit (``#`` headings, pipe tables, list markers), so that the
loaders can read sections and table rows without guessing. Run once; the result is committed.

    python tools/convert_dossier.py tools/dossier/000_6be0532de56a1555.txt corpus/
"""

from __future__ import annotations

import sys
from pathlib import Path

# (first line, last line, file name, front matter) — boundaries from the dossier's README.
DOCUMENTS = [
    (1, 105, "01_scenario_cmvrh.md", {"label": "Scénario CMVRH", "scenario": "cmvrh", "type": "fiche"}),
    (106, 182, "02_scenario_entpe.md", {"label": "Scénario ENTPE", "scenario": "entpe", "type": "fiche"}),
    (183, 261, "03_scenario_uge.md", {"label": "Scénario UGE", "scenario": "uge", "type": "fiche"}),
    (262, 361, "04_note_uge_cipen.md", {"label": "Note UGE-CIPEN", "scenario": "note", "type": "note"}),
]
SECTION_TITLES = {
    "opportunités",
    "limites",
    "limites / ce qui fait encore débat",
    "questions",
    "synthèse du scénario",
    "conclusion",
}
# Headings one level down (the CMVRH's numbered ambitions, the note's integration scenario).
SUBHEADING_PREFIXES = ("1. Un projet", "2. Des partenariats", "3. Développement d'un partenariat")
NOTE_SUBHEADINGS = {
    "Préservation des missions",
    "Principe de rattachement",
    "Localisation et gestion des personnels",
    "Suivi des activités par le MTE",
}
EXTRA_HEADINGS = ("La volonté du CMVRH : porter une ambition",)


def is_heading(line: str, prev: str, nxt: str) -> bool:
    text = line.strip()
    if not text or "\t" in line or text.startswith("- ") or prev.strip() or nxt.strip():
        return False
    if text.startswith(EXTRA_HEADINGS) or text.lower() in SECTION_TITLES:
        return True
    return len(text) < 200 and not text.endswith((".", ":", ";", ",")) and not text[0].islower()


def convert(lines: list[str], first: int, last: int) -> str:
    out: list[str] = []
    in_table = False
    title_seen = False
    for number in range(first, last + 1):
        line = lines[number - 1] if number - 1 < len(lines) else ""
        prev = lines[number - 2] if number >= 2 else ""
        nxt = lines[number] if number < len(lines) else ""
        text = line.strip()
        if "\t" in line:
            subject, _, observations = line.partition("\t")
            if not in_table:
                out += [f"| {subject.strip()} | {observations.strip()} |", "| --- | --- |"]
                in_table = True
            else:
                out.append(f"| {subject.strip()} | {observations.strip()} |")
            continue
        if in_table and not text:
            # A blank line inside a table (the export splits some tables): stay in the table
            # if the next non-blank line is still a row.
            if "\t" in nxt:
                continue
            in_table = False
            out.append("")
            continue
        in_table = False
        if not text:
            if out and out[-1] != "":
                out.append("")
            continue
        if is_heading(line, prev, nxt):
            if not title_seen:
                out.append(f"# {text}")
                title_seen = True
            elif text.startswith(SUBHEADING_PREFIXES) or text in NOTE_SUBHEADINGS:
                out.append(f"### {text}")
            else:
                out.append(f"## {text}")
            continue
        if line.startswith(" - "):
            out.append(f"  - {line[3:].strip()}")
        else:
            out.append(text)
    return "\n".join(out).strip() + "\n"


def main(source: Path, target: Path) -> None:
    lines = source.read_text(encoding="utf-8").split("\n")
    target.mkdir(parents=True, exist_ok=True)
    for first, last, name, meta in DOCUMENTS:
        body = convert(lines, first, last)
        title = body.splitlines()[0].removeprefix("# ")
        front = ["---", f"title: {title}"] + [f"{k}: {v}" for k, v in meta.items()]
        front += [f"source: {source.name}, lignes {first}-{min(last, len(lines))}", "---", ""]
        (target / name).write_text("\n".join(front) + body, encoding="utf-8")
        print(f"{name}: {len(body.splitlines())} lignes")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
