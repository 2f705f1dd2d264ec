"""Errors on the console: one line each, the traceback in the log file (``assistant/logs.py``).

The case that used to print a hundred lines of English traceback per question: an
OpenAI-compatible server that cannot be reached (a closed port on the loopback).
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.logs import setup_logging
from assistant.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]

UNREACHABLE_SERVER = """
import sys
from pathlib import Path
from assistant.answer.errors import LLMUnavailable
from assistant.answer.llm import build_chat_model, generate_with_timeout
from assistant.logs import setup_logging
from assistant.settings import Settings

settings = Settings(
    llm="openai",
    openai_base_url=f"http://127.0.0.1:{sys.argv[1]}/v1",
    openai_api_key="cle-de-test",
    log_path=Path(sys.argv[2]),
)
setup_logging(settings)
model, _ = build_chat_model(settings)
try:
    generate_with_timeout(model, "Bonjour", 20)
except LLMUnavailable as error:
    print(error)
"""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends: nothing listens


def test_an_unreachable_llm_server_prints_one_line_and_logs_the_traceback(tmp_path: Path) -> None:
    log_path = tmp_path / "logs" / "assistant.log"
    done = subprocess.run(
        [sys.executable, "-c", UNREACHABLE_SERVER, str(_closed_port()), str(log_path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "injoignable" in done.stdout  # what the user reads, in French
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("AVERTISSEMENT assistant.answer.llm : LLM call failed (")
    assert "ConnectionError: Connection error.)" in lines[0]
    assert f"détails : {log_path}" in lines[0]
    logged = log_path.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in logged and "ConnectError" in logged
    assert len(logged.splitlines()) > 20  # the whole traceback is kept


def test_a_log_file_that_cannot_be_written_leaves_stderr_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "fichier"
    blocker.write_text("", encoding="utf-8")
    try:
        assert setup_logging(Settings(log_path=blocker / "assistant.log")) is None
        try:
            raise ValueError("première ligne\nseconde ligne")
        except ValueError:
            logging.getLogger("assistant.test").error("échec", exc_info=True)
    finally:
        setup_logging(Settings(log_path=tmp_path / "logs" / "assistant.log"))
        for handler in list(logging.getLogger().handlers):
            if getattr(handler, "_assistant_handler", False):
                logging.getLogger().removeHandler(handler)
                handler.close()
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"Journal {blocker / 'assistant.log'} impossible à écrire")
    assert err[1:] == ["ERREUR assistant.test : échec (ValueError: première ligne)"]
