"""The coarse pre-filter `identify` runs over a whole registry before any full comparison.

Two cheap, transformation-proof summaries per fingerprint:
- weights: the cosine similarities among the embedding rows of the first anchor tokens. They
  do not change when residual dimensions are permuted, sign-flipped, rotated or rescaled,
  and barely under fine-tuning, while independently trained models disagree on them;
  two models are screened by the correlation over the anchor pairs both hold.
- tokenizer: a MinHash of the ordinary token set, estimating the Jaccard overlap.
Neither is evidence; they only decide which entries get the full comparison.

`embedding_scores` computes `embedding_score` of one query against many entries at once (a registry
index), with the same two-pass arithmetic over the same pairs; only the order of the sums differs, so
each score is within SCORES_EPS of the one-entry function's (the rows where that could fail, nearly
constant ones, and rows with repeated anchors are handed to `embedding_score` itself).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

SCREEN_ANCHORS = 96
MINHASH = 128
TRIANGLE = SCREEN_ANCHORS * (SCREEN_ANCHORS - 1) // 2  # cosines a full screen holds
# |embedding_scores - embedding_score| at most this: centred values agree to the rounding of their means, and
# a sum of p terms in another order moves by at most p * 2**-53 of the sum of their magnitudes (p <= 4560:
# 5e-13 of sqrt(sxx * syy)), on rows whose centred sum of squares keeps at least _FLAT of the plain one
SCORES_EPS = 1e-9
_FLAT = 1e-9
_FLAT_WHOLE = 1e-4  # the same for `_pearson_whole`, whose y is not centred before its dot product
_PAIRS_PER_BLOCK = 1 << 17  # anchor pairs scored per block: float64 temporaries of 1 MiB, in cache
_SLOT_BITS = 20  # the query's anchors found by the top bits of their priorities (uniform 64-bit hashes)
_MIX = np.random.default_rng(20261129).integers(1, 2**63, size=(2, MINHASH), dtype=np.uint64)


def embedding_screen(rows: np.ndarray, pri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(upper-triangle cosine matrix of the first anchors as float16, their priorities as uint64)."""
    x = rows[:SCREEN_ANCHORS].astype(np.float64)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    u = np.divide(x, n, out=np.zeros_like(x), where=n > 0)
    cos = u @ u.T
    iu = np.triu_indices(len(x), k=1)
    return cos[iu].astype(np.float16), pri[:SCREEN_ANCHORS].astype(np.uint64)


def embedding_score(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[float, int]:
    """(Pearson correlation of the two cosine matrices over the anchors both hold, how many anchors)."""
    (va, pa), (vb, pb) = a, b
    # not assume_unique: a hostile file may repeat an anchor (its first place counts); on unique anchors the
    # indices are the same, and assume_unique=True on a repeat indexed out of bounds (IndexError)
    _, ia, ib = np.intersect1d(pa, pb, return_indices=True)
    if len(ia) < 8:
        return 0.0, len(ia)
    ma, mb = _square(va, len(pa)), _square(vb, len(pb))
    sub_a, sub_b = ma[np.ix_(ia, ia)], mb[np.ix_(ib, ib)]
    iu = np.triu_indices(len(ia), k=1)
    x, y = sub_a[iu], sub_b[iu]
    x, y = x - x.mean(), y - y.mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return (float((x * y).sum() / den) if den > 0 else 0.0), len(ia)


def _square(tri: np.ndarray, n: int) -> np.ndarray:
    m = np.zeros((n, n), dtype=np.float64)
    m[np.triu_indices(n, k=1)] = tri.astype(np.float64)
    return m + m.T


def minhash(pri: np.ndarray) -> np.ndarray:
    """MinHash signature (uint64 [MINHASH]) of a token set given as its 64-bit priorities."""
    if pri.size == 0:
        return np.full(MINHASH, np.iinfo(np.uint64).max, dtype=np.uint64)
    out = np.empty(MINHASH, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(MINHASH):
            out[k] = ((pri * (_MIX[0, k] | np.uint64(1))) + _MIX[1, k]).min()
    return out


def jaccard_estimate(a: np.ndarray, b: np.ndarray) -> float:
    """Share of equal MinHash slots: an unbiased estimate of the Jaccard overlap (±0.09 at 128 slots)."""
    return float(np.mean(a == b))


def anchor_positions(pri: np.ndarray, anchors: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """For each entry anchor (rows of `anchors`, the first `counts[i]` valid), its position in the query's
    anchors `pri`, or -1: (n, width) int16. The query's anchors must be unique."""
    k = len(pri)
    shift = np.uint64(64 - _SLOT_BITS)
    slots = (pri >> shift).astype(np.intp)
    table = np.full(1 << _SLOT_BITS, -1, dtype=np.int16)  # a query anchor by the top bits of its priority
    table[slots] = np.arange(k, dtype=np.int16)
    shared, many = np.unique(slots, return_counts=True)
    table[shared[many > 1]] = -2  # slots two query anchors fall in: those entry anchors are looked up
    pos = table[(anchors >> shift).view(np.intp)]  # below 2**_SLOT_BITS: the same bits as an intp
    both = pos == -2
    if both.any():
        order = np.argsort(pri, kind="stable")
        pos[both] = order[np.searchsorted(pri[order], anchors[both]).clip(0, k - 1)]
    hit = (pos >= 0) & (np.arange(anchors.shape[1]) < counts[:, None])
    hit &= pri[np.where(hit, pos, 0)] == anchors if k else False
    return np.where(hit, pos, np.int16(-1)).astype(np.int16)


def embedding_scores(query: tuple[np.ndarray, np.ndarray], anchors: np.ndarray, counts: np.ndarray,
                     read: Callable[[np.ndarray], np.ndarray], one_by_one: np.ndarray, min_common: int,
                     moments: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`embedding_score` of the query against n entries: (scores, anchors in common), one per entry.

    anchors: (n, width) uint64, the first counts[i] of row i valid; read(rows) gives those entries' cosine
    triangles, (len(rows), >= TRIANGLE) float16, the first counts(counts-1)/2 valid; moments: (n, 2), each
    whole triangle's mean and centred sum of squares, if known (an entry holding exactly the query's anchors
    then costs one dot product). Scores are computed where at least `min_common` anchors are shared (0.0
    elsewhere); rows in `one_by_one` (repeated anchors), nearly constant rows, and every row when the query
    repeats an anchor go through `embedding_score`.
    """
    va, pa = query
    n, k = len(anchors), len(pa)
    scores = np.zeros(n, dtype=np.float64)
    if n == 0 or len(np.unique(pa)) != k:  # repeated query anchors: left to embedding_score
        return _one_by_one(query, anchors, counts, read, np.arange(n), scores, None)
    pos = anchor_positions(pa, anchors, counts)
    hit = pos >= 0
    common = hit.sum(axis=1).astype(np.int64)
    todo = (common >= min_common) & ~one_by_one
    qsq = _square(va, k)
    xq = va.astype(np.float64)
    mq = xq.mean() if len(xq) else 0.0
    xq -= mq
    sxx = float(np.einsum("j,j->", xq, xq))
    whole = moments is not None and bool(np.all(pa[1:] > pa[:-1])) and sxx > _FLAT * (sxx + len(xq) * mq ** 2)
    for c in (int(c) for c in np.unique(common[todo])):
        rows = np.flatnonzero(todo & (common == c))
        same = whole & (c == k) & (counts[rows] == c) & np.all(pos[rows, :c] == np.arange(c), axis=1)
        step = max(1, _PAIRS_PER_BLOCK // max(c * (c - 1) // 2, 1))
        for sel, fast in ((rows[same], True), (rows[~same], False)):
            for i in range(0, len(sel), step):
                part = sel[i:i + step]
                tri = read(part)
                if fast:  # exactly the query's anchors, in its order: one dot product
                    scores[part], flat = _pearson_whole(xq, sxx, tri[:, :len(xq)], moments[part])
                else:
                    scores[part], flat = _pearson_rows(*_pairs(qsq, pos[part], hit[part], counts[part], tri, c))
                if flat.any():
                    _one_by_one(query, anchors, counts, read, part[flat], scores, common)
    if one_by_one.any():  # their common count too: a repeated anchor counts once
        _one_by_one(query, anchors, counts, read, np.flatnonzero(one_by_one), scores, common)
    return scores, common


@functools.lru_cache(maxsize=1)
def _row_start() -> np.ndarray:
    """[k, a]: where the cosines of anchor a with the anchors after it start in a k-anchor triangle, less a + 1
    (the cosine of a < b sits at [k, a] + b, in np.triu_indices order)."""
    k, a = np.ogrid[:SCREEN_ANCHORS + 1, :SCREEN_ANCHORS]
    return (a * (2 * k - a - 1) // 2 - a - 1).astype(np.intp)


@functools.lru_cache(maxsize=SCREEN_ANCHORS + 1)
def _triu(c: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(c, k=1)


def _pairs(qsq: np.ndarray, pos: np.ndarray, hit: np.ndarray, counts: np.ndarray, tri: np.ndarray,
           c: int) -> tuple[np.ndarray, np.ndarray]:
    """(query cosines, entry cosines) over every pair of the c anchors each entry shares with the query (in
    the entry's order: embedding_score takes them by priority; a correlation does not depend on the order)."""
    m, k = len(pos), len(qsq)
    cols = np.nonzero(hit)[1].reshape(m, c)  # entry positions of the shared anchors, ascending
    qpos = pos[hit].reshape(m, c).astype(np.intp)
    iu, ju = _triu(c)
    start = _row_start()[counts[:, None], cols] + (np.arange(m) * tri.shape[1])[:, None]
    y = np.ascontiguousarray(tri).reshape(-1).take(start[:, iu] + cols[:, ju])
    x = qsq.reshape(-1).take((qpos * k)[:, iu] + qpos[:, ju])
    return x, y.astype(np.float64)


def _pearson_whole(xc: np.ndarray, sxx: float, y: np.ndarray, moments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`embedding_score` of a centred query triangle (not flat) against whole entry triangles whose mean and
    centred sum of squares are known: sum(xc * (y - mean)) = xc.y - mean * sum(xc). A dot product of p terms
    moves by at most p * 2**-53 * |xc| |y|: within SCORES_EPS of sqrt(sxx * syy) where syy keeps _FLAT_WHOLE
    of |y|**2."""
    p = y.shape[1]
    my, syy = moments[:, 0], moments[:, 1]
    sxy = np.einsum("ij,j->i", y.astype(np.float64), xc) - my * xc.sum()
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        den = np.sqrt(sxx * syy)
        r = np.where(den > 0, sxy / np.where(den > 0, den, 1.0), 0.0)
        flat = ~np.isfinite(r) | (syy <= _FLAT_WHOLE * (syy + p * my ** 2))
    return r, flat


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise `embedding_score` arithmetic on (m, p) pairs (centred in place), and the nearly constant rows,
    which the SCORES_EPS bound does not cover."""
    p = y.shape[1]
    mx, my = x.mean(axis=1), y.mean(axis=1)
    x -= mx[:, None]
    y -= my[:, None]
    sxx, syy, sxy = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y), np.einsum("ij,ij->i", x, y)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        den = np.sqrt(sxx * syy)
        r = np.where(den > 0, sxy / np.where(den > 0, den, 1.0), 0.0)
        flat = ~np.isfinite(r) | (sxx <= _FLAT * (sxx + p * mx ** 2)) | (syy <= _FLAT * (syy + p * my ** 2))
    return r, flat


def _one_by_one(query: tuple[np.ndarray, np.ndarray], anchors: np.ndarray, counts: np.ndarray,
                read: Callable[[np.ndarray], np.ndarray], rows: np.ndarray, scores: np.ndarray,
                common: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """`embedding_score` itself on `rows` (written into scores, and into common when it is given)."""
    counted = np.zeros(len(anchors), dtype=np.int64) if common is None else common
    for i in range(0, len(rows), 1024):
        part = rows[i:i + 1024]
        for r, tri in zip(part, read(part)):
            k = int(counts[r])
            scores[r], counted[r] = embedding_score(query, (tri[:k * (k - 1) // 2], anchors[r, :k]))
    return scores, counted
