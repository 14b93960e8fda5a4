"""The endpoint client and its response cache, against a stand-in OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator

import pytest

from provenance.blackbox import cache as cache_module
from provenance.blackbox.cache import ResponseCache, request_sha256
from provenance.blackbox.client import Completion, EndpointClient, TopToken
from provenance.errors import (
    CorruptFileError,
    EndpointError,
    InvalidParameterError,
    ProvenanceError,
)
from provenance.io.source import Endpoint, parse_endpoint
from tests.standin_api import HUGE, KEY_ENV, MODEL, StandinAPI

KEY = "sk-standin-SECRET-0123456789abcdef"
TOP = (TopToken(b" Paris", -0.25), TopToken(b" London", -2.5), TopToken(b" Rome", -3.0),
       TopToken(b"\xe2\x80", -4.0))


class FakeTime:
    """An injected clock and sleep: waits are recorded and advance the clock, nothing really sleeps."""

    def __init__(self) -> None:
        self.slept: list[float] = []
        self.offset = 0.0

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.offset += seconds

    def clock(self) -> float:
        return time.monotonic() + self.offset


@pytest.fixture(autouse=True)
def _no_proxy_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", KEY_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def api() -> Iterator[StandinAPI]:
    with StandinAPI() as server:
        yield server


def client_for(endpoint: Endpoint, cache: ResponseCache | None = None, **options: object) -> EndpointClient:
    """A client whose waits are fake (`client.fake.slept` records them)."""
    client = EndpointClient(endpoint, cache=cache, **options)  # type: ignore[arg-type]
    fake = FakeTime()
    client._sleep, client._clock = fake.sleep, fake.clock
    client.fake = fake  # type: ignore[attr-defined]
    return client


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message and "\r" not in message, message
    assert KEY not in message
    return message


# ----------------------------------------------------------------------------------------- the three shapes

def test_legacy_completions_logprobs_parse_into_sorted_alternatives(tmp_path):
    with StandinAPI(shape="legacy") as api:
        client = client_for(api.endpoint())
        got = client.complete("The capital of France is", max_tokens=2, top_logprobs=4)
    assert got.text == " Paris\u2019"
    assert got.tokens == (b" Paris", b"\xe2\x80")  # OpenAI's "bytes:\xe2\x80" spelling gives the bytes
    assert got.top == (TOP, TOP)
    assert got.cached is False and client.queries == 1
    (seen,) = api.received
    assert seen.path == "/v1/completions"
    assert seen.body == {"model": MODEL, "prompt": "The capital of France is", "max_tokens": 2,
                         "temperature": 0.0, "seed": 0, "logprobs": 4}
    assert "authorization" not in seen.headers  # no key set: no header


def test_chat_style_logprobs_take_the_bytes_list(api):
    client = client_for(api.endpoint())
    got = client.chat([{"role": "user", "content": "Capital of France?"}], max_tokens=3, top_logprobs=2,
                      temperature=0.5, seed=7)
    assert got.text == " Paris\u2019 is"
    assert got.tokens == (b" Paris", b"\xe2\x80", b" is")
    assert got.top == ((TopToken(b" Paris", -0.25), TopToken(b" London", -2.5)),) * 3
    (seen,) = api.received
    assert seen.path == "/v1/chat/completions"
    assert seen.body == {"model": MODEL, "messages": [{"role": "user", "content": "Capital of France?"}],
                         "max_tokens": 3, "temperature": 0.5, "seed": 7, "logprobs": True, "top_logprobs": 2}


def test_llama_cpp_returns_the_chat_shape_on_completions(api):
    got = client_for(api.endpoint()).complete("x", top_logprobs=4)
    assert (got.text, got.tokens, got.top) == (" Paris", (b" Paris",), (TOP,))


def test_an_api_without_logprobs_gives_text_only_and_zero_asks_for_none():
    with StandinAPI(shape="none") as api:
        client = client_for(api.endpoint())
        got = client.chat([{"role": "user", "content": "hi"}], max_tokens=2)
        plain = client.complete("hi", top_logprobs=0)
    assert (got.text, got.tokens, got.top) == (" Paris\u2019", (), ())
    assert (plain.text, plain.tokens, plain.top) == (" Paris", (), ())
    assert "logprobs" not in api.received[1].body and "top_logprobs" not in api.received[1].body


def test_a_trailing_slash_in_the_base_url_gives_one_slash(api):
    client_for(Endpoint(api.url + "/", MODEL, KEY_ENV)).complete("x")
    assert api.received[0].path == "/v1/completions"


# ----------------------------------------------------------------------------------------- refusals

def test_401_names_the_variable_never_the_key(api, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    api.script.append("401")  # the stand-in echoes the key it was sent, as some servers do
    with pytest.raises(EndpointError) as exc:
        client_for(api.endpoint()).complete("x")
    assert one_line(exc) == f"{api.url}/completions refused the request (HTTP 401): check the key in ${KEY_ENV}"
    assert api.received[0].headers["authorization"] == f"Bearer {KEY}"


def test_401_without_a_key_says_the_variable_is_not_set():
    with StandinAPI(key=KEY) as api, pytest.raises(EndpointError) as exc:
        client_for(api.endpoint()).complete("x")
    assert one_line(exc).endswith(f"check the key in ${KEY_ENV} (it is not set)")


def test_the_right_key_is_sent_as_a_bearer_token(monkeypatch):
    monkeypatch.setenv(KEY_ENV, f"  {KEY}\n")  # surrounding blanks, as `export K=$(cat file)` leaves, are trimmed
    with StandinAPI(key=KEY) as api:
        assert client_for(api.endpoint()).complete("x").text == " Paris"


def test_404_quotes_the_server_cut_to_one_line_without_the_key(api, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    api.script.append("404")  # a multi-line, 600-character message echoing the Authorization header
    with pytest.raises(EndpointError) as exc:
        client_for(api.endpoint()).complete("x")
    message = one_line(exc)
    said = f"The model {MODEL!r} does not exist\nyou sent: Bearer <key>\n" + "x" * 500
    assert message == (f"{api.url}/completions does not know model {MODEL!r} (HTTP 404: {said[:200] + '...'!r}); "
                       "check the model name, and the path of the URL (often ending in /v1)")


def test_an_unknown_model_is_a_404_from_the_server_itself(api):
    with pytest.raises(EndpointError) as exc:
        client_for(api.endpoint(model="no-such-model")).complete("x")
    said = repr("The model 'no-such-model' does not exist")
    assert f"does not know model 'no-such-model' (HTTP 404: {said})" in one_line(exc)


def test_another_4xx_is_quoted_and_not_retried(api):
    api.script.append((400, b'{"error": {"message": "logprobs must be <= 5"}}', {}))
    client = client_for(api.endpoint())
    with pytest.raises(EndpointError) as exc:
        client.complete("x")
    assert one_line(exc) == f"{api.url}/completions rejected the request (HTTP 400): 'logprobs must be <= 5'"
    assert len(api.received) == 1 and client.fake.slept == []


def test_a_redirect_is_not_followed(api, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    api.script.append((302, b"", {"Location": f"{api.url}/elsewhere"}))  # urllib would follow it with the key
    with pytest.raises(EndpointError) as exc:
        client_for(api.endpoint()).complete("x")
    assert one_line(exc) == (f"{api.url}/completions redirected the request (HTTP 302); redirects are not followed, "
                             "so the key never goes to another address: give the final URL in the endpoint spec")
    assert [r.path for r in api.received] == ["/v1/completions"]


def test_a_key_no_header_can_carry_is_refused_without_quoting_it(api, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-abc\r\nX-Injected: 1")
    with pytest.raises(EndpointError) as exc:
        client_for(api.endpoint()).complete("x")
    assert one_line(exc) == (f"the API key in ${KEY_ENV} holds a space, a control or a non-ASCII character; "
                             "an HTTP header cannot carry it")
    assert "sk-abc" not in str(exc.value) and api.received == []


# ----------------------------------------------------------------------------------------- retries

def test_a_429_storm_gives_up_after_the_tries_honouring_retry_after(api, tmp_path):
    cache = ResponseCache(tmp_path / "answers.jsonl")
    client = client_for(api.endpoint(), cache)
    client.complete("a")
    client.complete("b")
    api.script.extend(["429"] * 10)
    with pytest.raises(EndpointError) as exc:
        client.complete("c")
    assert one_line(exc) == (f"{api.url}/completions: rate limited: HTTP 429 on 6 tries over 35 s; the 2 responses "
                             f"so far are cached in {cache.path}: rerun to resume")
    assert client.fake.slept == [7.0] * 5  # Retry-After: 7, five waits between six tries
    assert len(api.received) == 2 + 6 and client.queries == 2


def test_total_waiting_is_capped_by_max_wait(api):
    client = client_for(api.endpoint(), retries=10, max_wait_s=10.0)
    api.script.extend(["429"] * 10)
    with pytest.raises(EndpointError) as exc:
        client.complete("x")
    assert client.fake.slept == [7.0, 3.0]
    assert one_line(exc) == f"{api.url}/completions: rate limited: HTTP 429 on 3 tries over 10 s"


def test_429_twice_then_an_answer_counts_one_query(api):
    api.script.extend([(429, b"{}", {}), (429, b"{}", {})])  # no Retry-After: exponential backoff
    client = client_for(api.endpoint(), backoff_s=0.5)
    assert client.complete("x").text == " Paris"
    assert client.queries == 1 and len(api.received) == 3
    assert client.fake.slept == [0.5, 1.0]


def test_500_then_an_answer(api):
    api.script.append("500")
    client = client_for(api.endpoint())
    assert client.complete("x").text == " Paris"
    assert client.queries == 1 and client.fake.slept == [1.0]


def test_500_every_time_quotes_the_server(api):
    api.script.extend(["500"] * 3)
    with pytest.raises(EndpointError) as exc:
        client_for(api.endpoint(), retries=3).complete("x")
    assert one_line(exc) == (f"{api.url}/completions: server error: HTTP 500 on 3 tries over 3 s "
                             "('The server had an error while processing your request')")


def test_a_reset_connection_is_retried(api):
    api.script.append("reset")
    client = client_for(api.endpoint())
    assert client.complete("x").text == " Paris"
    assert len(api.received) == 2 and client.queries == 1


def test_a_timeout_is_retried_then_reported(api):
    api.script.extend(["slow", "slow"])
    with pytest.raises(EndpointError) as exc:
        client_for(api.endpoint(), timeout_s=0.2, retries=2).complete("x")
    assert re.fullmatch(rf"cannot reach {api.url}/completions: timed out after 0\.2 s on 2 tries over [12] s",
                        one_line(exc))


# ----------------------------------------------------------------------------------------- malformed answers

def _answer(**logprobs: object) -> bytes:
    return json.dumps({"choices": [{"text": "t", "logprobs": logprobs}]}).encode()


@pytest.mark.parametrize("body, what", [
    (b"<html>busy</html>", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"choices": []}', "no 'choices' list"),
    (b'{"error": {"message": "overloaded"}}', "no 'choices' list (the server said 'overloaded')"),
    (b'{"choices": ["t"]}', "choices[0] is not an object"),
    (b'{"choices": [{"text": 3}]}', "choices[0].text is not a string"),
    (b'{"choices": [{"text": "t", "logprobs": []}]}', "choices[0].logprobs is not an object"),
    (b'{"choices": [{"text": "t", "logprobs": {}}]}', "choices[0].logprobs has neither 'content' nor 'tokens'"),
    (_answer(content=[{"token": "a", "logprob": float("nan"), "top_logprobs": []}]),
     "logprobs.content[0].logprob is nan, not a log-probability"),
    (_answer(content=[{"token": "a", "logprob": "-1", "top_logprobs": []}]),
     "logprobs.content[0].logprob is not a number"),
    (_answer(content=[{"token": "a", "logprob": -1, "top_logprobs": {"b": -2}}]),
     "logprobs.content[0].top_logprobs is not a list"),
    (_answer(content=[{"token": "a", "logprob": -1, "bytes": [300], "top_logprobs": []}]),
     "logprobs.content[0].bytes is not a list of byte values"),
    (_answer(content=[{"token": "a", "logprob": -1, "top_logprobs": [{"token": "b", "logprob": -1}] * 1001}]),
     "logprobs.content[0].top_logprobs has more than 1000 alternatives"),
    (_answer(content=[{"token": "a", "logprob": -1}] * 4097), "logprobs.content has more than 4096 generated tokens"),
    (_answer(tokens=["a", "b"], top_logprobs=[{"a": -1}]), "logprobs has 2 tokens but 1 top_logprobs"),
    (_answer(tokens=["a"], top_logprobs=[["a", -1]]), "logprobs.top_logprobs[0] is not an object of token: logprob"),
    (_answer(tokens=[7], top_logprobs=None), "logprobs.tokens[0] is not a string"),
    (b'\xff{"choices": []}', "not UTF-8 text"),
])
def test_a_malformed_answer_is_one_line_and_not_cached(api, tmp_path, body, what):
    cache = ResponseCache(tmp_path / "answers.jsonl")
    client = client_for(api.endpoint(), cache)
    api.script.append((200, body, {}))
    with pytest.raises(EndpointError) as exc:
        client.complete("x")
    assert one_line(exc) == f"malformed response from {api.url}/completions: {what}"
    assert len(cache) == 0
    assert client.complete("x").text == " Paris"  # asked again, answered, cached
    assert len(cache) == 1 and client.queries == 2


def test_a_body_over_the_limit_is_refused(api):
    api.script.append("huge")
    with pytest.raises(EndpointError) as exc:
        client_for(api.endpoint()).complete("x")
    assert one_line(exc) == f"malformed response from {api.url}/completions: the body is over the 8 MiB limit"
    assert HUGE == 8 * 2**20 + 1


def test_minus_infinity_is_a_log_probability(api):
    body = b'{"choices": [{"text": "a", "logprobs": {"tokens": ["a"], "top_logprobs": [{"a": 0, "b": -Infinity}]}}]}'
    api.script.append((200, body, {}))
    assert client_for(api.endpoint()).complete("x").top == ((TopToken(b"a", 0.0), TopToken(b"b", float("-inf"))),)


# ----------------------------------------------------------------------------------------- the key stays secret

def test_the_key_is_in_no_error_and_not_in_the_cache(api, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    cache = ResponseCache(tmp_path / "answers.jsonl")
    client = client_for(api.endpoint(), cache, retries=2)
    client.complete("x")
    client.chat([{"role": "user", "content": "x"}])
    api.script.extend(["401", "404", "echo-key", "429", "429", "500", "500"])
    said = []
    for _ in range(5):
        with pytest.raises(EndpointError) as exc:
            client.complete("y")
        said.append(one_line(exc))  # which asserts the key is not in it
    assert [m.split(": ", 1)[0].split(" (HTTP")[0] for m in said] == [
        f"{api.url}/completions refused the request", f"{api.url}/completions does not know model {MODEL!r}",
        "malformed response from " + api.url + "/completions", f"{api.url}/completions", f"{api.url}/completions"]
    assert "Bearer <key>" in said[1]  # the server's echo, blanked
    raw = cache.path.read_bytes()
    assert KEY.encode() not in raw and b"Bearer" not in raw and b"authorization" not in raw.lower()
    assert len(cache) == 2


def test_an_answer_echoing_the_key_is_refused_and_not_cached(api, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    cache = ResponseCache(tmp_path / "answers.jsonl")
    api.script.append("echo-key")
    with pytest.raises(EndpointError) as exc:
        client_for(api.endpoint(), cache).complete("x")
    assert one_line(exc) == (f"malformed response from {api.url}/completions: it repeats the API key from "
                             f"${KEY_ENV}; refusing it (not cached)")
    assert len(cache) == 0 and not cache.path.exists()


# ----------------------------------------------------------------------------------------- unreachable, dying

def test_an_unreachable_port_is_one_line_at_once():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = client_for(parse_endpoint(f"openai+http://127.0.0.1:{port}/v1#m"))
    with pytest.raises(EndpointError) as exc:
        client.complete("x")
    assert one_line(exc) == f"cannot reach http://127.0.0.1:{port}/v1/completions: connection refused"
    assert client.fake.slept == []  # never answered: a typo, not a restart, so no waiting


def test_a_server_dying_mid_run_leaves_a_cache_an_offline_rerun_serves(tmp_path):
    path = tmp_path / "run" / "answers.jsonl"  # the parent folder is created
    with StandinAPI() as api:
        client = client_for(api.endpoint(), ResponseCache(path), retries=3)
        first = [client.complete(p, top_logprobs=3) for p in ("a", "b")]
    with pytest.raises(EndpointError) as exc:
        client.complete("c")
    assert one_line(exc) == (f"{api.url}/completions stopped answering after 2 answers: connection refused on 3 tries "
                             f"over 3 s; the 2 responses so far are cached in {path}: rerun to resume")
    offline = client_for(api.endpoint(), ResponseCache(path), offline=True)
    again = [offline.complete(p, top_logprobs=3) for p in ("a", "b")]
    assert [a.cached for a in again] == [True, True] and offline.queries == 0
    assert [(a.text, a.tokens, a.top, a.request_sha256, a.response_sha256) for a in again] == \
        [(f.text, f.tokens, f.top, f.request_sha256, f.response_sha256) for f in first]
    with pytest.raises(EndpointError) as exc:
        offline.complete("c", top_logprobs=3)
    missing = request_sha256({"url": api.url + "/completions", "body": {
        "model": MODEL, "prompt": "c", "max_tokens": 1, "temperature": 0.0, "seed": 0, "logprobs": 3}})
    assert one_line(exc) == (f"{api.url}/completions: request {missing[:12]} is not in the response cache (offline "
                             "re-scoring); rerun online to ask the endpoint")


# ----------------------------------------------------------------------------------------- budget, hashes

def test_the_budget_stops_the_next_network_request_not_cache_hits(api, tmp_path):
    cache = ResponseCache(tmp_path / "answers.jsonl")
    client = client_for(api.endpoint(), cache, max_queries=2)
    client.complete("a")
    client.complete("b")
    with pytest.raises(EndpointError) as exc:
        client.complete("c")
    assert one_line(exc) == (f"query budget spent: --max-queries 2 reached after 2 requests to {api.url}/completions; "
                             f"the 2 responses so far are cached in {cache.path}: rerun to resume")
    assert client.complete("a").cached is True and client.queries == 2 and len(api.received) == 2


def test_without_a_cache_the_budget_says_to_raise_it(api):
    with pytest.raises(EndpointError) as exc:
        client_for(api.endpoint(), max_queries=0).complete("a")
    assert one_line(exc).endswith("reached after 0 requests to " + api.url + "/completions; raise --max-queries")


def test_request_hashes_are_deterministic_and_keyless(monkeypatch):
    with StandinAPI() as one, StandinAPI() as two:
        a = client_for(one.endpoint()).complete("same prompt", top_logprobs=3)
        monkeypatch.setenv(KEY_ENV, KEY)
        b = client_for(one.endpoint()).complete("same prompt", top_logprobs=3)  # now with a key
        c = client_for(one.endpoint()).complete("another prompt", top_logprobs=3)
        d = client_for(two.endpoint()).complete("same prompt", top_logprobs=3)  # another server
    assert a.request_sha256 == b.request_sha256 != c.request_sha256
    assert d.request_sha256 not in (a.request_sha256, c.request_sha256)  # a cache never answers for another server
    assert a.request_sha256 == request_sha256({"url": one.url + "/completions", "body": {
        "model": MODEL, "prompt": "same prompt", "max_tokens": 1, "temperature": 0.0, "seed": 0, "logprobs": 3}})
    assert a.response_sha256 == b.response_sha256 == d.response_sha256  # the stand-ins' answers are byte-identical


def test_a_cache_hit_spends_nothing_and_keeps_both_hashes(api, tmp_path):
    client = client_for(api.endpoint(), ResponseCache(tmp_path / "c.jsonl"))
    first, second = client.complete("x"), client.complete("x")
    assert (first.cached, second.cached, client.queries, len(api.received)) == (False, True, 1, 1)
    assert (first.request_sha256, first.response_sha256) == (second.request_sha256, second.response_sha256)
    assert isinstance(second, Completion)


@pytest.mark.parametrize("options, param", [
    ({"max_queries": -1}, "max_queries"), ({"retries": 0}, "retries"), ({"timeout_s": 0}, "timeout_s"),
    ({"backoff_s": float("nan")}, "backoff_s"), ({"offline": True}, "cache"),
])
def test_bad_client_options_are_parameter_errors(api, options, param):
    with pytest.raises(InvalidParameterError) as exc:
        EndpointClient(api.endpoint(), **options)  # type: ignore[arg-type]
    assert exc.value.param == param


def test_bad_request_options_are_parameter_errors(api):
    client = client_for(api.endpoint())
    for call, param in ((lambda: client.complete("x", max_tokens=0), "max_tokens"),
                        (lambda: client.complete("x", top_logprobs=True), "top_logprobs"),
                        (lambda: client.complete("x", temperature=-1.0), "temperature"),
                        (lambda: client.complete("lone \ud800 surrogate"), "prompt"),
                        (lambda: client.chat([{"role": "user", "content": 3}]), "messages")):  # type: ignore[dict-item]
        with pytest.raises(InvalidParameterError) as exc:
            call()
        assert exc.value.param == param
    assert api.received == []


# ----------------------------------------------------------------------------------------- the cache file

def _put(cache: ResponseCache, n: int) -> None:
    for i in range(n):
        request = {"path": "/v1/completions", "body": {"prompt": str(i)}}
        response = json.dumps({"choices": [{"text": str(i)}]})
        cache.put(request_sha256(request), request, cache_module.sha256_hex(response.encode()), response)


def test_a_torn_last_line_is_dropped_and_cut_before_the_next_answer(tmp_path):
    path = tmp_path / "c.jsonl"
    _put(ResponseCache(path), 3)
    whole = path.read_bytes()
    path.write_bytes(whole[:-20])  # killed mid-write of the third answer
    torn = ResponseCache(path)
    assert len(torn) == 2
    _put(torn, 4)  # answers 0 and 1 are kept, 2 is asked again, 3 is new
    _put(ResponseCache(tmp_path / "clean.jsonl"), 4)
    assert path.read_bytes() == (tmp_path / "clean.jsonl").read_bytes()
    assert len(ResponseCache(path)) == 4


def test_a_whole_last_line_without_its_newline_is_kept(tmp_path):
    path = tmp_path / "c.jsonl"
    _put(ResponseCache(path), 2)
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    cache = ResponseCache(path)
    assert len(cache) == 2
    _put(cache, 3)
    assert len(ResponseCache(path)) == 3 and path.read_bytes().count(b"\n") == 3


def test_a_corrupt_middle_line_is_one_line_error(tmp_path):
    path = tmp_path / "c.jsonl"
    _put(ResponseCache(path), 3)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[1].replace(b'"1"', b'"one"') + lines[2])  # the response no longer hashes
    with pytest.raises(CorruptFileError) as exc:
        ResponseCache(path)
    assert one_line(exc) == (f"{path}: line 2 of the response cache is not a cached answer; move the file aside to "
                             "start a new cache")


def test_an_oversized_cache_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "c.jsonl"
    _put(ResponseCache(path), 3)
    monkeypatch.setattr(cache_module, "MAX_CACHE_BYTES", 100)
    with pytest.raises(ProvenanceError) as exc:
        ResponseCache(path)
    assert one_line(exc) == (f"{path}: the response cache is {path.stat().st_size:,} bytes, over the 100-byte limit; "
                             "start a new cache file")
