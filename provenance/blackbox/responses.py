"""Reading an OpenAI-compatible answer: its text, its tokens' bytes and their top alternatives.

Three shapes are read: legacy completions logprobs (`tokens`, `token_logprobs`, `top_logprobs`
dicts), the chat-style `logprobs.content` list (which llama.cpp's server also returns on
/v1/completions), and none (a hosted API without logprobs). The server is untrusted: every field
is type-checked and every list bounded; anything else is one `EndpointError` naming the URL.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from provenance.errors import EndpointError

MAX_TOP = 1000  # top alternatives parsed per position
MAX_TOKENS = 4096  # generated tokens parsed per answer
MAX_QUOTE = 200  # characters of a server's error message quoted
_BYTE_TOKEN = re.compile(r"^bytes:((?:\\x[0-9a-fA-F]{2})+)$")  # OpenAI's legacy spelling of a partial UTF-8 token


@dataclass(frozen=True)
class TopToken:
    """One alternative at a generated position: its exact bytes and its log-probability."""

    text: bytes  # from the response's `bytes` list when present, else its `token` string UTF-8 encoded
    logprob: float


class _Bad(ValueError):
    """What is malformed in a response, in words (turned into an `EndpointError` naming the URL)."""


def parse_response(raw_text: str, url: str, *, chat: bool) -> tuple[str, tuple[bytes, ...],
                                                                     tuple[tuple[TopToken, ...], ...]]:
    """(text, token bytes, top alternatives) of a completions or chat answer; `EndpointError` if malformed."""
    try:
        return _parse(raw_text, chat)
    except _Bad as exc:
        raise EndpointError(f"malformed response from {url}: {exc}") from None


def _parse(raw_text: str, chat: bool) -> tuple[str, tuple[bytes, ...], tuple[tuple[TopToken, ...], ...]]:
    """`parse_response`, raising `_Bad` with what is wrong."""
    try:
        data = json.loads(raw_text)
    except (ValueError, RecursionError):
        raise _Bad("not JSON") from None
    if not isinstance(data, dict):
        raise _Bad("not a JSON object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        said = server_message(raw_text.encode("utf-8")) if "error" in data else ""
        raise _Bad("no 'choices' list" + (f" (the server said {quote(said, None)})" if said else ""))
    choice = choices[0]
    if not isinstance(choice, dict):
        raise _Bad("choices[0] is not an object")
    if chat:
        message = choice.get("message")
        if not isinstance(message, dict):
            raise _Bad("choices[0].message is not an object")
        text = message.get("content")
        text = "" if text is None else text  # a refusal or a tool call has no content
        where = "choices[0].message.content"
    else:
        text, where = choice.get("text"), "choices[0].text"
    if not isinstance(text, str):
        raise _Bad(f"{where} is not a string")
    logprobs = choice.get("logprobs")
    if logprobs is None:
        return text, (), ()
    if not isinstance(logprobs, dict):
        raise _Bad("choices[0].logprobs is not an object")
    if "content" in logprobs:
        tokens, top = _content_logprobs(logprobs["content"])
    elif "tokens" in logprobs:
        tokens, top = _legacy_logprobs(logprobs)
    else:
        raise _Bad("choices[0].logprobs has neither 'content' nor 'tokens'")
    return text, tokens, top


def _content_logprobs(content: Any) -> tuple[tuple[bytes, ...], tuple[tuple[TopToken, ...], ...]]:
    """Chat-style `logprobs.content`: one `{token, logprob, bytes?, top_logprobs}` per generated token."""
    if content is None:
        return (), ()
    _check_list(content, "logprobs.content", MAX_TOKENS, "generated tokens")
    tokens, top = [], []
    for i, item in enumerate(content):
        where = f"logprobs.content[{i}]"
        tokens.append(_top_token(item, where).text)
        alternatives = item.get("top_logprobs")
        alternatives = [] if alternatives is None else alternatives
        _check_list(alternatives, f"{where}.top_logprobs", MAX_TOP, "alternatives")
        top.append(_ranked(_top_token(a, f"{where}.top_logprobs[{j}]") for j, a in enumerate(alternatives)))
    return tuple(tokens), tuple(top)


def _legacy_logprobs(logprobs: dict[str, Any]) -> tuple[tuple[bytes, ...], tuple[tuple[TopToken, ...], ...]]:
    """Legacy completions logprobs: `tokens` and, per position, a `{token: logprob}` object."""
    tokens = logprobs["tokens"]
    _check_list(tokens, "logprobs.tokens", MAX_TOKENS, "generated tokens")
    tops = logprobs.get("top_logprobs")
    tops = [None] * len(tokens) if tops is None else tops
    _check_list(tops, "logprobs.top_logprobs", MAX_TOKENS, "positions")
    if len(tops) != len(tokens):
        raise _Bad(f"logprobs has {len(tokens)} tokens but {len(tops)} top_logprobs")
    out_tokens, out_top = [], []
    for i, (token, alternatives) in enumerate(zip(tokens, tops)):
        out_tokens.append(_token_bytes(token, f"logprobs.tokens[{i}]"))
        where = f"logprobs.top_logprobs[{i}]"
        if alternatives is None:
            out_top.append(())
            continue
        if not isinstance(alternatives, dict):
            raise _Bad(f"{where} is not an object of token: logprob")
        if len(alternatives) > MAX_TOP:
            raise _Bad(f"{where} has more than {MAX_TOP} alternatives")
        out_top.append(_ranked(TopToken(_token_bytes(t, where), _logprob(lp, f"{where}[{t!r:.40}]"))
                               for t, lp in alternatives.items()))
    return tuple(out_tokens), tuple(out_top)


def _top_token(item: Any, where: str) -> TopToken:
    """A chat-style `{token, logprob, bytes?}` entry, its bytes from `bytes` when present."""
    if not isinstance(item, dict):
        raise _Bad(f"{where} is not an object")
    raw = item.get("bytes")
    if raw is None:
        text = _token_bytes(item.get("token"), f"{where}.token")
    else:
        if not isinstance(raw, list) or len(raw) > 1024 or not all(
                isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in raw):
            raise _Bad(f"{where}.bytes is not a list of byte values")
        text = bytes(raw)
    return TopToken(text, _logprob(item.get("logprob"), f"{where}.logprob"))


def _token_bytes(token: Any, where: str) -> bytes:
    """A token string's UTF-8 bytes; OpenAI's legacy `bytes:\\xe2\\x80` spelling gives the bytes it names."""
    if not isinstance(token, str):
        raise _Bad(f"{where} is not a string")
    spelled = _BYTE_TOKEN.match(token)
    if spelled:
        return bytes.fromhex(spelled.group(1).replace("\\x", ""))
    try:
        return token.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate escaped in the JSON
        raise _Bad(f"{where} is not valid Unicode") from None


def _logprob(value: Any, where: str) -> float:
    """A log-probability: a number, -inf allowed (probability 0), NaN and +inf refused."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise _Bad(f"{where} is not a number")
    value = float(value)
    if math.isnan(value) or value == math.inf:
        raise _Bad(f"{where} is {value}, not a log-probability")
    return value


def _ranked(alternatives: Any) -> tuple[TopToken, ...]:
    """Alternatives by logprob, highest first (ties by bytes, so the order is reproducible)."""
    return tuple(sorted(alternatives, key=lambda t: (-t.logprob, t.text)))


def _check_list(value: Any, where: str, limit: int, what: str) -> None:
    """`value` is a list of at most `limit` items."""
    if not isinstance(value, list):
        raise _Bad(f"{where} is not a list")
    if len(value) > limit:
        raise _Bad(f"{where} has more than {limit} {what}")


# ---------------------------------------------------------------------------------------------- transport


def server_message(body: bytes) -> str:
    """The message in an error body: OpenAI's `error.message`, a plain `error` string, else the text."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return text.strip()
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    if isinstance(error, str):
        return error
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"]
    return text.strip()


def quote(text: str, api_key: str | None) -> str:
    """A server's words, safe for a one-line message: the key blanked out, cut to `MAX_QUOTE`, repr'd."""
    if api_key:
        text = text.replace(api_key, "<key>")
    return repr(text[:MAX_QUOTE] + ("..." if len(text) > MAX_QUOTE else ""))
