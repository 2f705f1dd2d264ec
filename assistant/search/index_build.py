"""Building one generation of the index: plan per file, reuse vectors, write, switch the manifest.

Every build writes a complete new *generation* (a new pair of collections: passages and their
sentences) and only then switches the manifest to it, so a crash, a full disk or a killed
process mid-build never leaves a half-written index in use; the half-written generation is
dropped at once when possible, the old one after the switch. Vectors of unchanged files are
copied from the current generation, so changing one file re-embeds only that file. They are read
back from Chroma by id, a batch at a time, when the batch is written (``StoredVectors``): the
build holds the previous generation's texts, not its vectors, and at most CACHE_VECTORS vectors.

A damaged store (see ``store.py``) is set aside and rebuilt in full before anything else.
Passage ids are unique by construction (the document id is the exact file name); should two
passages still share an id, the second is skipped and both files are named, so that one odd
file never blocks the whole corpus (Chroma refuses a batch with a repeated id).

Deliberately left out: deciding *whether* to build (``CorpusIndex.state``) and reading.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.ingest.errors import IngestError, file_sha256
from assistant.schema import Chunk
from assistant.search.embeddings import ProgressEmbeddings, StoredVectors, VectorCache
from assistant.search.prepare import PreparedDocument, chunk_metadata, load_chunks, sentence_rows
from assistant.search.store import IndexWriteFailed, describe_write_failure

if TYPE_CHECKING:
    from assistant.search.index import CorpusIndex

# (done, total, message) — the CLI draws a tqdm bar with it, the app a gr.Progress.
Progress = Callable[[int, int, str], None]
BATCH = 64
# Texts whose documents (not vectors) are read from the previous generation at once.
READ_PAGE = 2000
# Vectors a build keeps in memory (float32; 768 dimensions: 3 kB each, 60 MB in all); past them
# the least recently used is dropped and read back from the index when met again.
CACHE_VECTORS = 20_000


@dataclass
class IndexReport:
    """What a build did, for the CLI and the app to tell the user."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    refused: list[IngestError] = field(default_factory=list)
    kept_previous: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # French, one per pair of files
    notices: list[str] = field(default_factory=list)  # French: what was repaired before building
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


def corpus_files(corpus_dir: Path) -> list[Path]:
    """Every regular file of the corpus folder (refused ones included, to report them)."""
    if not corpus_dir.is_dir():
        return []
    return sorted(p for p in corpus_dir.iterdir() if p.is_file() and not p.name.startswith((".", "~$")))


def now() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def build(
    index: CorpusIndex,
    progress: Progress | None = None,
    force: bool = False,
    prepared: PreparedDocument | None = None,
) -> IndexReport:
    """Bring the index in line with the corpus folder (see the module docstring).

    ``prepared``: a file of the folder already read and embedded (``search.prepare``, in a
    bounded child process); used as is when its SHA-256 still matches the file."""
    started = time.perf_counter()
    report = IndexReport()
    with index.writer_lock():
        damage = index.damage()
        if damage:
            report.notices.append(f"L'index enregistré est endommagé ({damage}) : reconstruction complète.")
            index.reset_store()
            force = True
        manifest = index.manifest()
        config = index.config()
        reuse = not force and all(manifest.get(k) == v for k, v in config.items())
        report.rebuilt = not reuse or not manifest.get("collection")
        old_collection = manifest.get("collection", "") if reuse else ""
        old_files: dict[str, Any] = manifest.get("files", {}) if reuse else {}

        plan: list[tuple[str, str, list[Chunk] | None]] = []  # (name, sha, new chunks)
        refused: dict[str, Any] = {}
        # Vectors by content hash, the most recent CACHE_VECTORS of them: each distinct text is
        # embedded once, the others are read back from the index (``StoredVectors``).
        known = VectorCache(limit=CACHE_VECTORS)
        for path in corpus_files(index.settings.corpus_dir):
            sha = file_sha256(path)
            previous = old_files.get(path.name)
            if previous and previous.get("sha256") == sha:
                plan.append((path.name, sha, None))
                report.unchanged.append(path.name)
                continue
            try:
                if prepared is not None and (prepared.name, prepared.sha256) == (path.name, sha):
                    chunks = prepared.chunks
                    known.limit = CACHE_VECTORS + len(prepared.vectors)  # none of them is dropped
                    for text, vector in prepared.vectors.items():
                        known.add(text, vector)
                else:
                    chunks = load_chunks(path, index.settings)
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

        ids: list[str] = []
        texts: list[str] = []
        metadatas: list[dict[str, Any]] = []
        owner: dict[str, str] = {}  # passage id → file, to name both files of a repeated id
        # The previous generation's vectors stay where they are: their texts are registered
        # (documents only, a page at a time) and each vector is read back when a batch needs it.
        readers: dict[str, Any] = {}

        def read(collection: str, wanted: list[str]) -> list[Any]:
            if collection not in readers:
                readers[collection] = index.store(collection)
            return _vectors(readers[collection], wanted)

        stored = StoredVectors(read)
        kept_ids = [cid for name, _, c in plan if c is None for cid in old_files[name]["chunk_ids"]]
        if old_collection and kept_ids:
            for name, _, c in plan:
                if c is None:
                    owner |= dict.fromkeys(old_files[name]["chunk_ids"], name)
            for start in range(0, len(kept_ids), READ_PAGE):
                page = index.store(old_collection).get(
                    ids=kept_ids[start : start + READ_PAGE], include=["documents", "metadatas"]
                )
                stored.register(old_collection, page["ids"], page["documents"])
                ids += page["ids"]
                texts += page["documents"]
                metadatas += page["metadatas"]

        files_entry: dict[str, Any] = {}
        for name, sha, new_chunks in plan:
            if new_chunks is None:
                files_entry[name] = old_files[name]
                continue
            chunks = _unique(new_chunks, name, owner, report)
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
                "indexed_at": now(),
            }

        old_sentences = manifest.get("sentences", "") if reuse else ""
        if old_sentences:
            sentences = index.store(old_sentences)
            for offset in range(0, int(manifest.get("sentence_count") or 0) + READ_PAGE, READ_PAGE):
                page = sentences.get(include=["documents"], limit=READ_PAGE, offset=offset)
                if not page["ids"]:
                    break
                stored.register(old_sentences, page["ids"], page["documents"])

        def computed(text: str) -> bool:
            return text in known or text in stored

        report.embedded_chunks = sum(1 for t in texts if not computed(t))
        unit_ids, unit_texts, unit_metas = sentence_rows(ids, metadatas)

        to_embed = len({t for t in texts + unit_texts if not computed(t)})
        report.embedded_sentences = sum(1 for t in unit_texts if not computed(t))
        done = 0

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if progress:
                progress(done, to_embed, "Calcul des embeddings")

        if progress:
            progress(0, to_embed, "Calcul des embeddings")
        wrapper = ProgressEmbeddings(index.embeddings, known, advance, stored)
        stamp = f"{time.strftime('%Y%m%d%H%M%S')}_{time.time_ns() % 10**6:06d}"
        collection = f"{index.settings.collection}_g{stamp}"
        try:
            for name, all_ids, all_texts, all_metas in (
                (collection, ids, texts, metadatas),
                (f"{collection}_s", unit_ids, unit_texts, unit_metas),
            ):
                target = index.store(name, wrapper, create=True)
                for start in range(0, len(all_ids), BATCH):
                    target.add_texts(
                        texts=all_texts[start : start + BATCH],
                        metadatas=all_metas[start : start + BATCH],
                        ids=all_ids[start : start + BATCH],
                    )
                    # A text met again after its vector left the cache is read back from here.
                    stored.register(name, all_ids[start : start + BATCH], all_texts[start : start + BATCH])
            index.write_manifest(
                config
                | {
                    "collection": collection,
                    "sentences": f"{collection}_s",
                    "built_at": now(),
                    "files": files_entry,
                    "refused": refused,
                    "chunks": len(ids),
                    "sentence_count": len(unit_ids),
                }
            )
        except BaseException as exc:
            # The manifest still names the previous generation: drop the half-written one now,
            # which also gives back the space a full disk needs.
            for name in (collection, f"{collection}_s"):
                with contextlib.suppress(Exception):
                    index.client.delete_collection(name)
            reason = describe_write_failure(exc, index.index_dir) if isinstance(exc, Exception) else None
            if reason:
                raise IndexWriteFailed(f"L'index n'a pas pu être écrit : {reason}") from exc
            raise
        report.total_chunks = len(ids)
        index.forget_records()
        index.drop_other_generations(keep=collection, previous=str(manifest.get("collection", "")))
    report.seconds = time.perf_counter() - started
    return report


def _vectors(store: Any, ids: list[str]) -> list[Any]:
    """The stored vectors of ``ids`` in ``store`` (a collection), in the order of ``ids``."""
    found = store.get(ids=ids, include=["embeddings"])
    by_id = dict(zip(found["ids"], found["embeddings"], strict=True))
    return [by_id[i] for i in ids]


def _unique(chunks: list[Chunk], name: str, owner: dict[str, str], report: IndexReport) -> list[Chunk]:
    """The chunks of file ``name`` whose id no earlier passage has; the others are named."""
    kept: list[Chunk] = []
    clashes: dict[str, int] = {}
    for chunk in chunks:
        other = owner.get(chunk.chunk_id)
        if other is not None:
            clashes[other] = clashes.get(other, 0) + 1
            continue
        owner[chunk.chunk_id] = name
        kept.append(chunk)
    for other, count in clashes.items():
        report.duplicates.append(
            f"« {name} » : {count} passage(s) ont le même identifiant que des passages de « {other} » "
            "(fichiers de noms trop proches ?) : ignorés ; le reste du corpus est indexé."
        )
    return kept
