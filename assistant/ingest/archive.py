"""Checking a .docx archive before any parser opens it: real uncompressed size, member count.

A .docx is a zip, and a zip's directory declares each member's size: a « zip bomb » (1 MB that
expands to 280 MB of small paragraphs) declares sizes that look reasonable, or lies outright.
So the size is never taken from the directory: every member is decompressed as a stream, 1 MiB
at a time, counting the bytes that really come out, and the count stops at the cap. Python's
``zipfile`` never returns more than the declared size and checks the CRC at the end, so a member
that lies about its size fails that check and is refused as damaged.

Deliberately left out: what the members contain (``docx.py`` reads the Word document itself).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from assistant.ingest.errors import IngestError

# The dossier's documents are 30 to 60 kB of text each; a Word file of 20 MB (the upload limit),
# images included, expands to a few tens of MB at most (pictures are already compressed). 100 MB
# leaves room for that and refuses a bomb after about half a second of decompression (measured:
# 200 MB/s on one core). python-docx loads every member into memory: this cap bounds that too.
DOCX_MAX_UNCOMPRESSED = 100 * 1024 * 1024
DOCX_MAX_MEMBERS = 5000
_BLOCK = 1024 * 1024
_CORRUPT = "le fichier Word est illisible ou endommagé"


class NotWordArchive(IngestError):
    """The file is not a zip, or a zip without a Word document: not a .docx at all."""


def check_docx_archive(path: Path, max_bytes: int = DOCX_MAX_UNCOMPRESSED) -> None:
    """Raise ``IngestError`` (French) unless ``path`` is a zip holding a Word document that
    really decompresses to at most ``max_bytes`` in at most ``DOCX_MAX_MEMBERS`` members."""
    try:
        if not zipfile.is_zipfile(path):
            raise NotWordArchive(path, f"{_CORRUPT} (ce n'est pas une archive .docx valide).")
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > DOCX_MAX_MEMBERS:
                raise IngestError(
                    path,
                    f"l'archive .docx contient {len(members)} éléments (au plus {DOCX_MAX_MEMBERS}) : "
                    "ce n'est pas un document Word ordinaire ; il a été refusé.",
                )
            if not any(m.filename == "word/document.xml" for m in members):
                raise NotWordArchive(path, f"{_CORRUPT} (l'archive ne contient pas de document Word).")
            total = 0
            for member in members:
                with archive.open(member) as stream:
                    while block := stream.read(_BLOCK):
                        total += len(block)
                        if total > max_bytes:
                            raise IngestError(path, _too_large(max_bytes))
    except IngestError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        # Bad CRC (a member larger than it declares), truncated data, unknown compression…
        raise IngestError(path, f"{_CORRUPT} (archive .docx endommagée ou falsifiée).") from exc


def _too_large(max_bytes: int) -> str:
    return (
        f"le fichier Word dépasse {max_bytes // 2**20} Mo une fois décompressé (archive piégée ou "
        "document démesuré) : il a été refusé. Découpez-le en plusieurs documents ou enregistrez-le "
        "en PDF, puis réessayez."
    )
