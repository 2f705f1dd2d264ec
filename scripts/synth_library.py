"""Synthetic libraries N times the size of the dossier, made of the dossier's own words.

    python scripts/synth_library.py --factor 10 --out /tmp/bibliotheque [--seed 7]

Each synthetic document is a scenario sheet shaped like those of ``corpus/`` (front matter,
context sections with paragraphs and lists, then « Opportunités », « Limites », « Questions »
tables and a « Synthèse du scénario ») under an invented organisation — its own title, label,
scenario code and acronym. Its sentences and table cells recombine clauses cut from the
dossier's text, the dossier's scenario names replaced by the invented one: the vocabulary is the
dossier's, the documents compete with it on every topic, yet none says what the dossier says.

That last point is checked, not hoped for: no evidence excerpt of the development set may occur
in any generated document under the evaluation's matching rule (``text.match_key``: lowercase,
letters and digits only). Clauses that contain an excerpt, or share four words in a row with
one (a near copy that would answer its question in other words), are left out; a document in
which recombination still forms an excerpt is drawn again from the next seed.
The real dossier's passages thus stay the only right answers to the development questions.

A library of factor N holds the 4 real documents plus (N - 1) × 4 synthetic ones, so that it is
N times the dossier in documents (and about N times in passages). Deterministic: the same seed
and factor give the same files. Documents are written one at a time (a generator), never held
all in memory.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from assistant.ingest.formats import load_document
from assistant.ingest.structure import build_blocks
from assistant.text import fold, match_key

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
DEV_SET = Path(__file__).resolve().parent.parent / "evals" / "qa.jsonl"
# The dossier's own organisations: replaced by the invented one in every recombined clause.
REAL_NAMES = re.compile(
    r"\b(?:l'Université Gustave Eiffel|Université Gustave Eiffel|Gustave Eiffel|UGE|CIPEN|CMVRH|ENTPE)\b",
    re.IGNORECASE,
)
CLAUSE_END = re.compile(r"\s*(?:[,;:]|\s—|\.\s)\s*")
KINDS = ("prose", "subject", "observation", "heading")
# Invented organisations: every combination is distinct, which gives thousands of names.
ORG_TYPES = [
    ("Institut", "l'"),
    ("École", "l'"),
    ("Centre", "au "),
    ("Agence", "à l'"),
    ("Office", "à l'"),
    ("Observatoire", "à l'"),
    ("Conservatoire", "au "),
    ("Pôle", "au "),
]
ORG_FIELDS = [
    "des mobilités",
    "de l'aménagement littoral",
    "des risques naturels",
    "de la ville sobre",
    "des réseaux d'eau",
    "de l'énergie territoriale",
    "des paysages",
    "de la construction durable",
    "des transports fluviaux",
    "de la biodiversité",
    "du climat urbain",
    "des données géographiques",
]
PLACES = [
    "Valbrune",
    "Morlanges",
    "Cassenac",
    "Pradelle",
    "Hautrive",
    "Brémonde",
    "Sarlenne",
    "Quimperle",
    "Ormessac",
    "Vauclerc",
    "Fontbrune",
    "Lisarre",
    "Montaubel",
    "Ternac",
    "Roquesane",
    "Vildrac",
    "Aurembas",
    "Castelnoir",
    "Belvaux",
    "Dorvanne",
    "Essarmont",
    "Gravelines-sur-Oise",
    "Juvanel",
    "Kervadec",
    "Larchamp",
    "Nérac-le-Haut",
    "Pontchâtel",
    "Rivemont",
    "Saint-Aubrac",
    "Ursanne",
    "Verdelot",
    "Ysengrin",
    "Achères-la-Forêt",
    "Bourgneuf",
    "Clairvaux-les-Lacs",
    "Douvrin",
    "Fleurance",
    "Gaillefontaine",
    "Herbignac",
    "Lézignan",
    "Mirecourt",
    "Orbec",
]


@dataclass
class Organisation:
    name: str  # « Institut des mobilités de Valbrune »
    acronym: str  # « IMV »
    code: str  # the scenario code in the front matter, unique
    linked: str  # « l'Institut des mobilités de Valbrune », « au Centre … »


def organisation(number: int) -> Organisation:
    """The ``number``-th invented organisation (distinct for every number below 4,032)."""
    kind, preposition = ORG_TYPES[number % len(ORG_TYPES)]
    rest = number // len(ORG_TYPES)
    domain = ORG_FIELDS[rest % len(ORG_FIELDS)]
    place = PLACES[(rest // len(ORG_FIELDS)) % len(PLACES)]
    name = f"{kind} {domain} de {place}"
    words = [w for w in re.split(r"[\s'-]+", f"{kind} {domain} {place}") if w[:1].isupper() or len(w) > 3]
    acronym = "".join(w[0].upper() for w in words if w.lower() not in {"des", "de", "du", "la", "les"})
    return Organisation(name, acronym, f"{fold(acronym)}{number}", f"{preposition}{name}")


@dataclass
class Fragments:
    """Clauses of the dossier by kind, none containing an evidence excerpt."""

    by_kind: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})
    cut: int = 0  # clauses left out: they held an excerpt or a near copy of one


def evidence_keys(paths: Sequence[Path]) -> list[str]:
    """The matching keys of every evidence excerpt of these sets (distinct, longest first)."""
    keys: set[str] = set()
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                keys.update(match_key(e) for e in json.loads(line).get("evidence", []))
    return sorted((k for k in keys if k), key=len, reverse=True)


def evidence_shingles(paths: Sequence[Path]) -> set[tuple[str, ...]]:
    """Every run of ``SHINGLE`` words of every evidence excerpt of these sets."""
    found: set[tuple[str, ...]] = set()
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                for excerpt in json.loads(line).get("evidence", []):
                    found |= shingles(excerpt)
    return found


def leaks(text: str, keys: Sequence[str]) -> list[str]:
    """The excerpt keys found in ``text`` under the evaluation's matching rule."""
    key = match_key(text)
    return [k for k in keys if k in key]


SHINGLE = 4  # words in a row shared with an excerpt that make a clause a near-copy of it


def shingles(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", fold(text).lower())
    return {tuple(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


def clean_pieces(clause: str, keys: Sequence[str], near: set[tuple[str, ...]] | None = None) -> list[str]:
    """``[clause]`` when it neither contains an excerpt nor shares ``SHINGLE`` words in a row
    with one (``near``: the excerpts' shingles); else nothing. A half of an excerpt's clause
    would still answer its question in other words: the first design cut such clauses in two
    and kept the halves, and the right passage then fell out of the top 5 for 0.30 of the
    development questions at 100× (hit@5 0.82 → 0.52)."""
    if len(clause.split()) < 2 or leaks(clause, keys):
        return []
    if near and shingles(clause) & near:
        return []
    return [clause]


def dossier_fragments(
    corpus_dir: Path, keys: Sequence[str], near: set[tuple[str, ...]] | None = None
) -> Fragments:
    """Cut every document of the dossier into clauses, by kind, free of excerpts (and of near
    copies of them: ``clean_pieces``)."""
    fragments = Fragments()
    for path in sorted(corpus_dir.glob("*.md")):
        for block in build_blocks(load_document(path)):
            if block.kind == "heading":
                units = [("heading", block.text)]
            elif block.kind == "table_row":
                units = [("subject", block.subject), ("observation", block.observations)]
            else:
                units = [("prose", block.text)]
            for kind, text in units:
                for clause in CLAUSE_END.split(text):
                    clause = clause.strip(' .;:-–—«»"')
                    pieces = clean_pieces(clause, keys, near)
                    fragments.cut += not pieces and len(clause.split()) >= 2
                    fragments.by_kind[kind].extend(pieces)
    for kind in KINDS:  # one copy of each clause: repeated context paragraphs would dominate
        fragments.by_kind[kind] = list(dict.fromkeys(fragments.by_kind[kind]))
    return fragments


class SheetWriter:
    """Draws one synthetic scenario sheet from the fragments, for one organisation and seed."""

    def __init__(self, fragments: Fragments, org: Organisation, rng: random.Random) -> None:
        self.pool = fragments.by_kind
        self.org = org
        self.rng = rng

    def _take(self, kind: str, count: int) -> list[str]:
        return [REAL_NAMES.sub(self.org.acronym, f) for f in self.rng.sample(self.pool[kind], count)]

    def sentence(self, low: int = 2, high: int = 4) -> str:
        text = ", ".join(self._take("prose", self.rng.randint(low, high)))
        return text[:1].upper() + text[1:] + "."

    def row(self) -> str:
        subject = " et ".join(self._take("subject", self.rng.randint(1, 2)))
        observation = ", ".join(self._take("observation", self.rng.randint(1, 3)))
        return f"| {subject[:1].upper() + subject[1:]} | {observation[:1].upper() + observation[1:]} |"

    def sheet(self, number: int, seed: int) -> str:
        org, rng = self.org, self.rng
        title = f"Scénario « rattachement du CMA {org.linked} »"
        lines = [
            "---",
            f"title: {title}",
            f"label: Scénario {org.acronym}",
            f"scenario: {org.code}",
            "type: fiche",
            f"source: bibliothèque synthétique (graine {seed}, document {number})",
            "---",
            f"# {title}",
            "",
        ]
        for _ in range(rng.randint(3, 5)):
            heading = self._take("heading", 1)[0]
            lines += [f"## {heading[:1].upper() + heading[1:]}", ""]
            for _ in range(rng.randint(1, 2)):
                lines += [" ".join(self.sentence() for _ in range(rng.randint(2, 3))), ""]
            if rng.random() < 0.5:
                lines += [f"- {self.sentence(1, 2)}" for _ in range(rng.randint(3, 5))] + [""]
        lines += [f"## {title}", ""]
        for section, (low, high) in (("Opportunités", (6, 10)), ("Limites", (4, 7)), ("Questions", (2, 4))):
            lines += [f"## {section}", "", "| Sujet | Observations |", "| --- | --- |"]
            lines += [self.row() for _ in range(rng.randint(low, high))] + [""]
        lines += ["## Synthèse du scénario", ""]
        for _ in range(rng.randint(1, 2)):
            lines += [" ".join(self.sentence() for _ in range(rng.randint(2, 4))), ""]
        return "\n".join(lines)


@dataclass
class LibraryReport:
    """What the generator wrote and checked (printed in French by ``main``)."""

    documents: int = 0
    redrawn: int = 0  # documents drawn again because recombination formed an excerpt
    excerpts: int = 0
    fragments: int = 0
    cut: int = 0
    characters: int = 0


def synthetic_documents(
    factor: int,
    seed: int = 7,
    corpus_dir: Path = CORPUS,
    evidence: Sequence[Path] = (DEV_SET,),
    report: LibraryReport | None = None,
) -> Iterator[tuple[str, str]]:
    """(file name, Markdown) of each synthetic document of a library ``factor`` times the
    dossier, one at a time; none contains an evidence excerpt of the ``evidence`` sets."""
    report = report if report is not None else LibraryReport()
    keys = evidence_keys(evidence)
    fragments = dossier_fragments(corpus_dir, keys, evidence_shingles(evidence))
    real = len(list(corpus_dir.glob("*.md")))
    report.excerpts, report.cut = len(keys), fragments.cut
    report.fragments = sum(len(v) for v in fragments.by_kind.values())
    for number in range((factor - 1) * real):
        org = organisation(number)
        attempt = 0
        while True:
            rng = random.Random(f"{seed}:{number}:{attempt}")
            text = SheetWriter(fragments, org, rng).sheet(number, seed)
            if not leaks(text, keys):
                break
            attempt += 1
            report.redrawn += 1
        report.documents += 1
        report.characters += len(text)
        yield f"synth_{number:05d}_{org.code}.md", text


def write_library(
    out: Path, factor: int, seed: int = 7, evidence: Sequence[Path] = (DEV_SET,)
) -> LibraryReport:
    """Write the synthetic documents of a ``factor``× library into ``out`` (the real dossier is
    not copied: the caller decides where it goes)."""
    out.mkdir(parents=True, exist_ok=True)
    report = LibraryReport()
    for name, text in synthetic_documents(factor, seed, evidence=evidence, report=report):
        (out / name).write_text(text, encoding="utf-8")
    return report


def verify_folder(folder: Path, evidence: Sequence[Path] = (DEV_SET,)) -> list[str]:
    """Re-read every written synthetic document: the names of those holding an excerpt."""
    keys = evidence_keys(evidence)
    return [p.name for p in sorted(folder.glob("synth_*.md")) if leaks(p.read_text(encoding="utf-8"), keys)]


def describe(report: LibraryReport, factor: int, evidence: Sequence[Path]) -> str:
    sets = ", ".join(str(p) for p in evidence)
    return (
        f"Bibliothèque {factor}× : {report.documents} documents synthétiques "
        f"({report.characters / 1e6:.1f} Mo de texte) tirés de {report.fragments} fragments du dossier.\n"
        f"Vérifié : aucun des {report.excerpts} extraits attendus de {sets} n'apparaît dans un "
        f"document synthétique (règle de l'évaluation : minuscules, lettres et chiffres seuls) ; "
        f"{report.cut} fragments écartés parce qu'ils en contenaient un ou en reprenaient "
        f"{SHINGLE} mots à la suite, "
        f"{report.redrawn} documents retirés au sort parce que la recombinaison en formait un."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=int, default=10, help="taille de la bibliothèque (× le dossier)")
    parser.add_argument("--out", type=Path, required=True, help="dossier où écrire les documents")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--evidence", type=Path, nargs="+", default=[DEV_SET], help="jeux dont exclure les extraits"
    )
    args = parser.parse_args()
    report = write_library(args.out, args.factor, args.seed, args.evidence)
    print(describe(report, args.factor, args.evidence))
    leaked = verify_folder(args.out, args.evidence)
    print(f"Relecture des fichiers écrits : {len(leaked)} document(s) contenant un extrait attendu.")
    if leaked:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
