"""Lexical search: BM25 (bm25s) over the chunks, with the French analyzer of ``text.py``.

Built in memory from the index's records at start-up (a few milliseconds for this corpus);
nothing is persisted, so it can never disagree with the vector index. Each chunk is indexed
with its breadcrumb, because a row's section and subject are words users type.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from assistant.text import analyze


class LexicalIndex:
    def __init__(self, texts: Sequence[str]) -> None:
        import bm25s

        # bm25s sets its own logger to DEBUG, which prints build notes on every start.
        logging.getLogger("bm25s").setLevel(logging.WARNING)

        self._size = len(texts)
        self._retriever = bm25s.BM25(k1=1.2, b=0.75)
        corpus_tokens = [analyze(t) or ["_"] for t in texts]
        self._retriever.index(_to_bm25s(corpus_tokens), show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for ``query`` (zeros when no term matches)."""
        tokens = analyze(query)
        if not tokens or not self._size:
            return np.zeros(self._size)
        vocab = self._retriever.vocab_dict
        ids = [vocab[t] for t in tokens if t in vocab]
        if not ids:
            return np.zeros(self._size)
        return np.asarray(self._retriever.get_scores(ids), dtype=float)


def _to_bm25s(corpus_tokens: list[list[str]]):  # type: ignore[no-untyped-def]
    """bm25s wants (ids, vocab): build them from our own analysis instead of its tokenizer."""
    import bm25s

    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(t, len(vocab)) for t in tokens] for tokens in corpus_tokens]
    return bm25s.tokenization.Tokenized(ids=ids, vocab=vocab)
