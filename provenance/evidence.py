"""Evidence items and the verdict: what each signal found, and what they add up to.

Shared by every signal: the `Evidence` item, the `Verdict`, how confidence follows from a
p-value, and what storage alone explains. Each signal's own rules live in its module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Relative weight change that storage alone explains, per side (summed over the two models):
# rounding of each float type, and typical error of each quantization type (measured: the int8
# ONNX export of all-MiniLM-L6-v2 moves weights 0.8%).
STORAGE_TOLERANCE = {"F64": 1e-6, "F32": 5e-6, "F16": 1e-3, "BF16": 5e-3, "F8_E4M3": 0.05, "F8_E5M2": 0.1,
                     "I8": 0.015, "U8": 0.015, "Q8_0": 0.01, "Q8_1": 0.01, "Q6_K": 0.02, "Q5_0": 0.04,
                     "Q5_1": 0.04, "Q5_K": 0.04, "Q4_0": 0.1, "Q4_1": 0.1, "Q4_K": 0.08, "Q3_K": 0.2,
                     "Q2_K": 0.3}
UNKNOWN_TOLERANCE = 0.3  # other quantization types (IQ*, TQ*, ...)
WEIGHT_FILES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".onnx_data", ".onnx.data", ".h5",
                ".msgpack", ".npz")  # file names whose sha256 decide `byte-identical files`


def storage_tolerance(dtypes: set[str]) -> float:
    """The relative change one model's storage can explain: its coarsest dtype's tolerance."""
    return max((STORAGE_TOLERANCE.get(d, UNKNOWN_TOLERANCE) for d in dtypes), default=UNKNOWN_TOLERANCE)


@dataclass
class Evidence:
    """One finding: a statistic with its meaning under independence, where it sits, in words."""

    signal: str  # a registered signal's name (provenance.signals.registry)
    statistic: float | None
    p_value: float | None
    finding: str
    details: dict[str, Any] = field(default_factory=dict)
    kind: str = "finding"  # what the item is within its signal (its `kinds`); renderers find items by it


@dataclass
class Verdict:
    label: str  # identical | derived | independent | inconclusive
    relation: str | None
    confidence: float
    p_value: float | None
    explanation: str
    decided_by: list[str] = field(default_factory=list)  # the signals whose tests carry the label
    signals: list[dict[str, Any]] = field(default_factory=list)  # each signal's own verdict and its role
    disagreements: list[str] = field(default_factory=list)  # where signals point different ways, in words


def confidence(label: str, p_value: float | None) -> float:
    """1 − p for a label that claims a relation (identical, derived); 0 for independent and inconclusive.

    It says how surely chance agreement between independent models is ruled out. A test that
    finds nothing rules nothing out (a heavily trained derivative can look independent), so
    `independent` and `inconclusive` carry 0; it is never the probability that a label is right.

    >>> confidence("derived", 1e-12), confidence("independent", 0.517), confidence("identical", None)
    (0.999999999999, 0.0, 0.0)
    """
    if label not in ("identical", "derived") or p_value is None:
        return 0.0
    return round(1.0 - p_value, 12)


def identical_files(v: Verdict, base_sha256: dict[str, str], candidate_sha256: dict[str, str]) -> Verdict:
    """`v` with relation `byte-identical files` when every weight file has its twin (same sha256) on the other side.

    Only an `identical` verdict is changed: the hashes confirm what the weights found.
    """
    from provenance import relation

    a, b = (sorted(d for name, d in h.items() if name.lower().endswith(WEIGHT_FILES)) for h in
            (base_sha256 or {}, candidate_sha256 or {}))
    if v.label != "identical" or not a or a != b or v.relation == relation.BYTES:
        return v
    rel = relation.copy_relation(relation.BYTES, 0.0, 0.0, 1.0)
    signals = [{**s, "relation": rel.label} if s.get("signal") == "weights" and s.get("label") == "identical" else s
               for s in v.signals]
    return Verdict(v.label, rel.label, v.confidence, v.p_value, f"{rel.text} {v.explanation}", list(v.decided_by),
                   signals, list(v.disagreements))


