"""Retrieval on the whole corpus (the session index): sections, filters, follow-ups, intents,
comparisons, the passages' contents, and ``assistant search --json``."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from assistant import cli
from assistant.domain import SCENARIOS, SECTIONS
from assistant.schema import Passage
from assistant.search import retrieval
from assistant.search.index import CorpusIndex
from assistant.search.query import answer_subject, understand
from assistant.search.retrieval import Retriever
from assistant.settings import Settings
from assistant.text import clean_markup, match_key


def _rows(retriever: Retriever, scenario: str, section: str) -> set[str]:
    return {
        r.chunk_id
        for r in retriever.records
        if r.metadata["scenario"] == scenario
        and r.metadata["section_kind"] == section
        and r.metadata["kind"] == "row"
    }


def _history(question: str) -> list[dict[str, str]]:
    return [
        {"role": "user", "content": question},
        {"role": "assistant", "content": "Voici ce que dit la fiche."},
    ]


# ------------------------------------------------------------------ sections


@pytest.mark.parametrize(
    "question",
    [
        "limites du scénario ENTPE",
        "Quelles sont les limites du scénario ENTPE ?",
        "Quels inconvénients pour l'ENTPE ?",
    ],
)
def test_a_section_question_gets_that_tables_rows_first(retriever: Retriever, question: str) -> None:
    rows = _rows(retriever, "entpe", "limites")
    assert len(rows) == 6
    passages = retriever.search(question, k=8).passages
    head = passages[: len(rows)]
    assert {p.chunk_id for p in head} == rows  # the whole table, before anything else
    for passage in head:
        assert passage.label == f"Scénario ENTPE › Limites › {passage.metadata['subject']}"
    assert any(p.label.startswith("Scénario ENTPE › Limites › Géographie") for p in head)


def test_a_topic_question_finds_its_row(retriever: Retriever) -> None:
    passages = retriever.search("Quelle gouvernance est prévue avec l'Université Gustave Eiffel ?").passages
    assert passages[0].label == "Scénario UGE › Questions › Gouvernance"
    passages = retriever.search("Combien coûte la masse salariale du CMA à l'ENTPE ?").passages
    assert passages[0].metadata["subject"].startswith("Finances : dotation à l'Entpe")
    assert "780 k€" in passages[0].text


# ------------------------------------------------------------------ explicit filters


@pytest.mark.parametrize(
    ("question", "scenarios", "sections"),
    [
        ("gouvernance et financement", ["uge"], None),
        ("gouvernance et financement", None, ["questions"]),
        ("gouvernance et financement", ["cmvrh", "entpe"], ["questions"]),
        ("Quelles sont les opportunités ?", ["note"], None),
        # a filter wins over what the question names
        ("limites de l'ENTPE", ["uge"], None),
        ("Quelles sont les limites du scénario ENTPE ?", ["entpe"], ["questions"]),
    ],
)
def test_explicit_filters_return_only_matching_passages(
    retriever: Retriever, question: str, scenarios: list[str] | None, sections: list[str] | None
) -> None:
    result = retriever.search(question, scenarios=scenarios, sections=sections, k=8)
    assert result.passages
    assert result.filters == {"scenarios": scenarios or [], "sections": sections or []}
    for passage in result.passages:
        if scenarios:
            assert passage.scenario in scenarios, passage.label
        if sections:
            assert passage.section_kind in sections, passage.label


def test_k_limits_the_number_of_passages(retriever: Retriever) -> None:
    assert len(retriever.search("gouvernance", k=3).passages) == 3
    passages = retriever.search("gouvernance").passages
    assert len(passages) == retriever.settings.top_k
    assert [p.rank for p in passages] == list(range(1, len(passages) + 1))


# ------------------------------------------------------------------ follow-ups


def test_a_follow_up_inherits_the_section_of_the_previous_question(retriever: Retriever) -> None:
    history = _history("Quelles sont les limites du scénario ENTPE ?")
    result = retriever.search("Et pour l'UGE ?", history=history)
    assert result.intent.follow_up
    assert result.intent.scenarios == ["uge"]
    assert result.intent.inherited == {"sections": ["limites"]}
    rows = _rows(retriever, "uge", "limites")
    head = result.passages[: len(rows)]
    assert {p.chunk_id for p in head} == rows
    assert all(p.label.startswith("Scénario UGE › Limites › ") for p in head)


def test_a_follow_up_inherits_the_scenario_when_it_names_a_section(retriever: Retriever) -> None:
    history = _history("Quelles sont les opportunités de l'ENTPE ?")
    result = retriever.search("Et les limites ?", history=history)
    assert result.intent.scenarios == ["entpe"] and result.intent.sections == ["limites"]
    assert {p.chunk_id for p in result.passages[:6]} == _rows(retriever, "entpe", "limites")


def test_without_history_nothing_is_inherited(retriever: Retriever) -> None:
    result = retriever.search("Et pour l'UGE ?")
    assert not result.intent.follow_up and result.intent.sections == []
    assert result.passages[0].scenario == "uge"


def test_only_user_turns_are_inherited() -> None:
    history = [
        {"role": "user", "content": "Quelles sont les opportunités du CMVRH ?"},
        {"role": "assistant", "content": "Les limites de l'ENTPE sont différentes."},
    ]
    intent = understand("Et pour l'ENTPE ?", history)
    assert intent.scenarios == ["entpe"] and intent.sections == ["opportunites"]


def test_a_pronoun_finds_its_antecedent_in_the_previous_answer(retriever: Retriever) -> None:
    history = [
        {"role": "user", "content": "Quelle structure de l'Université Gustave Eiffel accueillerait le CMA ?"},
        {
            "role": "assistant",
            "content": "Réponse extractive (sans modèle de langage) : extraits.\n"
            "Le **CIPEN**, centre d'innovation pédagogique et numérique [1].\n\nSources :\n[1] Note",
        },
    ]
    result = retriever.search("Quelles sont ses missions ?", history=history)
    intent = result.intent
    assert intent.follow_up and intent.scenarios == ["uge"]
    # The question shown stays the user's; retrieval also looks for the name the answer added
    # (not the lead, the source list or names the question already had).
    assert "CIPEN" not in intent.standalone
    assert intent.antecedent == "CIPEN"
    assert intent.search_text.endswith(" — CIPEN")
    assert any("CIPEN" in p.label for p in result.passages[:3])


def test_a_noun_asked_about_names_no_scenario() -> None:
    """« quelle université » asks which one: it does not name the UGE (« l'université » does)."""
    assert understand("Elle est rattachée à quelle université ?").scenarios == []
    assert understand("Une école pourrait-elle accueillir le CMA ?").scenarios == []
    normandy = understand("Avec quelle université de Normandie le CMVRH a-t-il noué un partenariat ?")
    assert normandy.scenarios == ["cmvrh"] and not normandy.compare
    assert understand("Quelle est la position de l'université ?").scenarios == ["uge"]


def test_a_pronoun_points_to_the_body_the_previous_answer_is_about(retriever: Retriever) -> None:
    history = [
        {"role": "user", "content": "Quelle école du ministère est candidate pour accueillir le CMA ?"},
        {
            "role": "assistant",
            "content": "L'ENTPE, école d'ingénieurs de Vaulx-en-Velin, qui reprendrait les missions.",
        },
    ]
    result = retriever.search("Et de quelle université dépend-elle ?", history=history)
    assert result.intent.scenarios == ["entpe"]
    # Read with the name the answer gave, not with the previous question it answered.
    assert result.intent.standalone == "Et de quelle université dépend-elle ? (ENTPE)"
    assert any("U de Lyon" in p.text for p in result.passages[:5])
    # The body the answer names most, the first named on a tie.
    assert answer_subject("Selon les fiches CMVRH et ENTPE, elles passeraient à l'ENTPE.") == "entpe"
    assert answer_subject("Le CMVRH ou l'ENTPE.") == "cmvrh"
    assert answer_subject("Plusieurs universités.") is None
    # A document cited as the answer's source is no subject: « son article 2 » is the decree's.
    assert answer_subject("Du 8 février 2017 selon la note de l'UGE et la synthèse de la fiche UGE.") is None
    # A previous question that named its scenario keeps it as the subject.
    named = [{"role": "user", "content": "Que propose le CMVRH ?"}, history[1]]
    assert understand("Et de quelle université dépend-elle ?", named).scenarios == ["cmvrh"]


def test_a_question_in_a_conversation_is_also_searched_with_it(retriever: Retriever) -> None:
    # No ellipsis or pronoun the grammar can see: not read as a follow-up, yet it leans on the
    # previous turn, which the search adds at a lower weight than the question itself (checked
    # with e5, the tests' embedder, and with EmbeddingGemma).
    history = [
        {
            "role": "user",
            "content": "Où l'Université Gustave Eiffel accueillerait-elle les agents du CMA ?",
        },
        {"role": "assistant", "content": "Sur deux de ses campus, selon la note de l'université."},
    ]
    question = "Quels lieux sont cités ?"
    result = retriever.search(question, history=history)
    assert not result.intent.follow_up
    assert any("Villeneuve d'Ascq" in p.text for p in result.passages[:5])
    alone = retriever.search(question)
    assert not any("Villeneuve d'Ascq" in p.text for p in alone.passages[:5])


def test_a_follow_up_that_only_takes_up_the_answers_words_asks_for_its_detail() -> None:
    history = [
        {"role": "user", "content": "Sur quoi la fiche ENTPE attend-elle le CMA ?"},
        {"role": "assistant", "content": "Sur plusieurs chantiers de formation à distance."},
    ]
    assert understand("Lesquels ?", history).asks_detail
    assert understand("Quels chantiers ?", history).asks_detail  # « chantiers »: the answer's word
    assert not understand("Quels partenaires ?", history).asks_detail  # a word of its own


def test_several_universities_name_no_scenario_and_asking_among_them_is_a_follow_up() -> None:
    """« l'université » is the UGE in this dossier; « les universités » are any universities (the
    CMVRH's partners: « les universités Gustave Eiffel, Caen Normandie ou Lorraine »)."""
    assert understand("Quelles universités travaillent avec le ministère ?").scenarios == []
    assert understand("Que propose l'université ?").scenarios == ["uge"]
    history = [
        {"role": "user", "content": "Le CMVRH a-t-il déjà des partenaires hors du ministère ?"},
        {"role": "assistant", "content": "Oui : il travaille avec la DGAFP et avec plusieurs universités."},
    ]
    among = understand("Lesquelles parmi les universités ?", history)  # « parmi »: no topic
    assert among.follow_up and among.asks_detail and among.scenarios == ["cmvrh"]


def test_a_scenario_named_two_turns_back_is_still_the_conversations_subject() -> None:
    history = [
        {"role": "user", "content": "Que prévoit la note de l'université pour les personnels du CMA ?"},
        {"role": "assistant", "content": "Ils seraient accueillis sur deux campus."},
        {"role": "user", "content": "Combien sont-ils ?"},
        {"role": "assistant", "content": "Le dossier ne le précise pas dans ce passage."},
    ]
    intent = understand("Qui gérerait leur carrière ?", history)
    assert intent.follow_up and intent.scenarios == ["note"]
    assert intent.inherited["scenarios"] == ["note"]
    # at most four turns are read: a scenario named five turns back is no longer inherited
    filler = [{"role": "user", "content": "Et ensuite ?"}, {"role": "assistant", "content": "Rien de plus."}]
    assert understand("Qui gérerait leur carrière ?", history[:2] + filler * 4).scenarios == []


def test_a_follow_up_with_its_own_topic_after_a_listing_is_no_listing() -> None:
    history = [
        {"role": "user", "content": "Que propose la fiche ENTPE comme opportunités ?"},
        {"role": "assistant", "content": "Une expérience de travail conjoint, entre autres."},
        {"role": "user", "content": "Et ses limites ?"},
        {"role": "assistant", "content": "La géographie des postes et les finances, notamment."},
    ]
    row = understand("Et sur le travail à distance ?", history)
    assert row.scenarios == ["entpe"] and row.sections == ["limites"] and not row.listing
    listing = [{"role": "user", "content": "Quelles sont les limites de l'ENTPE ?"}, history[3]]
    assert understand("Et pour l'UGE ?", listing).listing  # the same listing, another scenario


def test_asking_for_the_detail_brings_the_rest_of_a_cut_list_after_its_start(retriever: Retriever) -> None:
    history = [
        {
            "role": "user",
            "content": "Quelles missions du CMA la note dit-elle très proches de celles du CIPEN ?",
        },
        {"role": "assistant", "content": "Ses missions, qu'elle énumère."},
    ]
    first, second = retriever.search("Lesquelles ?", history).passages[:2]
    assert first.text.rstrip().splitlines()[-1].startswith("- ")  # the list is cut after it
    assert second.metadata["section"] == first.metadata["section"]
    assert second.metadata["position"] == first.metadata["position"] + 1
    assert second.text.startswith("- ")


def test_a_section_the_new_scenario_does_not_have_is_not_inherited(retriever: Retriever) -> None:
    history = _history("Quelles opportunités la fiche ENTPE relève-t-elle ?")
    moved = retriever.search("Et dans la note de l'université, sur la gestion du personnel ?", history)
    assert moved.intent.scenarios == ["note"] and moved.intent.sections == []  # no such table
    assert moved.passages[0].scenario == "note"
    kept = retriever.search("Et pour l'UGE ?", history)
    assert kept.intent.sections == ["opportunites"]  # the UGE sheet has one


def test_a_follow_up_keeps_its_own_topic_when_it_changes_scenario() -> None:
    history = _history("Que dit la fiche ENTPE sur l'expertise RH (salaires, primes) ?")
    intent = understand("Et la note de l'université, sur la gestion des personnels ?", history)
    assert intent.scenarios == ["note"]
    assert intent.standalone.startswith("Et la note de l'université, sur la gestion des personnels ? — ")
    assert "expertise RH" in intent.standalone
    # Without a topic of its own, the previous question is asked of the new scenario.
    assert understand("Et pour l'UGE ?", history).standalone == (
        "Que dit la fiche UGE sur l'expertise RH (salaires, primes) ?"
    )


# ------------------------------------------------------------------ query understanding


@pytest.mark.parametrize(
    ("question", "scenarios", "sections"),
    [
        ("Que propose Gustave Eiffel pour le CMA ?", ["uge"], []),
        ("Que gagnerait l'université à accueillir le centre ?", ["uge"], []),
        ("Le CIPEN accueillerait-il le CMA ?", ["note"], []),
        ("Que prévoit le COSA ?", ["note"], []),
        ("Quels freins au rattachement à l'école de Vaulx-en-Velin ?", ["entpe"], ["limites"]),
        ("Quels sont les inconvénients du rattachement au CMVRH ?", ["cmvrh"], ["limites"]),
        ("Quels risques pour l'Université Gustave Eiffel ?", ["uge"], ["limites"]),
        ("Quels atouts pour l'ENTPE ?", ["entpe"], ["opportunites"]),
        ("Quels sont les avantages du CMVRH ?", ["cmvrh"], ["opportunites"]),
        ("Quels points en suspens pour l'UGE ?", ["uge"], ["questions"]),
        ("Quelles interrogations subsistent ?", [], ["questions"]),
        ("Quelle est la synthèse du scénario CMVRH ?", ["cmvrh"], ["synthese"]),
        ("En résumé, que conclut la fiche UGE ?", ["uge"], ["synthese"]),
        ("Qui est le directeur du CMA ?", [], []),
    ],
)
def test_scenario_and_section_intents(question: str, scenarios: list[str], sections: list[str]) -> None:
    intent = understand(question)
    assert intent.scenarios == scenarios
    assert intent.sections == sections
    assert not intent.follow_up and intent.standalone == question


# ------------------------------------------------------------------ comparisons

COMPARISONS = [
    "Comparez les limites des trois scénarios.",
    "Quelle différence entre l'ENTPE et le CMVRH sur la géographie des agents ?",
    "Compare les opportunités de l'ENTPE et de l'Université Gustave Eiffel.",
    "Quelles questions restent ouvertes pour chaque scénario ?",
    "Les trois scénarios prévoient-ils de reprendre les rencontres de la eformation ?",
]


@pytest.mark.parametrize(
    ("question", "compare"),
    [
        ("Lequel des scénarios protège le mieux la visibilité du CMA ?", True),
        ("Quels scénarios reprennent le site internet du CMA ?", True),
        ("Dans quelle hypothèse les agents restent-ils à Aix ?", True),
        ("Quel rattachement pour l'équipe de Valenciennes ?", True),
        # One scenario named: « quelles options » are that scenario's, not a comparison.
        ("Quelles options la fiche ENTPE laisse-t-elle ouvertes ?", False),
        ("Quelle est la mission du CMA ?", False),
        # A scenario noun spread over all of them by a quantifier.
        ("Que prévoit chaque fiche pour la veille ?", True),
        ("Selon les différents scénarios, où travailleraient les agents ?", True),
        ("Que disent les synthèses des trois fiches ?", True),
        ("Que deviendrait le site internet pour chaque établissement d'accueil ?", True),
        ("Chaque agent garderait-il son poste ?", False),
        ("Quelle structure d'accueil la note propose-t-elle ?", False),
    ],
)
def test_asking_which_scenario_is_asking_about_each(question: str, compare: bool) -> None:
    assert understand(question).compare is compare


@pytest.mark.parametrize("question", COMPARISONS)
def test_comparisons_bring_several_scenarios_to_the_top(retriever: Retriever, question: str) -> None:
    result = retriever.search(question)
    assert result.intent.compare
    named = [s for s in result.intent.scenarios if s != "note"]
    top = {p.scenario for p in result.passages[:5]}
    assert len(top & {"cmvrh", "entpe", "uge"}) >= 2, [p.label for p in result.passages[:5]]
    assert set(named) <= top


def test_theme_similarities_read_only_the_scenarios_asked(retriever: Retriever) -> None:
    """The comparison scores a theme against the compared scenarios' passages only: in a large
    library it reads their vectors, not every document's."""
    theme = ("gouvernance", "Que dit le dossier sur la gouvernance ?")
    everything = retriever.similarities(*theme)
    scoped = retriever.similarities(*theme, scenarios=["entpe"])
    entpe = {r.chunk_id for r in retriever.records if r.metadata["scenario"] == "entpe"}
    assert set(everything) == {r.chunk_id for r in retriever.records}
    assert set(scoped) == entpe
    for chunk_id in entpe:
        assert scoped[chunk_id] == pytest.approx(everything[chunk_id], abs=1e-6)
    best = max(everything, key=lambda c: everything[c])
    assert "Gouvernance" in next(r.label for r in retriever.records if r.chunk_id == best)


def test_exact_search_in_memory_agrees_with_chromas_index(retriever: Retriever) -> None:
    """A small index is searched from its vectors held in memory: the same passages, in the same
    order and with the same scores, as Chroma's own search, filters included."""
    assert retriever.stored is not None
    assert len(retriever.stored.owners) > len(retriever.records)  # passages and their sentences
    vector = retriever.embed_queries(["Quelles limites pour le financement du CMA ?"])[0]
    filters = [(None, None), (["entpe"], None), (None, ["limites"]), (["uge"], ["questions"])]
    for scenarios, sections in filters:
        exact = retriever._dense(vector, scenarios, sections)
        stored, retriever.stored = retriever.stored, None
        try:
            chroma = retriever._dense(vector, scenarios, sections)
        finally:
            retriever.stored = stored
        assert exact, (scenarios, sections)
        head = len(chroma) // 2  # Chroma's sentence list is cut at 3 × k: compare the head
        assert [p for p, _ in exact[:head]] == [p for p, _ in chroma[:head]], (scenarios, sections)
        for (_, mine), (_, theirs) in zip(exact[:head], chroma[:head], strict=True):
            assert mine == pytest.approx(theirs, abs=1e-4)


def test_past_the_limit_dense_search_asks_chroma(
    built_index: CorpusIndex, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retrieval, "EXACT_SEARCH_MAX", 100)
    large = Retriever(built_index, settings)
    assert large.stored is None
    passages = large.search("Quelles limites pour le financement du CMA ?").passages
    assert passages and passages[0].scenario


# ------------------------------------------------------------------ passages


QUESTIONS = [
    "limites du scénario ENTPE",
    "Combien d'agents compte le CIPEN ?",
    "Quand le CMA a-t-il été préfiguré ?",
    "Comparez les limites des trois scénarios.",
    "Qu'apporte la plateforme SYFOADD ?",
]


@pytest.fixture(scope="module")
def corpus_texts(settings: Settings) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in Path(settings.corpus_dir).iterdir()}


def _check_passage(passage: Passage, corpus_texts: dict[str, str], record_ids: set[str]) -> None:
    meta = passage.metadata
    assert passage.chunk_id in record_ids
    assert passage.text and passage.label
    assert passage.label == meta["label"]
    assert passage.label.startswith(meta["doc_label"])
    assert meta["scenario"] in SCENARIOS and meta["section_kind"] in SECTIONS
    assert meta["doc_id"] and meta["source"] in corpus_texts
    assert isinstance(passage.score, float) and math.isfinite(passage.score)
    # verbatim: the passage's words are in its source document, in that order
    source = corpus_texts[meta["source"]]
    assert match_key(passage.text) in match_key(clean_markup(source))
    # and its offsets point at them
    span = source[int(meta["start"]) : int(meta["end"])]
    span_key = match_key(clean_markup(re.sub(r"(?m)^\s*(?:-|\d+\.)\s+", "", span)))
    assert match_key(passage.text.split("\n", 1)[-1])[:40] in span_key


@pytest.mark.parametrize("question", QUESTIONS)
def test_passages_carry_verbatim_text_label_metadata_and_score(
    retriever: Retriever, corpus_texts: dict[str, str], question: str
) -> None:
    record_ids = {r.chunk_id for r in retriever.records}
    passages = retriever.search(question).passages
    assert passages
    for passage in passages:
        _check_passage(passage, corpus_texts, record_ids)
    assert len({p.chunk_id for p in passages}) == len(passages)


@pytest.mark.parametrize(
    ("question", "heading"),
    [
        ("Qu'est-ce que la fiche CMVRH épingle comme inconvénients ?", "Scénario CMVRH › Limites"),
        (
            "Passe-moi en revue les questions ouvertes listées dans la fiche ENTPE.",
            "Scénario ENTPE › Questions",
        ),
    ],
)
def test_a_section_asked_with_words_its_sheet_never_writes_is_listed(
    retriever: Retriever, question: str, heading: str
) -> None:
    # « épingle », « passe », « revue » name no row of the sheet: the section is asked for whole.
    # The reading is settled on the result's intent; the one given to ``retrieve`` is left as is,
    # so that every reader after retrieval reads the same question (and a cache may reuse it).
    asked = understand(question)
    result = retriever.retrieve(asked)
    assert result.intent.listing and not asked.listing
    rows = [p for p in retriever.records if p.label.startswith(heading)]
    assert {p.chunk_id for p in result.passages[: len(rows)]} == {r.chunk_id for r in rows}


def test_a_section_asked_with_a_word_of_its_sheet_is_searched(retriever: Retriever) -> None:
    # « plateformes » is written in the UGE sheet (an opportunity): a topic, not a request verb.
    result = retriever.search("Côté UGE, ça pose un problème d'avoir plusieurs plateformes ?")
    assert not result.intent.listing
    assert any("Multi-plateforme" in p.text for p in result.passages[:3])


def test_a_plain_question_is_ranked_by_score(retriever: Retriever) -> None:
    result = retriever.search("Combien d'agents compte le CIPEN ?")
    assert not result.intent.listing and not result.intent.compare
    scores = [p.score for p in result.passages]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    assert "70 agents" in result.passages[0].text
    assert {"dense", "lexical"} & set(result.passages[0].scores)


def test_passages_serialise_to_json(retriever: Retriever) -> None:
    passage = retriever.search("limites du scénario ENTPE").passages[0]
    data = json.loads(json.dumps(passage.to_dict(), ensure_ascii=False))
    assert data["text"] == passage.text and data["label"] == passage.label
    assert data["metadata"]["scenario"] == "entpe"


# ------------------------------------------------------------------ CLI


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_cli_search_json(cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["search", "limites du scénario ENTPE", "--json"]) == 0
    data = _last_json(capsys.readouterr().out)
    assert data["question"] == "limites du scénario ENTPE"
    passages = data["passages"]
    assert len(passages) == cli_env.top_k
    assert passages[0]["label"].startswith("Scénario ENTPE › Limites › ")
    for passage in passages:
        assert {"chunk_id", "text", "label", "metadata", "score", "rank"} <= set(passage)
    assert "total_ms" in data["timings"]


def test_cli_search_filters(cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["search", "gouvernance", "--scenario", "uge", "--section", "questions", "-k", "2", "--json"]
    code = cli.main(argv)
    assert code == 0
    passages = _last_json(capsys.readouterr().out)["passages"]
    assert len(passages) == 2
    places = {(p["metadata"]["scenario"], p["metadata"]["section_kind"]) for p in passages}
    assert places == {("uge", "questions")}
    assert passages[0]["label"] == "Scénario UGE › Questions › Gouvernance"


def test_cli_search_text_output(cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["search", "Combien d'agents compte le CIPEN ?", "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\[1\] Note UGE-CIPEN › .*\(score \d\.\d{4}\)$", out, re.M)
    assert "70 agents" in out
    assert "[3]" in out and "[4]" not in out


def test_a_named_scenario_is_also_searched_on_its_own(built_index, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    # Two dense candidates only, as in a library where look-alike passages of other documents
    # fill the candidate list: the scenario the question names still has its passages in it.
    narrow = settings.replace(dense_k=2, use_lexical=False)
    question = "Pour l'ENTPE, qu'en est-il de la gouvernance et du pilotage ?"
    scoped = Retriever(built_index, narrow).search(question, k=4).passages
    assert scoped and scoped[0].scenario == "entpe"


@pytest.mark.parametrize("scoped", [True, False])
def test_a_named_scenario_is_also_searched_on_its_own_by_keywords(  # type: ignore[no-untyped-def]
    built_index, settings: Settings, scoped: bool
) -> None:
    # Keyword search alone, two candidates: the rows « Gouvernance » of the CMVRH and UGE sheets
    # outscore the ENTPE's own passages on these words, as look-alike rows of other documents do
    # in a library; the sheet the question names is searched on its own too.
    narrow = settings.replace(lexical_k=2, use_dense=False, scoped_search=scoped)
    question = "Pour l'ENTPE, qu'en est-il de la gouvernance et du pilotage ?"
    passages = Retriever(built_index, narrow).search(question, k=6).passages
    assert any(p.scenario == "entpe" for p in passages) is scoped


def _said(*turns: str) -> list[dict[str, str]]:
    roles = ["user", "assistant"] * len(turns)
    return [{"role": role, "content": text} for role, text in zip(roles, turns, strict=False)]


def test_a_rank_points_to_that_item_of_the_previous_answer(retriever: Retriever) -> None:
    history = _said(
        "Avec les écoles du RESDD, la fiche CMVRH prévoit quels partenariats ?",
        "Des synergies entre écoles et opérateurs, des ressources pédagogiques numériques, des "
        "parcours à distance, la professionnalisation des acteurs et la mobilisation des experts.",
    )
    intent = understand("Le dernier, tu peux m'en dire plus ?", history)
    assert intent.follow_up and intent.scenarios == ["cmvrh"]
    assert intent.standalone.startswith("la mobilisation des experts, tu peux m'en dire plus ?")
    found = retriever.retrieve(intent, k=5).passages
    assert any("Mobilisation des experts des écoles" in p.text for p in found)
    # The second of a list of names; « entre autres » is no item, « Oui » no item either.
    names = _said("Quels opérateurs ?", "Oui, la fiche cite VNF, le Cerema et l'OFB, entre autres.")
    assert understand("Le deuxième de ta liste, il en parle où ?", names).standalone.startswith("le Cerema,")
    assert understand("Et le dernier ?", names).standalone.startswith("Et l'OFB")
    # An answer of the app lists rows as bullets, « subject — « observation » [n] ».
    rows = _said(
        "Quelles sont les limites de l'ENTPE ?",
        "**Scénario ENTPE › Limites**\n- Géographie : capacité ? — « Oui » [1]\n"
        "- Finances : dotation — « 780 k€ » [2]",
    )
    assert understand("Le premier, c'est-à-dire ?", rows).standalone.startswith(
        "Géographie : capacité, c'est"
    )
    assert understand("Le deuxième, tu peux détailler ?", rows).standalone.startswith("Finances : dotation,")


def test_a_rank_reads_names_with_their_description_and_lists_cut_at_their_last_and() -> None:
    platforms = _said(
        "Quelles plateformes ?", "SYFOADD, la plateforme du MTE, et MENTOR, la plateforme de la DGAFP."
    )
    assert "MENTOR, la plateforme de la DGAFP" in understand("Et la seconde ?", platforms).standalone
    tasks = _said(
        "Quelles missions ?",
        "L'accompagnement, la production et la médiatisation de contenus, le conseil et l'étude.",
    )
    # « la production et la médiatisation » is one item; the last « et » separates two.
    assert understand("Le deuxième, c'est quoi ?", tasks).standalone.startswith("la production et la")
    assert understand("Le dernier, c'est quoi ?", tasks).standalone.startswith("l'étude")


def test_a_rank_of_these_things_looks_for_the_answer_that_named_them() -> None:
    history = _said(
        "Quelles plateformes de formation le dossier mentionne-t-il ?",
        "SYFOADD, la plateforme du MTE, et MENTOR, la plateforme de la DGAFP.",
        "Et MENTOR, qui l'a lancée ?",
        "La DGAFP.",
    )
    intent = understand("Revenons à la première de ces plateformes : depuis quand ?", history)
    assert intent.standalone.startswith("Revenons à SYFOADD, la plateforme du MTE :")


def test_a_rank_alone_after_a_question_asking_a_rank_asks_the_same_of_the_new_rank() -> None:
    history = _said("Quel est le deuxième axe de la stratégie de l'université ?", "Le développement…")
    intent = understand("Et le quatrième ?", history)
    assert intent.standalone == "Quel est le quatrième axe de la stratégie de l'université ?"
    assert intent.follow_up and intent.scenarios == ["uge"]


def test_a_rank_of_the_dossiers_own_text_is_no_reference_to_the_answer() -> None:
    history = _said("Quels scénarios ?", "CMVRH, ENTPE et Université Gustave Eiffel.")
    for question in ("Cite la première phrase de la conclusion.", "Le premier cycle, c'est quoi ?"):
        assert understand(question, history).standalone.startswith(question.rstrip(" ?."))
