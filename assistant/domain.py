"""The dossier's own rules, once: its scenarios, their labels and names, its kinds of section.

The dossier weighs three scenarios (CMVRH, ENTPE, Université Gustave Eiffel) and holds the
university's proposal note, a document of its own that speaks for the UGE scenario. Everything
that knows this reads it here; the words that name a scenario or ask for a section in a question
are data (``data/scenarios.toml``, ``data/sections.toml``), each entry with where it comes from;
so are the word lists that tell what a question asks for from what it is about
(``data/lexicon.toml``, each list with its source and its measured effect).

Deliberately left out: how those words are used (query understanding does that) and anything
about a particular question.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class Scenario:
    code: str
    label: str
    speaks_for: str  # the compared scenario a document of this code counts for
    compared: bool  # a column of a comparison
    pattern: re.Pattern[str]  # the words naming it in a question (folded text)


@dataclass(frozen=True)
class Section:
    kind: str
    label: str
    heading: re.Pattern[str] | None  # the heading that opens it in a document (folded text)
    question: re.Pattern[str] | None  # the words asking for it in a question (folded text)


def _data(name: str) -> dict:
    return tomllib.loads(resources.files("assistant.data").joinpath(name).read_text(encoding="utf-8"))


@cache
def _lexicon() -> dict:
    return _data("lexicon.toml")


def words(name: str) -> str:
    """The words of the list ``name`` of ``data/lexicon.toml``, one space between them."""
    return " ".join(_lexicon()[name]["words"].split())


def word_classes(name: str) -> list[str]:
    """The classes of the list ``name`` of ``data/lexicon.toml`` (words of one class together)."""
    return [" ".join(c.split()) for c in _lexicon()[name]["classes"]]


@cache
def scenarios() -> tuple[Scenario, ...]:
    return tuple(
        Scenario(
            code=entry["code"],
            label=entry["label"],
            speaks_for=entry["speaks_for"],
            compared=bool(entry["compared"]),
            pattern=re.compile("|".join(alias["pattern"] for alias in entry["aliases"])),
        )
        for entry in _data("scenarios.toml")["scenario"]
    )


@cache
def sections() -> tuple[Section, ...]:
    def compiled(entry: dict, key: str) -> re.Pattern[str] | None:
        return re.compile(entry[key]) if key in entry else None

    return tuple(
        Section(entry["kind"], entry["label"], compiled(entry, "heading"), compiled(entry, "question"))
        for entry in _data("sections.toml")["section"]
    )


# Scenario codes and section kinds, and how they are shown to users.
SCENARIOS: dict[str, str] = {s.code: s.label for s in scenarios()}
SECTIONS: dict[str, str] = {s.kind: s.label for s in sections()}
# The columns of a comparison: the three scenarios (the note counts for the UGE).
COMPARED: tuple[str, ...] = tuple(s.code for s in scenarios() if s.compared)
NOTE = "note"
UGE = "uge"


def speaks_for(code: str) -> str:
    """The compared scenario a document of scenario ``code`` counts for (the note → the UGE)."""
    for scenario in scenarios():
        if scenario.code == code:
            return scenario.speaks_for
    return code


def named_by(code: str) -> set[str]:
    """The documents a scenario's name stands for: « l'UGE » covers its sheet and its note;
    the note's own names (CIPEN, COSA) stand for the note alone."""
    return {code} | {s.code for s in scenarios() if s.speaks_for == code and s.code != code}


def with_related(codes: set[str] | list[str]) -> set[str]:
    """``codes`` plus the documents that speak for the same scenario (the UGE and its note)."""
    wanted = {speaks_for(c) for c in codes}
    return set(codes) | {s.code for s in scenarios() if s.speaks_for in wanted}
