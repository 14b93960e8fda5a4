"""One verdict from several signals, with each signal's own verdict and where they disagree.

Rules, in order (the report prints them):

* Only calibrated tests decide. The weights and the activations test the same parameters
  and are strongly dependent, so their p-values are never multiplied: the combined p-value is
  a Bonferroni bound, ``min(1, k * min p)`` over the k deciding signals that ran, which holds
  under any dependence.
* A positive finding (``identical`` or ``derived`` at p < 1e-6) is not undone by another
  signal failing to find anything: the label stands and the disagreement is reported.
  ``identical`` is taken from the weights when they speak, as the more direct measurement.
* ``independent`` needs every deciding signal that ran to say so, none in the grey zone.
* The tokenizer decides only when no model signal ran (tokenizer files alone). Beside
  model signals it agrees, or its disagreement is reported: a reused tokenizer under new
  weights is common and honest; new tokenizer under inherited weights is a re-vocabularied copy.
* Metadata (config, architecture names) never decides: anyone can copy a config.
"""

from __future__ import annotations

from dataclasses import dataclass

from provenance.evidence import Verdict, confidence
from provenance.report.pvalues import p_phrase
from provenance.signals import registry
from provenance.signals.base import CONTEXT, FALLBACK_TEST, MODEL_TEST

RELATED = ("identical", "derived")
# What the verdict's numbers mean, printed beside them by every report (and in the JSON schema).
NUMBERS = ("Confidence is 1 − p when the verdict claims a relation (identical, derived): how surely agreement by "
           "chance between independent models is ruled out. It is 0 for independent and inconclusive verdicts, since "
           "a test that finds nothing rules nothing out; it is never the probability that the label is right. "
           "P-values are computed down to 1e-300 and clamped there: one shown as \u201c≤ x\u201d sits at that floor "
           "(times the number of tests combined), and the true value is smaller. Every p-value answers one "
           "question: if the two models had been trained independently, how often would evidence this strong "
           "appear? The weights' p-value holds exactly under that null: training treats a layer's MLP neurons "
           "alike, so an independent model's neuron order is a random relabelling of the base's (its report says "
           "when a calibrated test, relabelled neurons, decided instead).")


@dataclass(frozen=True)
class SignalVerdict:
    """One signal's own reading, before aggregation (``verdict`` None: the signal did not run)."""

    signal: str
    verdict: Verdict | None
    finding: str = ""  # for signals without a verdict of their own (config): what they saw
    ran: bool = True
    role: str | None = None  # the signal's role (None: the registered signal's)

    def role_of(self) -> str:
        return self.role or registry.role(self.signal)


def combining() -> str:
    """The rules above in one paragraph, printed by every report (names from the registered signals)."""
    return registry.combining_text()


def _related(v: Verdict | None) -> bool:
    return v is not None and v.label in RELATED


def _grey(v: Verdict) -> bool:
    """Inconclusive with a test behind it (agreement above chance, below the bar), not merely 'not compared'."""
    return v.label == "inconclusive" and v.p_value is not None


def aggregate(readings: list[SignalVerdict]) -> Verdict:
    """The combined verdict; each signal's reading and role is kept in ``Verdict.signals``."""
    by = {r.signal: r.verdict for r in readings if r.verdict is not None}
    model = [r.signal for r in readings if r.role_of() == MODEL_TEST and r.signal in by]
    deciders = model or [r.signal for r in readings if r.role_of() == FALLBACK_TEST and r.signal in by][:1]
    if not deciders:
        tests = [r.signal for r in readings if r.role_of() != CONTEXT] or ["no test"]
        names = ", ".join(tests[:-1]) + f" nor {tests[-1]}" if len(tests) > 1 else tests[0]
        v = Verdict("inconclusive", None, 0.0, None, f"Neither {names} were compared; metadata alone decides nothing.")
        return _annotate(v, readings, [], [])
    positives = [s for s in deciders if _related(by[s])]
    comparable = [s for s in deciders if by[s].label != "inconclusive" or _grey(by[s])]
    disagreements = _disagreements(by, deciders, {r.signal: r.role_of() for r in readings})
    if positives:
        lead = positives[0]
        p = _bonferroni([by[s].p_value for s in positives], len(comparable) or 1)
        v = by[lead]
        out = Verdict(v.label, v.relation, confidence(v.label, p), p, _lead_text(lead, model, v))
        if len(positives) > 1:
            out.explanation += " " + _also(by, positives[1:])
        return _annotate(out, readings, positives, disagreements)
    if comparable and all(by[s].label == "independent" for s in comparable):
        lead = comparable[0]
        v = by[lead]
        p = max((by[s].p_value for s in comparable if by[s].p_value is not None), default=None)
        out = Verdict("independent", None, confidence("independent", p), p, _lead_text(lead, model, v))
        return _annotate(out, readings, comparable, disagreements)
    grey = [s for s in deciders if _grey(by[s])]
    lead = grey[0] if grey else deciders[0]
    v = by[lead]
    out = Verdict("inconclusive", None, confidence("inconclusive", v.p_value), v.p_value, _lead_text(lead, model, v))
    others = [s for s in deciders if s != lead and by[s].label != "inconclusive"]
    if others:
        out.explanation += " " + _also(by, others)
    return _annotate(out, readings, [], disagreements)


def _lead_text(lead: str, model: list[str], v: Verdict) -> str:
    """The leading signal's explanation; a tokenizer deciding alone says so."""
    return v.explanation if model or lead != "tokenizer" else f"Tokenizer evidence only: {v.explanation}"


def _bonferroni(ps: list[float | None], k: int) -> float | None:
    known = [p for p in ps if p is not None]
    return min(1.0, k * min(known)) if known else None


def _also(by: dict[str, Verdict], signals: list[str]) -> str:
    parts = [f"the {s} say {by[s].label}" + (f" ({p_phrase(by[s].p_value)})" if by[s].p_value is not None else "")
             for s in signals]
    return "Also, " + "; ".join(parts) + "."


def _disagreements(by: dict[str, Verdict], deciders: list[str], roles: dict[str, str]) -> list[str]:
    """Sentences for every pair of signals that point different ways, with what it usually means."""
    out = []
    model = [s for s in by if roles[s] == MODEL_TEST]
    for i, first in enumerate(model):
        for second in model[i + 1:]:
            out += _model_disagreement(by, first, second)
    for name in (s for s in by if roles[s] == FALLBACK_TEST and s not in deciders):
        out += _fallback_disagreement(by, name, deciders)
    return out


def _model_disagreement(by: dict[str, Verdict], first: str, second: str) -> list[str]:
    """Two model tests pointing different ways: a positive one and one that finds nothing, or a grey one."""
    w, a = by[first], by[second]
    if {w.label, a.label} >= {"independent"} and (_related(w) or _related(a)):
        pos, neg = (first, second) if _related(w) else (second, first)
        return [f"The {pos} say {by[pos].label} but the {neg} find no correspondence ({p_phrase(by[neg].p_value)}); "
                f"a positive test at {p_phrase(by[pos].p_value)} is not undone by a test that finds nothing, but the "
                f"{neg} should be looked at (probe count, tokenizer, heavy training)."]
    if w.label != a.label and "inconclusive" in (w.label, a.label) and (_related(w) or _related(a)):
        grey, pos = (first, second) if w.label == "inconclusive" else (second, first)
        return [f"The {grey} were inconclusive where the {pos} say {by[pos].label}."]
    return []


def _fallback_disagreement(by: dict[str, Verdict], name: str, deciders: list[str]) -> list[str]:
    """A fallback test (the tokenizer) beside model tests: what its agreement or disagreement usually means."""
    out = []
    t = by[name]
    if t.label != "inconclusive":
        model_related = any(_related(by[s]) for s in deciders)
        model_independent = all(by[s].label == "independent" for s in deciders)
        if _related(t) and model_independent:
            out.append(f"The tokenizers are related ({t.relation}) but the model shows no inherited weights or "
                       "behaviour: a reused tokenizer is common among independently trained models, and not "
                       "evidence of copying by itself.")
        elif t.label == "independent" and model_related:
            out.append("The tokenizers are unrelated although the model was built from the base: the vocabulary "
                       "was replaced (a re-vocabularied copy), or the embedding rows were paired by id.")
    return out


def _role(r: SignalVerdict, label: str, decided_by: list[str]) -> str:
    """decides | agrees | disagrees | inconclusive | not compared | does not decide | context | not run."""
    signal, v = r.signal, r.verdict
    if not r.ran:
        return "not run"
    if r.role_of() == CONTEXT:
        return "context"
    if v is None:
        return "not compared"
    if signal in decided_by:
        return "decides"
    if v.label == "inconclusive":
        return "not compared" if v.p_value is None else "inconclusive"
    if label == "inconclusive":
        return "does not decide"
    return "agrees" if (v.label in RELATED) == (label in RELATED) else "disagrees"


def _annotate(out: Verdict, readings: list[SignalVerdict], decided_by: list[str], disagreements: list[str]) -> Verdict:
    out.decided_by = list(decided_by)
    out.disagreements = disagreements
    out.signals = [{"signal": r.signal, "label": r.verdict.label if r.verdict else None,
                    "relation": r.verdict.relation if r.verdict else None,
                    "p_value": r.verdict.p_value if r.verdict else None,
                    "role": _role(r, out.label, decided_by),
                    "finding": r.verdict.explanation if r.verdict else r.finding} for r in readings]
    if disagreements:
        out.explanation += " Signals disagree: see below."
    return out
