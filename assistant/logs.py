"""Where log records go: one line per record on stderr, the full traceback in a log file.

A server that cannot be reached used to print a hundred lines of English traceback on the
console for every question; the person watching the console needs one line that says what
failed and where to read more. So stderr gets « LEVEL logger : message (ExceptionType: first
line) — détails : <log file> », and the log file (``settings.log_path``, rotated at 5 MB,
three old files kept) gets the record with its whole traceback and a timestamp.

Deliberately left out: structured (JSON) logs and log shipping.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from assistant.settings import Settings

LEVELS_FR = {
    "DEBUG": "DÉBOGAGE",
    "INFO": "INFO",
    "WARNING": "AVERTISSEMENT",
    "ERROR": "ERREUR",
    "CRITICAL": "CRITIQUE",
}
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_MAX_BYTES = 5 * 1024 * 1024
_MARK = "_assistant_handler"  # tags our handlers, so that a second setup replaces them


class OneLineFormatter(logging.Formatter):
    """A record on one line: its message and, for an exception, its type and first line only."""

    def __init__(self, log_path: Path | None) -> None:
        super().__init__()
        self.log_path = log_path

    def format(self, record: logging.LogRecord) -> str:
        level = LEVELS_FR.get(record.levelname, record.levelname)
        text = f"{level} {record.name} : {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            first = next(iter(str(error).strip().splitlines()), "")
            text += f" ({type(error).__name__}: {first})" if first else f" ({type(error).__name__})"
            if self.log_path is not None:
                text += f" — détails : {self.log_path}"
        return " ".join(text.split())  # a message with line breaks stays on one line too


def setup_logging(settings: Settings, level: int = logging.WARNING) -> Path | None:
    """Send records of ``level`` and above to stderr (one line) and to the log file (in full).

    Returns the log file, or ``None`` when it cannot be written (then stderr only, and a line
    on stderr says why)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    log_path: Path | None = Path(settings.log_path)
    file_handler: logging.Handler | None = None
    try:
        assert log_path is not None
        log_path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            log_path, maxBytes=_MAX_BYTES, backupCount=3, encoding="utf-8"
        )
    except OSError as error:
        print(
            f"Journal {log_path} impossible à écrire ({error.strerror or error}) : "
            "les erreurs ne seront affichées qu'ici, sans leur détail.",
            file=sys.stderr,
        )
        log_path = None
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(OneLineFormatter(log_path))
    handlers: list[logging.Handler] = [console] + ([file_handler] if file_handler is not None else [])
    for handler in handlers:
        setattr(handler, _MARK, True)
        handler.setLevel(level)
        root.addHandler(handler)
    if file_handler is not None:
        file_handler.setFormatter(logging.Formatter(FILE_FORMAT))
    logging.captureWarnings(True)
    return log_path
