"""An OpenAI-compatible HTTP client for the black-box `outputs` signal: bounded, retried, cached, key-safe.

The server is untrusted: every field read is type-checked, bodies and lists are bounded, and a
redirect is refused (following one would send the key to another address). The API key is read
from the environment at request time and sent as a bearer token; it is never cached, hashed,
logged or quoted, even when the server echoes it back. Queries cost money and rate limits, so
every parsed answer goes to the `ResponseCache` before it is returned: a killed run resumes, an
offline run re-scores. Standard library only.
"""

from __future__ import annotations

import email.utils
import http.client
import math
import os
import re
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from provenance import __version__
from provenance.blackbox.cache import (
    ResponseCache,
    canonical_json,
    request_sha256,
    sha256_hex,
)
from provenance.blackbox.responses import (
    MAX_QUOTE,
    MAX_TOKENS,
    MAX_TOP,
    TopToken,
    parse_response,
    quote,
    server_message,
)
from provenance.errors import EndpointError, InvalidParameterError
from provenance.io.source import Endpoint

MAX_BODY = 8 << 20  # bytes of a response body read; an answer of a few tokens is a few KiB
_ERROR_BODY = 64 << 10  # bytes of an error body read for its message
_RETRIED = frozenset({408, 429}) | frozenset(range(500, 600))
_MIN_SCRUBBED_KEY = 8  # a shorter key could occur in any text by chance: not searched for in answers


@dataclass(frozen=True)
class Completion:
    """One answer of the endpoint, with the hashes that tie it to its request and raw response."""

    text: str
    tokens: tuple[bytes, ...]  # the generated tokens' bytes when the server returned logprobs, else ()
    top: tuple[tuple[TopToken, ...], ...]  # per generated token, its alternatives by logprob, highest first
    request_sha256: str  # of the canonical JSON request (URL + body; never the key)
    response_sha256: str  # of the raw response body bytes
    cached: bool  # served from the response cache: no query spent


class EndpointClient:
    """Ask an OpenAI-compatible endpoint for completions with logprobs, within a query budget.

    `queries` counts the network requests answered (a retried request counts once, a cache hit
    never). Errors are one-line `EndpointError`s naming the URL, never the key.
    """

    def __init__(self, endpoint: Endpoint, *, max_queries: int = 200, cache: ResponseCache | None = None,
                 timeout_s: float = 60.0, retries: int = 6, backoff_s: float = 1.0, max_wait_s: float = 120.0,
                 offline: bool = False) -> None:
        _check_endpoint(endpoint)
        _check_int("max_queries", "EndpointClient", max_queries, 0)
        _check_int("retries", "EndpointClient", retries, 1, expected="a whole number of tries >= 1")
        for name, value, low in (("timeout_s", timeout_s, 1e-3), ("backoff_s", backoff_s, 0.0),
                                 ("max_wait_s", max_wait_s, 0.0)):
            _check_number(name, "EndpointClient", value, low)
        if not isinstance(offline, bool):
            raise InvalidParameterError("offline", "EndpointClient", "True or False", offline)
        if offline and cache is None:
            raise InvalidParameterError("cache", "EndpointClient", "a ResponseCache when offline=True", cache)
        self.endpoint = endpoint
        self.max_queries = max_queries
        self.cache = cache
        self.timeout_s = float(timeout_s)
        self.retries = retries
        self.backoff_s = float(backoff_s)
        self.max_wait_s = float(max_wait_s)
        self.offline = offline
        self.queries = 0
        self._sleep: Callable[[float], None] = time.sleep  # injectable: tests do not wait
        self._clock: Callable[[], float] = time.monotonic
        self._base = endpoint.base_url.rstrip("/")
        self._opener = urllib.request.build_opener(_NoRedirect())

    def complete(self, prompt: str, *, max_tokens: int = 1, top_logprobs: int = 20, temperature: float = 0.0,
                 seed: int = 0) -> Completion:
        """POST {base_url}/completions: the continuation of `prompt`, with `top_logprobs` alternatives per token."""
        _check_text("prompt", "EndpointClient.complete", prompt)
        body: dict[str, Any] = {"model": self.endpoint.model, "prompt": prompt,
                                **_sampling("EndpointClient.complete", max_tokens, top_logprobs, temperature, seed)}
        if top_logprobs:
            body["logprobs"] = top_logprobs
        return self._ask("/completions", body, chat=False)

    def chat(self, messages: list[dict[str, str]], *, max_tokens: int = 1, top_logprobs: int = 20,
             temperature: float = 0.0, seed: int = 0) -> Completion:
        """POST {base_url}/chat/completions: the assistant's reply to `messages`, with logprobs."""
        _check_messages(messages)
        body: dict[str, Any] = {"model": self.endpoint.model, "messages": [dict(m) for m in messages],
                                **_sampling("EndpointClient.chat", max_tokens, top_logprobs, temperature, seed)}
        if top_logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = top_logprobs
        return self._ask("/chat/completions", body, chat=True)

    # ------------------------------------------------------------------------------------------ one request

    def _ask(self, route: str, body: dict[str, Any], *, chat: bool) -> Completion:
        """The cached answer to a request, else one from the network (budget permitting), parsed and cached."""
        url = self._base + route
        request = {"url": url, "body": body}  # the whole URL: a cache never answers for another server
        key = request_sha256(request)
        if self.cache is not None and (raw_text := self.cache.get(key)) is not None:
            try:
                text, tokens, top = parse_response(raw_text, url, chat=chat)
                return Completion(text, tokens, top, key, sha256_hex(raw_text.encode("utf-8")), cached=True)
            except EndpointError:  # cached by an older, laxer parser: ask again (offline, say so)
                if self.offline:
                    raise
        if self.offline:
            raise EndpointError(f"{url}: request {key[:12]} is not in the response cache (offline re-scoring); "
                                "rerun online to ask the endpoint")
        if self.queries >= self.max_queries:
            hint = self._resume() or "; raise --max-queries"
            raise EndpointError(f"query budget spent: --max-queries {self.max_queries} reached after "
                                f"{_count(self.queries, 'request')} to {url}{hint}")
        raw = self._post(url, canonical_json(body))
        self.queries += 1
        try:
            raw_text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise EndpointError(f"malformed response from {url}: not UTF-8 text") from None
        text, tokens, top = parse_response(raw_text, url, chat=chat)
        self._refuse_key_echo(url, raw_text, text)
        response_sha = sha256_hex(raw)
        if self.cache is not None:
            self.cache.put(key, request, response_sha, raw_text)
        return Completion(text, tokens, top, key, response_sha, cached=False)

    def _post(self, url: str, data: bytes) -> bytes:
        """The body of a 2xx answer to POST `data`; 408, 429, 5xx and dropped connections are retried."""
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": f"provenance/{__version__}"}
        api_key = self._key()
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        start, slept, tries = self._clock(), 0.0, 0
        while True:
            tries += 1
            outcome = self._try(url, data, headers)
            if isinstance(outcome, bytes):
                return outcome
            if not outcome.retried(after_answers=self.queries > 0) or tries >= self.retries:
                break
            wanted = outcome.retry_after if outcome.retry_after is not None else self.backoff_s * 2 ** (tries - 1)
            wait = max(0.0, min(wanted, self.max_wait_s - slept))
            if wanted > 0 and wait <= 0:  # the waiting budget is spent
                break
            self._sleep(wait)
            slept += wait
        raise self._failed(url, outcome, tries, self._clock() - start, api_key)

    def _try(self, url: str, data: bytes, headers: dict[str, str]) -> bytes | _Failure:
        """One POST: the response body, or what went wrong."""
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        deadline = time.monotonic() + 2 * self.timeout_s
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                return _read_bounded(response, url, deadline)
        except urllib.error.HTTPError as exc:
            with exc:
                body = _read_error_body(exc)
                return _Failure(status=exc.code, body=body, retry_after=_retry_after(exc.headers.get("Retry-After")))
        except urllib.error.URLError as exc:
            reason = exc.reason
            return _Failure(network=reason if isinstance(reason, BaseException) else OSError(str(reason)))
        except (OSError, http.client.HTTPException) as exc:
            return _Failure(network=exc)

    def _failed(self, url: str, failure: _Failure, tries: int, elapsed: float, api_key: str | None) -> EndpointError:
        """The one-line error for a request that got no answer."""
        over = f" on {tries} tries over {elapsed:.0f} s" if tries > 1 else ""
        if failure.status is None:
            detail = _network_detail(failure.network, self.timeout_s)
            if self.queries > 0 and failure.retried(after_answers=True):
                return EndpointError(f"{url} stopped answering after {_count(self.queries, 'answer')}: "
                                     f"{detail}{over}{self._resume()}")
            return EndpointError(f"cannot reach {url}: {detail}{over}{self._resume()}")
        status, said = failure.status, quote(server_message(failure.body), api_key)
        if status in (401, 403):
            unset = "" if api_key else " (it is not set)"
            return EndpointError(f"{url} refused the request (HTTP {status}): check the key in "
                                 f"${self.endpoint.api_key_env}{unset}")
        if status == 404:
            return EndpointError(f"{url} does not know model {self.endpoint.model!r} (HTTP 404: {said}); check the "
                                 "model name, and the path of the URL (often ending in /v1)")
        if status == 429:
            return EndpointError(f"{url}: rate limited: HTTP 429{over or ' on 1 try'}{self._resume()}")
        if status in _RETRIED:
            return EndpointError(f"{url}: server error: HTTP {status}{over} ({said}){self._resume()}")
        if 300 <= status < 400:
            return EndpointError(f"{url} redirected the request (HTTP {status}); redirects are not followed, so "
                                 "the key never goes to another address: give the final URL in the endpoint spec")
        return EndpointError(f"{url} rejected the request (HTTP {status}): {said}")

    def _resume(self) -> str:
        """'; the N responses so far are cached in PATH: rerun to resume', when a cache holds any."""
        if self.cache is None or len(self.cache) == 0:
            return ""
        return (f"; the {_count(len(self.cache), 'response')} so far {'is' if len(self.cache) == 1 else 'are'} "
                f"cached in {_shown(self.cache.path)}: rerun to resume")

    def _key(self) -> str | None:
        """The API key from the variable the endpoint names, or None when unset or empty."""
        name = self.endpoint.api_key_env
        value = os.environ.get(name, "").strip()
        if not value:
            return None
        if not all(33 <= ord(c) <= 126 for c in value):
            raise EndpointError(f"the API key in ${name} holds a space, a control or a non-ASCII character; "
                                "an HTTP header cannot carry it")
        return value

    def _refuse_key_echo(self, url: str, raw_text: str, text: str) -> None:
        """Refuse an answer that repeats the API key: it would end up in the cache and the report."""
        api_key = self._key()
        if api_key and len(api_key) >= _MIN_SCRUBBED_KEY and (api_key in raw_text or api_key in text):
            raise EndpointError(f"malformed response from {url}: it repeats the API key from "
                                f"${self.endpoint.api_key_env}; refusing it (not cached)")


# ---------------------------------------------------------------------------------------------- parsing

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: following one would send the Authorization header to another address."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass(frozen=True)
class _Failure:
    """A request that got no usable answer: an HTTP status with its body, or a network error."""

    status: int | None = None
    body: bytes = b""
    retry_after: float | None = None
    network: BaseException | None = None

    def retried(self, *, after_answers: bool) -> bool:
        """Worth another try: 408/429/5xx, a dropped connection or a timeout; a refusal once the server answered."""
        if self.status is not None:
            return self.status in _RETRIED
        exc = self.network
        if isinstance(exc, ConnectionRefusedError):
            return after_answers  # a server that answered before may be restarting
        return isinstance(exc, (TimeoutError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError,
                                http.client.IncompleteRead, http.client.RemoteDisconnected))


def _read_bounded(response: Any, url: str, deadline: float) -> bytes:
    """At most `MAX_BODY` bytes of a response, within a deadline (a server dripping bytes cannot hold us)."""
    chunks, size = [], 0
    while True:
        chunk = response.read1(1 << 16)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY:
            raise EndpointError(f"malformed response from {url}: the body is over the {MAX_BODY >> 20} MiB limit")
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise TimeoutError("the body took too long")


def _read_error_body(exc: urllib.error.HTTPError) -> bytes:
    """The first bytes of an error response's body (for its message); b'' when it cannot be read."""
    try:
        return exc.read(_ERROR_BODY)
    except (OSError, http.client.HTTPException, ValueError):
        return b""


def _retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (a number or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _network_detail(exc: BaseException | None, timeout_s: float) -> str:
    """A network error in a few words."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "host name not found"
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout_s:g} s"
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, http.client.IncompleteRead)):
        return "connection reset"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({exc.verify_message or exc.reason})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or 'handshake'})"
    if isinstance(exc, http.client.HTTPException):
        return f"the answer is not HTTP ({type(exc).__name__})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return " ".join(str(exc).split())[:MAX_QUOTE] or type(exc).__name__


# ---------------------------------------------------------------------------------------------- checks

def _sampling(func: str, max_tokens: int, top_logprobs: int, temperature: float, seed: int) -> dict[str, Any]:
    """The checked sampling fields of a request body."""
    _check_int("max_tokens", func, max_tokens, 1, MAX_TOKENS)
    _check_int("top_logprobs", func, top_logprobs, 0, MAX_TOP)
    _check_number("temperature", func, temperature, 0.0)
    _check_int("seed", func, seed, -(2**63), 2**63 - 1)
    return {"max_tokens": max_tokens, "temperature": float(temperature), "seed": seed}


def _check_int(name: str, func: str, value: Any, low: int, high: int | None = None, *, expected: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f">= {low}"
        raise InvalidParameterError(name, func, expected or f"an int {bound}", value)


def _check_number(name: str, func: str, value: Any, low: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
        raise InvalidParameterError(name, func, f"a finite number >= {low:g}", value)


def _check_text(name: str, func: str, value: Any) -> None:
    """A str that UTF-8 can encode (a lone surrogate cannot be sent, nor hashed)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return
        except UnicodeEncodeError:
            pass
    raise InvalidParameterError(name, func, "a str of valid Unicode (no lone surrogates)", type(value).__name__)


def _check_messages(messages: Any) -> None:
    """A non-empty list of dicts of str to str (role, content, and optionally name)."""
    ok = isinstance(messages, list) and messages and all(
        isinstance(m, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in m.items()) for m in messages)
    if not ok:
        raise InvalidParameterError("messages", "EndpointClient.chat",
                                    "a non-empty list of {'role': str, 'content': str} dicts", type(messages).__name__)
    for m in messages:
        for k, v in m.items():
            _check_text("messages", "EndpointClient.chat", k)
            _check_text("messages", "EndpointClient.chat", v)


def _check_endpoint(endpoint: Any) -> None:
    if (not isinstance(endpoint, Endpoint) or not re.fullmatch(r"https?://[^\s\x00-\x1f\x7f]+", endpoint.base_url)
            or not endpoint.model or not isinstance(endpoint.api_key_env, str)):
        raise InvalidParameterError("endpoint", "EndpointClient", "an Endpoint from parse_endpoint "
                                    "(http(s)://HOST[:PORT]/PATH, a model name)", endpoint)


def _count(n: int, noun: str) -> str:
    """'1 answer', '2 answers'."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _shown(path: os.PathLike[str]) -> str:
    """A path for a one-line message: as is when printable, else repr'd."""
    text = os.fspath(path)
    return text if text.isprintable() else repr(text)
