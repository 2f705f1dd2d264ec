"""An item of an earlier answer named by its rank: « Le deuxième de ta liste, il revient
ailleurs ? », « Et la dernière, elle a déjà travaillé avec le CMA ? », « La première, tu peux
détailler ? ».

A committee member reads the assistant's answer as a list and points into it by position. The
question then names nothing the search can use: the words are in the answer, at that rank. This
module finds the ordinal (French grammar: an ordinal used as a pronoun, or before a word that
means « item of a list »), the list it points into (the last answer, or the earlier one whose
question or answer writes the noun the ordinal qualifies: « la première de ces universités »), and
the item at that rank. A question whose ordinal qualifies a noun of its own (« la première phrase
de la conclusion », « le premier cycle ») is about the dossier's text, not about an answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from assistant.schema import Exchange
from assistant.text import analyze, content_terms, fold

# French ordinals, folded, with their position (0 = first, -1 = last).
_RANKS = {
    "premier": 0, "premiere": 0, "1er": 0, "1re": 0, "1ere": 0,
    "deuxieme": 1, "second": 1, "seconde": 1, "2e": 1, "2eme": 1,
    "troisieme": 2, "3e": 2, "3eme": 2,
    "quatrieme": 3, "4e": 3, "4eme": 3,
    "cinquieme": 4, "5e": 4, "5eme": 4,
    "sixieme": 5, "6e": 5, "6eme": 5,
    "avant-dernier": -2, "avant-derniere": -2,
    "dernier": -1, "derniere": -1,
}  # fmt: skip
# General French nouns for « an item of a list »: an ordinal before one of them still points
# into a list (« le dernier point de la liste »); before any other noun it is that noun's rank.
_ITEM_NOUNS = r"(?:points?|elements?|items?)"
# The ordinal as a pronoun: after an article, with its item noun, « de ta liste » or « de ces
# universités » if any, then the end of the clause or a word that opens another (a pronoun, « que »,
# an adverb). ``noun`` is what « de ces … » names, if anything.
_RANK_WORDS = "|".join(sorted(map(re.escape, _RANKS), key=len, reverse=True))
ORDINAL = re.compile(
    r"\b(?:le|la|l'|au|du|les)\s*(?P<rank>" + _RANK_WORDS + r")"
    rf"(?:\s+{_ITEM_NOUNS})?"
    r"(?:\s+de\s+(?:ta|la|cette|votre)\s+(?:liste|enumeration|reponse)\b|"
    r"\s+(?:de|d')\s*(?:ces|tes|vos)\s+(?P<noun>[a-z-]+))?"
    r"(?=\s*(?:[,?!:;.]|$)|\s+(?:cite|mentionne|tu|il|elle|ils|elles|on|qu|que|c'est|alors|maintenant|"
    r"ensuite|plutot)\b)"
)
# Where an answer's list starts and how its items are separated: after a colon when there is
# one, at top level (not inside parentheses), by commas, semicolons and the last « et » / « ou ».
_SEPARATOR = re.compile(r"\s*[,;]\s*")
_CONJUNCTION = re.compile(r"\s+(?:et|ou)\s+")
# « et » inside an item (« la production et la médiatisation de contenus ») joins two nouns of
# one item; between two short names (« Caen Normandie et Lorraine ») or before the list's last
# item it separates items. Short: at most this many words on each side, the length of the names
# the dossier lists this way (« Caen Normandie », « Gustave Eiffel »).
SHORT_ITEM = 3
_BULLET = re.compile(r"^\s*(?:[-•*]|\d+[.)])\s+(.*)$")
_MARKUP = re.compile(r"\[\d+\]|[*_#>`]")
# A reply particle (« Oui, la fiche cite… ») and the prepositions that repeat before each item
# (« de l'UPEM, de l'IFSTTAR ») are not part of an item.
_REPLY = re.compile(r"(?i)oui|non|si|exactement|en effet|tout à fait")
_LINK = re.compile(r"^(?:de |d'|d’|par |avec )", re.IGNORECASE)
# An apposition describing the name before it (« SYFOADD, la plateforme de formation du MTE, et
# MENTOR, la plateforme… »): an article, then a common noun, then at least one more word.
_DESCRIPTION = re.compile(r"^(?:le|la|les|l'|l’|un|une)\s*[a-zà-ÿ][\w'-]*\s+\S+")
_ENDS_WITH_NAME = re.compile(r"(?:\b[A-ZÀ-Ý][\w'-]*)$")
_TRAILER = re.compile(r"\b(?:etc|entre autres|notamment)\b\.?", re.IGNORECASE)


@dataclass
class OrdinalReference:
    """The ordinal as the question writes it, and the item it points to."""

    span: tuple[int, int]
    item: str


def find_reference(question: str, exchanges: Sequence[Exchange]) -> OrdinalReference | None:
    """The item of an earlier answer that the question names by its rank, or None."""
    if not exchanges:
        return None
    folded = _fold_in_place(question)
    match = ORDINAL.search(folded)
    if match is None:
        return None
    rank = _RANKS[match.group("rank")]
    noun = match.group("noun")
    for exchange in _candidates(exchanges, noun):
        items = answer_items(exchange)
        if len(items) >= 2 and (rank < 0 or rank < len(items)):
            start, end = match.start("rank"), match.end()
            # « le »/« la » before the ordinal goes with it: the item replaces both.
            article = re.search(r"\b(?:le|la|l')\s*$", folded[: match.start("rank")])
            if article:
                start = article.start()
            return OrdinalReference((start, end), items[rank].rstrip(" ?!.:;"))
    return None


def _fold_in_place(text: str) -> str:
    """``fold`` one character at a time, so that a span of the result is the same span of
    ``text`` (« œ » becomes « o », not « oe »)."""
    return "".join((fold(ch) or ch)[0] for ch in text.replace("’", "'"))


def _candidates(exchanges: Sequence[Exchange], noun: str | None) -> list[Exchange]:
    """The exchanges whose answer the ordinal may point into, most likely first: the one whose
    question or answer writes the noun of « de ces … » when there is one; otherwise the last one,
    then the earlier ones (« Revenons au premier » after an answer with no list)."""
    recent = list(reversed(exchanges))
    if noun:
        stems = set(analyze(noun))
        named = [e for e in recent if stems & content_terms(f"{e.question} {e.answer}")]
        if named:
            return named[:1]
    return recent


def answer_items(exchange: Exchange) -> list[str]:
    """The items an answer lists, in its order: its bullet lines when it has some, otherwise the
    parts of its most enumerating sentence (after a colon); failing that, the passages it cited."""
    text = exchange.answer or ""
    # A listed row reads « subject — « observation » [1] »: its subject names it.
    bullets = [_clean(m.group(1)).split(" — ")[0] for line in text.splitlines() if (m := _BULLET.match(line))]
    bullets = [b for b in bullets if content_terms(b)]
    if len(bullets) >= 2:
        return bullets
    best: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+|\n+", _clean(text)):
        listed = sentence.split(":", 1)[1] if ":" in sentence else sentence
        items = [
            _LINK.sub("", p.strip(" ."))
            for p in _split_top_level(listed)
            if content_terms(_TRAILER.sub("", p)) and not _REPLY.fullmatch(p.strip(" .!"))
        ]
        items = _with_appositions(items)
        if len(items) > len(best):
            best = _without_lead(items)
    if len(best) >= 2:
        return best
    labels = [p.label.split(" › ")[-1] for p in exchange.cited]
    return list(dict.fromkeys(labels))


def _with_appositions(items: list[str]) -> list[str]:
    """Names each followed by their description, as one item each: « SYFOADD, la plateforme de
    formation du MTE, et MENTOR, la plateforme interministérielle… » lists two platforms."""
    if len(items) < 4 or len(items) % 2:
        return items
    names, descriptions = items[0::2], items[1::2]
    if all(_ENDS_WITH_NAME.search(n) for n in names) and all(_DESCRIPTION.match(d) for d in descriptions):
        return [f"{n}, {d}" for n, d in zip(names, descriptions, strict=True)]
    return items


def _without_lead(items: list[str]) -> list[str]:
    """The first item without the clause that introduces the list (« la fiche cite les
    universités Gustave Eiffel, Caen Normandie et Lorraine »): when the other items are short
    names, the first keeps as many words as the longest of them."""
    others = [len(i.split()) for i in items[1:]]
    first = items[0].split()
    if (
        others
        and max(others) <= 3
        and len(first) > max(others) + 2
        and all(_ENDS_WITH_NAME.search(i) for i in items)
    ):
        return [" ".join(first[-max(others) :]), *items[1:]]
    return items


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", _MARKUP.sub(" ", text)).strip()


def _depths(text: str) -> list[int]:
    """How many parentheses are open at each character of ``text``."""
    depth, depths = 0, []
    for ch in text:
        depth += ch == "("
        depths.append(depth)
        depth -= ch == ")" and depth > 0
    return depths


def _split_top_level(text: str) -> list[str]:
    """``text`` cut at its separators outside parentheses, so that « les compétences
    (pédagogies, numérique, expertise) » stays one item."""
    depths = _depths(text)
    cuts: list[tuple[int, int]] = []
    for m in _SEPARATOR.finditer(text):
        if not depths[m.start()] and (not cuts or m.start() >= cuts[-1][1]):
            cuts.append((m.start(), m.end()))
    parts, start = [], 0
    for begin, end in cuts:
        parts.append(text[start:begin])
        start = end
    parts.append(text[start:])
    parts = [p for p in parts if p.strip(" .")]
    items: list[str] = []
    for index, part in enumerate(parts):
        part = re.sub(r"^\s*(?:et|ou)\s+", "", part)
        last = index == len(parts) - 1
        items.extend(_at_conjunction(part, last=last))
    return items


def _at_conjunction(part: str, last: bool) -> list[str]:
    """A comma-separated part cut at its top-level « et » / « ou »: the list's last one before its
    last item; elsewhere only between two short names."""
    depths = _depths(part)
    joints = [m for m in _CONJUNCTION.finditer(part) if not depths[m.start()]]
    if not joints:
        return [part]
    if last:
        joint = joints[-1]
        return [part[: joint.start()], part[joint.end() :]]
    joint = joints[0]
    left, right = part[: joint.start()], part[joint.end() :]
    if len(joints) == 1 and len(left.split()) <= SHORT_ITEM and len(right.split()) <= SHORT_ITEM:
        return [left, right]
    return [part]


_RANK_WORD = re.compile(r"\b(?P<rank>" + _RANK_WORDS + r")\b")


def swap_rank(question: str, previous: str) -> str | None:
    """« Et le dernier ? » after « Quel est le premier des six points ? »: the previous question
    asked of the new rank (« Quel est le dernier des six points ? »), when the follow-up is that
    rank alone and the previous question asked a rank of something."""
    folded = _fold_in_place(question)
    match = ORDINAL.search(folded)
    if match is None or content_terms(folded[: match.start()] + folded[match.end() :]):
        return None
    before = _RANK_WORD.search(_fold_in_place(previous))
    if before is None:
        return None
    start, end = match.span("rank")
    return previous[: before.start()] + question[start:end] + previous[before.end() :]
