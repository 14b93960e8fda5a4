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
from provenance.arch.view import CanonicalModel
from provenance.io.convert import to_f32
from provenance.signals.stream import RoleStream

INPUT_KEYS = ("attn.q", "attn.k", "attn.v", "mlp.gate", "mlp.up")
OUTPUT_KEYS = ("attn.o", "mlp.down")
PROFILE_KEYS = INPUT_KEYS + OUTPUT_KEYS
SKETCH_DIMS = 96
SKETCH_KEYS = ("attn.q", "mlp.gate", "mlp.up")  # enough for magnitudes; a 7B sketch stays ~150 MB
# Where q/k/v were told apart by file order alone (inferred roles), k and v are sketched too, so
# the magnitudes can pair the base's q with whichever of them it really is.
INFERRED_SKETCH_KEYS = SKETCH_KEYS + ("attn.k", "attn.v")
# A comparison also keeps the MLP's output rows: with the input rows they give two views of each
# neuron, which the relabelled-neuron test matches separately (fingerprints keep their own sketches).
COMPARE_EXTRA_KEYS = ("mlp.down",)


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


def gated(sketches: dict) -> bool:
    """Whether sketches keyed (layer, role key) come from a gated MLP (they hold gate rows)."""
    return any(key == "mlp.gate" for _, key in sketches)


CHUNK_ELEMENTS = 1 << 18  # 2 MiB of float64: conversion and reduction stay in the CPU cache


def _norms_sq(w: torch.Tensor, axis: int) -> torch.Tensor:
    """Sum of squares along `axis` in float64 (axis 0: per column, 1: per row).

    Float64 makes the result independent of the summation order that the BLAS, the SIMD width
    or the thread count picks: the float16 profiles a fingerprint stores then come out bit-identical
    on every machine (in float32, a residual permutation alone changed 90% of MiniLM's column norms).
    On the CPU the tensor is widened block by block into small reused buffers (no full copy).
    """
    if w.device.type != "cpu":
        w = w.double()
        return (w * w).sum(dim=axis)
    spec = "ij,ij->j" if axis == 0 else "ij,ij->i"
    cols = max(w.shape[1], 1)
    rows = max(1, CHUNK_ELEMENTS // cols)
    s32 = np.empty(rows * cols, np.float32) if w.dtype != torch.float32 else None
    s64 = np.empty(rows * cols, np.float64)
    parts = []
    acc = np.zeros(w.shape[1], np.float64) if axis == 0 else None
    for r0 in range(0, w.shape[0], rows):
        blk = w[r0:r0 + rows]
        b32 = blk.numpy() if s32 is None else to_f32(blk, s32).numpy()
        b64 = s64[:b32.size].reshape(b32.shape)
        np.copyto(b64, b32)
        if acc is not None:
            acc += np.einsum(spec, b64, b64)
        else:
            parts.append(np.einsum(spec, b64, b64))
    return torch.from_numpy(acc if acc is not None else np.concatenate(parts))


def _side(w: torch.Tensor, key: str, idx: torch.Tensor, sgn: torch.Tensor, g: torch.Tensor | None,
          sel: torch.Tensor, sketch_keys: tuple[str, ...] = SKETCH_KEYS,
          sketch_norm: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """(profile over the matched residual dims, sketch [rows, SKETCH_DIMS] or None); `sketch_norm` False keeps
    the sketch's rows as stored (where the feeding norm may be misidentified)."""
    if key in INPUT_KEYS:
        prof = _norms_sq(w, 0).sqrt()[idx]
        if g is not None:
            prof = prof * g.abs()
        sketch = None
        if key in sketch_keys:
            sketch = w[:, idx[sel]].float() * sgn[sel] * (g[sel] if g is not None and sketch_norm else 1.0)
    else:
        prof = _norms_sq(w, 1).sqrt()[idx]
        sketch = (w[idx[sel], :].float() * sgn[sel, None]).t() if key in sketch_keys else None
    to_np = (lambda t: t.to(torch.float16).cpu().numpy().copy()) if sketch is not None else None
    return prof.cpu().numpy(), (to_np(sketch) if to_np else None)


def _projected_side(w: torch.Tensor, key: str, proj: torch.Tensor, g: torch.Tensor | None, sel: torch.Tensor,
                    sketch_keys: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray | None]:
    """`_side` for a rotated residual stream: the effective weights carried into the base's coordinates."""
    if key in INPUT_KEYS:
        wp = ((w.float() * g[None, :]) if g is not None else w.float()) @ proj  # [x, k]
        prof, sketch = wp.norm(dim=0), (wp[:, sel] if key in sketch_keys else None)
    else:
        wp = proj.T @ w.float()  # [k, x]
        prof, sketch = wp.norm(dim=1), (wp[sel, :].t() if key in sketch_keys else None)
    return prof.double().cpu().numpy(), (sketch.to(torch.float16).cpu().numpy().copy() if sketch is not None else None)


Visitor = Callable[[str, str, torch.Tensor, "torch.Tensor | None"], None]


def compute_profiles(model: CanonicalModel, dims: np.ndarray, signs: np.ndarray, *, device: str = "cpu",
                     progress: Callable[[int], None] | None = None, sketches: bool = True,
                     visit: Visitor | None = None, file_order: bool = True,
                     projection: np.ndarray | None = None, sketch_norms: bool = True) -> Profiles:
    """Stream every profiled role of one model; `dims`/`signs` select and orient matched residual dims.

    `visit(role, key, tensor, norm_weight)` sees each finite tensor while it is in memory (the
    fingerprint builder takes its own sketches there); `sketches=False` keeps none here.
    `file_order` reads the roles in the order their bytes lie in the files, so a stream that also
    hashes the files reads each byte once; the results and their order are the same either way.
    `projection` ([h, k]) carries a rotated residual stream into the base's k coordinates instead of
    selecting `dims`. `sketch_norms=False` leaves the feeding norms out of the sketches (both models of a
    pair where either's norms were told apart by file order only: a wrong norm would scramble the rows).
    """
    rm = model.roles
    dev = torch.device(device)
    idx = torch.from_numpy(np.ascontiguousarray(dims)).long().to(dev)
    sgn = torch.from_numpy(np.ascontiguousarray(signs)).float().to(dev)
    proj = None if projection is None else torch.from_numpy(np.ascontiguousarray(projection, np.float32)).to(dev)
    if proj is not None:
        dims = np.arange(proj.shape[1])
        idx = torch.arange(proj.shape[0], device=dev)  # the norms are read whole: they act before the rotation
    sel = torch.from_numpy(np.linspace(0, len(dims) - 1, num=min(SKETCH_DIMS, len(dims))).round()
                           .astype(np.int64)).to(dev)
    out = Profiles(layers=list(rm.layers), values=np.full((len(rm.layers), len(PROFILE_KEYS), len(dims)), np.nan))
    norms: dict[str, torch.Tensor | None] = {}

    def norm_weight(role: str | None) -> torch.Tensor | None:
        if role is None or role not in rm.roles:
            return None
        if role not in norms:
            g = model.tensor(role, device=dev, dtype="float32")
            ok = g.ndim == 1 and g.numel() > int(idx.max()) and bool(torch.isfinite(g).all())
            norms[role] = g[idx] if ok else None
        return norms[role]

    order = [(li, ki, f"layers.{layer}.{key}") for li, layer in enumerate(rm.layers)
             for ki, key in enumerate(PROFILE_KEYS) if f"layers.{layer}.{key}" in rm.roles]
    where = {role: (li, ki) for li, ki, role in order}
    if file_order:
        rank = {name: i for i, name in enumerate(model.checkpoint.tensors)}
        order = sorted(order, key=lambda t: rank.get(rm.roles[t[2]].tensor, len(rank)))
    problems: dict[tuple[int, int], str] = {}
    for role, w in RoleStream(model, device)([role for _, _, role in order]):
        li, ki = where[role]
        key = PROFILE_KEYS[ki]
        out.tensors += 1
        if progress:
            progress(1)
        keys = () if not sketches else (INFERRED_SKETCH_KEYS if rm.roles[role].inferred else SKETCH_KEYS) \
            + COMPARE_EXTRA_KEYS
        g = norm_weight(feeding_norm(rm, rm.layers[li], key))
        prof, sketch = (_side(w, key, idx, sgn, g, sel, keys, sketch_norms) if proj is None
                        else _projected_side(w, key, proj, g, sel, keys))
        if not np.isfinite(prof).all():
            problems[li, ki] = f"{role}: contains NaN or Inf values; not scored"
        elif not prof.any():
            problems[li, ki] = f"{role}: all zeros; not scored"
        else:
            out.values[li, ki] = prof
            if visit is not None:
                visit(role, key, w, g)
            if sketch is not None:
                out.sketches[(rm.layers[li], key)] = sketch
    out.problems += [problems[k] for k in sorted(problems)]
    out.sketches = dict(sorted(out.sketches.items(), key=lambda kv: where[f"layers.{kv[0][0]}.{kv[0][1]}"]))
    read_norms = [g for g in norms.values() if g is not None]
    if read_norms:
        out.constant_norms = sum(1 for g in read_norms if bool((g == g[0]).all())) / len(read_norms)
    return out
