"""The config/metadata signal: architecture and shapes side by side. Reported, never decisive."""

from __future__ import annotations

from typing import Any

from provenance.arch.view import CanonicalModel

FIELDS = ("hidden", "layers", "heads", "kv_heads", "head_dim", "intermediate", "vocab")


def config_comparison(base: CanonicalModel, cand: CanonicalModel) -> dict[str, Any]:
    """Architecture names and layout fields of both models, and which differ (where both are known)."""
    return config_facts_comparison(config_facts(base), config_facts(cand))


def config_facts(m: CanonicalModel) -> dict[str, Any]:
    """The architecture name and layout fields of one model (a fingerprint keeps the same)."""
    return {"architecture": m.checkpoint.config.get("model_type"), "layout": m.roles.layout.as_dict()}


def config_facts_comparison(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """`config_comparison` from two `config_facts`."""
    la, lb = a["layout"], b["layout"]
    arch = (a["architecture"], b["architecture"])
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
