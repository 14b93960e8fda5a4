"""Residual (hidden) dimension alignment from embedding rows of shared tokens.

A shell maker can permute the residual dimensions, flip their signs and rescale the whole
stream for free. Embedding columns over tokens both vocabularies hold expose that map:
for a derived model each base dimension has one candidate dimension whose column is
correlated at |r| ~ 1. We fit a signed matching on half the tokens and report the
correlation of the matched columns on the other half (held out), so the quality figure is
not inflated by the choice of the matching.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

MAX_TOKENS = 4096  # 2048 to fit the matching, 2048 held out
EXACT_ASSIGNMENT_MAX = 2048  # above this, argmax matching with greedy collision repair


@dataclass
class ResidualAlignment:
    """Matched residual dimensions: base dim `dims_a[k]` <-> candidate dim `dims_b[k]` times `signs[k]`."""

    dims_a: np.ndarray
    dims_b: np.ndarray
    signs: np.ndarray
    scale: float  # median |candidate| / |base| column scale
    heldout_r: np.ndarray  # per matched pair, correlation on held-out tokens (sign-corrected)
    n_tokens: int
    paired_by: str  # "token strings" | "token ids"

    @property
    def quality(self) -> float:
        """Median held-out correlation of the matched dimensions (1.0 for a copy, ~0 unrelated)."""
        return float(np.median(self.heldout_r)) if self.heldout_r.size else 0.0

    @property
    def is_identity(self) -> bool:
        return bool(np.array_equal(self.dims_a, self.dims_b) and np.all(self.signs > 0))

    def summary(self) -> dict:
        return {"matched_dims": int(self.dims_a.size), "tokens": self.n_tokens, "paired_by": self.paired_by,
                "heldout_median_r": round(self.quality, 6), "identity": self.is_identity,
                "sign_flips": int(np.sum(self.signs < 0)), "scale": round(self.scale, 6)}


def _standardize(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=0, keepdims=True)
    sd = x.std(axis=0, keepdims=True)
    return np.divide(x, sd, out=np.zeros_like(x), where=sd > 0)


def _match(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-score one-to-one matching of rows to columns (rows <= columns)."""
    best = score.argmax(axis=1)
    if np.unique(best).size == best.size:
        return np.arange(score.shape[0]), best
    if score.shape[0] <= EXACT_ASSIGNMENT_MAX:
        return linear_sum_assignment(-score)
    order = np.argsort(-score, axis=None)
    used_r = np.zeros(score.shape[0], bool)
    used_c = np.zeros(score.shape[1], bool)
    rows, cols = [], []
    for flat in order:
        r, c = divmod(int(flat), score.shape[1])
        if not used_r[r] and not used_c[c]:
            used_r[r] = used_c[c] = True
            rows.append(r)
            cols.append(c)
            if len(rows) == score.shape[0]:
                break
    return np.array(rows), np.array(cols)


def align_residual(emb_a: np.ndarray, emb_b: np.ndarray, *, paired_by: str, seed: int = 0) -> ResidualAlignment:
    """Signed matching of residual dims from paired embedding rows ([n, h_a] and [n, h_b])."""
    n = emb_a.shape[0]
    if n > MAX_TOKENS:
        keep = np.sort(np.random.default_rng(seed).choice(n, MAX_TOKENS, replace=False))
        emb_a, emb_b = emb_a[keep], emb_b[keep]
        n = MAX_TOKENS
    x, y = emb_a.astype(np.float32, copy=False), emb_b.astype(np.float32, copy=False)
    fit, held = np.arange(0, n, 2), np.arange(1, n, 2)
    xf, yf = _standardize(x[fit]), _standardize(y[fit])
    corr = xf.T @ yf / max(len(fit), 1)  # [h_a, h_b]
    flip = corr.shape[0] > corr.shape[1]
    rows, cols = _match(np.abs(corr.T if flip else corr))
    dims_a, dims_b = (cols, rows) if flip else (rows, cols)
    order = np.argsort(dims_a)
    dims_a, dims_b = dims_a[order], dims_b[order]
    signs = np.sign(corr[dims_a, dims_b])
    signs[signs == 0] = 1
    xh, yh = _standardize(x[held]), _standardize(y[held])
    heldout = (xh[:, dims_a] * yh[:, dims_b] * signs).mean(axis=0)
    sa, sb = x[:, dims_a].std(axis=0), y[:, dims_b].std(axis=0)
    ok = sa > 0
    scale = float(np.median(sb[ok] / sa[ok])) if ok.any() else 1.0
    return ResidualAlignment(dims_a, dims_b, signs.astype(np.float64), scale, heldout, n, paired_by)
