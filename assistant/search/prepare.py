"""Preparing a new document for the index: read, cut and embed it in a bounded child process.

An added document is untrusted: a small file can expand into hundreds of thousands of passages,
and reading and embedding them used to take minutes and gigabytes inside the app's own process,
so that nobody got an answer meanwhile. ``prepare_document`` does that work in
``python -m assistant.search.prepare`` with a wall-clock limit (``upload_timeout_s``), an
address-space limit (``upload_memory_mb``, ``RLIMIT_AS``) and a lower CPU priority, while the
app keeps answering from the current index. The child refuses a document that gives more than
``max_passages_per_document`` passages. It hands back the chunks (JSON) and their vectors (a
NumPy file) through a private folder; the index then stores them without reading or embedding
the file again (``CorpusIndex.update(prepared=…)``).

Also here, because the child needs them too: how a file becomes chunks (``load_chunks``) and
which texts the index embeds for them (``chunk_metadata``, ``sentence_rows``).

Deliberately left out: writing to Chroma — one writer, the app's process, under the index lock.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from assistant.ingest.chunking import chunk_blocks, sentence_units
from assistant.ingest.errors import IngestError, file_sha256
from assistant.ingest.formats import load_document
from assistant.ingest.structure import build_blocks
from assistant.schema import Chunk
from assistant.settings import Settings

log = logging.getLogger(__name__)

Progress = Any  # (done, total, message) -> None, as in ``assistant.search.index``
_CHILD_FLAG = "--child"
_NICE = 10  # questions, answered by the app's process, go first


def load_chunks(path: Path, settings: Settings) -> list[Chunk]:
    """Read and cut one file; ``IngestError`` (French) when it cannot be read or gives more
    passages than ``settings.max_passages_per_document``."""
    chunks = chunk_blocks(build_blocks(load_document(path)), source=path.name)
    limit = settings.max_passages_per_document
    if len(chunks) > limit:
        raise IngestError(
            path,
            f"le document donne {len(chunks)} passages, au-delà de la limite de {limit} par document "
            "(un document du dossier en donne une trentaine). Découpez-le en plusieurs fichiers, "
            "puis réessayez.",
        )
    return chunks


def chunk_metadata(chunk: Chunk) -> dict[str, Any]:
    """What the index stores beside a chunk's vector."""
    return chunk.metadata | {
        "text": chunk.text,
        "label": chunk.breadcrumb,
        "start": chunk.start,
        "end": chunk.end,
    }


def sentence_rows(
    ids: list[str], metadatas: list[dict[str, Any]]
) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """The sentence units of stored chunks: their ids, the texts embedded, their metadata."""
    unit_ids: list[str] = []
    unit_texts: list[str] = []
    unit_metas: list[dict[str, Any]] = []
    for cid, meta in zip(ids, metadatas, strict=True):
        for number, unit in enumerate(sentence_units(str(meta["text"]))):
            unit_ids.append(f"{cid}#s{number:02d}")
            unit_texts.append(f"{meta['doc_label']} › {meta['section']}\n{unit}")
            unit_metas.append(
                {"parent": cid, "scenario": meta["scenario"], "section_kind": meta["section_kind"]}
            )
    return unit_ids, unit_texts, unit_metas


def embedded_texts(chunks: list[Chunk]) -> list[str]:
    """Every text the index embeds for these chunks (each chunk, each sentence), once each."""
    _, unit_texts, _ = sentence_rows([c.chunk_id for c in chunks], [chunk_metadata(c) for c in chunks])
    return list(dict.fromkeys([c.embedding_text() for c in chunks] + unit_texts))


@dataclass
class PreparedDocument:
    """A file read, cut and embedded by the child: the index stores these as they are."""

    name: str
    sha256: str
    chunks: list[Chunk]
    vectors: dict[str, list[float]]


# ----------------------------------------------------------------------------------- parent


def prepare_document(path: Path, settings: Settings, progress: Progress | None = None) -> PreparedDocument:
    """Read, cut and embed ``path`` in a bounded child process; ``IngestError`` (French) if not."""
    path = Path(path)
    sha = file_sha256(path)
    with tempfile.TemporaryDirectory(prefix="assistant-prepare-") as tmp:
        out = Path(tmp)
        result = _run_child(path, out, settings, progress)
        if not result.get("ok"):
            raise IngestError(path, str(result.get("reason") or _FAILURES["crash"]))
        import numpy as np

        texts = result["texts"]
        matrix = np.load(out / "vectors.npy") if texts else np.zeros((0, 0))
        vectors = {text: [float(x) for x in row] for text, row in zip(texts, matrix, strict=True)}
    chunks = [Chunk(**item) for item in result["chunks"]]
    return PreparedDocument(path.name, sha, chunks, vectors)


_FAILURES = {
    "memory": "la lecture du document a dépassé la mémoire autorisée (document démesuré ou malformé) : "
    "il a été refusé.",
    "crash": "la lecture du document s'est interrompue (fichier probablement malformé) : il a été refusé.",
}


def _run_child(path: Path, out: Path, settings: Settings, progress: Progress | None) -> dict[str, Any]:
    root = Path(__file__).resolve().parents[2]  # the folder holding the assistant package
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    options = {
        "embedder": settings.embedder,
        "embed_threads": settings.embed_threads,
        "cache_dir": str(settings.cache_dir),
        "max_passages_per_document": settings.max_passages_per_document,
        "memory": settings.upload_memory_mb * 1024 * 1024,
    }
    command = [
        sys.executable,
        "-m",
        "assistant.search.prepare",
        _CHILD_FLAG,
        str(path.resolve()),
        str(out),
        json.dumps(options),
    ]
    timeout = settings.upload_timeout_s
    with (out / "stderr.txt").open("wb") as errors:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, cwd=str(root), env=env
        )
        assert process.stdout is not None
        # In the caller's context: Gradio finds the event a progress update belongs to there.
        context = contextvars.copy_context()
        reader = threading.Thread(
            target=context.run, args=(_relay_progress, process.stdout, progress), daemon=True
        )
        reader.start()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            log.warning("preparing %s killed after %s s", path, timeout)
            minutes = f"{timeout / 60:.1f}".replace(".", ",").removesuffix(",0")
            seconds = f"{timeout:g}".replace(".", ",")
            limit = f"{minutes} min" if timeout >= 60 else f"{seconds} s"
            raise IngestError(
                path,
                f"la lecture et l'indexation du document ont dépassé {limit} : document trop long "
                "ou malformé ; il a été refusé.",
            ) from None
        finally:
            if process.poll() is None:  # interrupted (KeyboardInterrupt…): never leave it running
                process.kill()
                process.wait()
            reader.join(timeout=5)
    try:
        result = json.loads((out / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        result = None
    if not isinstance(result, dict):
        tail = (out / "stderr.txt").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        log.warning("preparing %s: child exited with %s: %s", path, process.returncode, " | ".join(tail))
        killed = process.returncode == -9  # SIGKILL: what the kernel's out-of-memory killer sends
        memory = killed or any("MemoryError" in line or "Cannot allocate" in line for line in tail)
        return {"ok": False, "reason": _FAILURES["memory" if memory else "crash"]}
    return result


def _relay_progress(stream: IO[bytes], progress: Progress | None) -> None:
    for line in stream:
        try:
            done, total = (int(x) for x in line.split())
        except ValueError:
            continue
        if progress is not None:
            progress(done, total, "Calcul des embeddings")


# ------------------------------------------------------------------------------------ child


def _child_main(argv: list[str]) -> int:
    path, out, options = Path(argv[0]), Path(argv[1]), json.loads(argv[2])
    from assistant.ingest.pdf import limit_address_space

    limit_address_space(int(options["memory"]))
    with contextlib.suppress(OSError):
        os.nice(_NICE)
    report = sys.stdout
    sys.stdout = sys.stderr  # only progress lines reach the parent's pipe
    logging.basicConfig(level=logging.WARNING)
    settings = Settings(
        embedder=options["embedder"],
        embed_threads=int(options["embed_threads"]),
        cache_dir=Path(options["cache_dir"]),
        max_passages_per_document=int(options["max_passages_per_document"]),
    )
    try:
        result = _prepare(path, out, settings, report)
    except IngestError as error:
        result = {"ok": False, "reason": error.reason}
    except MemoryError:
        result = {"ok": False, "reason": _FAILURES["memory"]}
    (out / "result.json").write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    return 0


def _prepare(path: Path, out: Path, settings: Settings, report: IO[str]) -> dict[str, Any]:
    import numpy as np

    from assistant.search.embeddings import ProgressEmbeddings, build_embeddings

    chunks = load_chunks(path, settings)
    texts = embedded_texts(chunks)
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        report.write(f"{done} {len(texts)}\n")
        report.flush()

    vectors = ProgressEmbeddings(build_embeddings(settings), None, advance).embed_documents(texts)
    if texts:
        np.save(out / "vectors.npy", np.asarray(vectors, dtype=np.float32))
    return {"ok": True, "chunks": [asdict(c) for c in chunks], "texts": texts}


if __name__ == "__main__" and len(sys.argv) >= 5 and sys.argv[1] == _CHILD_FLAG:
    sys.exit(_child_main(sys.argv[2:]))
