"""The app's guards on loopback: failed logins limited per client, « file d'attente pleine ».

The real ``AssistantApp`` is launched in this process (``launch`` as ``app.py`` calls it, so the
middleware and the queue patch are the ones in use) around a stand-in assistant whose quotes
take two seconds: no index is needed to fill the queue. Requests come from two loopback
addresses, 127.0.0.1 and 127.0.0.2, to show that the login limit is per client.
"""

from __future__ import annotations

import html
import socket
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant.app.guards import DEFAULT_WAIT_S, LoginLimiter, queue_full, too_many_logins, wait_estimate
from assistant.settings import Settings

USER, PASSWORD = "agent", "mot-de-passe-juste"


class SlowAssistant:
    """Stands in for ``Assistant``: an empty corpus, and quotes that take two seconds."""

    def status(self) -> dict[str, Any]:
        return {"documents": [], "chunks": 0, "llm": "mode extractif"}

    def quote(self, *args: Any, **kwargs: Any) -> list[Any]:
        time.sleep(2)
        return []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from assistant.app.webapp import AssistantApp

    root = tmp_path_factory.mktemp("guards")
    settings = Settings(
        app_auth=f"{USER}:{PASSWORD}",
        app_queue_size=1,
        app_concurrency=1,  # one quote runs, one waits: the third finds the queue full
        login_max_attempts=3,
        login_window_s=60,
        app_temp_dir=root / "gradio",
        feedback_path=root / "feedback" / "feedback.jsonl",
        log_path=root / "logs" / "assistant.log",
    )
    app = AssistantApp(SlowAssistant(), settings)
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        assert app.demo is not None
        app.demo.close()


def _login(url: str, password: str, source: str) -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=10) as client:
        return client.post(f"{url}login", data={"username": USER, "password": password})


def test_api_callers_over_the_queue_limit_are_told_in_french(app_url: str) -> None:
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(app_url, auth=(USER, PASSWORD), verbose=False)
    running = client.submit("citation", "Citations", [], [], api_name="/ask")
    time.sleep(0.5)  # the first quote is running: the next one waits in the queue (size 1)
    waiting = client.submit("citation", "Citations", [], [], api_name="/ask")
    time.sleep(0.5)
    started = time.monotonic()
    with pytest.raises(AppError) as refused:
        client.predict("citation", "Citations", [], [], api_name="/ask")
    assert time.monotonic() - started < 1.5  # refused at once, not after waiting its turn
    message = str(refused.value)
    assert message.startswith("File d'attente pleine : réessayez dans ") and message.endswith(" s."), message
    assert "Queue is full" not in message
    for job in (running, waiting):  # the two admitted requests are served
        job.result(timeout=30)
    client.predict("citation", "Citations", [], [], api_name="/ask")  # and the queue takes more


def test_failed_logins_are_limited_per_client(app_url: str) -> None:
    for _ in range(3):
        wrong = _login(app_url, "mauvais", "127.0.0.2")
        assert wrong.status_code == 400 and wrong.json()["detail"] == "Incorrect credentials."
    refused = _login(app_url, PASSWORD, "127.0.0.2")  # even the right password, for now
    assert refused.status_code == 400
    detail = refused.json()["detail"]
    assert detail.startswith("Trop de tentatives de connexion : réessayez dans ") and detail.endswith(" s.")
    assert 50 <= int(refused.headers["retry-after"]) <= 60
    assert _login(app_url, PASSWORD, "127.0.0.1").status_code == 200  # another client is not held


def test_the_login_limit_slides_with_its_window_and_a_success_clears_it() -> None:
    now = [1000.0]
    limiter = LoginLimiter(app=None, max_attempts=2, window_s=60, clock=lambda: now[0])  # type: ignore[arg-type]
    limiter.failures["10.0.0.1"] = deque([1000.0, 1010.0])
    assert limiter.wait_s("10.0.0.1") == 60 and limiter.wait_s("10.0.0.9") == 0
    now[0] = 1030.0
    assert limiter.wait_s("10.0.0.1") == 30
    assert too_many_logins(29.2) == "Trop de tentatives de connexion : réessayez dans 30 s."
    now[0] = 1060.5  # the first failure left the window: one more attempt allowed
    assert limiter.wait_s("10.0.0.1") == 0 and len(limiter.failures["10.0.0.1"]) == 1
    now[0] = 1071.0
    assert limiter.wait_s("10.0.0.1") == 0 and "10.0.0.1" not in limiter.failures  # memory freed
    assert queue_full(0.2) == "File d'attente pleine : réessayez dans 1 s."


def test_the_page_tells_a_full_queue_in_french_before_sending(tmp_path: Path) -> None:
    from assistant.app.webapp import AssistantApp

    app = AssistantApp(SlowAssistant(), Settings(app_queue_size=1, app_temp_dir=tmp_path))
    app._queue_is_full = lambda: True  # type: ignore[method-assign]
    notice = html.unescape(app.admit("Une question ?", "Réponse", [], [], [], False)[3])
    assert "File d'attente pleine : réessayez dans 30 s. Votre question est restée" in notice


class _Stats:
    avg_time = 0.5


class _Fn:
    concurrency_limit = 4


class _Queue(list[int]):
    def __init__(self, waiting: int, stats: dict[Any, Any]) -> None:
        super().__init__(range(waiting))
        self.process_time_per_fn = stats


def test_the_wait_told_is_the_time_to_serve_those_already_waiting() -> None:
    fn = _Fn()
    # 32 waiting, 4 answered at once, 0.5 s each: the queue has room again after ~4 s.
    assert wait_estimate(_Queue(32, {fn: _Stats()}), fn) == pytest.approx(4.0)
    assert "réessayez dans 4 s" in queue_full(wait_estimate(_Queue(32, {fn: _Stats()}), fn))
    # Nothing measured yet: the default guess.
    assert wait_estimate(_Queue(32, {}), fn) == DEFAULT_WAIT_S
