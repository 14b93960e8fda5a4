"""Calibration of the weight test: independent same-shape models give no false positives.

Ten tiny Llamas trained briefly from their own seeds: all 45 pairs are compared. The
per-pair p-values must not fall below alpha more often than alpha allows, and no pair may be
called derived; fine-tunes of the same models (the positive control) must all be derived.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from provenance.comparison import CompareOptions, compare
from tests import families as fam

pytestmark = pytest.mark.slow  # trains ten models and compares 48 pairs

OPTS = CompareOptions(hashes=False, device="cpu")
TINY = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 128,
        "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 256,
        "vocab_size": 512, "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
        "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "rope_theta": 10000.0, "hidden_act": "silu"}
SEEDS = range(100, 110)


@pytest.fixture(scope="module")
def tiny_models() -> list:
    return [fam.variant(f"tiny-scratch-{s}", lambda s=s: fam.train_from_scratch(dict(TINY), steps=20, seed=s))
            for s in SEEDS]


def test_false_positive_rate_on_independent_pairs(tiny_models):
    results = [compare(a, b, OPTS) for a, b in itertools.combinations(tiny_models, 2)]
    p = np.array([r.verdict.p_value for r in results])
    labels = [r.verdict.label for r in results]
    assert len(p) == 45
    assert labels.count("derived") == labels.count("identical") == 0
    for alpha in (0.01, 0.05, 0.1):
        # at most alpha of the pairs, plus one pair of slack for 45 draws
        assert np.sum(p < alpha) <= alpha * len(p) + 1, (alpha, sorted(p)[:5])


def test_fine_tunes_of_tiny_models_are_derived(tiny_models):
    from tests.families import load_variant

    for k, path in enumerate(tiny_models[:3]):
        state, cfg = load_variant(path)
        tuned = fam.variant(f"tiny-finetune-{k}", lambda: fam.fine_tune(state, cfg, steps=20, lr=1e-3, seed=k))
        v = compare(path, tuned, OPTS).verdict
        assert v.label == "derived" and v.p_value < 1e-6, (v.label, v.p_value)
