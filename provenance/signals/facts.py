"""What the relation wording needs to know about each side, from a model or a fingerprint.

A fingerprint stores `model_facts` when it is made, so a model and its fingerprint give the
same facts and the same wording.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from provenance.evidence import storage_tolerance
from provenance.relation import tensors_renamed

if TYPE_CHECKING:
    from provenance.arch.view import CanonicalModel


def model_facts(m: CanonicalModel) -> dict[str, Any]:
    """Sizes, dtype, quantization, role tensor names and storage tolerance of one model."""
    def dim(role_suffix: str, axis: int) -> int | None:
        """A size read off the first role with this suffix (configs can be missing or wrong)."""
        src = next((s for r, s in m.roles.roles.items() if r == role_suffix or r.endswith("." + role_suffix)), None)
        return src.shape[axis] if src is not None and len(src.shape) > axis else None

    common = Counter(s.dtype for s in m.roles.roles.values()).most_common(1)
    return {"format": m.checkpoint.format, "hidden": dim("embed", 1), "intermediate": dim("mlp.up", 0),
            "vocab": dim("embed", 0), "inferred": m.roles.inferred,
            "role_tensors": {r: s.tensor for r, s in m.roles.roles.items()},
            "dtype": common[0][0] if common else None,
            "quantized": any(i.quantized for i in m.checkpoint.tensors.values()),
            "tolerance": storage_tolerance({s.dtype for r, s in m.roles.roles.items() if r.startswith("layers.")})}


def shape_facts(fa: dict[str, Any], fb: dict[str, Any]) -> dict[str, Any]:
    """(base, candidate) sizes and flags the relation wording needs, from two `model_facts`."""
    return {"hidden": (fa["hidden"], fb["hidden"]), "intermediate": (fa["intermediate"], fb["intermediate"]),
            "vocab": (fa["vocab"], fb["vocab"]), "renamed": tensors_renamed(fa, fb),
            "quantized": bool(fa["quantized"] or fb["quantized"]), "dtypes_differ": fa["dtype"] != fb["dtype"],
            "tolerance": fa["tolerance"] + fb["tolerance"]}
