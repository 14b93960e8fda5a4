"""The base side of the outputs signal against plain unpadded passes of the same real model (SmolLM2-135M).

Batched, right-padded passes that compute logits at a few positions only must give the numbers of one
unpadded pass per sequence; a multi-token string's score must be the chain rule over its tokens.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch

from provenance import fastpath
from provenance.blackbox.base_model import BaseModel

pytestmark = pytest.mark.slow  # loads the 135M base

CONTEXTS = ["The capital of France is", "def fibonacci(n):\n    if n < 2:\n        return",
            "Once upon a time, in a small village by the sea, there lived an old fisherman who"]
# one, two and three or more tokens each, so a chunk of teacher-forced strings has rows of different lengths
STRINGS = [" Paris", " Parisienne", " the first city of the Republic", "\u00e9t\u00e9", " n", " 42"]
STRINGS += [f" {w}ville" for w in ("Paris", "Lyon", "Nice", "Lille", "Brest", "Metz", "Nancy", "Dijon", "Reims",
                                   "Tours", "Caen", "Rouen", "Nantes", "Pau")]  # over 16 forced: two chunks


@pytest.fixture(scope="module")
def base(smollm2_hf_tok: Path) -> BaseModel:
    torch.manual_seed(0)
    return BaseModel(smollm2_hf_tok, device=torch.device("cpu"))


@torch.no_grad()
def _next(base: BaseModel, ids: list[int]) -> np.ndarray:
    """The next-token log-probabilities after `ids`, from one unpadded pass."""
    return base.model(input_ids=torch.tensor([ids])).logits[0, -1].log_softmax(-1).numpy()


def test_next_logprobs_equal_one_unpadded_pass_per_context(base: BaseModel) -> None:
    contexts = [base.encode(c) for c in CONTEXTS]
    assert len({len(c) for c in contexts}) == len(contexts)  # padded to different lengths in one batch
    got = base.next_logprobs(contexts)
    for row, ids in zip(got, contexts):
        np.testing.assert_allclose(row, _next(base, ids), atol=2e-4)
    with fastpath.plain():
        np.testing.assert_allclose(base.next_logprobs(contexts), got, atol=2e-4)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "plain"])
def test_a_string_scores_by_the_chain_rule_over_its_tokens(base: BaseModel, fast: bool) -> None:
    """Fast: logits_to_keep, and the strings continue the context's key/value cache; plain: every position's
    logits of the context and each string, recomputed."""
    assert base._keeps_logits  # transformers' Llama takes logits_to_keep and returns a cache: both paths run
    context = base.encode(CONTEXTS[0])
    assert base._forced_after_cache(context, [(0, base.encode(STRINGS[1]))]) is not None
    with contextlib.nullcontext() if fast else fastpath.plain():
        first = base.next_logprobs([context])[0]
        got = base.string_logprobs(context, first, [s.encode("utf-8") for s in STRINGS] + [b"\xff", b""])
    assert {len(base.encode(s)) for s in STRINGS} >= {1, 2, 6}
    assert sum(len(base.encode(s)) > 1 for s in STRINGS) > 16  # more than one batch of forced strings
    for s, value in zip(STRINGS, got):
        ids = base.encode(s)
        expected = sum(float(_next(base, context + ids[:j])[ids[j]]) for j in range(len(ids)))
        assert value == pytest.approx(expected, abs=1e-3), s
    assert np.isnan(got[-2]) and np.isnan(got[-1])  # not UTF-8; empty
