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

from provenance.blas import side_by_side

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
    # A rotated residual stream: candidate coordinates x_B map to base coordinates x_B @ projection
    # ([h_b, h_a]); then dims_a lists every base dim and dims_b/signs are unused by the profiles.
    projection: np.ndarray | None = None

    @property
    def quality(self) -> float:
        """Median held-out correlation of the matched dimensions (1.0 for a copy, ~0 unrelated)."""
        return float(np.median(self.heldout_r)) if self.heldout_r.size else 0.0

    @property
    def is_identity(self) -> bool:
        return self.projection is None and bool(np.array_equal(self.dims_a, self.dims_b) and np.all(self.signs > 0))

    @property
    def rotated(self) -> bool:
        return self.projection is not None

    def summary(self) -> dict:
        return {"matched_dims": int(self.dims_a.size), "tokens": self.n_tokens, "paired_by": self.paired_by,
                "heldout_median_r": round(self.quality, 6), "identity": self.is_identity,
                "sign_flips": int(np.sum(self.signs < 0)), "scale": round(self.scale, 6), "rotated": self.rotated}


def _standardize(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=0, keepdims=True)
    sd = x.std(axis=0, keepdims=True)
    return np.divide(x, sd, out=np.zeros_like(x), where=sd > 0)


def subsample_rows(n: int, seed: int) -> np.ndarray | None:
    """Which of `n` paired rows every alignment keeps: a seeded choice of MAX_TOKENS, in order (None: all).

    A caller that gathers only these rows before widening them gets the alignment it would get from all
    `n` (the alignments then keep every row they are given).
    """
    if n <= MAX_TOKENS:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, MAX_TOKENS, replace=False))


def _subsample(emb_a: np.ndarray, emb_b: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """At most MAX_TOKENS paired rows (a seeded choice, in order): the same rows for every alignment."""
    keep = subsample_rows(emb_a.shape[0], seed)
    return (emb_a, emb_b) if keep is None else (emb_a[keep], emb_b[keep])


def _match(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-score one-to-one matching of rows to columns (rows <= columns)."""
    best = score.argmax(axis=1)
    if np.unique(best).size == best.size:
        return np.arange(score.shape[0]), best
    if score.shape[0] <= EXACT_ASSIGNMENT_MAX:
        from scipy.optimize import linear_sum_assignment  # 0.5 s of import, only where argmax collides

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


def _cross(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x.T @ y as two products, one per half of x's columns (side by side where cores allow: the same
    bits either way, as each half is always its own product)."""
    half = x.shape[1] // 2
    out = np.empty((x.shape[1], y.shape[1]), np.result_type(x, y))
    side_by_side([lambda: np.matmul(x[:, :half].T, y, out=out[:half]),
                  lambda: np.matmul(x[:, half:].T, y, out=out[half:])])
    return out


def align_residual(emb_a: np.ndarray, emb_b: np.ndarray, *, paired_by: str, seed: int = 0) -> ResidualAlignment:
    """Signed matching of residual dims from paired embedding rows ([n, h_a] and [n, h_b])."""
    emb_a, emb_b = _subsample(emb_a, emb_b, seed)
    n = emb_a.shape[0]
    x, y = emb_a.astype(np.float32, copy=False), emb_b.astype(np.float32, copy=False)
    fit, held = np.arange(0, n, 2), np.arange(1, n, 2)
    xf, yf = _standardize(x[fit]), _standardize(y[fit])
    corr = _cross(xf, yf) / max(len(fit), 1)  # [h_a, h_b]
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


ROTATION_GAIN = 0.2  # a rotation replaces the signed matching only when its held-out quality is this much better
ROTATION_MIN_QUALITY = 0.5


def _heldout_quality(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    return (_standardize(pred) * _standardize(target)).mean(axis=0)


def align_rotation(emb_a: np.ndarray, emb_b: np.ndarray, perm: ResidualAlignment, *,
                   seed: int = 0) -> ResidualAlignment:
    """`perm`, or an orthogonal map of the residual stream where that explains the embeddings much better.

    Orthogonal Procrustes on half the paired rows (centred), judged on the other half like the
    signed matching: a rotated copy (SliceGPT / QuaRot style, norms folded) has held-out
    correlation ~1 under the rotation and ~0 under any matching. Only the embeddings decide, so
    the neuron-order test's null is untouched.
    """
    if emb_a.shape[1] != emb_b.shape[1] or emb_a.shape[0] < 8 or perm.quality > 1.0 - ROTATION_GAIN:
        return perm
    emb_a, emb_b = _subsample(emb_a, emb_b, seed)
    n = emb_a.shape[0]
    x = emb_a.astype(np.float64) - emb_a.mean(axis=0)
    y = emb_b.astype(np.float64) - emb_b.mean(axis=0)
    fit, held = np.arange(0, n, 2), np.arange(1, n, 2)
    u, _, vt = np.linalg.svd(y[fit].T @ x[fit])  # y @ (u vt) ~ x
    proj = u @ vt  # [h_b, h_a]
    heldout = _heldout_quality(y[held] @ proj, x[held])
    if float(np.median(heldout)) < max(ROTATION_MIN_QUALITY, perm.quality + ROTATION_GAIN):
        return perm
    dims = np.arange(emb_a.shape[1])
    scale = float(np.linalg.norm(y) / np.linalg.norm(x)) if np.linalg.norm(x) > 0 else 1.0
    return ResidualAlignment(dims, dims, np.ones(len(dims)), scale, heldout, n, perm.paired_by,
                             proj.astype(np.float32))
