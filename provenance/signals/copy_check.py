"""`identical` or `derived` for a related pair, and the reproduction's evidence item.

`identical` claims that nothing was done to the weights beyond a cast or a quantization. Where the
layers and residual dimensions map one to one, checkpoints settle it with the reproduction test
(`reproduce`); fingerprints keep no tensors, so there the sketches must agree within the dtypes'
rounding (CAST_TOLERANCE, floored at the sketches' own SKETCH_NOISE), never within a quantization's
error, and the evidence says the reproduction was not checked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from provenance import relation
from provenance.evidence import Evidence
from provenance.signals.reproduce import Reproduction

IDENTICAL_COSINE = 0.9999  # fingerprints: the sketches' cosine a copy must reach
# Relative change a cast explains, per stored dtype (relative rounding per element: 2^-24, 2^-11, 2^-8);
# quantized and unknown dtypes explain nothing here (a quantization's error is as large as a fine-tune's).
CAST_TOLERANCE = {"F64": 1e-6, "F32": 1e-6, "F16": 1e-3, "BF16": 4e-3}
EXACT_TOLERANCE = 1e-6
SKETCH_NOISE = 1e-3  # what fingerprint sketches differ by on equal values (measured 0.03%: the Q4_1 GGUF of
# SmolLM2 against its bit-equal dequantized copy, the sketches made from two formats)

Reproduce = Callable[[], Reproduction | None]
"""Runs the reproduction test once (memoized) and returns it; None where the pair has no tensors to read."""


def one_to_one(w: Any, rel: relation.Relation) -> bool:
    """Layers map by identity, residual dimensions unpermuted, and nothing but moved weights tagged."""
    return (bool(w.map_facts.get("identity")) and set(rel.tags) <= {relation.TRAINED}
            and (w.alignment is None or w.alignment.is_identity))


def cast_tolerance(dtypes: tuple[str | None, str | None]) -> float:
    """What the two sides' dtypes explain of a relative change without reading tensors.

    >>> cast_tolerance(("F32", "BF16")), cast_tolerance(("F32", "Q8_0")), cast_tolerance(("F32", "F32"))
    (0.004, 1e-06, 1e-06)
    """
    return max(CAST_TOLERANCE.get(d or "", EXACT_TOLERANCE) for d in dtypes)


def settle(w: Any, shapes: dict[str, Any], rel: relation.Relation) -> tuple[str, relation.Relation]:
    """(label, relation) of a pair the weights call related, `rel` being `relation.describe`'s reading.

    `shapes["reproduce"]` (set by the weight signal) runs the reproduction test; `shapes["dtypes"]` holds
    the two sides' common dtypes for the fingerprint rule.
    """
    sim = w.similarity
    change, cosine = sim.get("relative_change"), sim.get("direct_cosine")
    if not one_to_one(w, rel):
        return "derived", rel if rel.tags else _derived_only()
    check: Reproduce | None = shapes.get("reproduce")
    rep = check() if check is not None else None
    if rep is None:  # fingerprints: sketches only
        tol = max(cast_tolerance(shapes.get("dtypes", (None, None))), SKETCH_NOISE)
        if (cosine or 0) >= IDENTICAL_COSINE and (change or 0) <= tol:
            return "identical", relation.copy_relation(_kind(change, shapes), change, tol, cosine)
        if (change or 0) <= shapes["tolerance"]:  # within the storage's error: a copy or a light fine-tune
            return "derived", relation.unreproducible_relation(change, "fingerprints keep no tensors")
        return "derived", relation.trained_relation(change, [], None, checked=False)
    if rep.verdict == "reproduced":
        schemes = sorted({t.scheme for t in rep.tensors if t.ok})
        return "identical", relation.copy_relation(rep.kind, change, shapes["tolerance"], cosine,
                                                   reproduced="; ".join(schemes))
    if rep.verdict == "not reproducible":
        whys = sorted({t.why for t in rep.tensors if t.why})
        return "derived", relation.unreproducible_relation(change, "; ".join(whys) or "no tensor to compare")
    where = [(t.role, t.relative_change) for t in rep.moved]
    return "derived", relation.trained_relation(change, where, rep.lora_rank)


def _derived_only() -> relation.Relation:
    return relation.Relation([relation.DERIVED], [("The candidate was built from the base; the weight measures "
                                                   "name no more specific change.")])


def _kind(change: float | None, shapes: dict[str, Any]) -> str:
    """EXACT when nothing moved (a quantized file against itself too), else what storage change explains it."""
    if (change or 0.0) <= EXACT_TOLERANCE and not shapes["dtypes_differ"]:
        return relation.EXACT
    return relation.QUANTIZED if shapes["quantized"] else relation.DTYPE if shapes["dtypes_differ"] else relation.EXACT


def reproduction_item(rep: Reproduction | None) -> Evidence:
    """The evidence item of the reproduction test; for fingerprints, that it was not checked."""
    if rep is None:
        return Evidence("weights", None, None, "Reproduction was not checked: fingerprints keep no tensors, so "
                        "`identical` needs the weight sketches to agree within the dtypes' rounding.",
                        {"verdict": "not checked"}, kind="reproduction")
    tried = [t for t in rep.tensors if t.reproduced is not None]
    low = min((t.reproduced for t in tried if t.reproduced is not None), default=None)
    best = max((t.reproduced for t in rep.moved if t.reproduced is not None), default=0.0)
    finding = {"reproduced": f"Redoing the storage step on {len(tried)} sampled tensors of the base reproduces the "
                             f"candidate's values (at least {low:.2%} of each)." if low is not None else "",
               "not reproduced": f"No cast or quantization of the base reproduces the candidate: of {len(tried)} "
                                 f"sampled tensors, {len(rep.moved)} differ (at most {best:.2%} of "
                                 "a tensor's values reproduced).",
               "not reproducible": "The storage step between the two cannot be redone: "
                                   + "; ".join(sorted({t.why for t in rep.tensors if t.why})) + "."}[rep.verdict]
    return Evidence("weights", low, None, finding, rep.details(), kind="reproduction")
