"""The black-box test: how often the endpoint's next-token distribution is the base's, query by query.

Per query the endpoint names its top-k next tokens with log-probabilities (lpC); the base scores
the same strings (lpB). `distance` is the mean absolute deviation of lpC − lpB around its median:
the median removes what a different temperature or normalisation adds to every token alike, and
what is left is how differently the two models rank and weigh the same alternatives. A query is
`close` when its distance is under `CLOSE`.

Null hypothesis: the endpoint serves a model trained independently of the base. Under it each
query is close with probability at most `NULL_CLOSE_RATE`, and queries (one per probe text) are
independent, so the number of close queries is at most Binomial(n, NULL_CLOSE_RATE) and the
p-value is its upper tail. The rate is a bound measured on real independently trained models
(see docs/DESIGN.md, "The outputs signal"): the closest one seen, Qwen2.5-Coder-0.5B against
SmolLM2-135M, was close on 22 of 200 queries through /completions and 23 of 200 through the chat
API (11-12%; upper 99% Clopper-Pearson bound 17.8%); a scratch-trained model of the base's shape
on none. The bound is 20%. (Before a fix of the base's teacher forcing, measured figures for Qwen
were 5-9.5%: its multi-token alternatives were scored one position early.)

Without log-probabilities only the endpoint's greedy token is known: a query is `close` when it
is the base's most likely token too; independent models agree on 35–44% of queries (Qwen against
SmolLM2: 37% and 40% of 200 through the two APIs) and the bound is 60%: a weaker test that needs
more queries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CLOSE = 1.0  # nats: a query is close when distance < CLOSE
NULL_CLOSE_RATE = 0.20  # bound on P(close) for an independent model, top-k log-probabilities
NULL_AGREE_RATE = 0.60  # bound on P(same greedy token) for an independent model, no log-probabilities
IDENTICAL_DISTANCE = 0.5  # median distance under which outputs match at quantization level
IDENTICAL_AGREEMENT = 0.9  # without log-probabilities: greedy agreement over which outputs match
MIN_SCORED = 5  # alternatives the base must score for a query's distance to count
P_FLOOR = 1e-300


@dataclass(frozen=True)
class QueryScore:
    """One query's comparison: its distance (None when it could not be scored) and whether it is close."""

    distance: float | None
    close: bool
    scored: int  # the candidate's alternatives the base could score
    greedy_agrees: bool  # the endpoint's first token is the base's most likely token


def distance(lp_candidate: np.ndarray, lp_base: np.ndarray) -> tuple[float | None, int]:
    """(median-centred mean |lpC − lpB| over the alternatives the base scored, how many it scored)."""
    ok = np.isfinite(lp_base) & np.isfinite(lp_candidate) if lp_candidate.size else np.zeros(0, bool)
    if int(ok.sum()) < MIN_SCORED:
        return None, int(ok.sum())
    diff = lp_candidate[ok] - lp_base[ok]
    return float(np.mean(np.abs(diff - np.median(diff)))), int(ok.sum())


def score_query(lp_candidate: np.ndarray | None, lp_base: np.ndarray, greedy_agrees: bool) -> QueryScore:
    """A query scored by distance, or by greedy agreement alone when `lp_candidate` is None (an endpoint
    without log-probabilities). With log-probabilities, a query the endpoint gave none for is not close."""
    if lp_candidate is None:
        return QueryScore(None, greedy_agrees, 0, greedy_agrees)
    d, scored = distance(lp_candidate, lp_base)
    return QueryScore(d, d is not None and d < CLOSE, scored, greedy_agrees)


def binomial_p(successes: int, n: int, rate: float) -> float:
    """P(Binomial(n, rate) ≥ successes), clamped at P_FLOOR (1.0 when nothing was asked)."""
    from provenance.stats.tails import binom_sf

    if n <= 0 or successes <= 0:
        return 1.0
    p = float(binom_sf(successes - 1, n, rate))
    return max(p, P_FLOOR) if math.isfinite(p) else 1.0


def queries_needed(close_rate: float, rate: float, target: float = 1e-6, limit: int = 10_000) -> int | None:
    """Queries at which `close_rate` of close ones reaches p < target under the null rate (None: never)."""
    if close_rate <= rate:
        return None
    for n in range(1, limit + 1):
        if binomial_p(math.ceil(close_rate * n), n, rate) < target:
            return n
    return None
