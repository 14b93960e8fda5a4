"""The batched permutation null of the layer map equals the plain loop over permutations, bit for bit.

`layermap.permutation_null` scores the re-paired candidates in stacked products; the reference
here is the loop it replaced (one `similarity_matrix` per permutation, drawn from the same
generator). Checked on random profiles, through `match_layers`, and on whole comparisons:
verdicts, p-values and every evidence detail must be the same with either null.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from provenance.comparison import CompareOptions, compare
from provenance.signals import layermap
from provenance.signals.layermap import (
    SWAPPABLE,
    SWAPPABLE_INFERRED,
    LayerMap,
    match_layers,
    similarity_matrix,
)
from tests.real_models import MINILM_DIR, MINILM_INT8_ONNX, require
from tests.tiny_models import tiny_llama_state, write_hf_dir

OPTS = CompareOptions(hashes=False, device="cpu")


def loop_null(ra, va, rb, vb, *, seed, permutations, swappable=SWAPPABLE):
    """The reference: one permutation at a time."""
    rng = np.random.default_rng(seed)
    out = np.empty((permutations, rb.shape[0]))
    for p in range(permutations):
        tau = rng.permutation(ra.shape[-1])
        out[p] = similarity_matrix(ra, va, rb[:, :, tau], vb, swappable).max(axis=0)
    return out


def _profiles(rng: np.random.Generator, layers: int, keys: int, dims: int) -> np.ndarray:
    v = rng.standard_normal((layers, keys, dims))
    v[rng.random((layers, keys)) < 0.2] = np.nan  # roles a layer lacks
    return v


@pytest.mark.parametrize("swappable", [SWAPPABLE, SWAPPABLE_INFERRED, ()])
@pytest.mark.parametrize("shape", [(4, 4, 7, 32), (6, 3, 7, 50), (1, 5, 7, 16), (12, 6, 5, 64)])
def test_batched_null_equals_the_loop_on_random_profiles(shape, swappable, monkeypatch):
    la, lb, keys, dims = shape
    rng = np.random.default_rng(sum(shape))
    ra, va = layermap._ranked(_profiles(rng, la, keys, dims))
    base = _profiles(rng, lb, keys, dims)
    rb, vb = layermap._ranked(base)
    expected = loop_null(ra, va, rb, vb, seed=3, permutations=37, swappable=swappable)
    for batch_values in (1, rb.size * 5, layermap.NULL_BATCH_VALUES):  # batches of 1, 5 and all 37
        monkeypatch.setattr(layermap, "NULL_BATCH_VALUES", batch_values)
        got = layermap.permutation_null(ra, va, rb, vb, seed=3, permutations=37, swappable=swappable)
        assert got.shape == (37, lb) and np.array_equal(got, expected), batch_values


def test_no_permutations_give_an_empty_null():
    ra, va = layermap._ranked(np.ones((2, 7, 8)))
    assert layermap.permutation_null(ra, va, ra, va, seed=0, permutations=0).shape == (0, 2)


def _same_map(x: LayerMap, y: LayerMap) -> None:
    for name in LayerMap.__dataclass_fields__:
        a, b = getattr(x, name), getattr(y, name)
        same = np.array_equal(a, b) if isinstance(a, np.ndarray) else (a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)))
        assert same, (name, a, b)


def test_match_layers_is_unchanged_by_the_batched_null(monkeypatch):
    rng = np.random.default_rng(7)
    a = _profiles(rng, 8, 7, 96)
    b = a[[0, 2, 3, 5, 7]] + 0.5 * rng.standard_normal((5, 7, 96))  # a noisy layer subset
    batched = match_layers(a, b, list(range(8)), list(range(5)), seed=1)
    monkeypatch.setattr(layermap, "permutation_null", loop_null)
    _same_map(batched, match_layers(a, b, list(range(8)), list(range(5)), seed=1))
    assert [(i, j) for i, j, _ in batched.pairs] == [(0, 0), (2, 1), (3, 2), (5, 3), (7, 4)]


def _timeless(x):
    """The result without what depends on the clock: the run's environment and measured seconds."""
    if isinstance(x, dict):
        return {k: _timeless(v) for k, v in x.items() if k not in ("environment", "seconds")}
    return [_timeless(v) for v in x] if isinstance(x, list) else x


def _result_json(base, cand) -> dict:
    return _timeless(json.loads(compare(base, cand, OPTS).to_json()))


@pytest.fixture(scope="module")
def tiny_pairs(tmp_path_factory) -> list[tuple]:
    """A tiny Llama against a lightly perturbed copy (derived) and against another seed (independent)."""
    import torch

    root = tmp_path_factory.mktemp("null_pairs")
    state, cfg = tiny_llama_state(seed=0, layers=4)
    gen = torch.Generator().manual_seed(1)
    noisy = {k: v + 0.05 * v.std() * torch.randn(v.shape, generator=gen) for k, v in state.items()}
    other, cfg2 = tiny_llama_state(seed=1, layers=4)
    base = write_hf_dir(root / "base", state, cfg)
    return [(base, write_hf_dir(root / "noisy", noisy, cfg)), (base, write_hf_dir(root / "other", other, cfg2))]


def test_compare_gives_the_same_result_with_the_loop_null(tiny_pairs, monkeypatch):
    batched = [_result_json(a, b) for a, b in tiny_pairs]
    monkeypatch.setattr(layermap, "permutation_null", loop_null)
    looped = [_result_json(a, b) for a, b in tiny_pairs]
    assert batched == looped
    assert batched[0]["verdict"]["label"] in ("derived", "identical")
    assert batched[1]["verdict"]["label"] != "derived"


@pytest.mark.slow  # reads and compares a real 22M-parameter pair
def test_real_minilm_pair_null_equals_the_loop(monkeypatch):
    """fp32 all-MiniLM-L6-v2 against its int8 ONNX: the null arrays the comparison computes, both ways."""
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    batched_null = layermap.permutation_null

    def both(ra, va, rb, vb, **kw):
        got = batched_null(ra, va, rb, vb, **kw)
        seen.append((got, loop_null(ra, va, rb, vb, **kw)))
        return got

    monkeypatch.setattr(layermap, "permutation_null", both)
    r = compare(require(MINILM_DIR), require(MINILM_INT8_ONNX), OPTS)
    assert seen and all(np.array_equal(g, e) for g, e in seen)
    assert seen[0][0].shape == (layermap.PERMUTATIONS, 6) and math.isfinite(r.verdict.p_value or 0.0)
