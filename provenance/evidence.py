"""Evidence items and the verdict: what each signal found, and what they add up to.

Only the weight signal can make a verdict `derived` or `identical`; matching configs or
architecture names are reported but never decide (anyone can copy a config).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from provenance import relation
from provenance.signals.weights import WeightEvidence

DERIVED_P = 1e-6  # combined p-value below which the weights say "derived"
MIN_EFFECT = 0.3  # ... and the mean best-layer profile correlation must reach this
INDEPENDENT_P = 1e-2  # above this (or an effect below NULL_EFFECT) the weights look independent
NULL_EFFECT = 0.15
IDENTICAL_COSINE = 0.9999
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

    signal: str  # weights | tokenizer | activations | config
    statistic: float | None
    p_value: float | None
    finding: str
    details: dict[str, Any] = field(default_factory=dict)
    kind: str = "finding"  # what the item is within its signal (EVIDENCE_KINDS); renderers find items by it


# Item kinds per signal (the JSON schema lists the same): renderers and notebooks select items by these.
EVIDENCE_KINDS = {
    "weights": ("layer test", "alignment", "magnitudes", "bad tensor", "coverage"),
    "tokenizer": ("vocabulary", "missing tokens", "rules", "unreadable", "coverage"),
    "activations": ("neurons", "cka"),
    "config": ("config",),
}


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


def _stats(w: WeightEvidence) -> str:
    """The layer test in one sentence (the relation's sentences come first)."""
    lm = w.layer_map
    return (f"{len(lm.pairs)} of {len(lm.candidate_layers)} candidate layers match base layers far beyond chance "
            f"(mean profile correlation {lm.statistic:.3f} vs {lm.null_mean:.3f} ± {lm.null_sd:.3f} under "
            f"independence, z = {lm.z:.1f}).")


def _copy_kind(change: float | None, shapes: dict[str, Any]) -> str:
    """EXACT when nothing moved (a quantized file against itself too), else what storage change explains it."""
    if (change or 0.0) <= 1e-6 and not shapes["dtypes_differ"]:
        return relation.EXACT
    return relation.QUANTIZED if shapes["quantized"] else relation.DTYPE if shapes["dtypes_differ"] else relation.EXACT


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


def decide(w: WeightEvidence | None, shapes: dict[str, Any]) -> Verdict:
    """Verdict from the weight evidence; `shapes` holds (base, candidate) pairs and flags."""
    if w is None or w.layer_map is None or w.comparable < 2 or len(w.layer_map.candidate_layers) < 2:
        why = "; ".join(w.notes) if w is not None and w.notes else "too few comparable tensors"
        return Verdict("inconclusive", None, 0.0, None, f"The weights could not be compared: {why}.")
    lm = w.layer_map
    sim = w.similarity
    change = sim.get("relative_change")
    if lm.p_value < DERIVED_P and lm.statistic >= MIN_EFFECT:
        rel = relation.describe(w, shapes)
        same = (w.map_facts.get("identity") and not rel.tags and (w.alignment is None or w.alignment.is_identity)
                and (sim.get("direct_cosine") or 0) >= IDENTICAL_COSINE)
        label = "identical" if same and (change or 0) <= shapes["tolerance"] else "derived"
        if label == "identical":
            rel = relation.copy_relation(_copy_kind(change, shapes), change, shapes["tolerance"],
                                         sim.get("direct_cosine"))
        elif not rel.tags:
            rel = relation.Relation([relation.DERIVED], ["The candidate was built from the base; the weight "
                                                         "measures name no more specific change."])
        return Verdict(label, rel.label, confidence(label, lm.p_value), lm.p_value, f"{rel.text} {_stats(w)}")
    if lm.p_value > INDEPENDENT_P or lm.statistic < NULL_EFFECT:
        quiet = sum(1 for *_, p in lm.best if p > 0.01)
        return Verdict("independent", None, 0.0, lm.p_value,
                       f"No candidate layer's weights track a base layer more than independent models do "
                       f"({quiet} of {len(lm.best)} layers within chance; mean profile correlation "
                       f"{lm.statistic:.3f}, z = {lm.z:.1f}).")
    return Verdict("inconclusive", None, 0.0, lm.p_value,
                   f"The weights agree more than chance (z = {lm.z:.1f}) but not enough to call it derived "
                   f"(mean profile correlation {lm.statistic:.3f}).")


def identical_files(v: Verdict, base_sha256: dict[str, str], candidate_sha256: dict[str, str]) -> Verdict:
    """`v` with relation `byte-identical files` when every weight file has its twin (same sha256) on the other side.

    Only an `identical` verdict is changed: the hashes confirm what the weights found.
    """
    a, b = (sorted(d for name, d in h.items() if name.lower().endswith(WEIGHT_FILES)) for h in
            (base_sha256 or {}, candidate_sha256 or {}))
    if v.label != "identical" or not a or a != b or v.relation == relation.BYTES:
        return v
    rel = relation.copy_relation(relation.BYTES, 0.0, 0.0, 1.0)
    signals = [{**s, "relation": rel.label} if s.get("signal") == "weights" and s.get("label") == "identical" else s
               for s in v.signals]
    return Verdict(v.label, rel.label, v.confidence, v.p_value, f"{rel.text} {v.explanation}", list(v.decided_by),
                   signals, list(v.disagreements))


def weight_items(w: WeightEvidence) -> list[Evidence]:
    """Evidence items of the weight signal: the layer test, the alignment, the magnitudes, problems."""
    items: list[Evidence] = []
    lm, al = w.layer_map, w.alignment
    if lm is not None:
        items.append(Evidence("weights", round(lm.statistic, 6), lm.p_value,
                              f"{len(lm.pairs)} of {len(lm.candidate_layers)} candidate layers have residual "
                              f"profiles matching a base layer (z = {lm.z:.1f} against re-paired dimensions).",
                              {"test": "joint permutation of matched residual dimensions", "z": round(lm.z, 3),
                               "p_exact_bound": lm.p_exact, "null_mean": round(lm.null_mean, 6),
                               "null_sd": round(lm.null_sd, 6), "comparable_roles": w.comparable,
                               "per_layer": [{"base": a, "candidate": b, "similarity": round(s, 6),
                                              "p_value": p} for a, b, s, p in lm.best],
                               "similarity_matrix": {"base_layers": list(lm.base_layers),
                                                     "candidate_layers": list(lm.candidate_layers),
                                                     "values": np.round(lm.similarity, 4).tolist()},
                               **w.map_facts}, kind="layer test"))
    if al is not None:
        items.append(Evidence("weights", round(al.quality, 6), None,
                              f"Residual dimensions aligned from {al.n_tokens} embedding rows paired by "
                              f"{al.paired_by}: held-out median correlation {al.quality:.3f}"
                              f"{' (identity map)' if al.is_identity else ''}.", al.summary(), kind="alignment"))
    if w.similarity.get("sketches_compared"):
        items.append(Evidence("weights", w.similarity.get("matched_cosine"), None,
                              f"Matched layers' weights agree at cosine {w.similarity.get('matched_cosine')} "
                              f"(relative change {w.similarity.get('relative_change')}).", dict(w.similarity),
                              kind="magnitudes"))
    for problem in w.problems:
        items.append(Evidence("weights", None, None, problem, {}, kind="bad tensor"))
    if w.notes or any(w.only_in.values()):
        missing = "; ".join(f"{k} only in the {side}" for side, ks in w.only_in.items() for k in ks)
        items.append(Evidence("weights", None, None, "Not compared: " + "; ".join(filter(None, [missing] + w.notes))
                              + ".", {"only_in": w.only_in, "notes": w.notes}, kind="coverage"))
    return items
