"""Loading a text PDF: its structure (headings, lists, tables, paragraphs) recovered from positions.

pypdf parses the file in a child process (``python -m assistant.ingest.pdf``) with a time limit
(``PDF_TIMEOUT_S``) and an address-space limit (``PDF_MEMORY_LIMIT``, ``RLIMIT_AS``), because a
malformed PDF can make a parser loop forever or exhaust memory and no ``try``/``except`` stops
that: on timeout the child is killed and an ``IngestError`` says so. Encrypted files are opened
with the empty password when that works; otherwise, and for damaged files and files with no text
layer (scans), ``IngestError`` explains why in French.

The structure itself (headings, lists, tables, paragraphs) is recovered in ``assistant.ingest.pdf_layout``,
whose docstring describes how. Pages that pypdf cannot read are skipped and listed in
``meta["unreadable_pages"]``, pages with no text in ``meta["pages_without_text"]``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from assistant.ingest.errors import IngestError, doc_id_for
from assistant.ingest.pdf_layout import PageData, layout, page_data, pdf_errors
from assistant.schema import Element, LoadedDocument

logger = logging.getLogger(__name__)

PDF_TIMEOUT_S = 60.0
PDF_MEMORY_LIMIT = 1536 * 1024 * 1024  # bytes of address space for the child (RLIMIT_AS)
_CHILD_FLAG = "--child"


# ----------------------------------------------------------------------------------- parent


def load_pdf(path: Path, *, timeout: float | None = None, memory_limit: int | None = None) -> LoadedDocument:
    """Load a text PDF, parsing it in a child process; raise ``IngestError`` when it cannot be."""
    path = Path(path)
    timeout = PDF_TIMEOUT_S if timeout is None else timeout
    memory_limit = PDF_MEMORY_LIMIT if memory_limit is None else memory_limit
    _check_header(path)
    result = _run_child(path, timeout, memory_limit)
    if not result.get("ok"):
        raise IngestError(path, _failure_reason(result))
    elements = [Element(**item) for item in result["elements"]]
    meta = {key: str(value) for key, value in result.get("meta", {}).items()}
    return LoadedDocument(str(path), doc_id_for(path), result["text"], elements, meta, pages=result["pages"])


def _check_header(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            head = handle.read(1024)
    except OSError as exc:
        raise IngestError(path, f"fichier illisible ({exc.strerror}).") from exc
    if b"%PDF-" not in head:
        raise IngestError(
            path,
            "le PDF est illisible ou endommagé (ce n'est pas un fichier PDF : "
            "l'en-tête « %PDF » est absent).",
        )


def _run_child(path: Path, timeout: float, memory_limit: int) -> dict[str, Any]:
    root = Path(__file__).resolve().parents[2]  # the folder holding the assistant package
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    command = [
        sys.executable,
        "-m",
        "assistant.ingest.pdf",
        _CHILD_FLAG,
        str(path.resolve()),
        str(int(memory_limit)),
    ]
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=str(root),
        env=env,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        logger.warning("PDF parsing of %s killed after %s s", path, timeout)
        raise IngestError(
            path, f"l'analyse du PDF a dépassé {timeout:g} s : fichier probablement malformé."
        ) from None
    finally:
        if process.poll() is None:  # interrupted (KeyboardInterrupt…): never leave it running
            process.kill()
            process.wait()
    try:
        result = json.loads(stdout.decode("utf-8"))
    except ValueError:
        result = None
    if not isinstance(result, dict):
        tail = stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        logger.warning("PDF child for %s exited with %s: %s", path, process.returncode, " | ".join(tail))
        killed = process.returncode == -9  # SIGKILL: what the kernel's out-of-memory killer sends
        memory = killed or any("MemoryError" in line for line in tail)
        return {"ok": False, "error": "memory" if memory else "crash"}
    return result


_FAILURES = {
    "password": "le PDF est protégé par un mot de passe ; enregistrez-en une copie sans mot de "
    "passe puis ajoutez-la à nouveau.",
    "crypto": "le PDF est chiffré (AES) et le module de déchiffrement « cryptography » n'est pas "
    "installé ; installez-le ou fournissez une copie non chiffrée.",
    "no_text": "le PDF ne contient aucun texte extractible (document numérisé ?) ; il faut un "
    "PDF texte ou une version Word.",
    "memory": "le PDF est illisible ou endommagé (l'analyse a dépassé la mémoire autorisée : "
    "fichier probablement malformé).",
    "crash": "le PDF est illisible ou endommagé (l'analyse s'est interrompue).",
}


def _failure_reason(result: dict[str, Any]) -> str:
    error = str(result.get("error", "crash"))
    if error == "corrupt":
        return f"le PDF est illisible ou endommagé ({result.get('detail', 'structure invalide')})."
    return _FAILURES.get(error, _FAILURES["crash"])


# ------------------------------------------------------------------------------------ child


def limit_address_space(limit: int) -> None:
    """Cap this process's address space (``RLIMIT_AS``) at ``limit`` bytes, where the platform can."""
    try:
        import resource
    except ImportError:  # not on this platform (Windows): the time limit still applies
        return
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ValueError, OSError):
        pass


def _child_main(argv: list[str]) -> int:
    path, memory_limit = Path(argv[0]), int(argv[1])
    limit_address_space(memory_limit)
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # nothing but the result may reach the parent's pipe
    logging.basicConfig(level=logging.ERROR)
    try:
        result = _parse(path)
    except MemoryError:
        result = {"ok": False, "error": "memory"}
    real_stdout.write(json.dumps(result))
    real_stdout.flush()
    return 0


_CORRUPT_DETAILS = [
    (
        re.compile(r"EOF marker|startxref|trailer", re.IGNORECASE),
        "fin de fichier absente : fichier tronqué ?",
    ),
    (
        re.compile(r"xref|cross.?reference", re.IGNORECASE),
        "table des objets introuvable ou invalide",
    ),
    (re.compile(r"ended unexpectedly|truncated|unexpected end", re.IGNORECASE), "fichier tronqué"),
    (re.compile(r"empty", re.IGNORECASE), "fichier vide"),
    (re.compile(r"header", re.IGNORECASE), "en-tête invalide"),
]


def _corrupt(exc: BaseException | None, detail: str = "") -> dict[str, Any]:
    if not detail:
        message = str(exc or "")
        detail = next((d for pattern, d in _CORRUPT_DETAILS if pattern.search(message)), "")
        detail = detail or "structure interne invalide"
    return {"ok": False, "error": "corrupt", "detail": detail}


def _parse(path: Path) -> dict[str, Any]:
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            return {"ok": False, "error": "password"}
        pages = list(reader.pages)
    except FileNotDecryptedError:
        return {"ok": False, "error": "password"}
    except DependencyError:
        return {"ok": False, "error": "crypto"}
    except pdf_errors() as exc:
        return _corrupt(exc)
    if not pages:
        return _corrupt(None, "aucune page")

    pages_data: list[PageData] = []
    unreadable: list[int] = []
    for number, page in enumerate(pages, start=1):
        try:
            pages_data.append(page_data(page, number))
        except (FileNotDecryptedError, DependencyError):
            return {"ok": False, "error": "password"}
        except pdf_errors():  # one damaged page does not lose the others
            unreadable.append(number)
    if len(unreadable) == len(pages):
        return _corrupt(None, "aucune page n'a pu être lue")
    if not any(run.text.strip() for data in pages_data for run in data.runs):
        return {"ok": False, "error": "no_text"}

    text, elements = layout(pages_data)
    meta: dict[str, str] = {}
    if unreadable:
        meta["unreadable_pages"] = ", ".join(map(str, unreadable))
    empty = [d.number for d in pages_data if not any(r.text.strip() for r in d.runs)]
    if empty:
        meta["pages_without_text"] = ", ".join(map(str, empty))
    return {
        "ok": True,
        "pages": len(pages),
        "text": text,
        "elements": [element.__dict__ for element in elements],
        "meta": meta,
    }


if __name__ == "__main__" and len(sys.argv) >= 4 and sys.argv[1] == _CHILD_FLAG:
    sys.exit(_child_main(sys.argv[2:]))
