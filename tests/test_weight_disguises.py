"""Disguises a hostile expert would try on real SmolLM2, and the merge's weaker parent (issue 14).

Each variant is built once from the dequantized SmolLM2 (tests/families.py recipes) and cached.
"""

from __future__ import annotations

import pytest
from safetensors.torch import load_file

from provenance.comparison import CompareOptions, compare
from tests import families as fam
from tests.smollm2_family import independent_models, load_base

pytestmark = pytest.mark.slow
WEIGHTS = CompareOptions(hashes=False, device="cpu", signals=("weights",))


@pytest.fixture(scope="module")
def base(smollm2_hf):
    return load_base(smollm2_hf)


def _rotated(base, combo: bool):
    _, state, cfg = base

    def build():
        s, c = fam.rotate_residual(state, cfg, seed=21 if combo else 20)
        if combo:
            s, c = fam.permute_mlp(s, c, seed=22)
            s, c = fam.permute_heads(s, c, seed=23)
            s, c = fam.add_noise(s, c, 0.01, seed=24)
        return s, c

    return fam.variant("smollm2-rotate-permute-noise" if combo else "smollm2-rotate", build)


def _merge(base, other, w: float):
    """(1 - w) x SmolLM2 + w x an independent same-shape model scaled to SmolLM2's tensor norms."""
    _, state, cfg = base
    o = load_file(str(other / "model.safetensors"))
    matched = {k: v * (state[k].norm() / v.norm()) if v.norm() > 0 else v for k, v in o.items()}
    return fam.variant(f"smollm2-merge{int(w * 100)}-scratch1-scaled", lambda: (fam.merge(state, matched, w), cfg))


def test_residual_rotation_is_derived_and_named(base):
    v = compare(base[0], _rotated(base, combo=False), WEIGHTS).verdict
    assert v.label == "derived" and "residual stream rotated" in v.relation and v.p_value < 1e-6


def test_rotation_with_permutations_and_noise_is_derived(base):
    r = compare(base[0], _rotated(base, combo=True), WEIGHTS)
    assert r.verdict.label == "derived" and "residual stream rotated" in r.verdict.relation
    order = next(e for e in r.evidence if e.kind == "neuron order")
    assert order.p_value > 1e-3  # the neurons were relabelled: the exact test rightly cannot see it
    agree = next(e for e in r.evidence if e.kind == "neuron agreement")
    assert agree.p_value < 1e-6 and r.verdict.p_value == agree.p_value


@pytest.mark.parametrize("w", [0.3, 0.5])
def test_both_parents_of_a_merge_are_found_with_their_share(base, w):
    scratch = independent_models(base)[0]
    merged = _merge(base, scratch, w)
    for parent, share in ((base[0], 1 - w), (scratch, w)):
        r = compare(parent, merged, WEIGHTS)
        assert r.verdict.label == "derived" and r.verdict.p_value < 1e-6, (parent, r.verdict)
        order = next(e for e in r.evidence if e.kind == "neuron order")
        shares = sorted(x["base_share"] for x in order.details["per_layer"])
        assert shares[len(shares) // 2] == pytest.approx(share, abs=0.1)


def test_independent_same_shape_models_get_a_large_exact_p(base):
    a, b = independent_models(base)
    for x, y in ((base[0], a), (a, b)):
        v = compare(x, y, WEIGHTS).verdict
        assert v.label == "independent" and v.p_value > 1e-3
