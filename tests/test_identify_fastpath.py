"""`identify` gives the same answer with its speed-ups and on the plain reference path (`fastpath.plain()`).

The speed-ups checked here: the registry index and its batch screen (plain: every file opened and screened
alone), the relabellings of the neuron-order test drawn once per process (plain: drawn for every layer
pair), token tables decoded once per process and their indexes shared between fingerprints holding the same
table (plain: every table parsed and indexed) and the shared-token map of two tables computed once, each
vocabulary's summary computed once. The candidates, their
order, verdicts, p-values, screens and every full comparison's JSON must be equal, to the last bit.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from provenance import fastpath
from provenance.fingerprint import index as ix
from provenance.fingerprint import load
from provenance.fingerprint.compare import vocabulary_summary
from provenance.identify import identify
from provenance.stats.neuron_order import neuron_order_layer, relabelling_p
from provenance.vocab.cache import content_key

SHIPPED = Path(__file__).resolve().parents[1] / "fingerprints"
ENTRIES = ["all-minilm-l6-v2", "all-minilm-l6-v2-int8-onnx", "bge-small-en-v1.5", "ms-marco-minilm-l12-v2",
           "smollm2-135m-instruct", "tokenizer-bert-base-uncased", "tokenizer-mistral-v1"]
QUERIES = ["all-minilm-l6-v2", "smollm2-135m-instruct", "tokenizer-bert-base-uncased"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Indexes go to a cache inside tmp_path; files are never racy."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(ix, "RACY_NS", 0)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shipped fingerprints (four sharing BERT's token table), copied so that the index is written beside them."""
    folder = tmp_path_factory.mktemp("registry")
    for stem in ENTRIES:
        shutil.copyfile(SHIPPED / f"{stem}.fingerprint", folder / f"{stem}.fingerprint")
    return folder


def answer(query: str, registry: Path) -> dict[str, Any]:
    """identify's JSON without its timings, plus every shortlisted entry's full comparison JSON (without its date)."""
    r = identify(str(SHIPPED / f"{query}.fingerprint"), registry=registry, device="cpu", hashes=False, top=100)
    doc = json.loads(r.to_json())
    doc.pop("timings")
    doc["compared"] = [json.loads(c.result.to_json()) for c in r.candidates]
    for c in doc["compared"]:
        c["environment"].pop("date")
    return doc


@pytest.mark.parametrize("query", QUERIES)
def test_identify_is_the_same_on_the_plain_path(registry: Path, query: str) -> None:
    fast = answer(query, registry)
    with fastpath.plain():
        plain = answer(query, registry)
    assert fast == plain  # the later queries find token tables and relabellings in the per-process stores
    assert len(fast["candidates"]) == fast["shortlisted"] >= 5
    itself = [c for c in fast["candidates"] if Path(c["file"]).name == f"{query}.fingerprint"]
    assert [c["label"] for c in itself] == ["identical"]


def test_the_minilm_query_exercises_every_speedup(registry: Path) -> None:
    """The comparisons above go through the shared token tables and the Monte Carlo neuron-order test."""
    doc = answer("all-minilm-l6-v2", registry)
    same_table = [c for c in doc["candidates"] if c["screen"]["same_vocabulary"]]
    assert len(same_table) == 4  # MiniLM, MS MARCO, BGE and the BERT tokenizer share one table
    tests = [e for r in doc["compared"] for e in r["evidence"] if e["kind"] == "neuron order"
             and "20,000 relabellings" in e["details"]["test"] and e["details"]["per_layer"]]
    assert len(tests) >= 3


def test_relabelling_p_is_the_same_on_the_plain_path() -> None:
    rng = np.random.default_rng(7)
    for n, shift in ((16, 0.0), (32, -0.4), (33, 0.3), (256, 0.0)):
        arr = rng.random((n, n)).astype(np.float32)
        rows = np.arange(n)
        x = float(arr[rows, rows].sum()) + shift
        fast = [relabelling_p(arr, rows, x, seed=s) for s in (0, 1, 0)]
        with fastpath.plain():
            plain = [relabelling_p(arr, rows, x, seed=s) for s in (0, 1, 0)]
        assert fast == plain
        assert 1 / 20001 <= min(fast) and max(fast) <= 1.0
    a = rng.standard_normal((64, 24))
    b = a + 0.5 * rng.standard_normal(a.shape)
    fast = [neuron_order_layer(a, b, seed=s) for s in (3, 3)]
    with fastpath.plain():
        plain = neuron_order_layer(a, b, seed=3)
    assert fast == [plain, plain]


def test_a_token_table_decoded_twice_is_the_same_vocabulary() -> None:
    """The second fingerprint holding the BERT table shares its tokens and indexes, and equals a fresh parse."""
    a, b = load(SHIPPED / "all-minilm-l6-v2.fingerprint"), load(SHIPPED / "bge-small-en-v1.5.fingerprint")
    with fastpath.plain():
        fresh = load(SHIPPED / "bge-small-en-v1.5.fingerprint")
    assert a.vocabulary is not None and b.vocabulary is not None and fresh.vocabulary is not None
    assert b.vocabulary.tokens is a.vocabulary.tokens and fresh.vocabulary.tokens is not a.vocabulary.tokens
    assert b.vocabulary == fresh.vocabulary and b.vocabulary.source != a.vocabulary.source
    assert b.vocabulary.ordinary() == fresh.vocabulary.ordinary()
    assert b.vocabulary.digest() == fresh.vocabulary.digest() == fresh.vocabulary._digest()
    assert vocabulary_summary(b.vocabulary) == fresh.vocabulary.summary() != vocabulary_summary(a.vocabulary)
    assert content_key(b.vocabulary) == content_key(a.vocabulary) is not None  # one token map
    assert content_key(fresh.vocabulary) is None
