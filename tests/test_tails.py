"""The binomial, Poisson and chi-square tails the comparison uses agree with scipy.stats's on a grid."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom, chi2, poisson

from provenance.stats.tails import binom_sf, chi2_sf_even, poisson_cdf, poisson_sf

RATES = (0.0, 1e-4, 0.01, 0.2, 0.5, 0.52, 0.6, 0.9, 1.0)
RTOL = 1e-9  # log-space sums of lgamma terms: the worst measured is 3e-10 (binomial, n ~ 2e5)


def close(got: float, expected: float) -> bool:
    """Equal to RTOL, both NaN, or both below what a double holds (scipy underflows there too)."""
    if math.isnan(expected):
        return math.isnan(got)
    if expected < 1e-290:
        return got < 1e-280
    return abs(got - expected) <= RTOL * expected


@pytest.mark.parametrize("p", RATES)
def test_binom_sf_agrees_with_scipy_stats(p: float) -> None:
    rng = np.random.default_rng(0)
    for n in [1, 2, 3, 7, 10, 50, 199, *rng.integers(200, 200_000, 20).tolist()]:
        for k in sorted({-3, -1, 0, 1, n // 3, n // 2, n - 2, n - 1, n, n + 1, *rng.integers(0, n + 1, 8).tolist()}):
            expected, got = float(binom.sf(k, n, p)), binom_sf(k, n, p)
            assert close(got, expected), (k, n, p, got, expected)


@pytest.mark.parametrize("mu", np.logspace(-12, 4, 17).tolist())
def test_poisson_tails_agree_with_scipy_stats(mu: float) -> None:
    for k in sorted({-3, -1, 0, 1, 2, int(mu) - 1, int(mu), int(mu) + 1, int(mu * 2) + 3, int(mu * 3) + 40}):
        assert close(poisson_sf(k, mu), float(poisson.sf(k, mu))), (k, mu)
        assert close(poisson_cdf(k, mu), float(poisson.cdf(k, mu))), (k, mu)


@pytest.mark.parametrize("dof", [2, 4, 10, 40, 100, 400])
def test_chi2_sf_even_agrees_with_scipy_stats(dof: int) -> None:
    for stat in np.logspace(-3, 5, 60).tolist():
        assert close(chi2_sf_even(stat, dof), float(chi2.sf(stat, dof))), (dof, stat)


def test_exact_values() -> None:
    """Small cases against closed forms: the sums are not just close to scipy but right."""
    assert abs(binom_sf(6, 10, 0.5) - 176 / 1024) < 1e-15
    assert abs(poisson_sf(0, 2.0) - (1 - math.exp(-2.0))) < 1e-16
    assert abs(chi2_sf_even(2 * math.log(2), 2) - 0.5) < 1e-16  # exp(-x/2) for two degrees of freedom


def test_an_invalid_rate_gives_nan_as_scipy_does() -> None:
    assert math.isnan(binom_sf(3, 10, 1.5)) and math.isnan(float(binom.sf(3, 10, 1.5)))
    assert math.isnan(binom_sf(-1, 10, math.nan))
