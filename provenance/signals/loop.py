"""The one loop over signals: which run on a pair, each measured, then one verdict over their readings.

`compare` (checkpoints or tokenizers), fingerprint compare, `identify` and `audit` all end here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from provenance.errors import InvalidParameterError, SourceKindError
from provenance.signals import registry
from provenance.signals.base import (
    CONTEXT,
    FALLBACK_TEST,
    FINGERPRINTS,
    MODEL_TEST,
    TOKENIZERS,
    Signal,
)

if TYPE_CHECKING:
    from provenance.evidence import Evidence, Verdict
    from provenance.signals.pair import Pair

_RANK = {MODEL_TEST: 0, FALLBACK_TEST: 1, CONTEXT: 2}  # the verdict lists signals in this order


@dataclass
class Outcome:
    """Every selected signal's items, the combined verdict, the layer map and the raw measurements."""

    evidence: list[Evidence]
    verdict: Verdict
    layer_map: list[list[float]]
    raw: dict[str, Any] = field(default_factory=dict)


def select(kind: str, asked: tuple[str, ...] | None, why: str = "") -> tuple[Signal, ...]:
    """The signals to run on a pair of this kind: the asked ones (refused with one line when one cannot read
    the pair), else the defaults that can. `why` names the input that makes the pair this kind."""
    if asked is None:
        able = tuple(s for s in registry.signals() if kind in s.reads)
        chosen = tuple(s for s in able if s.default) or able  # an endpoint: whatever can read one
        if not chosen:
            raise SourceKindError(f"{why}: no registered signal reads {kind} (registered: "
                                  f"{', '.join(registry.names())})")
        return chosen
    chosen = tuple(s for s in registry.signals() if s.name in asked)
    refused = [s for s in chosen if kind not in s.reads]
    if refused:
        readable = [s.name for s in registry.signals() if kind in s.reads]
        allowed = f"{readable[0]!r}" if len(readable) == 1 else ", ".join(readable[:-1]) + f" or {readable[-1]}"
        if not readable:
            raise SourceKindError(f"{why}: no registered signal reads {kind} (registered: "
                                  f"{', '.join(registry.names())})")
        if kind == TOKENIZERS:
            when = f"an input is a tokenizer without weights ({why})"
        elif kind == FINGERPRINTS:
            when = f"an input is a fingerprint ({refused[0].refusal})"
        else:
            when = f"the candidate is {kind[:-1]} ({why}; {refused[0].refusal})"
        raise InvalidParameterError("signals", "compare", f"{allowed} when {when}", ",".join(s.name for s in refused))
    return chosen


def run(pair: Pair, selected: tuple[Signal, ...]) -> Outcome:
    """Measure the pair with each selected signal (in report order), then aggregate their readings."""
    from provenance.aggregate import SignalVerdict, aggregate

    readings = {s.name: s.measure(pair) for s in selected}
    evidence = [e for r in readings.values() for e in r.items]
    order = sorted(registry.signals(), key=lambda s: (_RANK[s.role], s.order, s.name))
    verdict = aggregate([SignalVerdict(s.name, readings[s.name].verdict, readings[s.name].finding, role=s.role)
                         if s.name in readings else SignalVerdict(s.name, None, ran=False, role=s.role)
                         for s in order])
    layer_map = next((r.layer_map for s in order if (r := readings.get(s.name)) is not None and r.layer_map), [])
    return Outcome(evidence, verdict, layer_map, {name: r.raw for name, r in readings.items()})
