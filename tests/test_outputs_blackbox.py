"""The outputs signal against a real OpenAI-compatible server: llama.cpp's (xllamacpp) on 127.0.0.1.

The base is SmolLM2-135M-Instruct dequantized by transformers; the candidates are GGUF files served
with two threads (tests/gguf_export.py): the shipped Q4_1 file itself (a copy), the same file behind
another chat template, system prompt and name (a disguised copy, asked through the chat API), the
tests' fine-tune, and a model of the same shape trained from scratch (independent).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provenance.comparison import compare
from tests.llama_server import DISGUISE_TEMPLATE, require_server, serve

pytestmark = pytest.mark.slow

QUERIES = 40  # enough for p < 1e-6 on every derived candidate here (the default budget is 200)


@pytest.fixture(scope="module")
def variants() -> dict[str, Path]:
    require_server()
    from tests.gguf_export import smollm2_gguf_variants

    return smollm2_gguf_variants()


def _audit(base: Path, gguf: Path, alias: str, cache: Path, *, api: str = "completions",
           template: str | None = None) -> dict:
    with serve(gguf, alias=alias, chat_template=template) as url:
        r = compare(base, f"openai+{url}#{alias}", signals=("outputs",), max_queries=QUERIES, outputs_api=api,
                    response_cache=str(cache), device="cpu", hashes=False)
    return json.loads(r.to_json())


@pytest.mark.parametrize("name,api,template,label", [
    ("base_q4_1", "completions", None, "identical"),
    ("base_q4_1", "chat", DISGUISE_TEMPLATE, "identical"),
    ("fine_tune", "completions", None, "derived"),
])
def test_copies_and_derivatives_behind_the_server(name: str, api: str, template: str | None, label: str,
                                                  variants: dict[str, Path], smollm2_hf_tok: Path,
                                                  tmp_path: Path) -> None:
    r = _audit(smollm2_hf_tok, variants[name], "nova" if template else name, tmp_path / "c.jsonl", api=api,
               template=template)
    v, d = r["verdict"], r["evidence"][0]["details"]
    assert v["label"] == label and v["p_value"] < 1e-6, v
    assert d["queries"] == QUERIES and d["logprobs"] and d["api"] == api
    assert len({q["response_sha256"] for q in d["per_query"]}) == QUERIES  # every answer is on record
    if label == "derived":
        assert d["median_distance"] > 0.5  # not at quantization level


def test_an_independent_model_of_the_same_shape(variants: dict[str, Path], smollm2_hf_tok: Path,
                                                tmp_path: Path) -> None:
    r = _audit(smollm2_hf_tok, variants["independent"], "scratch", tmp_path / "c.jsonl")
    v, d = r["verdict"], r["evidence"][0]["details"]
    assert v["label"] == "independent" and v["p_value"] > 0.01 and d["close"] <= 0.2 * QUERIES, v
