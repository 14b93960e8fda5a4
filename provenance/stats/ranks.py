"""Rank statistics on profile vectors: centred, scale-free, robust to a few outlier dimensions."""

from __future__ import annotations

import math

import numpy as np


def standardized_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks along the last axis, centred and scaled so that a dot product / n is Spearman's rho.

    >>> r = standardized_ranks(np.array([[3.0, 1.0, 2.0]]))
    >>> float(np.round((r @ r.T)[0, 0] / 3, 6))
    1.0
    """
    ranks = np.argsort(np.argsort(x, axis=-1, kind="stable"), axis=-1).astype(np.float64)
    ranks -= ranks.mean(axis=-1, keepdims=True)
    norm = np.sqrt((ranks ** 2).mean(axis=-1, keepdims=True))
    return np.divide(ranks, norm, out=np.zeros_like(ranks), where=norm > 0)


def normal_sf(z: float) -> float:
    """P(N(0,1) > z), accurate far into the tail (down to ~1e-300).

    >>> round(normal_sf(0.0), 3), normal_sf(40.0) < 1e-300
    (0.5, True)
    """
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def z_from_null(observed: float, null: np.ndarray) -> tuple[float, float]:
    """(z, one-sided normal p) of `observed` against samples of its null distribution."""
    sd = float(null.std(ddof=1)) if null.size > 1 else 0.0
    if sd <= 0:
        return (math.inf, 0.0) if observed > float(null.mean()) else (0.0, 1.0)
    z = (observed - float(null.mean())) / sd
    return z, max(normal_sf(z), 1e-300)


def empirical_p(observed: float, null: np.ndarray) -> float:
    """(1 + #{null >= observed}) / (1 + n): an exact permutation p-value, floor 1/(n+1)."""
    return float((1 + np.sum(null >= observed)) / (1 + null.size))
