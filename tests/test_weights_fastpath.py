"""The weight signal's speed work changes no result: `compare` with and without `fastpath.plain()`.

The fast path maps safetensors files instead of reading them, reduces tensors block by block on two
threads, widens only the embedding rows the alignment keeps, and starts the next reads early; the
plain path reads each tensor whole when it is asked for and reduces it in one piece. Both must give
the same verdict, p-values, JSON and every raw weight measurement, bit for bit, for checkpoints stored
in bfloat16, float16 and float32 (each widens differently), on a permuted, a rotated and a fused-QKV
pair, with the block size shrunk so every tensor spans many blocks (the plain path's `_norms_sq` uses the same blocks).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from provenance import fastpath
from provenance.arch.view import open_model
from provenance.comparison import CompareOptions, compare
from provenance.signals import profiles
from tests.families import add_noise, permute_residual, rotate_residual, to_dtype
from tests.tiny_models import build_hf, shard, tiny_llama_state, write_hf_dir

OPTS = CompareOptions(hashes=False, device="cpu")
DTYPES = (torch.bfloat16, torch.float16, torch.float32)
BIG_VOCAB = 5000  # above align.MAX_TOKENS: the alignment keeps a subsample of the embedding rows


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of a few rows, so each tensor is reduced in many blocks (the running sums cross blocks)."""
    monkeypatch.setattr(profiles, "CHUNK_ELEMENTS", 200)


def _big_vocab_llama(seed: int) -> tuple[dict[str, torch.Tensor], dict]:
    """The tiny Llama with a 5000-token embedding and head (seeded)."""
    state, config = tiny_llama_state(seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    hidden = config["hidden_size"]
    state["model.embed_tokens.weight"] = torch.randn(BIG_VOCAB, hidden, generator=g) * 0.02
    state["lm_head.weight"] = torch.randn(BIG_VOCAB, hidden, generator=g) * 0.02
    return state, {**config, "vocab_size": BIG_VOCAB}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """name -> (base dir, candidate dir): a derived pair per stored dtype, a rotated and an independent pair."""
    root = tmp_path_factory.mktemp("fastpath")
    state, config = _big_vocab_llama(0)
    derived, _ = add_noise(*permute_residual(state, config, seed=3), rel=0.05, seed=4)
    rotated, rcfg = rotate_residual(state, config, seed=5)
    other, ocfg = _big_vocab_llama(1)
    out = {}
    for dt in DTYPES:
        name = str(dt).removeprefix("torch.")
        base = write_hf_dir(root / f"base-{name}", to_dtype(state, dt), config)
        out[f"derived-{name}"] = (base, shard(to_dtype(derived, dt), root / f"derived-{name}", n=2))
        (root / f"derived-{name}" / "config.json").write_text((base / "config.json").read_text())
    out["rotated-bfloat16"] = (out["derived-bfloat16"][0],
                               write_hf_dir(root / "rotated", to_dtype(rotated, torch.bfloat16), rcfg))
    out["independent-float16"] = (out["derived-float16"][0],
                                  write_hf_dir(root / "other", to_dtype(other, torch.float16), ocfg))
    return out


def _raw(weights: Any) -> dict[str, Any]:
    """Every number the weight signal measured, as arrays and plain values (for exact comparison)."""
    al, lm = weights.alignment, weights.layer_map
    out = {"dims_a": al.dims_a, "dims_b": al.dims_b, "signs": al.signs, "heldout_r": al.heldout_r,
           "scale": al.scale, "n_tokens": al.n_tokens, "rotated": al.rotated,
           "projection": al.projection if al.projection is not None else np.zeros(0),
           "similarity": weights.similarity, "map_facts": weights.map_facts, "problems": weights.problems,
           "notes": weights.notes}
    if lm is not None:
        out.update(sim=lm.similarity, best=np.array(lm.best), statistic=lm.statistic, z=lm.z, p=lm.p_value,
                   p_exact=lm.p_exact, null=(lm.null_mean, lm.null_sd))
    for name in ("neuron_order", "neuron_agreement"):
        test = getattr(weights, name)
        out[name] = None if test is None else test.p_value
    return out


def _same(a: Any, b: Any, where: str) -> None:
    """Exact equality, recursing into dicts and lists; NaN equals NaN."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), where
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), (where, a, b)
    else:
        assert a == b, (where, a, b)


@pytest.mark.parametrize("name", ["derived-bfloat16", "derived-float16", "derived-float32", "rotated-bfloat16",
                                  "independent-float16"])
def test_compare_is_the_same_on_the_plain_path(pairs: dict[str, tuple[Path, Path]], name: str) -> None:
    base, cand = pairs[name]
    fast = compare(base, cand, OPTS)
    with fastpath.plain():
        plain = compare(base, cand, OPTS)
    assert fast.verdict.label == plain.verdict.label and fast.verdict.p_value == plain.verdict.p_value
    expect = {"derived": "derived", "rotated": "derived", "independent": "independent"}[name.split("-")[0]]
    assert fast.verdict.label == expect, (fast.verdict.label, fast.verdict.explanation)
    _same({k: v for k, v in fast.to_dict().items() if k != "environment"},
          {k: v for k, v in plain.to_dict().items() if k != "environment"}, "json")
    _same(_raw(fast.weights), _raw(plain.weights), "weights")
    _same(_raw(compare(base, cand, OPTS).weights), _raw(fast.weights), "again")  # threads change nothing either


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).removeprefix("torch."))
def test_profiles_and_sketches_are_bit_identical(pairs: dict[str, tuple[Path, Path]], dtype: torch.dtype) -> None:
    """compute_profiles itself, with permuted and signed dims and a visitor that records what it saw."""
    path = pairs[f"derived-{str(dtype).removeprefix('torch.')}"][1]
    dims = np.random.default_rng(0).permutation(64)
    signs = np.where(np.arange(64) % 3 == 0, -1.0, 1.0)

    def run() -> tuple[profiles.Profiles, list[tuple[str, str, str]]]:
        seen: list[tuple[str, str, str]] = []
        with open_model(path) as m:
            assert m.checkpoint.tensors[m.roles.roles["layers.0.attn.q"].tensor].dtype == \
                {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32"}[dtype]
            p = profiles.compute_profiles(m, dims, signs, visit=lambda role, key, w, g: seen.append(
                (role, key, str(w.float().double().square().sum().item()))))
        return p, seen

    fast, seen_fast = run()
    with fastpath.plain():
        plain, seen_plain = run()
    assert np.array_equal(fast.values, plain.values, equal_nan=True)
    assert fast.sketches.keys() == plain.sketches.keys() and len(fast.sketches) > 0
    for k in fast.sketches:
        assert fast.sketches[k].dtype == np.float16 and np.array_equal(fast.sketches[k], plain.sketches[k]), k
    assert seen_fast == seen_plain and len(seen_fast) == fast.tensors
    assert fast.constant_norms == plain.constant_norms


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("axis", [0, 1])
def test_blocked_sums_equal_norms_sq(dtype: torch.dtype, axis: int) -> None:
    """Odd shapes, a last block of one row, values from tiny to huge: the same float64 bits as `_norms_sq`."""
    g = torch.Generator().manual_seed(axis)
    w = (torch.randn(37, 23, generator=g) * torch.logspace(-6, 4, 23)).to(dtype)
    cols = torch.tensor([0, 5, 22, 5])
    sums, picked = profiles._blocked_sums(profiles._stored(w), axis, cols.numpy())
    assert np.array_equal(sums, profiles._norms_sq(w, axis).numpy())
    assert np.array_equal(picked, w[:, cols].float().numpy())


def test_a_fused_qkv_architecture_is_the_same_on_the_plain_path(tmp_path: Path) -> None:
    """phi3 stores q/k/v fused and gate/up fused: those roles are cut from the stored tensors, in float32."""
    a, _ = build_hf("phi3", tmp_path / "a")
    noised, _ = add_noise(load_file(str(a / "model.safetensors")), {}, rel=0.05, seed=1)
    b = write_hf_dir(tmp_path / "b", to_dtype(noised, torch.bfloat16), json.loads((a / "config.json").read_text()))
    fast = compare(a, b, OPTS)
    with fastpath.plain():
        plain = compare(a, b, OPTS)
    assert fast.verdict.label == "derived"
    _same(_raw(fast.weights), _raw(plain.weights), "weights")
