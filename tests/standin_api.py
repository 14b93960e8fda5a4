"""A stand-in for an OpenAI-compatible API on 127.0.0.1, with scripted answers and failures.

`StandinAPI` answers POST /v1/completions and /v1/chat/completions in one of three logprob shapes
(`legacy`: OpenAI's old completions object; `content`: the chat-style list, which llama.cpp's
server also returns on /v1/completions; `none`: a hosted API without logprobs). `script` holds
what the next requests get ("ok", "401", "404", "429", "500", "malformed", "huge", "reset",
"slow", "echo-key", or a `(status, body, headers)` tuple); once it is empty every request is
answered "ok". Every request received is kept in `received`.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from provenance.io.source import Endpoint

MODEL = "standin-1"
KEY_ENV = "PROVENANCE_STANDIN_KEY"
# What the stand-in "generates", in order: (token text, its bytes). The second is a partial UTF-8
# character, as byte-level tokenizers produce: its text is the replacement character.
GENERATED = ((" Paris", b" Paris"), ("\ufffd", b"\xe2\x80"), (" is", b" is"), (" nice", b" nice"))
# Alternatives at every position, deliberately not sorted by logprob.
ALTERNATIVES = ((" London", b" London", -2.5), (" Paris", b" Paris", -0.25), ("\ufffd", b"\xe2\x80", -4.0),
                (" Rome", b" Rome", -3.0))
HUGE = 8 * 1024 * 1024 + 1  # one byte over the client's limit


@dataclass(frozen=True)
class Received:
    """One request as the stand-in saw it."""

    path: str
    headers: dict[str, str]  # names lower-cased
    body: dict[str, Any]


class StandinAPI:
    """The stand-in server, started and stopped as a context manager (or `start` / `stop`)."""

    def __init__(self, *, shape: str = "content", key: str | None = None, model: str = MODEL, port: int = 0) -> None:
        assert shape in ("legacy", "content", "none"), shape
        self.shape, self.key, self.model = shape, key, model
        self.script: deque[Any] = deque()
        self.received: list[Received] = []
        self.answered = 0
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _Handler)  # 0: a free port; else back on a stopped one's
        self._server.api = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._running = False

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def endpoint(self, *, model: str | None = None) -> Endpoint:
        """The endpoint a client is given: this server's URL, its model, the key read from `KEY_ENV`."""
        return Endpoint(self.url, model or self.model, KEY_ENV)

    def start(self) -> StandinAPI:
        self._thread.start()
        self._running = True
        return self

    def stop(self) -> None:
        """Shut down and close the listening socket: the port refuses connections from now on."""
        if self._running:
            self._server.shutdown()
            self._running = False
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> StandinAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def next_behaviour(self) -> Any:
        with self._lock:
            return self.script.popleft() if self.script else "ok"

    def answer(self, path: str, body: dict[str, Any], extra: str = "") -> dict[str, Any]:
        """A completion of `max_tokens` tokens from `GENERATED`, with logprobs in this server's shape."""
        n = min(int(body.get("max_tokens", 1)), len(GENERATED))
        chat = path.endswith("/chat/completions")
        generated = GENERATED[:n]
        text = "".join(t for t, _ in generated).replace("\ufffd", "\u2019") + extra
        asked = body.get("top_logprobs") if chat else body.get("logprobs")
        k = asked if isinstance(asked, int) and not isinstance(asked, bool) else 0
        choice: dict[str, Any] = {"index": 0, "finish_reason": "length", "logprobs": None}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        if self.shape == "legacy" and not chat and k:
            choice["logprobs"] = {
                "tokens": [_legacy_spelling(t, b) for t, b in generated],
                "token_logprobs": [-0.25] * n,
                "top_logprobs": [{_legacy_spelling(t, b): lp for t, b, lp in ALTERNATIVES[:k]} for _ in generated],
                "text_offset": list(range(n)),
            }
        elif self.shape != "none" and (k or body.get("logprobs") is True):
            choice["logprobs"] = {"content": [
                {"token": t, "logprob": -0.25, "bytes": list(b),
                 "top_logprobs": [{"token": at, "logprob": lp, "bytes": list(ab)} for at, ab, lp in ALTERNATIVES[:k]]}
                for t, b in generated]}
        return {"id": "cmpl-standin", "object": "chat.completion" if chat else "text_completion",
                "model": body.get("model"), "choices": [choice],
                "usage": {"prompt_tokens": 3, "completion_tokens": n, "total_tokens": 3 + n}}


def _legacy_spelling(text: str, raw: bytes) -> str:
    """OpenAI's legacy token spelling: the text, or `bytes:\\xe2\\x80` for a partial UTF-8 character."""
    return text if text.encode() == raw else "bytes:" + "".join(f"\\x{b:02x}" for b in raw)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    api: StandinAPI

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that stops reading a huge body is the point of that test."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        """Recorded and refused: the client only ever POSTs (a GET would be a followed redirect)."""
        self.server.api.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, {}))
        self._send(405, b"{}")

    def do_POST(self) -> None:
        api = self.server.api
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(min(length, 1 << 20))
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        auth = self.headers.get("Authorization", "")
        api.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        behaviour = api.next_behaviour()
        if isinstance(behaviour, tuple):
            status, payload, headers = behaviour
            return self._send(status, payload, headers)
        if behaviour == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return None
        if behaviour == "slow":
            time.sleep(1.0)
            behaviour = "ok"
        if behaviour == "huge":
            return self._send_huge()
        if behaviour == "401" or (api.key is not None and auth != f"Bearer {api.key}"):
            return self._error(401, f"Incorrect API key provided: {auth[7:]}.")
        if behaviour == "404":
            return self._error(404, f"The model {body.get('model')!r} does not exist\nyou sent: {auth}\n" + "x" * 500)
        if behaviour == "429":
            return self._error(429, "Rate limit reached", {"Retry-After": "7"})
        if behaviour == "500":
            return self._error(500, "The server had an error while processing your request")
        if behaviour == "malformed":
            return self._send(200, b'{"choices": [{"text": "unterminated')
        if self.path not in ("/v1/completions", "/v1/chat/completions"):
            return self._error(404, f"no route {self.path}")
        if body.get("model") != api.model:
            return self._error(404, f"The model {body.get('model')!r} does not exist")
        extra = f" {auth}" if behaviour == "echo-key" else ""
        api.answered += 1
        return self._send(200, json.dumps(api.answer(self.path, body, extra)).encode())

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        payload = {"error": {"message": message, "type": "invalid_request_error", "code": status}}
        self._send(status, json.dumps(payload).encode(), headers)

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _send_huge(self) -> None:
        head, tail = b'{"choices": [], "pad": "', b'"}'
        payload = head + b" " * (HUGE - len(head) - len(tail)) + tail
        try:
            self._send(200, payload)
        except OSError:  # the client stopped reading at its limit
            pass
