"""The black-box statistic, its null bound and the questions it asks (no server, no model weights)."""

from __future__ import annotations

import numpy as np
import pytest

from provenance.blackbox import statistic as st
from provenance.blackbox.positions import MAX_CUT, MIN_CUT, choose_queries


def test_distance_ignores_a_shift_common_to_every_alternative() -> None:
    """A temperature-free renormalisation adds one constant to every log-probability: distance 0."""
    lp_b = np.log(np.array([0.5, 0.2, 0.1, 0.1, 0.05, 0.05]))
    d, scored = st.distance(lp_b - 0.7, lp_b)
    assert scored == 6 and d == pytest.approx(0.0, abs=1e-12)
    swapped = lp_b[[1, 0, 2, 3, 5, 4]]  # another model ranks the same alternatives differently
    assert st.distance(swapped, lp_b)[0] > 0.3


def test_a_query_needs_five_scored_alternatives() -> None:
    lp = np.array([-1.0, -2.0, -3.0, -4.0, -5.0, -6.0])
    base = np.array([-1.0, -2.0, np.nan, np.nan, -5.0, -6.0])
    assert st.distance(lp, base) == (None, 4)
    s = st.score_query(lp, base, greedy_agrees=True)
    assert s.distance is None and not s.close and s.greedy_agrees
    assert st.score_query(None, np.zeros(0), greedy_agrees=True).close  # an endpoint without log-probabilities
    missing = st.score_query(np.zeros(0), np.zeros(0), greedy_agrees=True)  # none for this query alone
    assert missing.distance is None and not missing.close


def test_binomial_p_is_the_upper_tail_and_never_below_the_floor() -> None:
    assert st.binomial_p(0, 200, 0.2) == 1.0
    # exact sums (fractions.Fraction over math.comb): the tail from the mean, and every query close
    assert st.binomial_p(40, 200, 0.2) == pytest.approx(0.5281899539921948, rel=1e-9)
    assert st.binomial_p(200, 200, 0.2) == pytest.approx(0.2**200, rel=1e-9)
    assert st.binomial_p(1000, 1000, 0.2) == st.P_FLOOR  # 0.2**1000 underflows: the floor, never 0
    assert st.binomial_p(11, 11, 0.2) < 1e-6 < st.binomial_p(8, 8, 0.2)


def test_queries_needed_follows_the_close_rate() -> None:
    assert st.queries_needed(0.1, st.NULL_CLOSE_RATE) is None
    copy, fine_tune = st.queries_needed(0.99, st.NULL_CLOSE_RATE), st.queries_needed(0.55, st.NULL_CLOSE_RATE)
    assert copy is not None and fine_tune is not None and copy < 15 < fine_tune < 200


def _toy_tokenizer() -> tuple:
    """Characters as tokens: every cut re-encodes, so the choice depends on the seed alone."""
    return (lambda text: [ord(c) for c in text]), (lambda ids: "".join(map(chr, ids)))


def test_queries_are_seeded_prefixes_of_probe_texts() -> None:
    from provenance.activations.probes import load_probes

    probes = load_probes()
    encode, decode = _toy_tokenizer()
    a = choose_queries(probes, encode, decode, 50, seed=0)
    assert a == choose_queries(probes, encode, decode, 50, seed=0)
    assert [q.prefix for q in a] != [q.prefix for q in choose_queries(probes, encode, decode, 50, seed=1)]
    assert len(a) == 50 and len({q.probe_id for q in a}) == 50  # one question per text
    for q in a:
        text = probes.texts[probes.ids.index(q.probe_id)]
        assert text.startswith(q.prefix) and MIN_CUT <= q.cut <= MAX_CUT and len(q.prefix) == q.cut
    assert len(choose_queries(probes, encode, decode, 10_000, seed=0)) <= len(probes)
