"""The `Signal` protocol: what one kind of evidence needs, measures, concludes and shows.

Compare, fingerprint compare, identify and audit run one loop over the registered signals
(`provenance.signals.registry`); the verdict aggregation, the JSON schema's enums and the
report sections all read these declarations, so a new signal is one module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from provenance.evidence import Evidence, Verdict
    from provenance.report.blocks import Section
    from provenance.signals.pair import Pair

# A signal's role in the combined verdict (provenance.aggregate prints the rules).
MODEL_TEST = "model test"  # a calibrated test on the models themselves: decides
FALLBACK_TEST = "fallback test"  # a calibrated test that decides only when no model test ran (the tokenizer)
CONTEXT = "context"  # reported, never decides (metadata anyone can copy)
ROLES = (MODEL_TEST, FALLBACK_TEST, CONTEXT)

# The kinds of input a signal can read on both sides (a pair is of the kind of its poorer side).
CHECKPOINTS = "checkpoints"  # weights (and tokenizers) on disk
FINGERPRINTS = "fingerprints"  # at least one side is a fingerprint file
TOKENIZERS = "tokenizers"  # at least one side is a tokenizer without weights
ENDPOINTS = "endpoints"  # the candidate is a model behind an API (the base: a checkpoint or a fingerprint)
PAIR_KINDS = (CHECKPOINTS, FINGERPRINTS, TOKENIZERS, ENDPOINTS)


@dataclass
class Reading:
    """What one signal measured on one pair: its evidence items, its own verdict, its raw measurement."""

    signal: str
    items: list[Evidence] = field(default_factory=list)
    verdict: Verdict | None = None  # None: nothing to conclude from (or a context signal)
    finding: str = ""  # for signals without a verdict of their own: what they saw
    raw: Any = None  # the signal's own measurement object, for notebooks (fresh runs only)
    layer_map: list[list[float]] | None = None  # [base, candidate, similarity] rows, when the signal matches layers
    ran: bool = True


class Signal(Protocol):
    """One kind of evidence. Modules named `*_signal.py` in `provenance.signals` define `SIGNAL`."""

    name: str  # the --signals name and the evidence items' `signal`
    order: int  # position in reports and in the aggregation (lower first)
    role: str  # one of ROLES
    default: bool  # run when --signals is not given
    reads: frozenset[str]  # the PAIR_KINDS it can measure
    refusal: str  # why it cannot run on the other kinds, in a few words (for the one-line error)
    kinds: tuple[str, ...]  # the `kind` of every evidence item it emits
    details: dict[str, dict[str, Any]]  # item kind -> JSON Schema of that item's `details` (the schema uses them)
    title: str  # its report section's title

    def measure(self, pair: Pair) -> Reading:
        """Measure the pair; a ProvenanceError for inputs it cannot read."""
        ...

    def section(self, result: dict[str, Any]) -> Section | None:
        """Its report section, from a result dict (`provenance.compare/1`), or None when it has nothing to show."""
        ...
