"""`inspect`: what a checkpoint is — format, architecture, canonical roles, tokenizer, hashes.

Returns plain data (`InspectResult`, a dataclass with `to_dict()` and `roles_frame()`),
never prints; the CLI formats it.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from provenance.arch.view import open_model
from provenance.errors import ProvenanceError
from provenance.vocab.load import vocabulary_of

SCHEMA = "provenance.inspect/1"


@dataclass
class RoleRow:
    """One canonical role and where it comes from."""

    role: str
    name: str
    shape: list[int]
    dtype: str
    tied_to: str | None = None
    inferred: bool = False
    part: str | None = None  # e.g. "rows 0:576 of 1728" for a fused tensor


@dataclass
class InspectResult:
    """Everything `provenance inspect` reports, as plain data."""

    spec: str
    path: str
    format: str
    architecture: str | None
    definition: str | None
    roles_how: str
    roles_inferred: bool
    layout: dict[str, int | None]
    num_layers: int
    parameters: int
    num_tensors: int
    dtypes: dict[str, int]
    roles: list[RoleRow]
    tokenizer: dict[str, Any]
    sha256: dict[str, str]
    unmapped: list[dict[str, Any]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; `roles` is an object: canonical role -> original name, shape, dtype."""
        d = asdict(self)
        d["roles"] = {r.role: {k: v for k, v in asdict(r).items() if k != "role"} for r in self.roles}
        return {"schema": SCHEMA, **d}

    def roles_frame(self) -> Any:
        """The role table as a pandas DataFrame (one row per role)."""
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.roles])


def inspect_model(spec: str | os.PathLike[str], *, hashes: bool = True) -> InspectResult:
    """Open `spec` lazily and describe it; `hashes=False` skips the sha256 pass over the files."""
    with open_model(spec) as model:
        ckpt, rm = model.checkpoint, model.roles
        infos = ckpt.tensors
        rows = [RoleRow(role=s.role, name=s.tensor, shape=list(s.shape), dtype=s.dtype, tied_to=s.tied_to,
                        inferred=s.inferred, part=_part(s, infos[s.tensor].shape)) for s in rm.roles.values()]
        return InspectResult(
            spec=str(spec), path=str(ckpt.root), format=ckpt.format, architecture=_architecture(ckpt.config),
            definition=rm.definition, roles_how=rm.how, roles_inferred=rm.inferred, layout=rm.layout.as_dict(),
            num_layers=rm.num_layers, parameters=ckpt.parameter_count(), num_tensors=len(infos),
            dtypes=dict(Counter(i.dtype for i in infos.values()).most_common()), roles=rows,
            tokenizer=_tokenizer(ckpt), sha256=ckpt.sha256() if hashes else {},
            unmapped=[{"name": n, "shape": list(infos[n].shape), "dtype": infos[n].dtype} for n in rm.unmapped],
            ignored=list(rm.ignored), missing=list(rm.missing), notes=list(rm.notes))


def _part(src: Any, stored: tuple[int, ...]) -> str | None:
    """Describe which slice of a fused or expert tensor a role is."""
    bits = []
    if src.expert_index is not None:
        bits.append(f"expert {src.expert_index} of {stored[0]}")
    if src.cut is not None:
        c = src.cut
        per = "" if c.groups == 1 else f" in each of {c.groups} groups"
        bits.append(f"dim {c.dim} [{c.start}:{c.stop}]{per}")
    bits += [t for t in src.pre] + [f"{n}({a})" for n, a in src.post]
    return ", ".join(bits) or None


def _architecture(config: dict[str, Any]) -> str | None:
    archs = config.get("architectures") or []
    return config.get("model_type") or (archs[0] if archs else None)


def _tokenizer(ckpt: Any) -> dict[str, Any]:
    """Tokenizer files beside the weights, or the vocabulary a GGUF carries."""
    out: dict[str, Any] = {"found": bool(ckpt.tokenizer_files or ckpt.embedded_tokenizer),
                           "files": sorted(ckpt.tokenizer_files)}
    emb = ckpt.embedded_tokenizer
    if emb:
        out["embedded"] = {"source": ckpt.format, "model": emb.get("model"), "pre": emb.get("pre"),
                           "tokens": len(emb.get("tokens") or []), "merges": len(emb.get("merges") or []),
                           "chat_template": bool(emb.get("chat_template"))}
    if out["found"]:
        try:
            vocab = vocabulary_of(ckpt)
            out["canonical"] = vocab.summary() if vocab is not None else None
        except ProvenanceError as exc:  # a broken tokenizer file must not hide the weights
            out["canonical"] = {"error": str(exc)}
    return out

