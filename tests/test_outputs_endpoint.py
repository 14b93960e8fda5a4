"""`provenance compare BASE openai+http://...` through the CLI against a stand-in API that misbehaves.

The base is the real SmolLM2 checkpoint (the outputs signal runs it); the endpoint is tests/standin_api.py
on 127.0.0.1. Every failure is one line and exit status 2, the key never shows, and a run cut short
resumes from its response cache.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from provenance.blackbox.client import EndpointClient
from provenance.report.schema import validate_result
from tests.standin_api import KEY_ENV, MODEL, StandinAPI

pytestmark = pytest.mark.slow  # each run loads the 135M base

KEY = "sk-standin-0123456789-secret"


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries happen, but without real backoff sleeps."""
    build = EndpointClient.__init__

    def without_sleeping(self: EndpointClient, *args: object, **kwargs: object) -> None:
        build(self, *args, **kwargs)  # type: ignore[arg-type]
        self._sleep = lambda seconds: None

    monkeypatch.setattr(EndpointClient, "__init__", without_sleeping)


def _compare(cli, base: Path, url: str, cache: Path, *extra: str) -> tuple[int, str, str]:
    return cli("compare", base, f"openai+{url}?key_env={KEY_ENV}#{MODEL}", "--device", "cpu", "--no-hash",
               "--max-queries", "12", "--response-cache", cache, *extra)


def _one_line(rc: int, err: str) -> str:
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_an_unreachable_endpoint(smollm2_hf_tok: Path, provenance_cli, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc, _, err = _compare(provenance_cli, smollm2_hf_tok, f"http://127.0.0.1:{port}/v1", tmp_path / "c.jsonl")
    assert "cannot reach http://127.0.0.1:" in _one_line(rc, err) and "connection refused" in err


def test_a_wrong_key_is_named_by_its_variable_never_shown(smollm2_hf_tok: Path, provenance_cli, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    with StandinAPI(key="another-key") as api:
        rc, out, err = _compare(provenance_cli, smollm2_hf_tok, api.url, tmp_path / "c.jsonl")
    assert f"(HTTP 401): check the key in ${KEY_ENV}" in _one_line(rc, err)
    assert KEY not in err + out and not (tmp_path / "c.jsonl").exists()


@pytest.mark.parametrize("script,words", [
    ([(429, b'{"error": "slow down"}', {"Retry-After": "0"})] * 40, "rate limited: HTTP 429 on 6 tries"),
    (["malformed"], "malformed response from http://127.0.0.1:"),
    ([(200, b'{"choices": [{"text": "x", "logprobs": {"content": [{"token": "x", "logprob": "high"}]}}]}', {})],
     "malformed response"),
])
def test_a_misbehaving_server(script: list, words: str, smollm2_hf_tok: Path, provenance_cli, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    with StandinAPI(key=KEY) as api:
        api.script.extend(script)
        rc, out, err = _compare(provenance_cli, smollm2_hf_tok, api.url, tmp_path / "c.jsonl",
                                "--json", tmp_path / "r.json")
    assert words in _one_line(rc, err) and KEY not in err + out
    assert not (tmp_path / "r.json").exists()  # no half-written output


def test_a_server_that_dies_mid_run_resumes_from_the_cache(smollm2_hf_tok: Path, provenance_cli, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    cache, out_json = tmp_path / "c.jsonl", tmp_path / "r.json"
    with StandinAPI(key=KEY) as api:
        api.script.extend(["ok"] * 5 + ["reset"] * 20)
        rc, _, err = _compare(provenance_cli, smollm2_hf_tok, api.url, cache)
    assert "stopped answering after 5 answers" in _one_line(rc, err)
    assert f"the 5 responses so far are cached in {cache}: rerun to resume" in err
    with StandinAPI(key=KEY, port=api.port) as again:  # the server back on its address
        rc, _, err = _compare(provenance_cli, smollm2_hf_tok, again.url, cache, "--json", out_json)
        assert rc == 0, err
        assert len(again.received) == 7
    result = json.loads(out_json.read_text())
    validate_result(result)  # the outputs item's details follow the schema the registry builds
    d = result["evidence"][0]["details"]
    assert (d["requests_sent"], d["from_cache"], d["queries"]) == (7, 5, 12)
    assert KEY not in out_json.read_text() + cache.read_text()
    # offline: every answer is in the cache now, so no server is needed and the numbers are the same
    rc, _, err = _compare(provenance_cli, smollm2_hf_tok, f"http://127.0.0.1:{api.port + 1}/v1", cache, "--offline")
    assert "is not in the response cache (offline re-scoring)" in _one_line(rc, err)  # another server's answers
    rc, _, err = _compare(provenance_cli, smollm2_hf_tok, api.url, cache, "--offline",
                          "--json", tmp_path / "offline.json", "--md", tmp_path / "offline.md", "--html",
                          tmp_path / "offline.html")
    assert rc == 0, err
    md = (tmp_path / "offline.md").read_text()
    assert "## Outputs \\(black-box\\)" in md and "Binomial\\(queries, that rate\\)" in md  # Markdown-escaped
    assert all(q["prompt_sha256"][:16] in md and q["response_sha256"][:16] in md for q in d["per_query"])
    assert '<section id="outputs"><h2>Outputs (black-box)</h2>' in (tmp_path / "offline.html").read_text()
    off = json.loads((tmp_path / "offline.json").read_text())["evidence"][0]
    assert off["details"]["requests_sent"] == 0 and off["details"]["from_cache"] == 12
    assert off["details"]["per_query"] == [{**r, "cached": True} for r in d["per_query"]]
    # a stand-in's four fixed alternatives are never five scored ones: no query is close
    assert off["details"]["close"] == 0 and json.loads((tmp_path / "offline.json").read_text())["verdict"]["label"] \
        == "independent"


def test_an_api_without_log_probabilities_is_tested_on_greedy_agreement(smollm2_hf_tok: Path, provenance_cli,
                                                                        tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A hosted API that returns text only: each query counts when its token is the base's most likely one,
    against the weaker bound for that case (0.6), and the report says which test ran."""
    monkeypatch.setenv(KEY_ENV, KEY)
    with StandinAPI(key=KEY, shape="none") as api:
        rc, _, err = _compare(provenance_cli, smollm2_hf_tok, api.url, tmp_path / "c.jsonl",
                              "--json", tmp_path / "r.json")
    assert rc == 0, err
    e = json.loads((tmp_path / "r.json").read_text())["evidence"][0]
    d = e["details"]
    assert d["logprobs"] is False and d["null_rate"] == 0.6 and d["median_distance"] is None
    assert "no log-probabilities returned" in e["finding"] and "greedy token" in d["null"]
    assert all(q["distance"] is None and q["alternatives"] == 0 for q in d["per_query"])
    assert d["close"] == sum(q["greedy_agrees"] for q in d["per_query"])  # the stand-in always says " Paris"
