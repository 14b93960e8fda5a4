"""Upper tails of the binomial and Poisson distributions, without importing `scipy.stats`.

`scipy.stats` costs about a second at import (it pulls in `scipy.optimize` and hundreds of
distributions); these two tails are the only parts the comparison uses. Both come from public
`scipy.special` functions (the regularized incomplete beta and `pdtrc`), and every value is
bit-identical to `binom.sf` / `poisson.sf` (tests/test_tails.py checks a grid).

>>> binom_sf(6, 10, 0.5) == 176 / 1024, poisson_sf(0, 2.0) == 1 - math.exp(-2.0)
(True, True)
"""

from __future__ import annotations

import math

from scipy.special import betainc, pdtrc


def binom_sf(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) > k), as `scipy.stats.binom.sf(k, n, p)` for integer k and n ≥ 1."""
    if not 0.0 <= p <= 1.0:  # also NaN
        return math.nan
    if k < 0:
        return 1.0
    if k >= n:
        return 0.0
    return float(betainc(k + 1, n - k, p))  # P(X >= k + 1) = I_p(k + 1, n - k)


def poisson_sf(k: int, mu: float) -> float:
    """P(Poisson(mu) > k), as `scipy.stats.poisson.sf(k, mu)` for integer k and mu > 0."""
    return float(pdtrc(k, mu)) if k >= 0 else 1.0
