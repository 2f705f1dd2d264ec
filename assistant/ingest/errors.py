"""What every loader shares: the refusal type, the supported formats, file identity.

Kept apart from ``formats.py`` so that the PDF and DOCX loaders can raise ``IngestError``
without importing the dispatcher that imports them.
"""

from __future__ import annotations

import hashlib
import re
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
    """A stable id from the file name, extension included (« note.md » and « note.pdf » differ)."""
    name = f"{path.stem}_{path.suffix.lstrip('.')}" if path.suffix else path.stem
    return re.sub(r"[^a-zA-Z0-9_-]+", "_", name).strip("_").lower() or "document"
