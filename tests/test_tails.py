"""The binomial and Poisson tails the comparison uses equal scipy.stats's, value for value."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom, poisson

from provenance.stats.tails import binom_sf, poisson_sf

RATES = (0.0, 1e-4, 0.01, 0.2, 0.5, 0.52, 0.6, 0.9, 1.0)


@pytest.mark.parametrize("p", RATES)
def test_binom_sf_is_scipy_stats_binom_sf(p: float) -> None:
    rng = np.random.default_rng(0)
    for n in [1, 2, 3, 7, 10, 50, 199, *rng.integers(200, 200_000, 20).tolist()]:
        for k in sorted({-3, -1, 0, 1, n // 3, n // 2, n - 2, n - 1, n, n + 1, *rng.integers(0, n + 1, 8).tolist()}):
            expected = float(binom.sf(k, n, p))
            got = binom_sf(k, n, p)
            assert got == expected or (math.isnan(got) and math.isnan(expected)), (k, n, p, got, expected)


def test_poisson_sf_is_scipy_stats_poisson_sf() -> None:
    for mu in np.logspace(-12, 4, 60).tolist():
        for k in range(-3, int(mu * 3) + 40):
            assert poisson_sf(k, mu) == float(poisson.sf(k, mu)), (k, mu)


def test_an_invalid_rate_gives_nan_as_scipy_does() -> None:
    assert math.isnan(binom_sf(3, 10, 1.5)) and math.isnan(float(binom.sf(3, 10, 1.5)))
    assert math.isnan(binom_sf(-1, 10, math.nan))
