"""The manifest and the writer lock of an index kept on a Chroma server, held by the server.

With ``CHROMA_HOST`` set, several app processes — on one machine or several — read one index.
They must agree on which generation is current, and only one of them may build at a time. A
manifest file or a lock file in each process's own ``index/`` folder cannot do that: a second
machine would find no manifest, build its own generation and, switching to it, drop the
collections the first machine was reading. So both live on the server:

- the manifest is one item of the collection ``<collection>_manifest`` (its JSON as the item's
  document); an upsert replaces it whole, so readers see the old or the new one, never a mix;
- the writer lock is the collection ``<collection>_writer`` itself: creating a collection that
  exists fails on the server, which makes creation a test-and-set. Its metadata says who holds
  it and since when; a lock older than ``WRITER_LEASE_S`` is taken to belong to a builder that
  died (killed mid-build) and is broken.

Deliberately left out: fencing a builder that outlives its lease, and locks across several
Chroma servers (one server holds one index; a distributed Chroma is one server to the client).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from assistant.search.store import IndexBusy

log = logging.getLogger(__name__)

MANIFEST_ID = "manifest"
# A build of the dossier takes ~2 min with EmbeddingGemma on 2 cores; a large corpus at ~4
# passages/s (README « Choix des bibliothèques ») stays within two hours up to ~25,000 passages.
WRITER_LEASE_S = 2 * 3600.0


def manifest_collection(collection: str) -> str:
    # Not ``<collection>_g…``: that prefix names generations, which a build drops.
    return f"{collection}_manifest"


def writer_collection(collection: str) -> str:
    return f"{collection}_writer"


def read_manifest(client: Any, collection: str) -> dict[str, Any] | None:
    """The manifest the server holds, or ``None`` when it holds none."""
    try:
        holder = client.get_collection(manifest_collection(collection))
    except Exception as exc:
        if "does not exist" in str(exc):
            return None
        raise
    stored = holder.get(ids=[MANIFEST_ID], include=["documents"])
    documents = stored.get("documents") or []
    if not documents or not documents[0]:
        return None
    try:
        data = json.loads(documents[0])
    except ValueError:
        log.warning("unreadable manifest on the Chroma server: treated as missing")
        return None
    return data if isinstance(data, dict) else None


def write_manifest(client: Any, collection: str, data: dict[str, Any]) -> None:
    """Replace the server's manifest in one upsert (the switch to a new generation)."""
    holder = client.get_or_create_collection(manifest_collection(collection), embedding_function=None)
    # Chroma stores an embedding with every item; the manifest is looked up by id, never by vector.
    holder.upsert(ids=[MANIFEST_ID], documents=[json.dumps(data, ensure_ascii=False)], embeddings=[[1.0]])


@contextlib.contextmanager
def writer_lock(client: Any, collection: str, lease_s: float = WRITER_LEASE_S) -> Iterator[None]:
    """Hold the server's writer lock for the index ``collection``, or raise ``IndexBusy``."""
    name = writer_collection(collection)
    me = f"{socket.gethostname()}:{os.getpid()}"
    for _attempt in range(2):
        try:
            client.create_collection(name, metadata={"holder": me, "since": time.time()})
            break
        except Exception as exc:
            if "already exists" not in str(exc):
                raise
        found = _holder(client, name)
        if found is None:
            continue  # released meanwhile: take it now
        holder, since = found
        if since is not None and time.time() - since > lease_s:
            log.warning("breaking the index writer lock of %s, held since %s", holder, _clock(since))
            with contextlib.suppress(Exception):
                client.delete_collection(name)
            continue
        started = f" depuis {_clock(since)}" if since is not None else ""
        raise IndexBusy(
            f"Une indexation est déjà en cours sur le serveur Chroma ({holder or 'autre processus'}"
            f"{started}) : réessayez dans un instant."
        )
    else:
        raise IndexBusy("Une indexation est déjà en cours sur le serveur Chroma : réessayez dans un instant.")
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            client.delete_collection(name)


def _holder(client: Any, name: str) -> tuple[str, float | None] | None:
    """Who holds the lock and since when; ``None`` when nobody does any more."""
    try:
        metadata = client.get_collection(name).metadata or {}
    except Exception:
        return None
    since = metadata.get("since")
    return str(metadata.get("holder", "")), float(since) if isinstance(since, int | float) else None


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).strftime("%d/%m/%Y %H:%M")
