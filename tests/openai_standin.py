"""A tiny OpenAI-compatible HTTP server for tests (standard library only).

Serves ``GET /v1/models`` and ``POST /v1/chat/completions``, plain or streamed as server-sent
events (``data: {...}`` chunks then ``data: [DONE]``). The reply is deterministic and echoes the
request, so a test can prove the messages went through: it contains the number of messages and
the first 40 characters of the last user message. Every request body is kept in ``requests``,
its headers (names lower-cased) in ``headers``.

    with OpenAIStandin() as server:
        ChatOpenAI(base_url=server.base_url, api_key="x", model="standin").invoke("Bonjour")

Left out: tools, embeddings, authentication checks (the Authorization header is only recorded).
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

MODEL_ID = "standin-model"
INVENTED = "Le CMA sera dissous en 2031 par décision du conseil des zorglubs"


def reply_text(messages: list[dict[str, Any]], quote: bool = False) -> str:
    """The deterministic answer for a list of chat messages. With ``quote`` (and passages in the
    prompt), a synthesis instead: the first sentence of the first ``<passage n="…">`` block with
    its marker, which verification keeps, then an invented one (``INVENTED``), which it drops."""
    last_user = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
    if isinstance(last_user, list):  # content parts
        last_user = " ".join(p.get("text", "") for p in last_user if isinstance(p, dict))
    excerpt = str(last_user or "")[:40]
    text = f"Réponse de test : {len(messages)} messages reçus ; question : « {excerpt} »."
    found = re.search(r'<passage n="(\d+)"[^>]*>\s*(.+?)(?:[.!?](?:\s|$)|</passage>)', str(last_user), re.S)
    if quote and found:
        sentence = " ".join(found.group(2).split()).rstrip(" .…")
        return f"{sentence} [{found.group(1)}]. {INVENTED} [{found.group(1)}]."
    return text


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "tests"}
            self._send_json(200, {"object": "list", "data": [model]})
        else:
            self._send_json(404, {"error": {"message": "not found", "type": "not_found"}})

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_json(404, {"error": {"message": "not found", "type": "not_found"}})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            messages = body["messages"]
        except (ValueError, KeyError):
            self._send_json(400, {"error": {"message": "bad request", "type": "invalid_request"}})
            return
        self.server.record(body, {k.lower(): v for k, v in self.headers.items()})
        if self.server.fail_status:
            self._send_json(
                self.server.fail_status,
                {"error": {"message": "panne simulée", "type": "server_error"}},
            )
            return
        text = reply_text(messages, self.server.quote)
        model = body.get("model", MODEL_ID)
        if body.get("stream"):
            self._stream(text, model, bool((body.get("stream_options") or {}).get("include_usage")))
        else:
            time.sleep(self.server.delay_s)
            self._send_json(
                200,
                {
                    "id": "chatcmpl-standin",
                    "object": "chat.completion",
                    "created": 0,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": _usage(messages, text),
                },
            )

    def _stream(self, text: str, model: str, include_usage: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()

        def event(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-standin",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        words = text.split(" ")
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        try:
            self._sse(event({"role": "assistant", "content": ""}))
            for piece in pieces:
                time.sleep(self.server.delay_s)
                self._sse(event({"content": piece}))
            self._sse(event({}, "stop"))
            if include_usage:
                usage = {
                    "id": "chatcmpl-standin",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": model,
                    "choices": [],
                    "usage": _usage([], text),
                }
                self._sse(usage)
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client stopped reading (timeout)
            pass

    def _sse(self, payload: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n")
        self.wfile.flush()


def _usage(messages: list[dict[str, Any]], text: str) -> dict[str, int]:
    prompt = sum(len(str(m.get("content", "")).split()) for m in messages)
    completion = len(text.split())
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, delay_s: float, fail_status: int | None, quote: bool) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.delay_s = delay_s
        self.quote = quote
        self.fail_status = fail_status
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()

    def record(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)


class OpenAIStandin:
    """Run the stand-in on 127.0.0.1 at a free port, in a background thread.

    ``delay_s`` sleeps before each streamed piece (and before a plain reply), to test timeouts;
    ``fail_status`` makes every chat completion answer with that HTTP error status; ``quote``
    adds a sentence copied from the first passage of the prompt (see ``reply_text``).
    """

    def __init__(self, delay_s: float = 0.0, fail_status: int | None = None, quote: bool = False) -> None:
        self._server = _Server(delay_s, fail_status, quote)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self._server.requests

    @property
    def headers(self) -> list[dict[str, str]]:
        return self._server.headers

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
