"""The Chroma store under the index: opening it, checking a generation, naming write failures.

``index.py`` decides *what* to build; this module knows how the store itself can fail and says
so in French. A generation is usable only when its collections open without being created
(LangChain's ``Chroma`` would silently create an empty one), hold as many items as the manifest
says, and answer a one-item vector query (that reads the HNSW files, which a ``count`` does
not). Observed with chromadb 1.5: a deleted ``chroma.sqlite3`` comes back empty, a truncated
or overwritten one raises « file is not a database » / « database disk image is malformed » at
opening, a damaged segment folder raises only once its collection holds more than the HNSW
``sync_threshold`` (1 000) items — below that, the vectors are still read from SQLite.

Deliberately left out: repairing a store in place. A damaged local store is moved aside and
rebuilt from the corpus (the only cure Chroma's issues report for a corrupted folder).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from assistant.settings import Settings

log = logging.getLogger(__name__)


class IndexError_(RuntimeError):
    """The index cannot be used or built (French message)."""


class IndexBusy(IndexError_):
    """Another process holds the writer lock."""


class IndexDamaged(IndexError_):
    """The stored generation the manifest names is missing or unreadable."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message  # the bare cause, for « endommagé (…) : reconstruction »


class IndexWriteFailed(IndexError_):
    """Writing the index failed for a reason the user can act on (full disk, permissions)."""


def open_client(settings: Settings) -> Any:
    """A Chroma client for the settings: the server's, or the embedded store under ``index/``."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_is_remote:
        try:
            return chromadb.HttpClient(
                host=settings.chroma_host or "127.0.0.1", port=settings.chroma_port, settings=chroma_settings
            )
        except Exception as exc:
            raise IndexError_(
                f"Le serveur Chroma ne répond pas à {settings.chroma_host}:{settings.chroma_port} ({exc})."
            ) from exc
    folder = chroma_dir(settings)
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        return chromadb.PersistentClient(path=str(folder), settings=chroma_settings)
    except Exception as exc:
        # A failed start stays in Chroma's per-folder cache and breaks every later client.
        forget_client(folder)
        reason = f"{folder / 'chroma.sqlite3'} illisible : {_short(exc)}"
        raise IndexDamaged(
            f"L'index enregistré est endommagé ({reason}) : lancez « assistant index ».", reason
        ) from exc


def chroma_dir(settings: Settings) -> Path:
    return Path(settings.index_dir) / "chroma"


def forget_client(folder: Path) -> None:
    """Drop Chroma's cached client for ``folder`` so that the next one reopens the files."""
    from chromadb.api.shared_system_client import SharedSystemClient

    system = SharedSystemClient._identifier_to_system.pop(str(folder), None)
    SharedSystemClient._identifier_to_refcount.pop(str(folder), None)
    if system is not None:
        with contextlib.suppress(Exception):
            system.stop()


def set_aside(folder: Path) -> Path | None:
    """Move a damaged local store out of the way (kept for diagnosis); ``None`` if absent."""
    forget_client(folder)
    if not folder.exists():
        return None
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6:06d}"
    target = folder.with_name(f"{folder.name}.endommage-{stamp}")
    try:
        folder.rename(target)
    except OSError as exc:
        reason = describe_write_failure(exc, folder.parent)
        raise IndexWriteFailed(
            f"L'index endommagé n'a pas pu être mis de côté ({folder}) : {reason or exc}"
        ) from exc
    # Only the latest damaged copy is kept: an index that keeps breaking must not fill the disk.
    for older in folder.parent.glob(f"{folder.name}.endommage-*"):
        if older != target:
            shutil.rmtree(older, ignore_errors=True)
    return target


def check_collection(client: Any, name: str, expected: int | None) -> str | None:
    """Why the collection ``name`` cannot serve reads (French), or ``None`` when it can."""
    try:
        collection = client.get_collection(name)
    except Exception as exc:
        if "does not exist" in str(exc):
            return f"la collection « {name} » n'existe plus"
        return f"la collection « {name} » est illisible : {_short(exc)}"
    try:
        count = collection.count()
        if expected is not None and count != expected:
            return f"la collection « {name} » contient {count} éléments au lieu de {expected}"
        if count:
            sample = collection.get(limit=1, include=["embeddings"])
            collection.query(query_embeddings=[list(sample["embeddings"][0])], n_results=1)
    except Exception as exc:
        return f"la collection « {name} » est illisible : {_short(exc)}"
    return None


# -- write failures ------------------------------------------------------------------------------
_DISK_FULL = ("database or disk is full", "error in compaction", "no space left on device")
_PERMISSION = ("permission denied", "operation not permitted", "readonly database", "read-only file system")


def describe_write_failure(exc: BaseException, index_dir: Path) -> str | None:
    """The French explanation of a failed index write, or ``None`` when it is none of these.

    Chroma wraps OS errors in its own exceptions, so the message text is read too (the whole
    chain of causes): « Error in compaction » and SQLite's « database or disk is full » both
    mean a full disk — possibly SQLite's temporary folder rather than the index's."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    codes = {getattr(e, "errno", None) for e in chain if isinstance(e, OSError)}
    texts = " ".join(str(e).lower() for e in chain)
    if errno.ENOSPC in codes or errno.EDQUOT in codes or any(t in texts for t in _DISK_FULL):
        return (
            f"le disque est plein : l'index n'a pas pu être écrit dans {index_dir} "
            "(ou dans le dossier temporaire de SQLite). Libérez de la place puis relancez "
            "« assistant index »."
        )
    if codes & {errno.EACCES, errno.EPERM, errno.EROFS} or any(t in texts for t in _PERMISSION):
        return (
            f"droits insuffisants pour écrire l'index dans {index_dir} : vérifiez que ce dossier "
            "appartient à l'utilisateur qui lance l'assistant, puis relancez « assistant index »."
        )
    return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
