"""What the black-box measurement concludes, and the evidence item that carries it."""

from __future__ import annotations

from provenance.blackbox import statistic as st
from provenance.blackbox.measure import OutputsEvidence
from provenance.evidence import Evidence, Verdict, confidence
from provenance.report.pvalues import p_phrase

DERIVED_P = 1e-6  # as the weight signal: below it the outputs say "derived"
INDEPENDENT_P = 1e-2  # above it they look independent
SAME_OUTPUTS = "same outputs as the base (within quantization noise)"
INHERITED = "next-token distributions inherited"


def null_text(ev: OutputsEvidence) -> str:
    """The null hypothesis behind the p-value, in words (the report prints it)."""
    what = (f"a query is close (distance < {st.CLOSE:g} nats) with probability at most {ev.null_rate:.0%}"
            if ev.logprobs else f"the endpoint's greedy token is the base's most likely one with probability at "
                                f"most {ev.null_rate:.0%}")
    return (f"If the endpoint served a model trained independently of the base, {what} per query (a bound measured "
            "on real independently trained models), so the count is at most Binomial(queries, that rate); the "
            "p-value is its upper tail.")


def outputs_verdict(ev: OutputsEvidence) -> Verdict:
    """identical | derived | independent | inconclusive from the endpoint's answers."""
    n, close, p = len(ev.rows), ev.close, ev.p_value
    rate = f"{close} of {n} queries {'close' if ev.logprobs else 'agree'}"
    if n == 0:
        return Verdict("inconclusive", None, 0.0, None, "The endpoint was not asked anything.")
    if p < DERIVED_P:
        same = (ev.median_distance is not None and ev.median_distance < st.IDENTICAL_DISTANCE) if ev.logprobs \
            else (ev.agreement or 0.0) >= st.IDENTICAL_AGREEMENT
        if same:
            return Verdict("identical", SAME_OUTPUTS, confidence("identical", p), p,
                           f"The endpoint's next-token distributions are the base's ({rate}; {p_phrase(p)}; "
                           + (f"median distance {ev.median_distance:.3f} nats, quantization level)." if ev.logprobs
                              else f"greedy agreement {ev.agreement:.0%})."))
        return Verdict("derived", INHERITED, confidence("derived", p), p,
                       f"The endpoint's next-token distributions follow the base's far beyond what independent "
                       f"models reach ({rate}; {p_phrase(p)}), but not at quantization level: a fine-tuned or "
                       "otherwise changed derivative.")
    if p > INDEPENDENT_P:
        return Verdict("independent", None, confidence("independent", p), p,
                       f"The endpoint's answers are no closer to the base than an independent model's ({rate}; "
                       f"{p_phrase(p)}). Black-box tests see outputs only: a heavily trained derivative can look "
                       "independent.")
    return Verdict("inconclusive", None, confidence("inconclusive", p), p,
                   f"Some closeness to the base ({rate}; {p_phrase(p)}) but below the bar; more queries "
                   "(--max-queries) may decide.")


def outputs_items(ev: OutputsEvidence) -> list[Evidence]:
    """One item: the count of close queries, the p-value, the null, and every query by hash."""
    n = len(ev.rows)
    finding = (f"{ev.close} of {n} queries to {ev.endpoint['model']} at {ev.endpoint['base_url']} " +
               ("match the base's next-token distribution " + (
                   f"(median distance {ev.median_distance:.3f} nats)" if ev.median_distance is not None else
                   f"(none had {st.MIN_SCORED} alternatives the base could score)")
                if ev.logprobs else "give the base's most likely next token (no log-probabilities returned)") +
               f"; {p_phrase(ev.p_value)}.")
    details = {"test": "close queries against Binomial(queries, null rate)", "null": null_text(ev),
               "endpoint": ev.endpoint, "api": ev.api, "logprobs": ev.logprobs, "queries": n, "close": ev.close,
               "null_rate": ev.null_rate, "close_below_nats": st.CLOSE,
               "median_distance": None if ev.median_distance is None else round(ev.median_distance, 6),
               "greedy_agreement": None if ev.agreement is None else round(ev.agreement, 6),
               "probe_set": ev.probe_set, "probe_sha256": ev.probe_sha256, "requests_sent": ev.requests_sent,
               "from_cache": ev.from_cache, "per_query": ev.rows}
    return [Evidence("outputs", round(ev.close / n, 6) if n else None, ev.p_value if n else None, finding, details,
                     kind="outputs")]
