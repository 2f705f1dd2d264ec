"""Guards around Gradio's server: failed logins limited per client, a French « queue full », and
a page whose own widgets speak French (``FrenchPage``).

``LoginLimiter`` is an ASGI middleware on Gradio's ``POST /login`` (Gradio's built-in login has
no limit, and its ``auth`` callable never sees who is asking): after ``max_attempts`` failures
from one client address within ``window_s`` seconds, further attempts are refused without
checking the password, with « Trop de tentatives de connexion : réessayez dans N s. » (status
400, the only refusal Gradio's login page reacts to — it then shows its own « incorrect
credentials » line; API callers read the French detail and a ``Retry-After`` header). A success
clears the client's count. Behind a reverse proxy every client has the proxy's address: limit
there too.

``french_queue_full`` replaces Gradio's English refusal when the queue is full. Gradio 6.31 has
no setting for that text, and both of its clients hard-code theirs on the HTTP 503 it answers
(« Queue is full! Please try again. » in gradio_client, « This application is currently busy »
in the page). So, at the narrowest point — ``Queue.push``, the one place that refuses — a
request over the limit is accepted and at once completed with an error carrying the French
text, the way Gradio itself completes an event served from its cache: both clients show an
event's error message as it is. This touches Gradio internals (``Queue``, ``Event``,
``ProcessCompletedMessage``): if they change, the patch steps aside and Gradio's own refusal
applies (``tests/test_app_guards.py`` fails first).

Deliberately left out: accounts, lockout of a user name across addresses.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Gradio averages each event's run time; before the first one ends, this is the guess (s).
DEFAULT_WAIT_S = 30


def too_many_logins(wait_s: float) -> str:
    return f"Trop de tentatives de connexion : réessayez dans {max(1, math.ceil(wait_s))} s."


def queue_full(wait_s: float) -> str:
    return f"File d'attente pleine : réessayez dans {max(1, math.ceil(wait_s))} s."


class LoginLimiter:
    """ASGI middleware: at most ``max_attempts`` failed logins per client address per window."""

    def __init__(
        self,
        app: ASGIApp,
        max_attempts: int = 5,
        window_s: float = 300,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.max_attempts = max_attempts
        self.window_s = window_s
        self.clock = clock
        self.failures: dict[str, deque[float]] = {}

    def wait_s(self, client: str) -> float:
        """Seconds before ``client`` may try again (0: now)."""
        now = self.clock()
        for key in list(self.failures):  # forget what left the window (bounded memory)
            times = self.failures[key]
            while times and times[0] <= now - self.window_s:
                times.popleft()
            if not times:
                del self.failures[key]
        recent = self.failures.get(client)
        if recent is None or len(recent) < self.max_attempts:
            return 0.0
        return recent[0] + self.window_s - now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or not _is_login(scope["path"]):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("inconnu", 0))[0]
        wait = self.wait_s(client)
        if wait > 0:
            log.warning("login refused for %s: too many failed attempts", client)
            await _refuse(send, too_many_logins(wait), wait)
            return

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                if message["status"] == 400:  # Gradio's answer to wrong credentials
                    self.failures.setdefault(client, deque()).append(self.clock())
                elif message["status"] == 200:
                    self.failures.pop(client, None)
            await send(message)

        await self.app(scope, receive, watch)


def _is_login(path: str) -> bool:
    return path.rstrip("/").endswith("/login")


async def _refuse(send: Send, message: str, wait_s: float) -> None:
    body = json.dumps({"detail": message}, ensure_ascii=False).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(max(1, math.ceil(wait_s))).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def french_queue_full(blocks: Any) -> bool:
    """Make ``blocks``' queue (``blocks.queue(max_size=…)`` first) refuse in French when full.

    Returns False, leaving Gradio's refusal in place, when its internals are not as expected."""
    queue = getattr(blocks, "_queue", None)
    try:
        from gradio import route_utils
        from gradio.queueing import Event
        from gradio.server_messages import ProcessCompletedMessage
    except ImportError:
        return False
    needed = ("push", "max_size", "pending_message_lock", "pending_messages_per_session", "send_message")
    if queue is None or not all(hasattr(queue, name) for name in needed):
        return False
    original = queue.push

    async def push(body: Any, request: Any, username: str | None) -> Any:
        if body.fn_index is None or queue.max_size is None or len(queue) < queue.max_size:
            return await original(body=body, request=request, username=username)
        try:
            fn = route_utils.get_fn(queue.blocks, None, body)
            event = Event(body.session_hash, fn, request, username)
            event.data = body
            async with queue.pending_message_lock:
                if event.session_hash not in queue.pending_messages_per_session:
                    from asyncio import Queue as AsyncQueue

                    queue.pending_messages_per_session[event.session_hash] = AsyncQueue()
                queue.pending_event_ids_session.setdefault(event.session_hash, set()).add(event._id)
            message = queue_full(wait_estimate(queue, fn))
            queue.send_message(
                event,
                ProcessCompletedMessage(
                    output={"error": message, "title": "Assistant occupé", "visible": True, "duration": 10},
                    title="Assistant occupé",
                    success=False,
                ),
            )
        except Exception:  # Gradio changed: its own refusal rather than none
            log.warning("French queue-full message unavailable", exc_info=True)
            return await original(body=body, request=request, username=username)
        log.warning("queue full (%s waiting): request refused", len(queue))
        return True, event._id, "success"

    queue.push = push
    return True


def wait_estimate(queue: Any, fn: Any) -> float:
    """How long until the questions already waiting have been served: as many as wait, divided
    by the places that answer at once, times the event's average run time as Gradio measured it
    (a retry after that finds room). Before the first event ends, ``DEFAULT_WAIT_S``."""
    stats = getattr(queue, "process_time_per_fn", {}).get(fn)
    average = getattr(stats, "avg_time", None)
    if not average:
        return DEFAULT_WAIT_S
    limit = getattr(fn, "concurrency_limit", None)
    places = limit if isinstance(limit, int) and limit > 0 else 1
    return float(average) * max(1, len(queue)) / places


# Gradio's own widgets (« Déposez le fichier ici », « Effacer »…) follow the browser's language,
# read once when the page starts: the page is made to read French before any of its scripts run.
FRENCH_SCRIPT = (
    b"<script>Object.defineProperty(navigator, 'language', {get: () => 'fr-FR'});"
    b"Object.defineProperty(navigator, 'languages', {get: () => ['fr-FR', 'fr']});"
    b"document.documentElement.lang = 'fr';</script>"
)


class FrenchPage:
    """ASGI middleware: every HTML page served starts with ``FRENCH_SCRIPT`` in its head (a
    ``head=`` given to Gradio is added by the page's scripts, too late for their language)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        start: MutableMapping[str, Any] | None = None
        chunks: list[bytes] = []

        async def rewrite(message: MutableMapping[str, Any]) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                named = {k.lower(): v for k, v in message.get("headers", [])}
                html = named.get(b"content-type", b"").startswith(b"text/html")
                if html and b"content-encoding" not in named:
                    start = message
                    return
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                body = b"".join(chunks).replace(b"<head>", b"<head>" + FRENCH_SCRIPT, 1)
                headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, rewrite)
