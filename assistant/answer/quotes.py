"""Quotes for report writers: verbatim passages ranked for a request, with their full reference
(document › section › row, page, file), exported as Markdown block quotes or CSV.

Deterministic, no language model; the ranking is the extractive answer's (``rank_passages``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from assistant.answer.extractive import CorpusStats, rank_passages
from assistant.schema import Passage


@dataclass
class QuoteResult:
    """A verbatim passage ranked for a request, with its full reference."""

    rank: int
    text: str
    reference: str  # document › section › row
    document: str
    section: str
    row: str
    page: int | None
    source: str
    passage: Passage

    def to_dict(self) -> dict[str, Any]:
        return {
            "rang": self.rank,
            "citation": self.text,
            "reference": self.reference,
            "document": self.document,
            "section": self.section,
            "ligne": self.row,
            "page": self.page,
            "fichier": self.source,
        }


def quote_results(
    passages: Sequence[Passage], wanted: set[str], stats: CorpusStats, k: int
) -> list[QuoteResult]:
    results = []
    for rank, (_, passage) in enumerate(rank_passages(passages, wanted, stats)[:k], start=1):
        meta = passage.metadata
        results.append(
            QuoteResult(
                rank=rank,
                text=passage.text,
                reference=passage.label,
                document=str(meta.get("doc_title") or meta.get("doc_label") or ""),
                section=str(meta.get("section") or ""),
                row=str(meta.get("subject") or ""),
                page=passage.page,
                source=str(meta.get("source") or ""),
                passage=passage,
            )
        )
    return results


def quotes_to_markdown(results: Sequence[QuoteResult]) -> str:
    """One block quote per passage, then its reference line: ready to paste into a report."""
    blocks = []
    for r in results:
        quoted = "\n".join(f"> {line}" if line.strip() else ">" for line in r.text.splitlines())
        page = f", p. {r.page}" if r.page else ""
        blocks.append(f"{quoted}\n>\n> — {r.reference}{page} ({r.source})")
    return "\n\n".join(blocks) + ("\n" if blocks else "")


# Quotes returned for a request, the same in the app, the CLI and the API.
QUOTES_K = 8
CSV_COLUMNS = ["rang", "citation", "reference", "document", "section", "ligne", "page", "fichier"]


def quotes_to_csv(results: Sequence[QuoteResult]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow({k: ("" if v is None else v) for k, v in r.to_dict().items()})
    return buffer.getvalue()
