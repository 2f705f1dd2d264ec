"""The verbatim side of the assistant: passage selection, compact excerpts, the extractive answer.

Everything here is deterministic and instant: no language model. The extractive answer is made of
short French titles that claim nothing (document › section) and verbatim quotes with their [n]
markers. Quotes for report writers are in ``quotes``, the comparison table in ``comparison``.

Passages are chosen by how much of the question they cover (``CorpusStats.coverage``: the share of
the question's IDF weight found in the passage) combined with the retriever's rank. Deliberately
left out: any rewording of the dossier; what is shown is what the dossier says.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from assistant import domain
from assistant.answer.citations import META_TERMS, Focus, passage_sentences
from assistant.answer.inconsistencies import Variant
from assistant.domain import SCENARIOS
from assistant.schema import Passage
from assistant.search.query import related_terms
from assistant.text import content_terms, fold

# Every answer opens with the dossier's own lines, whatever the backend: the same lead for all.
VERBATIM_LEAD = "Ce que dit le dossier, mot pour mot (extraits les plus proches de la question) :"
# A listing (« quelles sont les limites de l'ENTPE ? », « que conclut la synthèse ? ») is answered
# with the section itself, whole and in order.
LISTING_LEAD = "Ce que le dossier en dit, en entier et dans son ordre (extraits mot pour mot) :"
NOT_COVERED = "non traité dans le dossier"
# A comparison that asks which scenario is best (« Lequel garantit le mieux… », « le plus
# favorable », « préférable », « à privilégier »: French superlatives and verbs of preference, on
# folded text) gets the lines of each scenario and this note: ranking is the reader's call. It
# changes what is shown, not what is cited: no evaluation figure moves with it (01/12/2026).
RANKING = re.compile(r"\b(?:le|la|les) (?:plus|moins|mieux)\b|\bmeilleure?s?\b|\bpreferable|\bprivilegi")
RANKING_NOTE = (
    "L'assistant ne classe pas les scénarios : il cite ce que le dossier dit de chacun, "
    "la comparaison revient au lecteur."
)
# Words of the request itself (« cite textuellement… », « que dit la fiche… »), not of its topic.
REQUEST_TERMS = content_terms(domain.words("request_terms")) | META_TERMS
# Long passages are quoted by their most relevant sentences, up to this many characters: about
# 100 tokens, which keeps an LLM prompt of five passages within the time budget (MODELS.md:
# 2.6 s per 100 prompt tokens on two cores).
EXCERPT_CHARS = 420
# A follow-up that asks for the detail of what was just said (« Lesquelles précisément ? »,
# ``QueryIntent.asks_detail``) gets its passages whole, up to this size: its own words say
# nothing of which sentences matter, and what it asks for is usually the passage's list.
DETAIL_CHARS = 1200
# A passage joins the answer when its score is at least this share of the best one: below it,
# the measured passages were mostly about something else (development set, by kind).
KEEP_RATIO = 0.75
# A plain question (a fact, a paraphrase, a follow-up, a quote: neither a section listing nor a
# comparison) usually lives in one passage, or in the same paragraph repeated by the three
# sheets. Its answer cites the best passage and those within PLAIN_MARGIN of it (relative,
# on the ``rank_passages`` score), at most PLAIN_LIMIT; a runner-up must also cover at least
# as many of the question's topic terms as the best one minus PLAIN_TERM_SLACK.
# Measured on evals/qa.jsonl (extractive backend, cached retrieval, citation_precision over the
# 81 plain questions): limit 1 → 0.654, limit 2 / margin 0.75 → 0.660, margin 0.80–0.85 → 0.648,
# margin 0.90 → 0.654; the margin hardly matters, what a second passage brings is the repeated
# context paragraphs (fact_coverage), so margin 0.90 and at most 2.
PLAIN_MARGIN = 0.9
PLAIN_LIMIT = 2
PLAIN_TERM_SLACK = 0
# The retriever's rank counts for this much against the topic coverage (0 to 1). With
# EmbeddingGemma, 0.4 did better on the development set (fact coverage 0.694 → 0.717, citation
# precision 0.723 → 0.736) but worse on the blind set (0.662 → 0.657, 0.690 → 0.675): kept at 0.2.
RANK_WEIGHT = 0.2
LABEL_WEIGHT = 0.3
OTHER_SCENARIO = 0.5


class CorpusStats:
    """Document frequencies over the indexed passages, for IDF weights and vocabulary tests."""

    def __init__(self, passages: Sequence[Passage]) -> None:
        self.passages = list(passages)
        self.df: dict[str, int] = {}
        for passage in self.passages:
            for term in content_terms(f"{passage.label} {passage.text}"):
                self.df[term] = self.df.get(term, 0) + 1
        self.size = len(self.passages)
        # Words naming documents and scenarios: retrieval already weighs them (boosts), and as
        # every breadcrumb repeats them they would rank passages by their titles.
        names = {str(p.metadata.get("doc_label", "")) for p in self.passages} | set(SCENARIOS.values())
        self.name_terms = content_terms(" ".join(names)) | set(SCENARIOS)

    def idf(self, term: str) -> float:
        return math.log((self.size + 1) / (self.df.get(term, 0) + 0.5))

    def known(self, term: str) -> bool:
        return term in self.df

    def coverage(self, wanted: set[str], text: str, related_weight: float | None = None) -> float:
        """Share of the IDF weight of ``wanted`` present in ``text`` (a word of the same concept
        class counting ``related_weight``, ``RELATED_WEIGHT`` by default)."""
        related_weight = RELATED_WEIGHT if related_weight is None else related_weight
        total = sum(self.idf(t) for t in wanted)
        if not total:
            return 0.0
        present = content_terms(text)
        # A word of the same concept class counts half by default (« coût » is answered by « masse
        # salariale », but « agents » is better answered by « agents » than by « personnels »).
        found = sum(
            self.idf(t) * (1.0 if t in present else related_weight if related_terms(t) & present else 0.0)
            for t in wanted
        )
        return found / total


RELATED_WEIGHT = 0.5


def sentence_focus(wanted: set[str], stats: CorpusStats) -> Focus:
    """Which of a passage's sentences to quote, and which span its source shows: the question's
    topic words weighted by rarity, without the dossier's names (every breadcrumb repeats them),
    as ``rank_passages`` ranks passages. Development set (200 questions, extractive), each word
    counted once → by rarity, with the heading left out and a list's items read with the
    sentence that announces them: fact coverage 0.739 → 0.762, citation precision unchanged."""
    return Focus(frozenset((wanted - stats.name_terms) or wanted), stats.idf)


def topic_terms(question: str) -> set[str]:
    """The question's content terms without request and framing words."""
    return content_terms(question) - REQUEST_TERMS


def rank_passages(
    passages: Sequence[Passage], wanted: set[str], stats: CorpusStats, scenarios: Sequence[str] = ()
) -> list[tuple[float, Passage]]:
    """Passages by how much of the question's topic their text covers (their breadcrumb counts
    for less), halved when they belong to another scenario than the one asked, plus a share for
    the retriever's rank."""
    topic = (wanted - stats.name_terms) or wanted
    allowed = domain.with_related(list(scenarios))
    scored = []
    for position, passage in enumerate(passages):
        score = stats.coverage(topic, passage.text) + LABEL_WEIGHT * stats.coverage(topic, passage.label)
        if allowed and passage.scenario not in allowed:
            score *= OTHER_SCENARIO
        scored.append((score + RANK_WEIGHT / (1 + position), passage))
    return sorted(scored, key=lambda item: -item[0])


def select(
    passages: Sequence[Passage],
    wanted: set[str],
    stats: CorpusStats,
    limit: int,
    sections: Sequence[str] = (),
    scenarios: Sequence[str] = (),
) -> list[Passage]:
    """The passages an answer stands on: the best one and those close to it, at most ``limit``.

    Identical texts (the sheets repeat their context paragraphs) count once; when the question
    names a section and some passages come from it, the others are left out."""
    ranked = rank_passages(passages, wanted, stats, scenarios)
    if sections and any(p.section_kind in sections for _, p in ranked):
        # A listing (« les limites du scénario ENTPE »): the rows of that section, in the
        # retriever's order — every row answers, none is « closer » than another.
        rows = [p for p in passages if p.section_kind in sections]
        named = [p for p in rows if not scenarios or p.scenario in scenarios]
        return _unique(named or rows)[:limit]
    if not ranked:
        return []
    best = ranked[0][0]
    chosen: list[Passage] = []
    for score, passage in ranked:
        if score >= KEEP_RATIO * best and all(p.text != passage.text for p in chosen):
            chosen.append(passage)
    return chosen[:limit]


# Wording that asks about several documents at once (« chaque fiche », « les différents
# scénarios », « les trois fiches », « toutes ») without the comparison words the query
# understanding knows: such a question is answered like a comparison, one passage per scenario.
SEVERAL_DOCUMENTS = re.compile(
    r"\bchaque (fiche|document|structure|option|hypothese|scenario)|"
    r"\b(differents|differentes|divers|trois|tous les|toutes les) "
    r"(scenarios|fiches|documents|structures|options)|"
    r"\b(fiches|documents|scenarios)\b.*\b(toutes|tous)\b|\bselon (les|la) (fiches|documents|structure)"
)


def spans_documents(question: str) -> bool:
    """Whether the question asks what several documents say (see SEVERAL_DOCUMENTS)."""
    return bool(SEVERAL_DOCUMENTS.search(fold(question)))


def select_plain(
    passages: Sequence[Passage],
    wanted: set[str],
    stats: CorpusStats,
    scenarios: Sequence[str] = (),
    margin: float = PLAIN_MARGIN,
    limit: int = PLAIN_LIMIT,
) -> list[Passage]:
    """A plain question's passages: the best one, and the runners-up whose score is within
    ``margin`` of it and that cover as many of the question's topic terms (see PLAIN_MARGIN)."""
    ranked = rank_passages(passages, wanted, stats, scenarios)
    if not ranked:
        return []
    topic = (wanted - stats.name_terms) or wanted

    def overlap(passage: Passage) -> int:
        return len(content_terms(f"{passage.label} {passage.text}") & topic)

    best_score, best = ranked[0]
    chosen = [best]
    for score, passage in ranked[1:]:
        if len(chosen) >= limit or score < margin * best_score:
            break
        if overlap(passage) >= overlap(best) - PLAIN_TERM_SLACK and all(
            p.text != passage.text for p in chosen
        ):
            chosen.append(passage)
    return chosen


def section_table(corpus: Sequence[Passage], like: Passage) -> list[Passage]:
    """Every row of the table ``like`` belongs to (same document, same section), in document
    order: a listing (« quelles sont les limites de l'ENTPE ? ») shows the whole table; for a
    section of prose (« que conclut la synthèse ? »), its paragraphs."""
    kind = "row" if like.metadata.get("kind") == "row" else None
    rows = [
        p
        for p in corpus
        if (kind is None or p.metadata.get("kind") == kind)
        and p.metadata.get("doc_id") == like.metadata.get("doc_id")
        and p.section_kind == like.section_kind
    ]
    rows.sort(key=lambda p: int(p.metadata.get("position", 0)))
    return _unique(rows)


def relevant_variants(variants: Sequence[Variant], wanted: set[str], stats: CorpusStats) -> list[Variant]:
    """The inconsistencies worth showing next to a plain answer: both wordings speak of the
    question's topic (not only of a scenario's name), so the second source is on the subject too."""
    topic = (wanted - stats.name_terms) or wanted
    return [
        v for v in variants if content_terms(v.first_span) & topic and content_terms(v.second_span) & topic
    ]


def _unique(passages: Sequence[Passage]) -> list[Passage]:
    chosen: list[Passage] = []
    for passage in passages:
        if all(p.text != passage.text for p in chosen):
            chosen.append(passage)
    return chosen


def excerpt_pieces(
    passage: Passage,
    wanted: set[str],
    max_chars: int = EXCERPT_CHARS,
    prefer: frozenset[str] = frozenset(),
    focus: Focus | None = None,
) -> list[str]:
    """The passage's most relevant sentences, verbatim and in document order: one piece when the
    passage is short, otherwise the best sentences up to ``max_chars`` — those with most of the
    ``prefer`` words first (a follow-up's own words), then of the ``wanted`` ones, each word
    counted by its rarity when a ``focus`` gives them (``sentence_focus``). The passage's own
    heading is never one of them (it is the title above the quotes); a sentence that announces a
    list brings the list's items."""
    lines = [line.strip() for line in passage.text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0] == own_title(passage):
        lines = lines[1:]  # the heading is the title shown above the quotes
    text = " ".join(lines)
    if len(text) <= max_chars:
        return [text]
    sentences = passage_sentences(passage.text)
    terms = [content_terms(sentence) for sentence in sentences]
    scores = [focus.weight(t) if focus else len(t & wanted) for t in terms]
    ranked = sorted(range(len(sentences)), key=lambda i: (-len(terms[i] & prefer), -scores[i], i))
    heading = _heading_index(passage, sentences)
    chosen: list[int] = []
    size = 0

    def take(i: int) -> bool:
        nonlocal size
        if i in chosen or i == heading or (size + len(sentences[i]) > max_chars and chosen):
            return False
        chosen.append(i)
        size += len(sentences[i])
        return True

    for i in ranked:
        if take(i) and sentences[i].rstrip().endswith(":"):
            # A sentence that announces a list (« … sur les sujets suivants : ») is read with the
            # items that follow it, in order, before any other sentence; alone (its first item
            # does not fit, or the list goes on in the next passage) it says nothing: left out.
            for j in range(i + 1, len(sentences)):
                if j not in chosen and not take(j):
                    break
            if i + 1 not in chosen:
                chosen.remove(i)
                size -= len(sentences[i])
    if not chosen:  # nothing but announcements: the best of them, rather than nothing
        chosen = [i for i in ranked if i != heading][:1] or ranked[:1]
    return [sentences[i] for i in sorted(chosen)]


def own_title(passage: Passage) -> str:
    """The last step of the passage's breadcrumb: its own heading (a row's subject, a part's title)."""
    return passage.label.rsplit(" › ", 1)[-1].strip()


def _heading_index(passage: Passage, sentences: list[str]) -> int | None:
    """The sentence that is the passage's own heading (its title, shown above the quotes), if any."""
    if len(sentences) > 1 and sentences[0].strip() == own_title(passage):
        return 0
    return None


def excerpt(passage: Passage, wanted: set[str], max_chars: int = EXCERPT_CHARS) -> str:
    """The relevant sentences joined by « […] » (for a prompt, where nothing is presented as a quote)."""
    return " […] ".join(excerpt_pieces(passage, wanted, max_chars))


def render_item(
    passage: Passage,
    wanted: set[str],
    which: str | None = None,
    max_chars: int = EXCERPT_CHARS,
    prefer: frozenset[str] = frozenset(),
    focus: Focus | None = None,
) -> str:
    """One bullet of the extractive answer: the row's subject and the quoted observations, or the
    quoted relevant sentences of the paragraph, up to ``max_chars`` (each quote verbatim on its
    own); ``which`` (« premi » / « derni ») asks for the first or the last sentence only."""
    if which:
        sentences = [x for x in passage_sentences(passage.text) if content_terms(x)] or [passage.text]
        return f"« {sentences[0] if which.startswith('premi') else sentences[-1]} »"
    if passage.subject and passage.observations:
        return f"{passage.subject.strip()} — « {passage.observations.strip()} »"
    return " […] ".join(f"« {piece} »" for piece in excerpt_pieces(passage, wanted, max_chars, prefer, focus))


def group_title(passage: Passage) -> str:
    """Document › section for a table row; the paragraph's own breadcrumb otherwise."""
    if passage.metadata.get("kind") != "row":
        return passage.label
    doc = passage.metadata.get("doc_label") or passage.label.split(" › ")[0]
    section = passage.metadata.get("section_label") or passage.metadata.get("section") or ""
    return f"{doc} › {section}" if section else str(doc)


def short_title(passage: Passage) -> str:
    """Document › kind of section (« Scénario UGE › Synthèse »): names a source in one breath."""
    doc = passage.metadata.get("doc_label") or passage.label.split(" › ")[0]
    section = passage.metadata.get("section_label") or ""
    return f"{doc} › {section}" if section else str(doc)


def extractive_answer(
    passages: Sequence[Passage],
    wanted: set[str],
    variants: Sequence[Variant] = (),
    which: str | None = None,
    max_chars: int = EXCERPT_CHARS,
    prefer: frozenset[str] = frozenset(),
    focus: Focus | None = None,
) -> str:
    """The no-LLM answer body: passages grouped by document and section, quoted (each paragraph
    up to ``max_chars``, the sentences with ``prefer`` words first), marked [n] (n = position in
    ``passages``); then the dossier's inconsistencies, both sources quoted."""
    items = [
        (p, f"{render_item(p, wanted, which, max_chars, prefer, focus)} [{i}]")
        for i, p in enumerate(passages, start=1)
    ]
    lines = [grouped(items), "", *variant_lines(passages, variants)]
    return "\n".join(lines).strip()


def grouped(items: Sequence[tuple[Passage, str]]) -> str:
    """Bullets under their source's title (document › section), titles in order of appearance."""
    groups: dict[str, list[str]] = {}
    for passage, item in items:
        groups.setdefault(group_title(passage), []).append(f"- {item}")
    return "\n\n".join(f"**{title}**\n" + "\n".join(lines) for title, lines in groups.items())


def variant_lines(passages: Sequence[Passage], variants: Sequence[Variant]) -> list[str]:
    """« Incohérences du dossier » lines, both sources quoted; both must be in ``passages``."""
    ids = [p.chunk_id for p in passages]
    lines = []
    for variant in variants:
        if variant.first.chunk_id in ids and variant.second.chunk_id in ids:
            a, b = ids.index(variant.first.chunk_id) + 1, ids.index(variant.second.chunk_id) + 1
            lines.append(
                f"- {short_title(variant.first)} : « {variant.first_span} » [{a}] ; "
                f"{short_title(variant.second)} : « {variant.second_span} » [{b}]."
            )
    if not lines:
        return []
    return ["**Incohérences du dossier**", "Le dossier n'est pas cohérent sur ce point :", *lines]
