"""The vector index: Chroma (embedded under ``index/`` or a Chroma server), with a manifest.

Every build writes a complete new *generation* (a new collection) and only then switches the
manifest to it, so a crash mid-build never leaves a half-written index in use; the old
generation is dropped afterwards. Vectors of unchanged files are copied from the current
generation, so changing one file re-embeds only that file. The manifest (format version,
embedder, chunker version, SHA-256 of every corpus file) decides what is fresh; any mismatch of
embedder or chunker rebuilds everything rather than mixing vectors.

One writer at a time: a lock file guards builds (Chroma reports: concurrent writers have
corrupted Chroma folders beyond repair). Readers never need it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from assistant.ingest.chunking import CHUNKER_VERSION
from assistant.ingest.errors import IngestError, file_sha256
from assistant.schema import Chunk
from assistant.search.embeddings import ProgressEmbeddings, build_embeddings, embedder_name
from assistant.search.prepare import PreparedDocument, chunk_metadata, load_chunks, sentence_rows
from assistant.settings import Settings

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
MANIFEST_NAME = "manifest.json"
# (done, total, message) — the CLI draws a tqdm bar with it, the app a gr.Progress.
Progress = Callable[[int, int, str], None]


class IndexError_(RuntimeError):
    """The index cannot be used or built (French message)."""


@dataclass
class IndexReport:
    """What a build did, for the CLI and the app to tell the user."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    refused: list[IngestError] = field(default_factory=list)
    kept_previous: list[str] = field(default_factory=list)
    embedded_chunks: int = 0  # chunk vectors computed (the others were reused)
    embedded_sentences: int = 0
    total_chunks: int = 0
    seconds: float = 0.0
    rebuilt: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.rebuilt)

    def summary_fr(self) -> str:
        """One French sentence for users: what changed, how long it took, what was computed."""
        parts = [
            f"{len(names)} document(s) {label}"
            for label, names in (
                ("ajouté(s)", self.added),
                ("mis à jour", self.updated),
                ("retiré(s)", self.removed),
                ("inchangé(s)", self.unchanged),
            )
            if names
        ]
        seconds = f"{self.seconds:.1f}".replace(".", ",")
        return (
            f"Index mis à jour en {seconds} s : {', '.join(parts) or 'aucun document'} ; "
            f"{self.total_chunks} passages, dont {self.embedded_chunks} recalculés."
        )


@dataclass
class Record:
    """One stored chunk as read back from the index."""

    chunk_id: str
    text: str
    label: str
    metadata: dict[str, Any]


def corpus_files(corpus_dir: Path) -> list[Path]:
    """Every regular file of the corpus folder (refused ones included, to report them)."""
    if not corpus_dir.is_dir():
        return []
    return sorted(p for p in corpus_dir.iterdir() if p.is_file() and not p.name.startswith((".", "~$")))


def _now() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


class CorpusIndex:
    """The corpus folder, its Chroma index and its manifest."""

    def __init__(self, settings: Settings, embeddings: Embeddings | None = None) -> None:
        self.settings = settings
        self.embeddings = embeddings or build_embeddings(settings)
        self.index_dir = settings.index_dir
        self._client: Any = None
        self._records: list[Record] | None = None
        self._records_collection = ""

    # -- storage -----------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            import chromadb
            from chromadb.config import Settings as ChromaSettings

            chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
            if self.settings.chroma_is_remote:
                try:
                    self._client = chromadb.HttpClient(
                        host=self.settings.chroma_host or "127.0.0.1",
                        port=self.settings.chroma_port,
                        settings=chroma_settings,
                    )
                except Exception as exc:
                    raise IndexError_(
                        "Le serveur Chroma ne répond pas à "
                        f"{self.settings.chroma_host}:{self.settings.chroma_port} ({exc})."
                    ) from exc
            else:
                self.index_dir.mkdir(parents=True, exist_ok=True)
                self._client = chromadb.PersistentClient(
                    path=str(self.index_dir / "chroma"), settings=chroma_settings
                )
        return self._client

    def _vectorstore(self, collection: str) -> Any:
        from langchain_chroma import Chroma

        return Chroma(client=self.client, collection_name=collection, embedding_function=self.embeddings)

    @property
    def manifest_path(self) -> Path:
        if self.settings.chroma_is_remote:
            name = f"manifest-{self.settings.chroma_host}-{self.settings.chroma_port}.json"
            return self.index_dir / name
        return self.index_dir / MANIFEST_NAME

    def manifest(self) -> dict[str, Any]:
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write_manifest(self, data: dict[str, Any]) -> None:
        self.index_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
        tmp.replace(self.manifest_path)  # atomic: the switch to the new generation

    @contextlib.contextmanager
    def _writer_lock(self) -> Iterator[None]:
        self.index_dir.mkdir(parents=True, exist_ok=True)
        with (self.index_dir / ".lock").open("w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise IndexError_(
                    "Une indexation est déjà en cours (autre processus) : réessayez dans un instant."
                ) from exc
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- freshness ---------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "embedder": embedder_name(self.embeddings),
            "chunker_version": CHUNKER_VERSION,
        }

    def state(self) -> str:
        """``missing``, ``stale`` or ``fresh`` for the current corpus folder."""
        manifest = self.manifest()
        if not manifest.get("collection"):
            return "missing"
        if any(manifest.get(k) != v for k, v in self._config().items()):
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
        """Build or update the index when missing or stale; ``None`` when already fresh."""
        if self.state() == "fresh":
            return None
        return self.update(progress=progress)

    # -- building ----------------------------------------------------------------------------
    def update(
        self,
        progress: Progress | None = None,
        force: bool = False,
        prepared: PreparedDocument | None = None,
    ) -> IndexReport:
        """Bring the index in line with the corpus folder (see the module docstring).

        ``prepared``: a file of the folder already read and embedded; used as is when its
        SHA-256 still matches the file."""
        started = time.perf_counter()
        report = IndexReport()
        with self._writer_lock():
            manifest = self.manifest()
            config = self._config()
            reuse = not force and all(manifest.get(k) == v for k, v in config.items())
            report.rebuilt = not reuse or not manifest.get("collection")
            old_collection = manifest.get("collection", "")
            old_files: dict[str, Any] = manifest.get("files", {}) if reuse else {}

            plan: list[tuple[str, str, list[Chunk] | None]] = []  # (name, sha, new chunks)
            refused: dict[str, Any] = {}
            known: dict[str, list[float]] = {}
            for path in corpus_files(self.settings.corpus_dir):
                sha = file_sha256(path)
                previous = old_files.get(path.name)
                if previous and previous.get("sha256") == sha:
                    plan.append((path.name, sha, None))
                    report.unchanged.append(path.name)
                    continue
                try:
                    if prepared is not None and (prepared.name, prepared.sha256) == (path.name, sha):
                        chunks = prepared.chunks
                        known.update(prepared.vectors)
                    else:
                        chunks = load_chunks(path, self.settings)
                except IngestError as error:
                    report.refused.append(error)
                    refused[path.name] = {"sha256": sha, "reason": error.reason}
                    if previous:  # keep the last good version rather than lose it
                        plan.append((path.name, previous["sha256"], None))
                        report.kept_previous.append(path.name)
                    continue
                plan.append((path.name, sha, chunks))
                (report.updated if previous else report.added).append(path.name)
            report.removed = sorted(set(old_files) - {name for name, _, _ in plan})

            kept_records: list[tuple[str, str, dict[str, Any]]] = []
            if old_collection and reuse:
                kept_ids = [cid for name, _, c in plan if c is None for cid in old_files[name]["chunk_ids"]]
                if kept_ids:
                    stored = self._vectorstore(old_collection).get(
                        ids=kept_ids, include=["embeddings", "documents", "metadatas"]
                    )
                    for cid, doc, meta, vector in zip(
                        stored["ids"],
                        stored["documents"],
                        stored["metadatas"],
                        stored["embeddings"],
                        strict=True,
                    ):
                        known[doc] = [float(x) for x in vector]
                        kept_records.append((cid, doc, meta))

            ids: list[str] = []
            texts: list[str] = []
            metadatas: list[dict[str, Any]] = []
            files_entry: dict[str, Any] = {}
            for cid, doc, meta in kept_records:
                ids.append(cid)
                texts.append(doc)
                metadatas.append(meta)
            for name, sha, new_chunks in plan:
                if new_chunks is None:
                    files_entry[name] = old_files[name]
                    continue
                chunks = new_chunks
                for chunk in chunks:
                    ids.append(chunk.chunk_id)
                    texts.append(chunk.embedding_text())
                    metadatas.append(chunk_metadata(chunk))
                files_entry[name] = {
                    "sha256": sha,
                    "doc_id": chunks[0].doc_id if chunks else "",
                    "label": chunks[0].metadata.get("doc_label", name) if chunks else name,
                    "chunk_ids": [c.chunk_id for c in chunks],
                    "chunks": len(chunks),
                    "indexed_at": _now(),
                }

            report.embedded_chunks = sum(1 for t in texts if t not in known)
            old_sentences = manifest.get("sentences", "")
            if old_sentences and reuse:
                stored = self._vectorstore(old_sentences).get(include=["embeddings", "documents"])
                for doc, vector in zip(stored["documents"], stored["embeddings"], strict=True):
                    known[doc] = [float(x) for x in vector]
            unit_ids, unit_texts, unit_metas = sentence_rows(ids, metadatas)

            to_embed = len({t for t in texts + unit_texts if t not in known})
            report.embedded_sentences = sum(1 for t in unit_texts if t not in known)
            done = 0

            def advance(count: int) -> None:
                nonlocal done
                done += count
                if progress:
                    progress(done, to_embed, "Calcul des embeddings")

            if progress:
                progress(0, to_embed, "Calcul des embeddings")
            wrapper = ProgressEmbeddings(self.embeddings, known, advance)
            collection = (
                f"{self.settings.collection}_g{time.strftime('%Y%m%d%H%M%S')}_{time.time_ns() % 10**6:06d}"
            )
            from langchain_chroma import Chroma

            store = Chroma(client=self.client, collection_name=collection, embedding_function=wrapper)
            sentences = Chroma(
                client=self.client, collection_name=f"{collection}_s", embedding_function=wrapper
            )
            batch = 64
            for target, all_ids, all_texts, all_metas in (
                (store, ids, texts, metadatas),
                (sentences, unit_ids, unit_texts, unit_metas),
            ):
                for start in range(0, len(all_ids), batch):
                    target.add_texts(
                        texts=all_texts[start : start + batch],
                        metadatas=all_metas[start : start + batch],
                        ids=all_ids[start : start + batch],
                    )
            report.total_chunks = len(ids)

            self._write_manifest(
                config
                | {
                    "collection": collection,
                    "sentences": f"{collection}_s",
                    "built_at": _now(),
                    "files": files_entry,
                    "refused": refused,
                    "chunks": len(ids),
                }
            )
            self._records = None
            self._drop_other_generations(keep=collection)
        report.seconds = time.perf_counter() - started
        return report

    def _drop_other_generations(self, keep: str) -> None:
        prefix = f"{self.settings.collection}_g"
        for collection in self.client.list_collections():
            name = collection if isinstance(collection, str) else collection.name
            if name.startswith(prefix) and not name.startswith(keep):
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
        return self._vectorstore(self.collection_name)

    def sentence_store(self) -> Any | None:
        """The sentence vectors of the current generation (None for an index built without)."""
        name = self.manifest().get("sentences")
        return self._vectorstore(str(name)) if name else None

    def records(self) -> list[Record]:
        """All stored chunks (cached per generation), in document order."""
        name = self.collection_name
        if self._records is None or self._records_collection != name:
            stored = self._vectorstore(name).get(include=["metadatas"])
            records = [
                Record(cid, str(meta.get("text", "")), str(meta.get("label", "")), dict(meta))
                for cid, meta in zip(stored["ids"], stored["metadatas"], strict=True)
            ]
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
