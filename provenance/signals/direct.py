"""Direct weight similarity of matched layers, from sketches on the same matched residual dims.

`direct` compares neuron i with neuron i (what plain cosine does); `matched` first pairs
each sampled base neuron with its most similar candidate neuron (so permuted neurons and
heads still agree). Both are only read as magnitudes for layers the permutation test has
already matched: a copy gives ~1, a light fine-tune 0.99+, a 50/50 merge ~0.7.
"""

from __future__ import annotations

import numpy as np

from provenance.halfcast import from_half
from provenance.stats.neuron_order import unit_rows

SAMPLED_ROWS = 256


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float((a.ravel() @ b.ravel()) / (na * nb)) if na > 0 and nb > 0 else 0.0


def sketch_similarity(a: np.ndarray, b: np.ndarray, *, seed: int = 0) -> dict[str, float | None]:
    """{'direct': cosine if shapes agree, 'matched': cosine after per-row best matching, 'rel_change'}."""
    a, b = from_half(a), from_half(b)
    direct = cosine(a, b) if a.shape == b.shape else None
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(a.shape[0], min(SAMPLED_ROWS, a.shape[0]), replace=False))
    ua, ub = unit_rows(a[rows]), unit_rows(b)
    match = (ua @ ub.T).argmax(axis=1)
    sa, sb = a[rows], b[match]
    scale = float(np.linalg.norm(sb) / np.linalg.norm(sa)) if np.linalg.norm(sa) > 0 else 1.0
    rel = float(np.linalg.norm(sb / scale - sa) / np.linalg.norm(sa)) if np.linalg.norm(sa) > 0 else None
    return {"direct": direct, "matched": cosine(sa, sb), "rel_change": rel, "scale": scale,
            "neurons_in_place": float(np.mean(match == rows)) if a.shape == b.shape else None}
