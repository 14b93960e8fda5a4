"""The config signal: architecture names and layout side by side. Reported, never decisive."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from provenance.evidence import Evidence
from provenance.report.blocks import Section, Table, Text
from provenance.signals.base import CHECKPOINTS, CONTEXT, FINGERPRINTS, Reading

if TYPE_CHECKING:
    from provenance.signals.pair import Pair

NAME = "config"


class ConfigSignal:
    """Metadata anyone can copy: shown for context, never a reason for a verdict."""

    name = NAME
    order = 40
    role = CONTEXT
    default = True
    reads = frozenset({CHECKPOINTS, FINGERPRINTS})
    refusal = "the config needs a model on both sides"
    kinds = ("config",)
    details: dict[str, dict[str, Any]] = {}
    title = "Config"

    def measure(self, pair: Pair) -> Reading:
        from provenance.signals.config import (
            config_comparison,
            config_facts_comparison,
            config_finding,
        )

        if pair.fingerprints is not None:
            fa, fb = pair.fingerprints
            cmp = config_facts_comparison(fa.meta["config_facts"], fb.meta["config_facts"])
        else:
            cmp = config_comparison(*(pair.models or ()))
        finding = config_finding(cmp)
        return Reading(NAME, [Evidence(NAME, None, None, finding, cmp, kind="config")], None, finding=finding, raw=cmp)

    def section(self, result: dict[str, Any]) -> Section | None:
        from provenance.report.sections import item
        from provenance.report.words import words

        e = item(result, NAME, "config")
        if e is None:
            return None
        d = e["details"]
        a, b = d.get("base") or {}, d.get("candidate") or {}
        arch = list(d.get("architecture") or [None, None]) + [None, None]
        differ = set(d.get("differ") or [])
        rows = [["architecture", arch[0], arch[1], ""]]
        rows += [[words(f), a.get(f), b.get(f), "≠" if f in differ else ""] for f in list(a) + [k for k in b if k not in a]]
        return Section(NAME, self.title, [Text(e["finding"]), Table(["field", "base", "candidate", "differs"], rows)])


SIGNAL = ConfigSignal()
