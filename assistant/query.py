"""Query understanding: which scenarios and sections a question is about, and follow-ups.

A question names scenarios in many ways (« ENTPE », « l'école de Vaulx-en-Velin »,
« Gustave Eiffel », « l'université », « le CIPEN »…) and section intents with synonyms
(« inconvénients » → Limites, « atouts » → Opportunités, « points en suspens » → Questions).
Detected intents become boosts in retrieval (a question may still need another section);
explicit filters (``--scenario``, ``--section``) are hard filters.

A follow-up (« Et pour l'UGE ? ») inherits from the previous user question whatever it leaves
out: the topic words always, the scenario or the section when it names none. The rewritten
standalone question is what retrieval and the LLM see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from assistant.text import analyze, fold

# Patterns run on folded (lowercase, unaccented) text.
SCENARIO_PATTERNS: dict[str, re.Pattern[str]] = {
    "cmvrh": re.compile(r"\bc?m?vrh\b|\bcvrh\b|valorisation des ressources humaines"),
    "entpe": re.compile(r"\bentpe\b|travaux publics de l.etat|vaulx"),
    "uge": re.compile(r"universite gustave eiffel|\buge\b|gustave|eiffel|\buniversite\b|\buniversitaire\b"),
    "note": re.compile(
        r"\bcipen\b|\bcosa\b|\bnote (de |d.)?(l.)?(uge|universite|proposition)|proposition (de|d.)"
    ),
}
SECTION_PATTERNS: dict[str, re.Pattern[str]] = {
    "limites": re.compile(
        r"\blimites?\b|inconvenient|\brisques?\b|faiblesse|\bfreins?\b|difficulte|obstacle|"
        r"desavantage|points? faibles?|\bdebat|contraintes?|problemes?|reserves?|ecueils?|"
        r"\bcouts?\b|defavorable|\bnegatif"
    ),
    "opportunites": re.compile(
        r"opportunite|\batouts?\b|avantage|benefice|\bforces?\b|points? forts?|\binterets?\b|"
        r"\bapports?\b|plus-value|positif|favorable|\bgains?\b|\batout"
    ),
    "questions": re.compile(
        r"(?<!meme )\bquestions?\b|points? (en suspens|ouverts?)|"
        r"\binterrogations?\b|\bincertitudes?\b|reste[a-z]* a (definir|trancher|preciser)|"
        r"non (tranche|resolu)|en suspens|les questions"
    ),
    "synthese": re.compile(r"synthese|\bconclu|\bbilan\b|en resume|\bresume\b|en somme|appreciation globale"),
}
COMPARE_PATTERN = re.compile(
    r"compar|\bchaque scenario|\btous les scenarios|\bles trois\b|\bles 3\b|difference|\bversus\b|\bvs\b|"
    r"\bselon les scenarios|\bd.un scenario a l.autre|\bentre les scenarios|\bquel scenario\b"
)
FOLLOW_UP_PATTERN = re.compile(
    r"^(et\b|et pour|et (si|dans|du cote)|meme question|pareil|idem|qu.en est.il|quid\b|"
    r"et concernant|et s.agissant|et l[ae]s?\b|en ce qui concerne|"
    r"pour (l.|le |la |les )?(uge|entpe|cmvrh|cipen|universite)\b|"
    r"dans ce (cas|scenario)|et chez|et au|et a l)"
)
# Words that carry no topic of their own in a follow-up (besides stop words).
_FILLER = re.compile(
    r"\b(et|pour|le|la|les|l|du|de|des|au|aux|a|dans|ce|cas|scenario|scenarios|meme|question|"
    r"qu|en|est|il|quid|concernant|chez|alors|cote|s|agissant|sur|rattachement|fiche|d|un|une)\b"
)


@dataclass
class QueryIntent:
    """What the question asks for, as retrieval uses it."""

    question: str
    standalone: str
    scenarios: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    compare: bool = False
    listing: bool = False  # « quelles sont les limites de l'ENTPE ? »: the whole section
    follow_up: bool = False
    inherited: dict[str, list[str]] = field(default_factory=dict)


def detect_scenarios(text: str) -> list[str]:
    folded = fold(text)
    found = [code for code, pattern in SCENARIO_PATTERNS.items() if pattern.search(folded)]
    return found


def detect_sections(text: str) -> list[str]:
    folded = fold(text)
    return [kind for kind, pattern in SECTION_PATTERNS.items() if pattern.search(folded)]


def strip_scenarios(text: str) -> str:
    """The text without its scenario mentions (folded): what is left is the topic."""
    folded = fold(text)
    for pattern in SCENARIO_PATTERNS.values():
        folded = pattern.sub(" ", folded)
    return re.sub(r"\s+", " ", folded).strip()


# Words that ask for a section without naming a topic (« quelles limites la fiche relève-t-elle »).
_GENERIC = frozenset(
    analyze(
        "quel quelle quels quelles sont scénario scénarios option hypothèse rattachement CMA "
        "principal principaux principales identifié identifiées relevé relève mentionné cité "
        "listé énumère liste donne présente résume fiche document selon existe section sections "
        "tableau point points ouvert ouvertes suspens soulevé posé posées laisse met avant avance "
        "retient retenu voit prévoit évoque aborde envisage envisagé reste restent elle elles il "
        "ils on lui dossier t-elle t-il rattacher quoi"
    )
)


def topic_text(question: str, sections: list[str]) -> str:
    """The question without its scenario and section words: what lexical search looks for."""
    remaining = strip_scenarios(question)
    for kind in sections:
        remaining = SECTION_PATTERNS[kind].sub(" ", remaining)
    return " ".join(
        t for t in re.findall(r"[a-z0-9]+", remaining) if analyze(t) and analyze(t)[0] not in _GENERIC
    )


def _is_elliptical(question: str) -> bool:
    folded = fold(question).strip()
    if FOLLOW_UP_PATTERN.search(folded):
        return True
    remaining = _FILLER.sub(" ", strip_scenarios(question))
    return len(re.findall(r"[a-z0-9]{3,}", remaining)) <= 1


def previous_user_question(history: list[dict[str, str]] | None) -> str | None:
    for message in reversed(history or []):
        if message.get("role") == "user" and str(message.get("content", "")).strip():
            return str(message["content"])
    return None


def understand(question: str, history: list[dict[str, str]] | None = None) -> QueryIntent:
    """Detect scenarios, sections and comparison; rewrite an elliptical follow-up."""
    scenarios = detect_scenarios(question)
    sections = detect_sections(question)
    folded = fold(question)
    intent = QueryIntent(
        question=question,
        standalone=question.strip(),
        scenarios=scenarios,
        sections=sections,
        compare=bool(COMPARE_PATTERN.search(folded)) or len(scenarios) >= 2,
        listing=bool(sections) and not topic_text(question, sections),
    )
    previous = previous_user_question(history)
    if previous is None or not _is_elliptical(question):
        return intent
    before = understand(previous, None)
    intent.follow_up = True
    if not scenarios and before.scenarios:
        intent.scenarios = list(before.scenarios)
        intent.inherited["scenarios"] = list(before.scenarios)
    if not sections and before.sections:
        intent.sections = list(before.sections)
        intent.inherited["sections"] = list(before.sections)
    intent.compare = intent.compare or (before.compare and not scenarios)
    intent.listing = intent.listing or (before.listing and not detect_sections(question))
    topic = strip_scenarios(previous) if scenarios else previous.strip()
    current = question.strip().rstrip(" ?")
    intent.standalone = f"{topic.rstrip(' ?')} — {current} ?" if scenarios else f"{current} — {topic}"
    return intent
