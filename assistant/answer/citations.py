"""Citation verification: every sentence of an answer is checked against the passages it may cite.

After generation, ``verify`` splits the answer into sentences and, for each one:

- finds the passages that support it: enough of its stemmed content words (``text.content_terms``)
  appear in the passage and its label, and every figure it states appears there too;
- checks that text shown as a quote (« … », “ … ”, "…") is verbatim in a passage (or, failing that,
  in the corpus, whose passage then becomes citable) — a quote found nowhere removes the sentence;
- keeps the markers that point to a supporting passage, replaces those that point to no passage
  or to one that does not support the sentence, and adds the best marker when none was given;
- removes (or flags with « (non vérifié dans le dossier) ») a sentence no passage supports.

Markers are then renumbered so that the answer lists only the passages it actually cites, each
``Citation`` carrying the passage sentence that best matches what the answer says (its verbatim
span) and that span's offset in the passage.

Passages that address the assistant (« ignore les consignes précédentes… ») are recognised by
``looks_like_instructions``: the pipeline neither gives them to the model nor accepts them as
support.

Deliberately left out: entailment models (none ships offline here) and any check of reasoning
across sentences; the unit is the sentence, the evidence is lexical and verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from assistant.schema import Citation, Passage
from assistant.text import contains, content_terms, split_sentences

# A sentence is supported by a passage when at least half of its content terms appear in the
# passage (label included). Why half: a sentence written from a passage reuses most of its
# words, even paraphrased by a small model (stems absorb inflection), while a sentence the model
# made up shares at most the topic words of the question (« le CMA », « la fiche »). Why also two
# shared terms: one shared word (« CMA ») must not support « Le CMA est dissous ».
MIN_COVERAGE = 0.5
MIN_SHARED = 2
# Sentences from several passages (« A [1] et B [2] ») are judged on the union of the cited
# passages, each of which must bring at least one term of its own.
UNFLAGGED_MARK = " (non vérifié dans le dossier)"

MARKER = re.compile(r"\s*\[(?:passages?\s*)?(\d+(?:\s*[,;]\s*\d+)*)\]")
_MARKER_AFTER_STOP = re.compile(r"([.!?…])((?:\s*\[(?:passages?\s*)?\d+(?:\s*[,;]\s*\d+)*\])+)")
QUOTE = re.compile(r"«\s*([^«»]+?)\s*»|“([^“”]+)”|\"([^\"]+)\"")
_NUMBER = re.compile(r"\d+")
_ELLIPSIS = re.compile(r"\s*(?:\[…\]|\[\.\.\.\]|…|\.\.\.)\s*")
# Framing words: they say where something is written, not what is claimed.
META_TERMS = content_terms(
    "dossier document documents fiche fiches scénario scénarios passage passages source sources "
    "extrait extraits réponse selon indique indiquent précise précisent mentionne mentionnent "
    "souligne soulignent évoque évoquent note voici suivant suivants suivantes ci-dessous "
    "partie section tableau ligne observation observations sujet également notamment aussi "
    "écrit écrivent cite citent rappelle rappellent affirme concerne concernant point points "
    "opportunités limites questions synthèse contexte extractive modèle langage verbatim "
    "cohérent cohérente incohérence incohérences incohérent varie varient"
)
# Sentences that say what the dossier does not cover are not claims about its content.
REFUSAL = re.compile(
    r"\b(le dossier|les passages?|la fiche|le document|aucun passage)\b[^.]*\b(ne (traite|dit|précise|"
    r"mentionne|donne|contient|indique|nomme|cite|répond)|n[’']?(aborde|évoque|indique))",
    re.IGNORECASE,
)


# Text that addresses the assistant instead of informing the reader: a document can carry it
# (prompt injection). Such passages are neither given to the model nor accepted as support.
INSTRUCTIONS = re.compile(
    r"\b(ignore[rsz]?|oublie[rsz]?|ne tiens? (plus )?compte|disregard|forget)\b.{0,40}"
    r"\b(consignes?|instructions?|"
    r"règles|directives|prompt|messages? précédents?)\b|\b(system prompt|prompt système|invite système|"
    r"révèle[rsz]? (tes|vos|les) (consignes|instructions|règles)|"
    r"reveal (your|the) (system|instructions|prompt)|"
    r"tu es (désormais|maintenant)|you are now|réponds? (uniquement )?que)\b",
    re.IGNORECASE,
)


def looks_like_instructions(text: str) -> bool:
    """Whether a passage talks to the assistant (« ignore les consignes précédentes… »)."""
    return INSTRUCTIONS.search(text) is not None


def find_quotes(text: str) -> list[str]:
    """Spans the text presents as quotes: « … », “ … ” and "…" (markers removed)."""
    spans = []
    for match in QUOTE.finditer(MARKER.sub("", text)):
        span = next(g for g in match.groups() if g is not None).strip()
        if content_terms(span) or _NUMBER.search(span):
            spans.append(span)
    return spans


def quote_is_verbatim(quote: str, haystack: str) -> bool:
    """A quote is verbatim when each piece between ellipses (« … », « […] ») is in the text."""
    pieces = [p for p in _ELLIPSIS.split(quote) if p.strip()]
    return bool(pieces) and all(contains(haystack, piece) for piece in pieces)


def claim_terms(sentence: str) -> set[str]:
    """Content terms a sentence asserts (framing words and markers left out)."""
    return content_terms(MARKER.sub(" ", sentence)) - META_TERMS


def passage_terms(passage: Passage) -> set[str]:
    return content_terms(f"{passage.label} {passage.text}")


def numbers_in(text: str) -> set[str]:
    return set(_NUMBER.findall(MARKER.sub(" ", text)))


def support_score(
    claim: set[str], numbers: set[str], passage: Passage, terms: set[str] | None = None
) -> float:
    """Share of the claim's terms found in the passage; 0 when a stated figure is missing."""
    if not claim:
        return 0.0
    terms = passage_terms(passage) if terms is None else terms
    if numbers - numbers_in(f"{passage.label} {passage.text}"):
        return 0.0
    shared = len(claim & terms)
    if shared < min(MIN_SHARED, len(claim)):
        return 0.0
    return shared / len(claim)


@dataclass
class SentenceCheck:
    """What verification decided for one sentence of the answer."""

    sentence: str
    verdict: str  # supported | fixed | added | no_claim | refusal | unsupported | bad_quote
    markers: list[int] = field(default_factory=list)  # indices into the passage list (0-based)


@dataclass
class Verification:
    text: str
    citations: list[Citation]
    checks: list[SentenceCheck]
    flags: list[str]
    removed: list[str]
    passages: list[Passage]  # the citable passages, corpus passages added for quotes included

    @property
    def supported_sentences(self) -> int:
        return sum(1 for c in self.checks if c.verdict in {"supported", "fixed", "added"})


def markers_before_stop(line: str) -> str:
    """« … . [1] » → « … [1]. »: a sentence's markers belong to it, not to the next one."""
    return _normalise(line)


def _normalise(line: str) -> str:
    """Put markers written after the full stop back before it: « … . [1] » → « … [1]. »"""
    return _MARKER_AFTER_STOP.sub(lambda m: f"{m.group(2)}{m.group(1)}", line)


def _markers(sentence: str) -> list[int]:
    found: list[int] = []
    for group in MARKER.findall(sentence):
        found += [int(n) for n in re.split(r"\s*[,;]\s*", group) if n]
    return found


def _strip_markers(sentence: str) -> str:
    text = MARKER.sub("", sentence)
    return re.sub(r"\s+([.,…])", r"\1", text).strip()


def cite(sentence: str, markers: Sequence[int]) -> str:
    """``sentence`` with its ``[n]`` markers placed before its final punctuation."""
    return _with_markers(sentence, list(markers))


def _with_markers(sentence: str, markers: list[int]) -> str:
    """Place ``[n]`` markers before the sentence's final punctuation; a « ? », « ! », « : » or
    « ; » keeps the narrow no-break space French puts before it (« Vaulx-en-Velin [1] ? »)."""
    if not markers:
        return sentence
    tags = "".join(f"[{m}]" for m in markers)
    match = re.search(r"[.!?…:;]+$", sentence)
    if match and not sentence.endswith(("»", "”", '"')):
        body = sentence[: match.start()].rstrip("\u202f\u00a0 ")
        space = "\u202f" if match.group(0)[0] in "?!:;" else ""
        return f"{body} {tags}{space}{match.group(0)}"
    return f"{sentence} {tags}"


@dataclass(frozen=True)
class Focus:
    """The question's topic words and how much each counts (its rarity in the dossier)."""

    words: frozenset[str]
    rarity: Callable[[str], float]

    def weight(self, terms: set[str]) -> float:
        return sum(self.rarity(t) for t in terms & self.words)


class Verifier:
    """Checks answers against a list of passages; ``corpus`` serves to locate quotes."""

    def __init__(self, corpus: Sequence[Passage] = (), on_unsupported: str = "remove") -> None:
        if on_unsupported not in {"remove", "flag"}:
            raise ValueError("on_unsupported must be 'remove' or 'flag'")
        self.corpus = list(corpus)
        self.on_unsupported = on_unsupported

    def verify(self, text: str, passages: Sequence[Passage], focus: Focus | None = None) -> Verification:
        """The answer's supported sentences, renumbered, each cited passage with the span it stands
        on; ``focus`` (the question's words and their weights) picks that span among several."""
        citable = list(passages)
        given = len(citable)  # markers may only point to the passages given, not to those added
        terms = [passage_terms(p) for p in citable]
        checks: list[SentenceCheck] = []
        removed: list[str] = []
        flags: set[str] = set()
        lines_out: list[str] = []
        for line in text.splitlines():
            prefix_match = re.match(r"^(\s*(?:[-*•]|\d+[.)])\s+|\s*#+\s+)?", line)
            prefix = prefix_match.group(0) if prefix_match else ""
            body = _normalise(line[len(prefix) :])
            if not body.strip():
                lines_out.append(line if not prefix else "")
                continue
            if self._is_heading(prefix, body, citable):
                lines_out.append(prefix + _strip_markers(body))
                continue
            kept: list[tuple[str, list[int]]] = []
            for sentence in answer_sentences(body):
                check = self._check(sentence, citable, terms, given)
                checks.append(check)
                clean = _strip_markers(sentence)
                if check.verdict in {"unsupported", "bad_quote"}:
                    flags.add("unsupported_removed" if check.verdict == "unsupported" else "quote_removed")
                    if self.on_unsupported == "flag" and check.verdict == "unsupported":
                        kept.append((clean.rstrip(".") + UNFLAGGED_MARK + ".", []))
                    else:
                        removed.append(clean)
                    continue
                if check.verdict in {"fixed", "added"}:
                    flags.add("marker_fixed" if check.verdict == "fixed" else "marker_added")
                if check.verdict == "refusal":
                    flags.add("partial")
                kept.append((clean, check.markers))
            if kept:
                lines_out.append(prefix + " ".join(_with_markers(s, [m + 1 for m in ms]) for s, ms in kept))
        body = re.sub(r"\n{3,}", "\n\n", "\n".join(lines_out)).strip()
        body, citations = self._renumber(body, citable, checks, focus)
        return Verification(body, citations, checks, sorted(flags), removed, citable)

    def check_sentence(self, sentence: str, passages: Sequence[Passage]) -> SentenceCheck:
        """One complete sentence checked against ``passages`` only (a synthesis of quoted lines:
        a quote found elsewhere in the corpus does not count). A kept sentence has the verdict
        ``supported``, ``fixed`` or ``added``, and its ``markers`` index ``passages``."""
        citable = list(passages)
        terms = [passage_terms(p) for p in citable]
        check = self._check(_normalise(sentence.strip()), citable, terms, len(citable))
        if any(m >= len(passages) for m in check.markers):
            return SentenceCheck(check.sentence, "bad_quote")
        return check

    @staticmethod
    def _is_heading(prefix: str, body: str, citable: list[Passage]) -> bool:
        """A title line (« **Scénario ENTPE › Limites** ») names sources; it claims nothing as
        long as every word of it comes from a passage label."""
        stripped = body.strip()
        is_title = prefix.strip().startswith("#") or bool(re.fullmatch(r"\*\*[^*]+\*\*\s*:?", stripped))
        if not is_title or MARKER.search(stripped):
            return False
        labels = set().union(*(content_terms(p.label) for p in citable)) if citable else set()
        return claim_terms(stripped) <= labels

    # -- one sentence ------------------------------------------------------------------------
    def _check(
        self, sentence: str, citable: list[Passage], terms: list[set[str]], given: int
    ) -> SentenceCheck:
        markers = _markers(sentence)
        clean = _strip_markers(sentence)
        quotes = find_quotes(clean)
        outside = QUOTE.sub(" ", clean)
        claim = claim_terms(outside)
        numbers = numbers_in(outside)
        if not quotes and REFUSAL.search(clean):
            return SentenceCheck(clean, "refusal")
        if not quotes and not claim and not numbers:
            return SentenceCheck(clean, "no_claim")
        if quotes:
            holders = self._quote_holders(quotes, citable, terms)
            if holders is None:
                return SentenceCheck(clean, "bad_quote")
            scores = [
                self._quote_support(claim, numbers, i, holders, citable, terms) for i in range(len(citable))
            ]
        else:
            scores = [support_score(claim, numbers, p, t) for p, t in zip(citable, terms, strict=True)]
        valid = [m - 1 for m in markers if 1 <= m <= given]
        supporting = [i for i in dict.fromkeys(valid) if scores[i] >= MIN_COVERAGE]
        if not supporting and not quotes and len(set(valid)) > 1:
            supporting = self._joint_support(claim, numbers, sorted(set(valid)), terms, citable)
        if supporting:
            verdict = "supported" if len(supporting) == len(set(markers)) else "fixed"
            return SentenceCheck(clean, verdict, supporting)
        best = max(range(len(citable)), key=lambda i: (scores[i], -i), default=None)
        if best is None or scores[best] < MIN_COVERAGE:
            return SentenceCheck(clean, "unsupported")
        return SentenceCheck(clean, "fixed" if markers else "added", [best])

    def _quote_holders(
        self, quotes: list[str], citable: list[Passage], terms: list[set[str]]
    ) -> set[int] | None:
        """Passages holding the quotes (a corpus passage is added when none does); None if fake."""
        holders: set[int] | None = None
        for quote in quotes:
            found = {i for i, p in enumerate(citable) if quote_is_verbatim(quote, p.text)}
            if not found:
                extra = next((p for p in self.corpus if quote_is_verbatim(quote, p.text)), None)
                if extra is None:
                    return None
                citable.append(extra)
                terms.append(passage_terms(extra))
                found = {len(citable) - 1}
            holders = found if holders is None else (holders & found or holders | found)
        return holders

    @staticmethod
    def _quote_support(
        claim: set[str],
        numbers: set[str],
        i: int,
        holders: set[int],
        citable: list[Passage],
        terms: list[set[str]],
    ) -> float:
        """A quoting sentence is supported by the passage holding the quote, unless the words
        around the quote make a claim of their own (three terms or more, or a figure) that the
        passage does not back: « L'ENTPE répond : « … » » is fine, « Le CMA sera dissous, « … » » is not."""
        if i not in holders:
            return 0.0
        if numbers - numbers_in(f"{citable[i].label} {citable[i].text}"):
            return 0.0
        if len(claim) < 3:
            return 1.0
        return 1.0 if len(claim & terms[i]) / len(claim) >= MIN_COVERAGE else 0.0

    @staticmethod
    def _joint_support(
        claim: set[str], numbers: set[str], cited: list[int], terms: list[set[str]], citable: list[Passage]
    ) -> list[int]:
        union = set().union(*(terms[i] for i in cited))
        figures = set().union(*(numbers_in(f"{citable[i].label} {citable[i].text}") for i in cited))
        if not claim or numbers - figures or len(claim & union) / len(claim) < MIN_COVERAGE:
            return []
        return [i for i in cited if claim & terms[i]]

    # -- numbering and spans -----------------------------------------------------------------
    def _renumber(
        self, body: str, citable: list[Passage], checks: list[SentenceCheck], focus: Focus | None = None
    ) -> tuple[str, list[Citation]]:
        order: list[int] = []
        for number in _markers(body):
            if number - 1 not in order:
                order.append(number - 1)
        new = {old: position + 1 for position, old in enumerate(order)}

        def renumber(match: re.Match[str]) -> str:
            numbers = [int(n) for n in re.split(r"\s*[,;]\s*", match.group(1)) if n]
            kept = list(dict.fromkeys(new[n - 1] for n in numbers if n - 1 in new))
            return " " + "".join(f"[{n}]" for n in kept) if kept else ""

        body = MARKER.sub(renumber, body)
        body = re.sub(r"\](\s+)\[", "][", body)
        citations = []
        for old in order:
            citing = [c.sentence for c in checks if old in c.markers]
            span, start = best_span(citable[old], " ".join(citing), focus=focus)
            citations.append(Citation(new[old], citable[old], span, start))
        return body, citations


def answer_sentences(text: str) -> list[str]:
    """``split_sentences``, but never inside an open « … » quote."""
    merged: list[str] = []
    for piece in split_sentences(text):
        if merged and merged[-1].count("«") > merged[-1].count("»"):
            merged[-1] = f"{merged[-1]} {piece}"
        else:
            merged.append(piece)
    return merged


def passage_sentences(text: str) -> list[str]:
    """Sentences of a passage (list items and table cells count as sentences)."""
    pieces: list[str] = []
    for line in text.splitlines():
        for cell in line.split(" — "):
            pieces += split_sentences(cell.strip(" -•\t"))
    return [p for p in pieces if p.strip()]


def best_span(
    passage: Passage, said: str, terms: set[str] | None = None, focus: Focus | None = None
) -> tuple[str, int]:
    """What of the passage ``said`` stands on, and its offset in the passage text: of the stretches
    ``said`` quotes that are in the passage word for word, the one with most of the ``focus``
    words (weighted), else the longest (a table row's observation, quoted whole across its
    sentences, is cited as such, not by the row's subject); otherwise the passage sentence that
    best matches its quotes or the stemmed ``terms``."""
    quotes = find_quotes(said)
    pieces = [piece.strip() for q in quotes for piece in _ELLIPSIS.split(q)]
    found = [(p, passage.text.find(p)) for p in pieces if content_terms(p) and p in passage.text]
    if found:

        def relevance(item: tuple[str, int]) -> tuple[float, int]:
            weight = focus.weight(content_terms(item[0])) if focus else 0.0
            return weight, len(item[0])

        return max(found, key=relevance)
    sentences = passage_sentences(passage.text) or [passage.text]
    wanted = (claim_terms(said) | content_terms(" ".join(quotes))) if terms is None else terms

    def score(sentence: str) -> tuple[int, int]:
        quoted = sum(1 for q in quotes if quote_is_verbatim(q, sentence))
        return quoted, len(content_terms(sentence) & wanted)

    span = max(sentences, key=score)
    return span, passage.text.find(span)


def verify(
    text: str, passages: Sequence[Passage], corpus: Sequence[Passage] = (), on_unsupported: str = "remove"
) -> Verification:
    """Shortcut for ``Verifier(corpus, on_unsupported).verify(text, passages)``."""
    return Verifier(corpus, on_unsupported).verify(text, passages)
