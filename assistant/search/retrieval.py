"""Hybrid retrieval: dense (Chroma) + French BM25, fused by reciprocal rank, with intents.

``Retriever.retrieve`` takes an understood question (``query.understand``) and explicit filters;
``Retriever.search`` understands the question first: question (+ conversation, filters) →
passages with verbatim text, source label, metadata and score. Detected scenarios and sections
are boosts, explicit ones are filters. A comparison spreads the first places over the scenarios
it compares, so every column of a comparison has its evidence. An optional cross-encoder
(a local sentence-transformers model path) reranks the head of the list; it is off by default
because no such model ships in a registry package here.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import re
import time
import tomllib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import Any

import numpy as np

from assistant import domain
from assistant.schema import Exchange, Passage
from assistant.search.index import CorpusIndex, Record
from assistant.search.lexical import LexicalIndex
from assistant.search.query import QueryIntent, expand_concepts, topic_text, understand
from assistant.settings import Settings
from assistant.text import analyze

# The UGE's proposal note is part of the UGE scenario: a question about the UGE gets the note as
# much as the sheet (measured: mrr@10 0.698 → 0.719 against a 0.6 weight); a question naming the
# note gets the UGE sheet as a second choice.
RELATED_SCENARIOS = {domain.UGE: {domain.NOTE: 1.0}, domain.NOTE: {domain.UGE: 0.5}}
COMPARED_SCENARIOS = domain.COMPARED
# The texts of one query encoded side by side: one per core (the machines have two).
_QUERY_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="query")
CENTROID_PAGE = 2000  # passages' vectors read at once to compute the centroid
# Up to this many stored vectors (passages and their sentences), dense search reads them from
# memory and scores every one (exact) instead of asking Chroma: on the dossier (118 passages, 302
# sentences) one question vector cost 6.8 ms through Chroma's two collections, 0.1 ms in memory;
# 20,000 vectors of 768 floats hold 61 MB. Above it, Chroma's index answers: at 100 times the
# dossier (35,500 vectors, USE embedder, scripts/bench_scale.py --sizes 100) exact search found
# the same passages (hit@5 0.743 both ways) and cut the index-side p95 from 38.7 to 10.5 ms, but
# raised the peak memory from 1,001 to 1,175 MB; a library that large keeps its memory instead.
EXACT_SEARCH_MAX = 20_000


@dataclass
class StoredVectors:
    """Every stored vector (unit rows) with the position of the passage it belongs to: the
    passages' own, then their sentences'."""

    matrix: np.ndarray
    owners: np.ndarray


def _with_related(scenarios: Sequence[str]) -> list[str]:
    """The scenarios and those read with them (the note with the UGE scenario)."""
    related = [r for s in scenarios for r in RELATED_SCENARIOS.get(s, {})]
    return list(dict.fromkeys([*scenarios, *related]))


# A passage that starts with a list item (« - », « • », « 1. ») carries on the list its section's
# previous passage was cut in (that one ends with a list item or a colon); a follow-up asking for
# the detail (« Lesquelles ? ») gets at most this many of them after the passage it starts from
# (the dossier's cut lists run over two passages at most). Effect, README « Réponses »: dev facts
# 0.715 → 0.732 with them, blind 0.681 → 0.720 with the whole-passage rule.
LIST_START = re.compile(r"(?:[-•–]|\d+[.)])\s")
MAX_CONTINUATIONS = 2


def list_continuations(items: Sequence[Any]) -> dict[str, str]:
    """Chunk id → id of the next passage of its section when that one carries on its list
    (``items``: records or passages, with ``chunk_id``, ``text`` and ``metadata``)."""
    following: dict[str, str] = {}
    ordered = sorted(items, key=lambda p: (str(p.metadata.get("doc_id")), int(p.metadata.get("position", 0))))
    for first, second in itertools.pairwise(ordered):
        same = all(first.metadata.get(k) == second.metadata.get(k) for k in ("doc_id", "section"))
        last = (first.text.strip().splitlines() or [""])[-1].strip()
        cut = last.endswith(":") or bool(LIST_START.match(last))
        if same and cut and second.metadata.get("kind") != "row" and LIST_START.match(second.text.strip()):
            following[first.chunk_id] = second.chunk_id
    return following


def continuation_ids(chunk_id: str, following: dict[str, str]) -> list[str]:
    """The passages that carry on ``chunk_id``'s list, in order (``list_continuations``), at most
    MAX_CONTINUATIONS."""
    chain: list[str] = []
    current: str | None = chunk_id
    for _ in range(MAX_CONTINUATIONS):
        current = following.get(current) if current else None
        if current is None or current in chain:
            break
        chain.append(current)
    return chain


def _union(first: list[tuple[int, float]], second: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Both candidate lists as one, best similarity first (a passage once, at its best)."""
    best = dict(first)
    for position, score in second:
        best[position] = max(best.get(position, -1.0), score)
    return sorted(best.items(), key=lambda item: item[1], reverse=True)


@dataclass
class RetrievalResult:
    passages: list[Passage]
    intent: QueryIntent
    timings: dict[str, float] = field(default_factory=dict)
    filters: dict[str, list[str]] = field(default_factory=dict)
    # Cosine between the question as understood and the centroid of the dossier's passages:
    # how much the question is about the dossier at all (None without dense search).
    domain_similarity: float | None = None


@functools.cache
def _tuning_data() -> dict[str, Any]:
    return tomllib.loads(
        resources.files("assistant.data").joinpath("retrieval.toml").read_text(encoding="utf-8")
    )


def default_lexical_weight(embedder: str) -> float:
    """The weight of keyword search that suits ``embedder`` (``data/retrieval.toml``)."""
    weights = _tuning_data()["lexical_weight"]
    return float(weights.get(embedder, weights["other"]))


def place_evidence_rank(embedder: str) -> int | None:
    """How many of the first passages may locate a question that names nothing without sharing
    a word with it; ``None`` where the rule was not kept for ``embedder`` (``data/retrieval.toml``)."""
    value = _tuning_data()["place_evidence_rank"].get(embedder)
    return None if value is None else int(value)


def count_evidence_rank(embedder: str) -> int | None:
    """How many of the first passages may give the count a question that names nothing asks for
    without being about it; ``None`` where the rule was not kept for ``embedder``."""
    value = _tuning_data()["count_evidence_rank"].get(embedder)
    return None if value is None else int(value)


def domain_similarity_threshold(embedder: str) -> float | None:
    """Below this similarity to the dossier's centroid, a question is outside the dossier's
    domain; ``None`` for an embedder whose scale was not measured (``data/retrieval.toml``)."""
    value = _tuning_data()["domain_similarity"].get(embedder)
    return None if value is None else float(value)


class Retriever:
    def __init__(self, index: CorpusIndex, settings: Settings | None = None) -> None:
        self.index = index
        self.settings = settings or index.settings
        self.records: list[Record] = index.records()
        self._position = {r.chunk_id: i for i, r in enumerate(self.records)}
        # Each passage's scenario and section, and the passages of each (scenario, section) in
        # document order: filters and section listings read these instead of walking every
        # passage per question (a library 100 times the dossier holds 12,000 passages).
        self._scenario_of = np.array([str(r.metadata.get("scenario")) for r in self.records], dtype=object)
        self._section_of = np.array([str(r.metadata.get("section_kind")) for r in self.records], dtype=object)
        self._rows: dict[tuple[str, str], list[int]] = {}
        self._scoped_cache: dict[str, list[tuple[np.ndarray, list[int]]]] = {}
        self._scenario_words: dict[str, frozenset[str]] = {}
        for position, record in enumerate(self.records):
            key = (str(record.metadata.get("scenario")), str(record.metadata.get("section_kind")))
            self._rows.setdefault(key, []).append(position)
        # Lexical search reads the chunk's own words, not its breadcrumb: scenario and section
        # names in every breadcrumb would drown the topic words (they are boosts instead).
        self.lexical = LexicalIndex([r.text for r in self.records])
        self.vectorstore = index.vectorstore()
        self.sentence_store = index.sentence_store() if self.settings.use_sentences else None
        self.centroid = self._centroid()
        self.stored = self._stored_vectors()
        self.embeddings = index.embeddings
        self.lexical_weight = (
            self.settings.lexical_weight
            if self.settings.lexical_weight is not None
            else default_lexical_weight(self.settings.embedder)
        )

    @cached_property
    def reranker(self) -> Any:
        if not self.settings.reranker_path:
            return None
        from sentence_transformers import CrossEncoder

        return CrossEncoder(self.settings.reranker_path, device="cpu")

    # -- the entry points --------------------------------------------------------------------
    def search(
        self,
        question: str,
        history: Sequence[Exchange] | None = None,
        scenarios: Sequence[str] | None = None,
        sections: Sequence[str] | None = None,
        k: int | None = None,
    ) -> RetrievalResult:
        """Understand the question (with the conversation so far), then ``retrieve``."""
        started = time.perf_counter()
        intent = understand(question, history)
        understood_ms = (time.perf_counter() - started) * 1000
        result = self.retrieve(intent, scenarios, sections, k)
        result.timings["understand_ms"] = understood_ms
        result.timings["total_ms"] += understood_ms
        return result

    def retrieve(
        self,
        intent: QueryIntent,
        scenarios: Sequence[str] | None = None,
        sections: Sequence[str] | None = None,
        k: int | None = None,
    ) -> RetrievalResult:
        """The passages for an understood question: fused, boosted, filtered, best first. The
        result carries the question as ``settle`` finished understanding it; ``intent`` itself is
        left as it was given."""
        started = time.perf_counter()
        k = k or self.settings.top_k
        tuning = self.settings
        intent = self.settle(intent)
        timings: dict[str, float] = {}
        allowed = self._allowed(scenarios, sections)
        domain_similarity: float | None = None

        fused: dict[int, float] = {}
        details: dict[int, dict[str, float]] = {}

        def add(order: Sequence[int], weight: float, key: str, values: Sequence[float]) -> None:
            for rank, position in enumerate(order):
                fused[position] = fused.get(position, 0.0) + weight / (tuning.rrf_k + rank + 1)
                seen = details.setdefault(position, {})
                seen[key] = max(seen.get(key, float("-inf")), values[rank])

        queries = self.queries(intent)
        # The question names its scenarios (a comparison without names compares the dossier's, as
        # ``_spread`` does): their passages are also searched on their own, so that in a large
        # library the right sheet's passages are not pushed out of the candidates by look-alike
        # passages of other documents. Dense search did so first; keyword search too since
        # 02/12/2026: in the library 100 times the dossier's size (USE, scripts/synth_library.py)
        # dev hit@5 0.802 → 0.828, mrr@10 0.687 → 0.703; at the dossier's size, with USE or e5
        # (EmbeddingGemma uses no keyword search), hit@5 unchanged on the four sets and mrr@10
        # within 0.004 either way.
        named = intent.scenarios or (list(COMPARED_SCENARIOS) if intent.compare else [])
        scope = _with_related(named) if named and not scenarios and self.settings.scoped_search else []
        if self.settings.use_dense:
            t = time.perf_counter()
            vectors = self.embed_queries([text for text, _ in queries])
            if self.centroid is not None:
                domain_similarity = float(np.dot(np.asarray(vectors[0]), self.centroid))
            for (_, weight), vector in zip(queries, vectors, strict=True):
                hits = self._dense(vector, scenarios, sections)
                if scope:
                    scoped = self._dense_within(vector, scope, sections)
                    hits = _union(hits, scoped)
                add([p for p, _ in hits], tuning.dense_weight * weight, "dense", [s for _, s in hits])
            timings["dense_ms"] = (time.perf_counter() - t) * 1000
        if self.settings.use_lexical and self.lexical_weight > 0:
            t = time.perf_counter()
            in_scope = self._allowed(scope, None)
            for text, weight in queries:
                # Scenario and section words are boosts: lexical search looks for the topic alone.
                scores = self.lexical.scores(expand_concepts(topic_text(text, intent.sections)))
                if allowed is not None:
                    scores = np.where(allowed, scores, 0.0)
                order = [int(i) for i in np.argsort(-scores)[: self.settings.lexical_k] if scores[i] > 0]
                if in_scope is not None:
                    # As for dense search: the named sheets' best keyword matches are candidates
                    # too, however many look-alike rows of other documents score higher.
                    within = np.where(in_scope, scores, 0.0)
                    extra = [int(i) for i in np.argsort(-within)[: self.settings.lexical_k] if within[i] > 0]
                    order = sorted(set(order) | set(extra), key=lambda i: -scores[i])
                # A weak best keyword match (a paraphrase shares no word with its passage) says
                # little: the lexical list then weighs less than the dense one.
                confidence = min(1.0, float(scores.max(initial=0.0)) / tuning.lexical_confident)
                add(
                    order,
                    self.lexical_weight * weight * confidence,
                    "lexical",
                    [float(scores[i]) for i in order],
                )
            timings["lexical_ms"] = (time.perf_counter() - t) * 1000
        if intent.cited and tuning.cited_weight and intent.asks_detail:
            # What the previous answer cited: « Lesquels exactement ? » asks for its detail.
            order = [self._position[c] for c in intent.cited if c in self._position]
            add(order, tuning.cited_weight, "cited", [1.0] * len(order))

        ranked = sorted(
            ((self._boosted(position, score, intent), position) for position, score in fused.items()),
            reverse=True,
        )
        if intent.listing and intent.scenarios:
            ranked = self._section_first(ranked, intent, allowed)
        elif intent.compare:
            ranked = self._spread(ranked, intent)
        if intent.asks_detail and ranked:
            ranked = self._with_continuation(ranked)
        passages = [self._passage(position, score, details.get(position, {})) for score, position in ranked]
        if self.reranker is not None and passages:
            passages = self._rerank(intent.standalone, passages)
        passages = passages[:k]
        for rank, passage in enumerate(passages, start=1):
            passage.rank = rank
        timings["total_ms"] = (time.perf_counter() - started) * 1000
        filters = {"scenarios": list(scenarios or []), "sections": list(sections or [])}
        return RetrievalResult(passages, intent, timings, filters, domain_similarity)

    def similarities(self, *texts: str, scenarios: Sequence[str] | None = None) -> dict[str, float]:
        """Cosine between the query and every passage of ``scenarios`` (all when ``None``), by
        chunk id; a passage is as close as its closest sentence. Several ``texts`` are phrasings
        of one query (the comparison's theme, bare and as a question): the query is the mean of
        their vectors. Exhaustive within those scenarios (no top-k), so that a caller filtering
        by section afterwards sees every passage of each cell (the comparison table); empty
        without dense search. The vectors are each scenario's, read once (``_scenario_vectors``):
        a comparison of the dossier's scenarios in a library of thousands of documents reads
        theirs, not the whole library's."""
        if not self.settings.use_dense or not self.records or not texts:
            return {}
        query = np.asarray(self.embed_queries(list(texts)), dtype=np.float32).mean(axis=0)
        query /= max(float(np.linalg.norm(query)), 1e-12)
        wanted = list(dict.fromkeys(self._scenario_of if scenarios is None else scenarios))
        best: dict[int, float] = {}
        for scenario in wanted:
            for matrix, positions in self._scenario_vectors(str(scenario)):
                for position, value in zip(positions, matrix @ query, strict=True):
                    best[position] = max(best.get(position, -1.0), float(value))
        return {
            record.chunk_id: best.get(position, -1.0)
            for position, record in enumerate(self.records)
            if scenarios is None or record.metadata.get("scenario") in wanted
        }

    # -- parts -------------------------------------------------------------------------------
    def queries(self, intent: QueryIntent) -> list[tuple[str, float]]:
        """What is searched, with its weight in the fusion: the question as understood (a
        follow-up rewritten with the previous question, and the names its answer added); in a
        conversation, also the question on its own (a change of topic) and the question with
        the previous answer (« Lesquels ? », a pronoun pointing into that answer)."""
        queries = [(intent.search_text, 1.0)]
        if intent.conversation and not intent.follow_up and self.settings.turn_context_weight:
            # Not read as a follow-up, but asked in a conversation: « Quels lieux sont cités ? »
            # names no antecedent the grammar can see. The question with the previous one and its
            # answer, one text (one encoding), weighs less than the question on its own, so that
            # a change of topic holds.
            context = " — ".join(
                t for t in (intent.question, intent.conversation[0], intent.previous_answer) if t
            )
            queries.append((context, self.settings.turn_context_weight))
            return queries
        if not (intent.conversation and intent.follow_up):
            return queries
        alone, answered = self.settings.turn_alone_weight, self.settings.turn_answer_weight
        if alone and intent.question.strip() != intent.search_text.strip():
            queries.append((intent.question, alone))
        if answered and intent.previous_answer:
            queries.append((f"{intent.question} — {intent.previous_answer}", answered))
        return queries

    def _centroid(self) -> np.ndarray | None:
        """The mean direction of the passages' vectors (unit length): what the dossier is about.

        Read a page at a time: with the whole matrix as Chroma hands it over, the peak memory of
        a library 100 times the dossier (11,000 passages) was 964 MB; paged, 790 MB."""
        if self.vectorstore is None or not self.records:
            return None
        total: np.ndarray | None = None
        for offset in range(0, len(self.records), CENTROID_PAGE):
            page = self.vectorstore.get(include=["embeddings"], limit=CENTROID_PAGE, offset=offset)
            vectors = page.get("embeddings")
            if vectors is None or len(vectors) == 0:
                continue
            part = np.asarray(vectors, dtype=float).sum(axis=0)
            total = part if total is None else total + part
        if total is None:
            return None
        norm = float(np.linalg.norm(total))
        return total / norm if norm else None

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        """Query vectors: side by side, one per core, when the embedder encodes questions
        concurrently (a follow-up is searched with a short and a long text: in one batch the
        short one is padded to the long one's length); else in one call when it can batch."""
        batch = getattr(self.embeddings, "embed_queries", None)
        if batch is None:
            return [self.embeddings.embed_query(t) for t in texts]
        # An embedder that picks its graph per question (``GemmaOnnxEmbeddings.question``) picks
        # it once for all of this question's texts.
        question = getattr(self.embeddings, "question", None)
        with question() if question is not None else contextlib.nullcontext() as encoder:
            chosen = {"encoder": encoder} if encoder is not None else {}
            if len(texts) > 1 and getattr(self.embeddings, "concurrent_queries", False):
                return [vectors[0] for vectors in _QUERY_POOL.map(lambda t: batch([t], **chosen), texts)]
            return batch(list(texts), **chosen)  # type: ignore[no-any-return]

    def _allowed(self, scenarios: Sequence[str] | None, sections: Sequence[str] | None) -> np.ndarray | None:
        if not scenarios and not sections:
            return None
        mask = np.ones(len(self.records), dtype=bool)
        if scenarios:
            mask &= np.isin(self._scenario_of, [str(s) for s in scenarios])
        if sections:
            mask &= np.isin(self._section_of, [str(s) for s in sections])
        return mask

    def _stored_vectors(self) -> StoredVectors | None:
        """The stores' vectors in memory when there are at most ``EXACT_SEARCH_MAX`` of them
        (read a page at a time, given up as soon as there are more); ``None`` otherwise."""
        if self.vectorstore is None or not self.records or not self.settings.use_dense:
            return None
        rows: list[np.ndarray] = []
        owners: list[int] = []
        stores = [(self.vectorstore, False), (self.sentence_store, True)]
        for store, sentences in stores:
            if store is None:
                continue
            for offset in itertools.count(0, CENTROID_PAGE):
                page = store.get(include=["embeddings", "metadatas"], limit=CENTROID_PAGE, offset=offset)
                vectors = page.get("embeddings")
                if vectors is None or len(vectors) == 0:
                    break
                if len(owners) + len(vectors) > EXACT_SEARCH_MAX:
                    return None
                names = (
                    [str((m or {}).get("parent", "")) for m in page["metadatas"] or []]
                    if sentences
                    else [str(i) for i in page["ids"]]
                )
                keep = [i for i, name in enumerate(names) if name in self._position]
                rows.append(np.asarray(vectors, dtype=np.float32)[keep])
                owners.extend(self._position[names[i]] for i in keep)
                if len(vectors) < CENTROID_PAGE:
                    break
        if not rows:
            return None
        matrix = np.concatenate(rows)
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        return StoredVectors(matrix, np.asarray(owners, dtype=np.int64))

    def _dense(
        self, vector: list[float], scenarios: Sequence[str] | None, sections: Sequence[str] | None
    ) -> list[tuple[int, float]]:
        if self.stored is not None:
            return self._dense_exact(vector, scenarios, sections)
        clauses: list[dict[str, Any]] = []
        if scenarios:
            clauses.append({"scenario": {"$in": list(scenarios)}})
        if sections:
            clauses.append({"section_kind": {"$in": list(sections)}})
        where = clauses[0] if len(clauses) == 1 else ({"$and": clauses} if clauses else None)
        limit = min(self.settings.dense_k, len(self.records))
        best: dict[int, float] = {}
        hits = self.vectorstore.similarity_search_by_vector_with_relevance_scores(
            vector, k=limit, filter=where
        )
        for document, distance in hits:
            position = self._position.get(str(document.id))
            if position is not None:
                # Chroma's default space is squared L2; on unit vectors cosine = 1 - d²/2.
                best[position] = max(best.get(position, -1.0), 1.0 - float(distance) / 2.0)
        if self.sentence_store is not None:
            # A chunk is as close as its closest sentence (small-to-big retrieval).
            hits = self.sentence_store.similarity_search_by_vector_with_relevance_scores(
                vector, k=limit * 3, filter=where
            )
            for document, distance in hits:
                position = self._position.get(str(document.metadata.get("parent")))
                if position is not None:
                    best[position] = max(best.get(position, -1.0), 1.0 - float(distance) / 2.0)
        return sorted(best.items(), key=lambda item: item[1], reverse=True)[:limit]

    def _dense_exact(
        self, vector: list[float], scenarios: Sequence[str] | None, sections: Sequence[str] | None
    ) -> list[tuple[int, float]]:
        """``_dense`` from the vectors held in memory: every passage scored, as close as its
        closest sentence, the filters applied to the passage."""
        assert self.stored is not None
        scores = self.stored.matrix @ np.asarray(vector, dtype=np.float32)
        best = np.full(len(self.records), -np.inf, dtype=np.float32)
        np.maximum.at(best, self.stored.owners, scores)
        allowed = self._allowed(scenarios, sections)
        if allowed is not None:
            best[~allowed] = -np.inf
        limit = min(self.settings.dense_k, len(self.records))
        order = np.argsort(-best, kind="stable")[:limit]
        return [(int(i), float(best[i])) for i in order if np.isfinite(best[i])]

    def _dense_within(
        self, vector: list[float], scenarios: Sequence[str], sections: Sequence[str] | None
    ) -> list[tuple[int, float]]:
        """``_dense`` over the passages of ``scenarios`` only, from their vectors held in memory
        (a few dozen per scenario, read from the store once): a filtered query to Chroma scans
        its metadata and took ~90 ms at 100 times the dossier, this takes well under 1 ms."""
        query = np.asarray(vector, dtype=np.float32)
        best: dict[int, float] = {}
        for scenario in scenarios:
            for matrix, positions in self._scenario_vectors(scenario):
                for position, score in zip(positions, matrix @ query, strict=True):
                    if sections and self._section_of[position] not in sections:
                        continue
                    best[position] = max(best.get(position, -1.0), float(score))
        limit = min(self.settings.dense_k, len(self.records))
        return sorted(best.items(), key=lambda item: item[1], reverse=True)[:limit]

    def _scenario_vectors(self, scenario: str) -> list[tuple[np.ndarray, list[int]]]:
        """The unit vectors of one scenario's passages, then of their sentences, each with the
        position of the passage it belongs to (cached: a scenario's passages change only with
        the index, and a new index means a new retriever)."""
        if scenario in self._scoped_cache:
            return self._scoped_cache[scenario]
        if self.stored is not None:  # every vector is already in memory: no second read
            mine = self._scenario_of[self.stored.owners] == scenario
            self._scoped_cache[scenario] = [(self.stored.matrix[mine], self.stored.owners[mine].tolist())]
            return self._scoped_cache[scenario]
        tables = []
        stores = [(self.vectorstore, False), (self.sentence_store, True)]
        for store, sentences in stores:
            if store is None:
                continue
            stored = store.get(where={"scenario": scenario}, include=["embeddings", "metadatas"])
            vectors = stored.get("embeddings")
            if vectors is None or len(vectors) == 0:
                continue
            parents = [str((m or {}).get("parent", "")) for m in stored["metadatas"] or []]
            owners = parents if sentences else list(stored["ids"])
            keep = [i for i, owner in enumerate(owners) if owner in self._position]
            matrix = np.asarray(vectors, dtype=np.float32)[keep]
            matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
            tables.append((matrix, [self._position[owners[i]] for i in keep]))
        self._scoped_cache[scenario] = tables
        return tables

    def _boosted(self, position: int, score: float, intent: QueryIntent) -> float:
        metadata = self.records[position].metadata
        factor = 1.0
        if intent.scenarios:
            scenario = metadata.get("scenario")
            if scenario in intent.scenarios:
                factor *= 1.0 + self.settings.scenario_boost
            else:
                related = max(
                    (RELATED_SCENARIOS.get(s, {}).get(str(scenario), 0.0) for s in intent.scenarios),
                    default=0.0,
                )
                factor *= 1.0 + self.settings.scenario_boost * related
        if intent.sections and metadata.get("section_kind") in intent.sections:
            factor *= 1.0 + self.settings.section_boost
        return score * factor

    def settle(self, intent: QueryIntent) -> QueryIntent:
        """The understanding finished with what only the index knows — which sections each
        scenario's document has, which words it writes — as a new intent (``intent`` is not
        changed): every reader of the question's meaning after retrieval reads the result's."""
        settled = copy.deepcopy(intent)
        self._drop_missing_sections(settled)
        self._list_unwritten_topic(settled)
        return settled

    def _drop_missing_sections(self, intent: QueryIntent) -> None:
        """A section inherited from the previous question that none of the follow-up's scenarios
        has is not asked for: « Et que propose la note pour le suivi des activités ? » after a
        question on the UGE sheet's Questions — the note has no Questions table, and keeping the
        section would bring the sheet's rows back."""
        inherited = intent.inherited.get("sections", [])
        if not inherited or not intent.scenarios:
            return
        kept = [
            s
            for s in intent.sections
            if s not in inherited or any((str(sc), s) in self._rows for sc in intent.scenarios)
        ]
        if kept != intent.sections:
            intent.sections = kept
            intent.inherited["sections"] = [s for s in inherited if s in kept]
            if not intent.inherited["sections"]:
                del intent.inherited["sections"]
            intent.listing = intent.listing and bool(kept)  # no section left to list

    def _list_unwritten_topic(self, intent: QueryIntent) -> None:
        """A question naming a scenario's section whose other words the scenario's document never
        writes asks for the section: « qu'est-ce que la fiche range dans les limites ? », « passe-moi
        en revue les questions de la fiche ENTPE » — « range », « passe », « revue » name nothing
        of the sheet. The section is then listed whole rather than searched for the row closest to
        a request verb (blind3 q1016, q1017 and q1024's kind, dev q238–q239). A word written
        elsewhere in the sheet is a topic, which may be in another section than the one named
        (« ça pose un problème d'avoir plusieurs plateformes ? » is answered by an opportunity)."""
        if intent.listing or intent.follow_up or intent.compare or not (intent.sections and intent.scenarios):
            return
        topic = set(analyze(topic_text(intent.question, intent.sections)))
        if not topic or not any((s, k) in self._rows for s in intent.scenarios for k in intent.sections):
            return
        if not any(topic & self._words_of(scenario) for scenario in intent.scenarios):
            intent.listing = True

    def _words_of(self, scenario: str) -> frozenset[str]:
        """The analysed words of a scenario's passages (breadcrumbs included), read once."""
        if scenario not in self._scenario_words:
            self._scenario_words[scenario] = frozenset(
                term
                for position, of in enumerate(self._scenario_of)
                if of == scenario
                for term in analyze(f"{self.records[position].label} {self.records[position].text}")
            )
        return self._scenario_words[scenario]

    @cached_property
    def _following(self) -> dict[str, str]:
        """Chunk id → id of the passage that carries on its list (``list_continuations``)."""
        return list_continuations(self.records)

    def _with_continuation(self, ranked: list[tuple[float, int]]) -> list[tuple[float, int]]:
        """« Lesquelles ? »: the first passage, then the passages that carry on its list."""
        score, first = ranked[0]
        chain = continuation_ids(self.records[first].chunk_id, self._following)
        head = [(score, first)] + [(score, self._position[c]) for c in chain]
        taken = {p for _, p in head}
        return head + [item for item in ranked[1:] if item[1] not in taken]

    def _spread(self, ranked: list[tuple[float, int]], intent: QueryIntent) -> list[tuple[float, int]]:
        """Put the best passage of each compared scenario first, then the rest by score."""
        targets = [s for s in intent.scenarios if s in COMPARED_SCENARIOS] or list(COMPARED_SCENARIOS)
        if len(targets) < 2:
            return ranked
        head: list[tuple[float, int]] = []
        for scenario in targets:
            for item in ranked:
                if self.records[item[1]].metadata.get("scenario") == scenario and item not in head:
                    head.append(item)
                    break
        head.sort(reverse=True)
        return head + [item for item in ranked if item not in head]

    def _section_first(
        self, ranked: list[tuple[float, int]], intent: QueryIntent, allowed: np.ndarray | None
    ) -> list[tuple[float, int]]:
        """A question that only names a section gets that section's rows in the table's order."""
        scores = {position: score for score, position in ranked}
        rows: dict[str, list[tuple[float, int]]] = {}
        listed = sorted(
            {
                position
                for scenario in intent.scenarios
                for section in intent.sections
                for position in self._rows.get((str(scenario), str(section)), [])
            }
        )
        for position in listed:  # every row of those sections, retrieved or not
            if allowed is not None and not allowed[position]:
                continue  # explicit filters always win
            scenario = str(self.records[position].metadata.get("scenario"))
            rows.setdefault(scenario, []).append((scores.get(position, 0.0), position))
        head: list[tuple[float, int]] = []
        columns = list(rows.values())
        while any(columns):
            for column in columns:
                if column:
                    head.append(column.pop(0))
        return head + [item for item in ranked if item not in head]

    def _passage(self, position: int, score: float, details: dict[str, float]) -> Passage:
        record = self.records[position]
        return Passage(
            chunk_id=record.chunk_id,
            text=record.text,
            label=record.label,
            metadata=dict(record.metadata),
            score=float(score),
            scores=dict(details),
        )

    def _rerank(self, query: str, passages: list[Passage], head: int = 20) -> list[Passage]:
        top = passages[:head]
        scores = self.reranker.predict([(query, f"{p.label}\n{p.text}") for p in top])
        for passage, value in zip(top, scores, strict=True):
            passage.scores["rerank"] = float(value)
            passage.score = float(value)
        return sorted(top, key=lambda p: p.score, reverse=True) + passages[head:]
