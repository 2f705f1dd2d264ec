"""What every loader shares: the refusal type, the supported formats, file identity.

Kept apart from ``formats.py`` so that the PDF and DOCX loaders can raise ``IngestError``
without importing the dispatcher that imports them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

SUPPORTED_EXTENSIONS = (".md", ".txt", ".pdf", ".docx")


class IngestError(Exception):
    """A document that cannot be indexed; ``str()`` is the French message for users."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"« {self.path.name} » : {reason}")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def doc_id_for(path: Path) -> str:
    """The document's identity: its file name exactly as on disk (the corpus folder is flat).

    Nothing is folded: « Note A.md », « note a.md » and « note_a.md » are three documents, so
    their passage ids cannot collide (a lowercased slug once gave them the same ids, and Chroma
    refused the whole build). Ids written by that slug never contain a dot, so an index built
    before keeps working: its ids cannot meet the new ones."""
    return path.name
