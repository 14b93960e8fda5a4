"""An exact test of "the candidate's MLP neuron i is the base's neuron i", from weight rows.

Why it is exact: training is symmetric under relabelling one layer's MLP neurons (i.i.d.
initial rows, a permutation-equivariant optimiser, data that does not know the labels). So
if the candidate was trained independently of the base, its neuron labels in each layer are
a uniformly random permutation relative to anything computed without them — the base, the
embedding alignment, the layer map (all built from neuron-order-invariant quantities). The
statistic X = sum over sampled base neurons of (1 + cos(base row i, candidate row i)) / 2 is
then a linear permutation statistic of a [0, 1] array, and Chatterjee's concentration
inequality (Stein's method, 2007, Prop. 1.1) bounds its upper tail for any array:

    P(|X - E X| >= t) <= 2 exp(-t^2 / (4 E X + 2 t)),  E X = (1/n) sum_ij a_ij.

Nothing is assumed about the weights themselves — shared outlier dimensions or frequency-
ordered embeddings cannot make independent models look aligned. Layers are independent
under the null (one symmetry per layer), so their bounds combine by Fisher's method.
What it cannot see: a candidate whose neurons were deliberately permuted (the relabelling
the null allows); other evidence must speak for those.

>>> rng = np.random.default_rng(0)
>>> a = rng.standard_normal((512, 64))
>>> tuned = neuron_order_layer(a, a + 0.1 * rng.standard_normal(a.shape), seed=0)
>>> other = neuron_order_layer(a, rng.standard_normal((512, 64)), seed=0)
>>> tuned.p_value < 1e-15, other.p_value > 0.01, round(tuned.in_place, 2)
(True, True, 1.0)
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from provenance import fastpath
from provenance.halfcast import from_half
from provenance.stats.tails import binom_sf, chi2_sf_even

SAMPLED_NEURONS = 1024  # base rows tested per layer (all of a smaller layer)
P_FLOOR = 1e-300
# Up to this many candidate rows the tail is counted over random relabellings instead (Chatterjee's
# bound is loose on small arrays: a fingerprint's 32 probe rows, perfectly matched, bound at ~3e-4).
MONTE_CARLO_MAX_ROWS = 256
MONTE_CARLO_DRAWS = 20000  # the smallest p it can give: 1 / 20001


@dataclass
class LayerOrder:
    """One matched layer pair: the in-place statistic, its exact bound and what it measured."""

    base_layer: int
    candidate_layer: int
    neurons: int  # base rows tested
    same_cosine: float  # mean cosine of base row i with candidate row i
    chance_cosine: float  # mean cosine of base row i with every candidate row (its null mean)
    in_place: float  # share of tested base rows whose most similar candidate row is row i
    base_share: float | None  # merge weight w that explains same_cosine for parents of equal norm: cos/(cos+sin)
    p_value: float  # Chatterjee's bound, or the relabelling count for small layers (exact either way)


@dataclass
class NeuronOrder:
    """The per-layer tests and their Fisher combination."""

    layers: list[LayerOrder]
    p_value: float
    effect: float  # mean over layers of same_cosine - chance_cosine (0 under independence)
    role: str  # which matrix's rows were compared

    def summary(self) -> dict:
        return {"test": "MLP neuron order (exact: relabelling symmetry of training; Chatterjee bound, or a "
                        "count over 20,000 relabellings where the candidate keeps <= 256 rows; Fisher over layers)",
                "role": self.role, "p_value": self.p_value,
                "effect": round(self.effect, 6),
                "per_layer": [{"base": r.base_layer, "candidate": r.candidate_layer, "neurons": r.neurons,
                               "same_cosine": round(r.same_cosine, 6), "chance_cosine": round(r.chance_cosine, 6),
                               "in_place": round(r.in_place, 6),
                               "base_share": None if r.base_share is None else round(r.base_share, 6),
                               "p_value": r.p_value} for r in self.layers]}


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length (zero rows stay zero)."""
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def _sampled_rows(f: int, seed: int) -> np.ndarray:
    """The base rows a layer tests: all of them, or SAMPLED_NEURONS of them (seeded, sorted)."""
    return np.arange(f) if f <= SAMPLED_NEURONS else np.sort(
        np.random.default_rng(seed).choice(f, SAMPLED_NEURONS, replace=False))


def best_of(results: list) -> Any:
    """The result with the smallest p among alternative readings, at that p times their number (Bonferroni)."""
    best = min(results, key=lambda r: r.p_value)
    best.p_value = min(1.0, best.p_value * len(results))
    return best


def chatterjee_bound(x: float, mean: float) -> float:
    """Upper bound on P(X >= x) for a linear permutation statistic of a [0, 1] array with E X = mean.

    >>> chatterjee_bound(10.0, 10.0), chatterjee_bound(500.0, 100.0) < 1e-40
    (1.0, True)
    """
    t = x - mean
    if t <= 0:
        return 1.0
    return float(min(1.0, max(2.0 * math.exp(-t * t / (4.0 * mean + 2.0 * t)), P_FLOOR)))


def relabelling_p(arr: np.ndarray, rows: np.ndarray, x: float, *, seed: int) -> float:
    """(1 + #{X_pi >= x}) / (1 + draws) over uniformly random relabellings pi of the candidate's rows.

    An exact permutation p-value (Monte Carlo over relabellings, seeded), never below 1 / (draws + 1).
    The relabellings depend only on (seed, rows): they are drawn once per process and reused (identify and
    audits test many pairs with the same per-layer seeds), the same draws the plain path makes each time.
    """
    if not fastpath.enabled():
        return _relabelling_p_plain(arr, rows, x, seed=seed)
    s, n = len(rows), arr.shape[1]
    perms = _relabellings(seed, n)
    flat = np.ascontiguousarray(arr).reshape(-1)
    offsets = np.arange(s, dtype=np.intp) * n
    hits = 0
    for start in range(0, MONTE_CARLO_DRAWS, 2000):  # [2000, s] at a time, as the plain path sums them
        picked = flat.take(perms[start:start + 2000, :s] + offsets)  # == arr[arange(s)[None, :], perms]
        hits += int(np.count_nonzero(picked.sum(axis=1) >= x - 1e-9))
    return (1 + hits) / (1 + MONTE_CARLO_DRAWS)


def _relabelling_p_plain(arr: np.ndarray, rows: np.ndarray, x: float, *, seed: int) -> float:
    """`relabelling_p` drawing its relabellings afresh (the reference the fast path must equal)."""
    rng = np.random.default_rng(seed)
    n = arr.shape[1]
    hits = 0
    for start in range(0, MONTE_CARLO_DRAWS, 2000):
        k = min(2000, MONTE_CARLO_DRAWS - start)
        perms = np.argsort(rng.random((k, n)), axis=1)[:, :len(rows)]  # a uniform injection of the rows
        hits += int(np.count_nonzero(arr[np.arange(len(rows))[None, :], perms].sum(axis=1) >= x - 1e-9))
    return (1 + hits) / (1 + MONTE_CARLO_DRAWS)


_DRAWN: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
_DRAWN_BYTES = 64 << 20  # relabellings kept per process (a 256-row layer's take 5 MiB, a 32-row one's 0.6 MiB)
_DRAWN_LOCK = threading.Lock()


def _relabellings(seed: int, n: int) -> np.ndarray:
    """The MONTE_CARLO_DRAWS relabellings of n rows that `_relabelling_p_plain` draws for `seed`, as
    [draws, n] narrow integers (read-only), kept in a small least-recently-used store."""
    key = (seed, n)
    with _DRAWN_LOCK:
        if key in _DRAWN:
            _DRAWN.move_to_end(key)
            return _DRAWN[key]
    rng = np.random.default_rng(seed)
    perms = np.empty((MONTE_CARLO_DRAWS, n), dtype=np.min_scalar_type(max(n - 1, 0)))
    for start in range(0, MONTE_CARLO_DRAWS, 2000):
        k = min(2000, MONTE_CARLO_DRAWS - start)
        perms[start:start + k] = np.argsort(rng.random((k, n)), axis=1)
    perms.setflags(write=False)
    with _DRAWN_LOCK:
        _DRAWN[key] = perms
        while sum(p.nbytes for p in _DRAWN.values()) > _DRAWN_BYTES and len(_DRAWN) > 1:
            _DRAWN.popitem(last=False)
    return perms


def fisher(p_values: list[float]) -> float:
    """Fisher's combination of independent (super-)uniform p-values, floored at 1e-300.

    >>> round(fisher([0.5]), 6), fisher([1e-10, 1e-10]) < 1e-15
    (0.5, True)
    """
    if not p_values:
        return 1.0
    stat = -2.0 * sum(math.log(max(p, P_FLOOR)) for p in p_values)
    return float(min(1.0, max(chi2_sf_even(stat, 2 * len(p_values)), P_FLOOR)))


def neuron_order_layer(a: np.ndarray, b: np.ndarray, *, seed: int, base_layer: int = 0,
                       candidate_layer: int = 0) -> LayerOrder:
    """Test one layer pair from its neuron rows ([f, d] each, the same residual coordinates, equal f)."""
    a32, b32 = from_half(a), from_half(b)
    rows = _sampled_rows(a32.shape[0], seed)
    ua, ub = unit_rows(a32[rows]), unit_rows(b32)
    cos = np.clip(ua @ ub.T, -1.0, 1.0)  # [s, f]
    same = cos[np.arange(len(rows)), rows]
    arr = np.maximum(cos - cos.mean(axis=1, keepdims=True), 0.0)
    top = float(arr.max())
    arr = arr / top if top > 0 else arr
    x = float(arr[np.arange(len(rows)), rows].sum())
    mean = float(arr.mean(axis=1).sum())
    p = (relabelling_p(arr, rows, x, seed=seed) if b32.shape[0] <= MONTE_CARLO_MAX_ROWS
         else chatterjee_bound(x, mean))
    in_place = float(np.mean(cos.argmax(axis=1) == rows))
    c = float(np.clip(same.mean(), 0.0, 1.0))
    share = c / (c + math.sqrt(1.0 - c * c)) if c > 0 else 0.0  # w*A + (1-w)*C with |A| = |C|, A ⟂ C
    return LayerOrder(base_layer, candidate_layer, len(rows), float(same.mean()), float(cos.mean()),
                      in_place, share, p)


# (base rows, candidate rows, seed, base layer, candidate layer, index of the candidate alternative) -> the test
LayerTest = Callable[[np.ndarray, np.ndarray, int, int, int, int], LayerOrder]


def _layer_test(a: np.ndarray, b: np.ndarray, seed: int, base_layer: int, candidate_layer: int,
                _alternative: int) -> LayerOrder:
    return neuron_order_layer(a, b, seed=seed, base_layer=base_layer, candidate_layer=candidate_layer)


def neuron_order(pairs: list[tuple[int, int, np.ndarray, np.ndarray | list[np.ndarray]]], *, role: str,
                 seed: int, layer_test: LayerTest = _layer_test) -> NeuronOrder | None:
    """Every (base layer, candidate layer, base rows, candidate rows) tested and combined; None if none fit.

    The candidate side may list alternatives (a renamed checkpoint's gate and up, told apart by file
    order only): each layer keeps its best alternative at that p times their number (Bonferroni).
    `layer_test` computes one layer's test (a caller may hand in results computed earlier, equal to it).
    """
    tested = []
    for i, (la, lb, a, b) in enumerate(pairs):
        options = [(j, x) for j, x in enumerate(b if isinstance(b, list) else [b])
                   if x.shape == a.shape and a.shape[0] >= 16]
        if options:
            tested.append(best_of([layer_test(a, x, seed + i, la, lb, j) for j, x in options]))
    if not tested:
        return None
    effect = float(np.mean([r.same_cosine - r.chance_cosine for r in tested]))
    return NeuronOrder(tested, fisher([r.p_value for r in tested]), effect, role)


# --- relabelled neurons: two views of each neuron must pick the same partner ---------------------

AGREEMENT_DECOYS = 3  # residual coordinates of the candidate rotated against the base's: no correspondence
CHANCE_INFLATION = 4.0  # the decoy rate is multiplied by this before it is used as the null rate


@dataclass
class LayerAgreement:
    """One layer pair: how often the two views' best partners coincide, against decoys."""

    base_layer: int
    candidate_layer: int
    neurons: int
    agreement: float
    decoy_agreement: float
    p_value: float


@dataclass
class NeuronAgreement:
    """The relabelled-neuron test over layers (calibrated by decoys, not exact; Bonferroni over layers)."""

    layers: list[LayerAgreement]
    p_value: float
    effect: float  # mean agreement minus the (inflated) null rate
    views: str

    def summary(self) -> dict:
        return {"test": "MLP neuron matching agreement between two views (null rate from decoys with the "
                        f"candidate's residual coordinates rotated, x{CHANCE_INFLATION:g}; Bonferroni over layers; "
                        "calibrated, not exact)", "views": self.views, "p_value": self.p_value,
                "effect": round(self.effect, 6),
                "per_layer": [{"base": r.base_layer, "candidate": r.candidate_layer, "neurons": r.neurons,
                               "agreement": round(r.agreement, 6), "decoy_agreement": round(r.decoy_agreement, 6),
                               "p_value": r.p_value} for r in self.layers]}


def _partners(ua: np.ndarray, ub: np.ndarray) -> np.ndarray:
    return (ua @ ub.T).argmax(axis=1)


def agreement_layer(view1: tuple[np.ndarray, np.ndarray], view2: tuple[np.ndarray, np.ndarray], *, seed: int,
                    base_layer: int = 0, candidate_layer: int = 0,
                    candidate_ids: tuple[np.ndarray, np.ndarray] | None = None) -> LayerAgreement:
    """Match base neurons to candidate neurons in each view ([f, d] rows); count coinciding partners.

    Both views' base rows are the same neurons in the same order (sampled here when there are
    many). `candidate_ids` names the neuron behind each candidate row of either view, where the
    views keep different candidate rows (a fingerprint's largest rows); by default row k is neuron k.
    """
    (a1, b1), (a2, b2) = ((from_half(x), from_half(y)) for x, y in (view1, view2))
    ids1, ids2 = candidate_ids if candidate_ids is not None else (np.arange(len(b1)), np.arange(len(b2)))
    rows = _sampled_rows(a1.shape[0], seed)
    u1, u2 = unit_rows(a1[rows]), unit_rows(a2[rows])

    def agree(c1: np.ndarray, c2: np.ndarray) -> int:
        return int(np.count_nonzero(ids1[_partners(u1, unit_rows(c1))] == ids2[_partners(u2, unit_rows(c2))]))

    k = agree(b1, b2)
    d1, d2 = b1.shape[1], b2.shape[1]
    hits = sum(agree(np.roll(b1, j * d1 // (AGREEMENT_DECOYS + 1), axis=1),
                     np.roll(b2, j * d2 // (AGREEMENT_DECOYS + 1), axis=1)) for j in range(1, AGREEMENT_DECOYS + 1))
    decoy = hits / (AGREEMENT_DECOYS * len(rows))
    rate = min(1.0, CHANCE_INFLATION * max(decoy, 1.0 / max(len(b1), len(b2))))
    p = float(max(binom_sf(k - 1, len(rows), rate), P_FLOOR)) if k > 0 and rate < 1.0 else 1.0
    return LayerAgreement(base_layer, candidate_layer, len(rows), k / len(rows), decoy, p)


def neuron_agreement(pairs: list[tuple[int, int, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]], *,
                     views: str, seed: int,
                     candidate_ids: list[tuple[np.ndarray, np.ndarray]] | None = None) -> NeuronAgreement | None:
    """Every (base layer, candidate layer, view 1 rows, view 2 rows) tested; None if none fit."""
    ids = candidate_ids or [None] * len(pairs)
    tested = [agreement_layer(v1, v2, seed=seed + i, base_layer=la, candidate_layer=lb, candidate_ids=ci)
              for i, ((la, lb, v1, v2), ci) in enumerate(zip(pairs, ids))
              if v1[0].shape[0] == v2[0].shape[0] >= 16
              and (ci is not None or v1[1].shape[0] == v2[1].shape[0])]
    return combine_agreement(tested, views=views)


def combine_agreement(tested: list[LayerAgreement], *, views: str) -> NeuronAgreement | None:
    """Bonferroni over the tested layers (valid under any dependence between them); None if none."""
    if not tested:
        return None
    p = min(1.0, min(r.p_value for r in tested) * len(tested))
    rate = [min(1.0, CHANCE_INFLATION * max(r.decoy_agreement, 1e-12)) for r in tested]
    effect = float(np.mean([r.agreement - q for r, q in zip(tested, rate)]))
    return NeuronAgreement(tested, max(p, P_FLOOR), effect, views)
