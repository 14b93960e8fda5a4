"""Layer x layer similarity of residual profiles, the layer map, and its permutation null.

S[i, j] is the mean Spearman correlation, over the profiled roles both layers have, between
base layer i and candidate layer j. Each candidate layer's best base layer gives the layer
map, which finds dropped, duplicated, re-ordered or subset layers. The null model: under
independence the pairing of matched residual dimensions carries no information about the
layers, so we re-pair them at random (one permutation for all of the candidate's layers,
keeping its within-model dependence) and recompute everything, matching included.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from provenance.blas import side_by_side, single_threaded
from provenance.signals.profiles import PROFILE_KEYS
from provenance.stats.ranks import empirical_p, z_from_null

PERMUTATIONS = 200
SWAPPABLE = tuple((PROFILE_KEYS.index(a), PROFILE_KEYS.index(b)) for a, b in (("attn.k", "attn.v"),
                                                                               ("mlp.gate", "mlp.up")))
# Where a model's roles were inferred from shapes, q/k/v were told apart by file order alone (a
# renamed BERT's alphabetical order puts query after key): q/v may be swapped as well.
SWAPPABLE_INFERRED = SWAPPABLE + ((PROFILE_KEYS.index("attn.q"), PROFILE_KEYS.index("attn.v")),)
SIGNIFICANT_LAYER_P = 1e-3


@dataclass
class LayerMap:
    """The layer map and the weight statistic with its null."""

    similarity: np.ndarray  # [L_base, L_candidate]
    base_layers: list[int]
    candidate_layers: list[int]
    pairs: list[tuple[int, int, float]]  # (base layer, candidate layer, similarity), significant only
    best: list[tuple[int, int, float, float]]  # every candidate layer: (base, cand, sim, p)
    statistic: float  # mean over candidate layers of the best similarity
    z: float
    p_value: float  # normal tail of the permutation null
    p_exact: float  # (1 + #null >= T) / (1 + permutations)
    null_mean: float
    null_sd: float


def monotone_assignment(sim: np.ndarray) -> np.ndarray:
    """Base layer for each candidate layer, non-decreasing, maximising total similarity (DP).

    Covers the usual edits — dropped layers (skips), duplicated layers (repeats) — without
    the spurious re-orderings a per-layer argmax can pick between similar neighbours.

    >>> monotone_assignment(np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.8], [0.1, 0.35, 0.1]])).tolist()
    [0, 1, 1]
    """
    n_a, n_b = sim.shape
    score = np.zeros((n_b, n_a))
    back = np.zeros((n_b, n_a), dtype=np.int64)
    score[0] = sim[:, 0]
    for j in range(1, n_b):
        prev, best = score[j - 1], 0
        for i in range(n_a):  # back[j, i]: the best earlier-or-equal base layer for candidate layer j-1
            best = i if prev[i] > prev[best] else best
            back[j, i] = best
        score[j] = sim[:, j] + prev[back[j]]
    out = np.zeros(n_b, dtype=np.int64)
    out[-1] = int(np.argmax(score[-1]))
    for j in range(n_b - 1, 0, -1):
        out[j - 1] = back[j][out[j]]
    return out


REORDER_GAIN = 0.05  # argmax must beat the monotone map by this share to report re-ordered layers


def assign_layers(sim: np.ndarray) -> np.ndarray:
    """Monotone map unless a free per-layer argmax is clearly better (re-ordered layers)."""
    free = sim.argmax(axis=0)
    mono = monotone_assignment(sim)
    cols = np.arange(sim.shape[1])
    gain = sim[free, cols].sum() - sim[mono, cols].sum()
    return free if gain > REORDER_GAIN * max(abs(sim[mono, cols].sum()), 1e-9) else mono


def _ranked(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Twice the centred ranks along the last axis ([L, K, k], whole numbers in float64) and validity [L, K].

    Whole numbers make every rank product exact (sums stay far below 2**53), so a similarity
    is the same whatever order a BLAS kernel, a batch or a device adds the terms in.
    """
    valid = ~np.isnan(values).any(axis=-1)
    k = values.shape[-1]
    ranks = np.argsort(np.argsort(np.nan_to_num(values), axis=-1, kind="stable"), axis=-1)
    ranks = (2 * ranks - (k - 1)).astype(np.float64)
    ranks[~valid] = 0.0
    return ranks, valid


def _rho_scale(k: int) -> float:
    """Spearman's rho from the product of two rows of `_ranked` (k distinct ranks: variance (k²-1)/12)."""
    return 3.0 / (k * (k * k - 1)) if k > 1 else 0.0


def similarity_matrix(ra: np.ndarray, va: np.ndarray, rb: np.ndarray, vb: np.ndarray,
                      swappable: tuple[tuple[int, int], ...] = SWAPPABLE) -> np.ndarray:
    """Mean over roles of Spearman(base layer i, candidate layer j); `_ranked` ranks [L, K, k], valid [L, K].

    Same-shaped role pairs (k/v, gate/up) may be swapped in a checkpoint whose names had to be
    inferred; each pair scores its better pairing (the null recomputes the same maximum).
    `rb` may carry leading batch axes ([..., L_b, K, k], one candidate per slice): each slice
    gives the [L_a, L_b] it gives alone, value for value (the rank products are exact).
    """
    scale = _rho_scale(ra.shape[-1])

    def s(x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
        # one product for the whole batch: [..., L_b, k] . [L_a, k] -> [..., L_a, L_b]; exact whole numbers
        prod = np.swapaxes(np.tensordot(rb[..., y, :], ra[:, x, :], axes=([-1], [-1])), -1, -2)
        return prod * scale, np.outer(va[:, x], vb[:, y]).astype(float)

    total = np.zeros(rb.shape[:-3] + (ra.shape[0], rb.shape[-3]))
    count = np.zeros(total.shape[-2:])
    paired = {i for pair in swappable for i in pair}
    for key in range(ra.shape[1]):
        if key not in paired:
            t, c = s(key, key)
            total, count = total + t * c, count + c
    for x, y in swappable:
        (txx, cxx), (tyy, cyy), (txy, cxy), (tyx, cyx) = s(x, x), s(y, y), s(x, y), s(y, x)
        straight, crossed = txx * cxx + tyy * cyy, txy * cxy + tyx * cyx
        total += np.maximum(straight, crossed)
        count += np.maximum(cxx + cyy, cxy + cyx)
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


NULL_BATCH_VALUES = 1 << 21  # rank values per batch of re-paired candidates (16 MB of float64)


def permutation_null(ra: np.ndarray, va: np.ndarray, rb: np.ndarray, vb: np.ndarray, *, seed: int,
                     permutations: int, swappable: tuple[tuple[int, int], ...] = SWAPPABLE) -> np.ndarray:
    """Best similarity per candidate layer under `permutations` random re-pairings of the residual dims.

    Returns [permutations, L_b]. Permutations are drawn in order from one seeded generator and
    scored in batches (one matrix product per role pair and batch instead of one per permutation):
    each row equals `similarity_matrix(ra, va, rb[:, :, tau], vb).max(axis=0)` bit for bit.
    """
    rng = np.random.default_rng(seed)
    taus = np.stack([rng.permutation(ra.shape[-1]) for _ in range(permutations)]) if permutations else None
    out = np.empty((permutations, rb.shape[0]))
    step = max(1, NULL_BATCH_VALUES // max(rb.size, 1))
    # the ranks are small whole numbers: gather them as narrow integers, one residual dim per row
    dims = np.ascontiguousarray(rb.astype(np.int16 if rb.shape[-1] < 2**15 else np.int32).transpose(2, 0, 1))

    def score(lo: int) -> None:
        batch = dims[taus[lo:lo + step]].transpose(0, 2, 3, 1).astype(np.float64, order="C")  # [P, L_b, K, k]
        out[lo:lo + step] = similarity_matrix(ra, va, batch, vb, swappable).max(axis=1)

    side_by_side([partial(score, lo) for lo in range(0, permutations, step)])  # exact products: same bits
    return out


def match_layers(values_a: np.ndarray, values_b: np.ndarray, layers_a: list[int], layers_b: list[int], *,
                 seed: int = 0, permutations: int = PERMUTATIONS,
                 swappable: tuple[tuple[int, int], ...] = SWAPPABLE) -> LayerMap:
    """Layer map and permutation p-value from two models' aligned profiles ([L, K, k] each)."""
    with single_threaded():  # thousands of tiny products: BLAS threads only add contention
        return _match_layers(values_a, values_b, layers_a, layers_b, seed, permutations, swappable)


def _match_layers(values_a: np.ndarray, values_b: np.ndarray, layers_a: list[int], layers_b: list[int],
                  seed: int, permutations: int, swappable: tuple[tuple[int, int], ...]) -> LayerMap:
    ra, va = _ranked(values_a)
    rb, vb = _ranked(values_b)
    sim = similarity_matrix(ra, va, rb, vb, swappable)
    best_i = assign_layers(sim)
    best = sim[best_i, np.arange(sim.shape[1])]
    statistic = float(best.mean()) if best.size else 0.0
    null_best = permutation_null(ra, va, rb, vb, seed=seed, permutations=permutations, swappable=swappable)
    null_stat = np.array([row.mean() for row in null_best])  # the null takes the same maxima
    z, p_value = z_from_null(statistic, null_stat)
    rows = []
    for j, (i, s) in enumerate(zip(best_i, best)):
        _, pj = z_from_null(float(s), null_best[:, j])
        rows.append((layers_a[int(i)], layers_b[j], float(s), pj))
    pairs = [(a, b, s) for a, b, s, pj in rows if pj < SIGNIFICANT_LAYER_P]
    return LayerMap(sim, list(layers_a), list(layers_b), pairs, rows, statistic, z, p_value,
                    empirical_p(statistic, null_stat), float(null_stat.mean()), float(null_stat.std(ddof=1)))


def describe_map(lm: LayerMap) -> dict:
    """Facts about the layer map: identity, subset, duplicates, order, dropped layers."""
    mapped_a = [a for a, _, _ in lm.pairs]
    n_a, n_b = len(lm.base_layers), len(lm.candidate_layers)
    monotone = all(x <= y for x, y in zip(mapped_a, mapped_a[1:]))
    dup = sorted({a for a in mapped_a if mapped_a.count(a) > 1})
    identity = n_a == n_b == len(lm.pairs) and all(a == b for a, b, _ in lm.pairs)
    return {"identity": identity, "matched": len(lm.pairs), "base_layers": n_a, "candidate_layers": n_b,
            "order_preserved": monotone, "duplicated_base_layers": dup,
            "unmatched_base_layers": sorted(set(lm.base_layers) - set(mapped_a)),
            "unmatched_candidate_layers": sorted(set(lm.candidate_layers) - {b for _, b, _ in lm.pairs})}
