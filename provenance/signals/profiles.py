"""Per-layer residual-side profiles and sketches, streamed one tensor at a time.

For a matrix that reads the residual stream (q, k, v, gate, up: [x, h]) the profile is the
norm of each residual column of the *effective* weight W·diag(g) (g = the norm that feeds
it); for a matrix that writes it (o, down: [h, x]) the norm of each residual row. A profile
does not change when neurons or heads are permuted or mixed orthogonally, when a tensor is
rescaled (Q·a with K/a, up·a with down/a), when a norm is folded into the next matrix, or
when the dtype changes; residual permutations are undone by the embedding alignment.
A sketch keeps the effective weights of a few matched residual dims, for direct similarity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from provenance.arch.rolemap import RoleMap
from provenance.signals.align import ResidualAlignment

INPUT_KEYS = ("attn.q", "attn.k", "attn.v", "mlp.gate", "mlp.up")
OUTPUT_KEYS = ("attn.o", "mlp.down")
PROFILE_KEYS = INPUT_KEYS + OUTPUT_KEYS
SKETCH_DIMS = 96
SKETCH_KEYS = ("attn.q", "mlp.gate", "mlp.up")  # enough for magnitudes; a 7B sketch stays ~150 MB


@dataclass
class Profiles:
    """One model's profiles on the matched residual dims: values[layer, key, dim]."""

    layers: list[int]
    values: np.ndarray  # [L, len(PROFILE_KEYS), k], NaN where a role is absent
    sketches: dict[tuple[int, str], np.ndarray] = field(default_factory=dict)  # [rows, SKETCH_DIMS]
    problems: list[str] = field(default_factory=list)  # NaN/Inf or all-zero tensors, skipped
    tensors: int = 0
    constant_norms: float | None = None  # share of the feeding norms whose weights are all equal


def feeding_norm(rm: RoleMap, layer: int, key: str) -> str | None:
    """The norm whose weight multiplies the input of `key` in `layer` (None if unknown)."""
    if key in OUTPUT_KEYS:
        return None
    if rm.norm == "post":  # BERT: q/k/v read the previous layer's output norm; up reads norm1
        if key.startswith("attn."):
            prev = [i for i in rm.layers if i < layer]
            return f"layers.{prev[-1]}.norm2" if prev else "embed_norm"
        return f"layers.{layer}.norm1"
    return f"layers.{layer}.norm1" if key.startswith("attn.") else f"layers.{layer}.norm2"


def _check(t: torch.Tensor, role: str, problems: list[str]) -> bool:
    if not bool(torch.isfinite(t).all()):
        problems.append(f"{role}: contains NaN or Inf values; not scored")
        return False
    if not bool(t.any()):
        problems.append(f"{role}: all zeros; not scored")
        return False
    return True


def compute_profiles(read: Callable[[str], torch.Tensor], rm: RoleMap, dims: np.ndarray, signs: np.ndarray,
                     *, progress: Callable[[int], None] | None = None) -> Profiles:
    """Stream every profiled role of one model; `dims`/`signs` select and orient matched residual dims."""
    idx = torch.from_numpy(np.ascontiguousarray(dims)).long()
    sgn = torch.from_numpy(np.ascontiguousarray(signs)).float()
    sel = torch.from_numpy(np.linspace(0, len(dims) - 1, num=min(SKETCH_DIMS, len(dims))).round().astype(np.int64))
    out = Profiles(layers=list(rm.layers), values=np.full((len(rm.layers), len(PROFILE_KEYS), len(dims)), np.nan))
    norms: dict[str, torch.Tensor | None] = {}

    def norm_weight(role: str | None) -> torch.Tensor | None:
        if role is None or role not in rm.roles:
            return None
        if role not in norms:
            g = read(role).float().cpu()
            norms[role] = g[idx.cpu()] if g.ndim == 1 and g.numel() > int(idx.max()) and bool(torch.isfinite(g).all()) else None
        return norms[role]

    for li, layer in enumerate(rm.layers):
        for ki, key in enumerate(PROFILE_KEYS):
            role = f"layers.{layer}.{key}"
            if role not in rm.roles:
                continue
            w = read(role).float()
            if idx.device != w.device:
                idx, sgn, sel = idx.to(w.device), sgn.to(w.device), sel.to(w.device)
            out.tensors += 1
            if progress:
                progress(1)
            if not _check(w, role, out.problems):
                continue
            side = w[:, idx] * sgn if key in INPUT_KEYS else (w[idx, :] * sgn[:, None]).t()  # [x, k]
            g = norm_weight(feeding_norm(rm, layer, key))
            if g is not None:
                side = side * g.to(side.device)
            out.values[li, ki] = side.norm(dim=0).cpu().numpy()
            if key in SKETCH_KEYS:
                out.sketches[(layer, key)] = side[:, sel].to(torch.float16).cpu().numpy()
    read_norms = [g for g in norms.values() if g is not None]
    if read_norms:
        out.constant_norms = sum(1 for g in read_norms if bool((g == g[0]).all())) / len(read_norms)
    return out
