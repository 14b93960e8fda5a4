"""The config/metadata signal: architecture and shapes side by side. Reported, never decisive."""

from __future__ import annotations

from typing import Any

from provenance.arch.view import CanonicalModel

FIELDS = ("hidden", "layers", "heads", "kv_heads", "head_dim", "intermediate", "vocab")


def config_comparison(base: CanonicalModel, cand: CanonicalModel) -> dict[str, Any]:
    """Architecture names and layout fields of both models, and which differ (where both are known)."""
    la, lb = base.roles.layout.as_dict(), cand.roles.layout.as_dict()
    arch = (base.checkpoint.config.get("model_type"), cand.checkpoint.config.get("model_type"))
    differ = [f for f in FIELDS if la.get(f) is not None and lb.get(f) is not None and la.get(f) != lb.get(f)]
    return {"architecture": list(arch), "base": {f: la.get(f) for f in FIELDS},
            "candidate": {f: lb.get(f) for f in FIELDS}, "differ": differ}


def config_finding(cmp: dict[str, Any]) -> str:
    a, b = cmp["architecture"]
    if not cmp["differ"]:
        return (f"Same architecture ({a or 'unnamed'} / {b or 'unnamed'}) and identical shapes; "
                "metadata alone proves nothing.")
    return (f"Architectures {a or 'unnamed'} / {b or 'unnamed'}; shapes differ in "
            f"{', '.join(cmp['differ'])}.")
