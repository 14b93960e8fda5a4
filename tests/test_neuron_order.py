"""The exact neuron-order test: its bound holds under the null it claims, and it finds what it should."""

from __future__ import annotations

import numpy as np
import pytest

from provenance.stats.neuron_order import (
    chatterjee_bound,
    fisher,
    neuron_agreement,
    neuron_order,
    neuron_order_layer,
)


def _structured(rng: np.random.Generator, f: int = 256, d: int = 48) -> np.ndarray:
    """Rows that share structure the way trained layers do: a few heavy residual dims, a common mean row."""
    scale = np.ones(d)
    scale[:3] = 8.0  # outlier dimensions every row reads
    return rng.standard_normal((f, d)) * scale + 2.0 * rng.standard_normal(d)


@pytest.mark.parametrize("rows", [128, 512], ids=["monte-carlo", "chatterjee"])
def test_p_is_valid_under_relabelling_even_with_shared_structure(rows):
    """The null the test claims: the candidate's rows in a uniformly random order. The base and the candidate
    share outlier dimensions and a mean row (what trained transformers share), yet p < alpha is no more
    frequent than alpha (within three binomial standard errors over 300 draws)."""
    rng = np.random.default_rng(0)
    a = _structured(rng, f=rows)
    b = a + 0.5 * rng.standard_normal(a.shape)  # closely related rows: the hardest case for a relabelled null
    p = np.array([neuron_order_layer(a, b[rng.permutation(len(b))], seed=i).p_value for i in range(300)])
    for alpha in (0.05, 0.2):
        assert np.mean(p < alpha) <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / len(p))


def test_bound_against_monte_carlo_tail():
    """Chatterjee's bound is never below the permutation tail it bounds."""
    rng = np.random.default_rng(1)
    c = rng.uniform(size=(60, 60)) ** 3
    mean = c.sum() / 60
    draws = np.array([c[np.arange(60), rng.permutation(60)].sum() for _ in range(20000)])
    for x in np.quantile(draws, [0.5, 0.9, 0.99, 0.999]):
        assert chatterjee_bound(float(x), float(mean)) >= np.mean(draws >= x)


def test_derived_rows_are_found_and_unrelated_rows_are_not():
    rng = np.random.default_rng(2)
    a = _structured(rng, f=512)
    tuned = neuron_order_layer(a, a + 0.3 * rng.standard_normal(a.shape), seed=0)
    other = neuron_order_layer(a, _structured(np.random.default_rng(3), f=512), seed=0)
    relabelled = neuron_order_layer(a, a[rng.permutation(len(a))], seed=0)
    assert tuned.p_value < 1e-20 and tuned.in_place > 0.9
    assert other.p_value > 0.01 and relabelled.p_value > 0.01


def test_merge_share_reads_the_merge_weight():
    rng = np.random.default_rng(4)
    a, c = rng.standard_normal((512, 64)), rng.standard_normal((512, 64))
    for w in (0.3, 0.5, 0.7):
        r = neuron_order_layer(a, w * a + (1 - w) * c, seed=0)
        assert r.base_share == pytest.approx(w, abs=0.05) and r.p_value < 1e-6


def test_small_layers_count_relabellings_exactly():
    """Few rows (a fingerprint's probes): the p-value counts random relabellings, so a perfect match of
    32 rows sits at the 1/20001 floor, and 30 such layers combine far below 1e-6."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal((32, 64))
    one = neuron_order_layer(a, a + 0.2 * rng.standard_normal(a.shape), seed=0)
    assert one.p_value == pytest.approx(1 / 20001)
    assert neuron_order([(i, i, a, a) for i in range(30)], role="mlp.gate", seed=0).p_value < 1e-60


def test_fisher_combines_and_floors():
    assert fisher([]) == 1.0
    assert fisher([1.0, 1.0]) == pytest.approx(1.0)
    assert fisher([1e-200] * 10) == 1e-300
    assert 1e-4 < fisher([0.01, 0.01]) < 0.01


def test_layers_combine_and_unequal_shapes_are_skipped():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((128, 32))
    r = neuron_order([(0, 0, a, a), (1, 1, a, a[:64])], role="mlp.gate", seed=0)
    assert r is not None and len(r.layers) == 1 and r.p_value == pytest.approx(1 / 20001)  # the Monte Carlo floor
    assert neuron_order([(0, 0, a, a[:64])], role="mlp.gate", seed=0) is None


def test_agreement_finds_relabelled_neurons_and_not_independent_ones():
    rng = np.random.default_rng(6)
    g, u = rng.standard_normal((256, 48)), rng.standard_normal((256, 48))
    perm = rng.permutation(256)
    same = neuron_agreement([(0, 0, (g, g[perm]), (u, u[perm]))], views="gate / up", seed=0)
    g2, u2 = rng.standard_normal((256, 48)), rng.standard_normal((256, 48))
    other = neuron_agreement([(0, 0, (g, g2), (u, u2))], views="gate / up", seed=0)
    assert same is not None and same.p_value < 1e-100 and same.effect > 0.9
    assert other is not None and other.p_value > 0.01
