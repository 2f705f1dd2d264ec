"""The vector index: Chroma (embedded under ``index/`` or a Chroma server), with a manifest.

The manifest (format version, embedder, chunker version, SHA-256 of every corpus file, the
current *generation* and how many items it holds) decides what is fresh; any mismatch of
embedder or chunker rebuilds everything rather than mixing vectors. Building lives in
``index_build.py`` (a new generation, then the switch), the store's own failures in
``store.py``.

The manifest is never taken on trust: before reporting « à jour » or serving reads, the
generation it names must open and hold what it says (``damage``); a damaged store is rebuilt.
When the index is merely out of date and cannot be updated — another process holds the writer
lock, the disk is full, the build crashed — reads go on from the intact generation the manifest
still names, with a French notice (``open_for_reading``).

One writer at a time: a lock file guards builds (Chroma reports: concurrent writers have
corrupted Chroma folders beyond repair). Readers never need it. With a Chroma server, the
manifest and the lock are held by the server (``shared_index.py``), so that app processes on
several machines share one index.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from assistant.ingest.chunking import CHUNKER_VERSION
from assistant.ingest.errors import file_sha256
from assistant.search import shared_index
from assistant.search.embeddings import build_embeddings, configured_name, embedder_name
from assistant.search.index_build import IndexReport, Progress, build, corpus_files
from assistant.search.prepare import PreparedDocument
from assistant.search.store import (
    IndexBusy,
    IndexDamaged,
    IndexError_,
    IndexWriteFailed,
    check_collection,
    chroma_dir,
    describe_write_failure,
    open_client,
    set_aside,
)
from assistant.settings import Settings

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
# Passages read from the store per request when the index is opened.
RECORDS_PAGE = 5000
MANIFEST_NAME = "manifest.json"

__all__ = [
    "FORMAT_VERSION",
    "CorpusIndex",
    "IndexBusy",
    "IndexDamaged",
    "IndexError_",
    "IndexReport",
    "IndexWriteFailed",
    "Progress",
    "Record",
    "corpus_files",
]


@dataclass
class Record:
    """One stored chunk as read back from the index."""

    chunk_id: str
    text: str
    label: str
    metadata: dict[str, Any]


class DeferredEmbeddings(Embeddings):
    """What the stores are given: the index's embedder, loaded only when a text is embedded."""

    def __init__(self, index: CorpusIndex) -> None:
        self.index = index

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.index.embeddings.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.index.embeddings.embed_query(text)


class CorpusIndex:
    """The corpus folder, its Chroma index and its manifest."""

    def __init__(self, settings: Settings, embeddings: Embeddings | None = None) -> None:
        self.settings = settings
        # Loaded on first use: checking that the index is fresh needs the model's name only
        # (``assistant index`` with nothing changed: 30 s with EmbeddingGemma loaded first).
        self._embeddings = embeddings
        self._deferred = DeferredEmbeddings(self)
        self.index_dir = settings.index_dir
        self._client: Any = None
        self._records: list[Record] | None = None
        self._records_collection = ""

    @property
    def embeddings(self) -> Embeddings:
        if self._embeddings is None:
            self._embeddings = build_embeddings(self.settings)
        return self._embeddings

    def embedder_name(self) -> str:
        """The name of the embedder the manifest records, without loading a packaged model."""
        if self._embeddings is not None:
            return embedder_name(self._embeddings)
        return configured_name(self.settings.embedder) or embedder_name(self.embeddings)

    # -- storage -----------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = open_client(self.settings)
        return self._client

    def store(self, collection: str, embeddings: Embeddings | None = None, create: bool = False) -> Any:
        """The LangChain store of ``collection``; reads never create it (an empty one would
        answer nothing and hide the damage)."""
        from langchain_chroma import Chroma

        try:
            return Chroma(
                client=self.client,
                collection_name=collection,
                embedding_function=embeddings or self._deferred,
                create_collection_if_not_exists=create,
            )
        except IndexError_:
            raise
        except Exception as exc:
            raise IndexDamaged(
                f"L'index enregistré est endommagé ({chroma_dir(self.settings)} : la collection "
                f"« {collection} » est introuvable ou illisible) : lancez « assistant index »."
            ) from exc

    @property
    def manifest_path(self) -> Path:
        """The local manifest file; with a Chroma server, the file earlier versions wrote (the
        server's own manifest is read first, this file only when the server holds none)."""
        if self.settings.chroma_is_remote:
            name = f"manifest-{self.settings.chroma_host}-{self.settings.chroma_port}.json"
            return self.index_dir / name
        return self.index_dir / MANIFEST_NAME

    def manifest(self) -> dict[str, Any]:
        if self.settings.chroma_is_remote:
            try:
                held = shared_index.read_manifest(self.client, self.settings.collection)
            except IndexError_:
                return {}  # no server: nothing to read; the first real use says so in French
            if held is not None:
                return held
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_manifest(self, data: dict[str, Any]) -> None:
        if self.settings.chroma_is_remote:
            shared_index.write_manifest(self.client, self.settings.collection, data)
            return
        self.index_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
        tmp.replace(self.manifest_path)  # atomic: the switch to the new generation

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        if self.settings.chroma_is_remote:
            with shared_index.writer_lock(self.client, self.settings.collection):
                yield
            return
        try:
            self.index_dir.mkdir(parents=True, exist_ok=True)
            handle = (self.index_dir / ".lock").open("w")
        except OSError as exc:
            reason = describe_write_failure(exc, self.index_dir)
            raise IndexWriteFailed(f"L'index n'a pas pu être écrit : {reason or exc}") from exc
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise IndexBusy(
                    "Une indexation est déjà en cours (autre processus) : réessayez dans un instant."
                ) from exc
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- health ------------------------------------------------------------------------------
    def damage(self) -> str | None:
        """Why the stored index cannot serve reads (French), or ``None``.

        ``None`` too when there is no generation yet (that is ``missing``, not damage) and the
        store opens."""
        manifest = self.manifest()
        name = manifest.get("collection")
        if not name and self.settings.chroma_is_remote:
            return None  # nothing to check, and no server to bother
        try:
            client = self.client
        except IndexDamaged as error:
            return error.reason
        if not name:
            return None
        reason = check_collection(client, str(name), manifest.get("chunks"))
        if reason is None and manifest.get("sentences"):
            reason = check_collection(client, str(manifest["sentences"]), manifest.get("sentence_count"))
        if reason is None:
            return None
        where = "serveur Chroma" if self.settings.chroma_is_remote else chroma_dir(self.settings)
        return f"{where} : {reason}"

    def reset_store(self) -> None:
        """Make room for a full rebuild after damage: a local store is set aside, a server's
        damaged collections dropped. The manifest is left alone until the new generation is in."""
        self._records = None
        if self.settings.chroma_is_remote:
            manifest = self.manifest()
            for key in ("collection", "sentences"):
                if manifest.get(key):
                    with contextlib.suppress(Exception):
                        self.client.delete_collection(str(manifest[key]))
            return
        self._client = None
        moved = set_aside(chroma_dir(self.settings))
        if moved is not None:
            log.warning("damaged Chroma store moved to %s", moved)

    # -- freshness ---------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "embedder": self.embedder_name(),
            "chunker_version": CHUNKER_VERSION,
        }

    def state(self) -> str:
        """``missing``, ``damaged``, ``stale`` or ``fresh`` for the current corpus folder."""
        manifest = self.manifest()
        if not manifest.get("collection"):
            return "missing"
        if self.damage():
            return "damaged"
        if any(manifest.get(k) != v for k, v in self.config().items()):
            return "stale"
        known = manifest.get("files", {}) | manifest.get("refused", {})
        files = corpus_files(self.settings.corpus_dir)
        if {p.name for p in files} != set(known):
            return "stale"
        for path in files:
            entry = known[path.name]
            if entry.get("sha256") != file_sha256(path):
                return "stale"
        return "fresh"

    def ensure(self, progress: Progress | None = None) -> IndexReport | None:
        """Build or update the index when missing, damaged or stale; ``None`` when fresh."""
        if self.state() == "fresh":
            return None
        return self.update(progress=progress)

    def open_for_reading(self, progress: Progress | None = None) -> tuple[IndexReport | None, str]:
        """Make the index fresh if possible; else keep serving the intact generation.

        Returns the build report (``None`` when nothing was built) and a French notice, empty
        unless reads come from a generation that is not up to date. Only when there is nothing
        usable (no generation, or a damaged one) does a failed build raise."""
        state = self.state()
        if state == "fresh":
            return None, ""
        try:
            return self.update(progress=progress), ""
        except Exception as error:
            if state != "stale":
                raise
            log.warning("index update failed, reading the previous generation", exc_info=True)
            built = str(self.manifest().get("built_at", "")).replace("T", " à ")[:21]
            reason = str(error) if isinstance(error, IndexError_) else f"erreur inattendue : {error}"
            return None, (
                f"L'index n'est pas à jour ({reason.rstrip('.')}) : les réponses viennent de "
                f"l'index précédent{f', construit le {built}' if built else ''}, "
                "sans les dernières modifications du corpus."
            )

    # -- building ----------------------------------------------------------------------------
    def update(
        self,
        progress: Progress | None = None,
        force: bool = False,
        prepared: PreparedDocument | None = None,
    ) -> IndexReport:
        """Bring the index in line with the corpus folder (``index_build.build``); ``prepared``:
        a file already read and embedded in a bounded child process (``search.prepare``)."""
        return build(self, progress=progress, force=force, prepared=prepared)

    def forget_records(self) -> None:
        self._records = None

    def drop_other_generations(self, keep: str, previous: str = "") -> None:
        """Drop every generation but ``keep``. On a Chroma server, ``previous`` (the generation
        the manifest named before the switch) is kept too: the other app processes read it until
        they reopen the index, and dropping it would turn their next searches into errors."""
        prefix = f"{self.settings.collection}_g"
        kept = [keep] + ([previous] if previous and self.settings.chroma_is_remote else [])
        for collection in self.client.list_collections():
            name = collection if isinstance(collection, str) else collection.name
            if name.startswith(prefix) and not any(name.startswith(k) for k in kept):
                with contextlib.suppress(Exception):
                    self.client.delete_collection(name)

    # -- reading -----------------------------------------------------------------------------
    @property
    def collection_name(self) -> str:
        name = self.manifest().get("collection")
        if not name:
            raise IndexError_("L'index n'existe pas encore : lancez « assistant index » (ou « make run »).")
        return str(name)

    def vectorstore(self) -> Any:
        return self.store(self.collection_name)

    def sentence_store(self) -> Any | None:
        """The sentence vectors of the current generation (None for an index built without)."""
        name = self.manifest().get("sentences")
        return self.store(str(name)) if name else None

    def records(self) -> list[Record]:
        """All stored chunks (cached per generation), in document order.

        Checked against the manifest: a store that lost passages raises ``IndexDamaged``
        rather than serving an empty or partial corpus."""
        name = self.collection_name
        if self._records is None or self._records_collection != name:
            store = self.store(name)
            records = []
            # A page at a time: one request for a library's hundred thousand passages failed
            # (SQLite: « too many SQL variables », found at 1000× the dossier).
            for offset in itertools.count(0, RECORDS_PAGE):
                page = store.get(include=["metadatas"], limit=RECORDS_PAGE, offset=offset)
                records += [
                    Record(cid, str(meta.get("text", "")), str(meta.get("label", "")), dict(meta))
                    for cid, meta in zip(page["ids"], page["metadatas"], strict=True)
                ]
                if len(page["ids"]) < RECORDS_PAGE:
                    break
            expected = self.manifest().get("chunks")
            if expected is not None and len(records) != expected:
                raise IndexDamaged(
                    f"L'index enregistré est endommagé ({chroma_dir(self.settings)} : "
                    f"{len(records)} passages au lieu de {expected}) : lancez « assistant index »."
                )
            records.sort(
                key=lambda r: (str(r.metadata.get("source", "")), int(r.metadata.get("position", 0)))
            )
            self._records, self._records_collection = records, name
        return self._records

    def documents(self) -> list[dict[str, Any]]:
        """Indexed documents for display: name, label, chunk count, last indexing time."""
        manifest = self.manifest()
        rows = []
        for name, entry in sorted(manifest.get("files", {}).items()):
            rows.append(
                {
                    "fichier": name,
                    "document": entry.get("label", name),
                    "passages": entry.get("chunks", 0),
                    "indexé le": entry.get("indexed_at", ""),
                }
            )
        for name, entry in sorted(manifest.get("refused", {}).items()):
            if name not in manifest.get("files", {}):
                rows.append(
                    {
                        "fichier": name,
                        "document": "refusé : " + entry.get("reason", ""),
                        "passages": 0,
                        "indexé le": "",
                    }
                )
        return rows
