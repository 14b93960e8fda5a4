"""The registered signals: every module `provenance/signals/*_signal.py` that defines `SIGNAL`.

Signal modules import nothing heavy at load time, so the CLI can list the signals (and refuse
an unknown one) without importing torch.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from importlib import resources

from provenance.signals.base import CONTEXT, FALLBACK_TEST, MODEL_TEST, ROLES, Signal

SUFFIX = "_signal.py"


@lru_cache(maxsize=1)
def signals() -> tuple[Signal, ...]:
    """Every registered signal, in report order."""
    names = sorted(p.name[:-3] for p in resources.files("provenance.signals").iterdir() if p.name.endswith(SUFFIX))
    found = [importlib.import_module(f"provenance.signals.{n}").SIGNAL for n in names]
    for s in found:
        if s.role not in ROLES:
            raise ValueError(f"signal {s.name!r} declares role {s.role!r}, not one of {ROLES}")
    return tuple(sorted(found, key=lambda s: (s.order, s.name)))


def names() -> tuple[str, ...]:
    """The --signals names, in report order."""
    return tuple(s.name for s in signals())


def defaults() -> tuple[str, ...]:
    """The signals run when none are asked for."""
    return tuple(s.name for s in signals() if s.default)


def get(name: str) -> Signal:
    """The signal called `name` (KeyError when none is)."""
    for s in signals():
        if s.name == name:
            return s
    raise KeyError(name)


def role(name: str) -> str:
    """The signal's role in the aggregation; an unregistered name is context (it never decides)."""
    try:
        return get(name).role
    except KeyError:
        return CONTEXT


def model_tests() -> tuple[str, ...]:
    """Calibrated tests on the models, in order of directness (the first positive one leads)."""
    return tuple(s.name for s in signals() if s.role == MODEL_TEST)


def fallback_tests() -> tuple[str, ...]:
    return tuple(s.name for s in signals() if s.role == FALLBACK_TEST)


def evidence_kinds() -> dict[str, tuple[str, ...]]:
    """Item kinds per signal (the JSON schema's enum is built from the same)."""
    return {s.name: tuple(s.kinds) for s in signals()}


def combining_text() -> str:
    """How the signals' readings combine, in one paragraph (every report prints it)."""
    model = ", then ".join(model_tests()) or "none"
    fallback = " and ".join(fallback_tests())
    context = ", ".join(s.name for s in signals() if s.role == CONTEXT)
    return (f"Only calibrated tests decide ({model}; the {fallback} only when no model was compared). Their "
            "p-values are never multiplied: the combined p-value is a Bonferroni bound, min(1, k × smallest p) over "
            "the k deciding signals, valid however dependent they are. A positive test is not undone by another that "
            f"finds nothing; the disagreement is shown instead. Metadata ({context or 'config'}, architecture names) "
            "never decides.")
