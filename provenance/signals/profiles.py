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

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from provenance import fastpath
from provenance.arch.rolemap import RoleMap
from provenance.arch.view import CanonicalModel
from provenance.halfcast import to_half
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
_BLOCKED_DTYPES = (torch.bfloat16, torch.float16, torch.float32)


def _norms_sq(w: torch.Tensor, axis: int) -> torch.Tensor:
    """Sum of squares along `axis` in float64 (axis 0: per column, 1: per row): the plain reference.

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


def _stored(w: torch.Tensor) -> np.ndarray:
    """A CPU tensor's stored values as numpy, no copy (bfloat16 as its uint16 bit patterns)."""
    return w.view(torch.int16).numpy().view(np.uint16) if w.dtype == torch.bfloat16 else w.numpy()


def _widened(blk: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Stored values (from `_stored`) as float32 in `out`, exactly (bfloat16: a 16-bit shift); float32 as is."""
    if blk.dtype == np.float32:
        return blk
    out = out[:blk.size].reshape(blk.shape)
    if blk.dtype == np.uint16:
        np.left_shift(blk, 16, out=out.view(np.uint32), dtype=np.uint32)
    else:
        np.copyto(out, blk)
    return out


def _blocked_sums(raw: np.ndarray, axis: int, cols: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """`_norms_sq` bit for bit on `_stored` values (the same blocks, widening and sums), and the float32
    values of columns `cols` picked from each block while it is in the CPU cache: one pass, numpy only
    (no torch thread pool is woken from the compute threads)."""
    n_rows, n_cols = raw.shape
    spec = "ij,ij->j" if axis == 0 else "ij,ij->i"
    rows = max(1, CHUNK_ELEMENTS // max(n_cols, 1))  # the blocks of `_norms_sq`
    size = min(n_rows, rows) * n_cols  # a small tensor takes small buffers
    s32, s64 = np.empty(size, np.float32), np.empty(size, np.float64)
    sums = np.zeros(n_cols) if axis == 0 else np.empty(n_rows)
    picked = np.empty((n_rows, len(cols)), np.float32) if cols is not None else None
    for r0 in range(0, n_rows, rows):
        b32 = _widened(raw[r0:r0 + rows], s32)
        if picked is not None:
            np.take(b32, cols, axis=1, out=picked[r0:r0 + len(b32)])
        b64 = s64[:b32.size].reshape(b32.shape)
        np.copyto(b64, b32)
        if axis == 0:
            sums += np.einsum(spec, b64, b64)
        else:
            sums[r0:r0 + len(b32)] = np.einsum(spec, b64, b64)
    return sums, picked


def _side(w: torch.Tensor, key: str, idx: torch.Tensor, sgn: torch.Tensor, g: torch.Tensor | None,
          sel: torch.Tensor, sketch_keys: tuple[str, ...] = SKETCH_KEYS,
          sketch_norm: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """(profile over the matched residual dims, sketch [rows, SKETCH_DIMS] or None); `sketch_norm` False keeps
    the sketch's rows as stored (where the feeding norm may be misidentified). The plain reference of
    `_side_blocked`."""
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


def blocked(w: torch.Tensor) -> bool:
    """Whether `_side_blocked` takes this tensor (the fast path, a 2-D CPU tensor of a widened float dtype)."""
    return fastpath.enabled() and w.device.type == "cpu" and w.dtype in _BLOCKED_DTYPES and w.ndim == 2


def _sqrt(x: np.ndarray) -> np.ndarray:
    """torch's float64 square root, as the plain path takes it (numpy's differs in the last bit for some x)."""
    return torch.from_numpy(x).sqrt().numpy()


def _side_blocked(w: torch.Tensor, key: str, idx: np.ndarray, sgn: np.ndarray, g: np.ndarray | None,
                  sel: np.ndarray, sketch_keys: tuple[str, ...], sketch_norm: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """`_side` in numpy, block by block: the same float64 profile and float16 sketch, bit for bit (IEEE
    arithmetic rounds each operation the same whichever library does it; the test suite checks)."""
    raw = _stored(w)
    with np.errstate(all="ignore"):  # NaN/Inf weights are reported by the caller, as on the plain path
        if key in INPUT_KEYS:
            sums, picked = _blocked_sums(raw, 0, idx[sel] if key in sketch_keys else None)
            prof = _sqrt(sums)[idx]
            if g is not None:
                prof = prof * np.abs(g)
            sketch = None
            if picked is not None:
                sketch = picked * sgn[sel] * (g[sel] if g is not None and sketch_norm else np.float32(1.0))
        else:
            prof = _sqrt(_blocked_sums(raw, 1, None)[0])[idx]
            sketch = None
            if key in sketch_keys:
                rows = raw[idx[sel]]
                sketch = (_widened(rows, np.empty(rows.size, np.float32)) * sgn[sel, None]).T
        return prof, (to_half(np.ascontiguousarray(sketch)) if sketch is not None else None)


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
COMPUTE_WORKERS = 2  # tensors reduced at once on the mapped CPU path (numpy releases the GIL)


def profile_order(model: CanonicalModel, *, file_order: bool = True) -> list[str]:
    """The profiled roles in the order `compute_profiles` reads them (where their bytes lie, if `file_order`)."""
    rm = model.roles
    order = [f"layers.{layer}.{key}" for layer in rm.layers for key in PROFILE_KEYS
             if f"layers.{layer}.{key}" in rm.roles]
    if file_order:
        rank = {name: i for i, name in enumerate(model.checkpoint.tensors)}
        order = sorted(order, key=lambda role: rank.get(rm.roles[role].tensor, len(rank)))
    return order


def _done(value: tuple[np.ndarray, np.ndarray | None]) -> Future:
    """A Future already holding `value`, for the path that computes in line."""
    f: Future = Future()
    f.set_result(value)
    return f


def compute_profiles(model: CanonicalModel, dims: np.ndarray, signs: np.ndarray, *, device: str = "cpu",
                     progress: Callable[[int], None] | None = None, sketches: bool = True,
                     visit: Visitor | None = None, file_order: bool = True,
                     projection: np.ndarray | None = None, sketch_norms: bool = True,
                     stream: RoleStream | None = None,
                     sketched: Callable[[int, str, np.ndarray], None] | None = None) -> Profiles:
    """Stream every profiled role of one model; `dims`/`signs` select and orient matched residual dims.

    `visit(role, key, tensor, norm_weight)` sees each finite tensor while it is in memory (the
    fingerprint builder takes its own sketches there); `sketches=False` keeps none here.
    `file_order` reads the roles in the order their bytes lie in the files, so a stream that also
    hashes the files reads each byte once; the results and their order are the same either way.
    `projection` ([h, k]) carries a rotated residual stream into the base's k coordinates instead of
    selecting `dims`. `sketch_norms=False` leaves the feeding norms out of the sketches (both models of a
    pair where either's norms were told apart by file order only: a wrong norm would scramble the rows).
    `stream`: a `RoleStream` of this model already started on `profile_order(model, file_order=...)`.
    `sketched(layer, key, sketch)` hears of each sketch as it is kept (to start work on it early).
    On the mapped CPU path, COMPUTE_WORKERS tensors are reduced at once (numpy passes only; a `projection`
    needs matrix products, whose bits may depend on how many threads run them, so it stays in line);
    results, `visit` calls and their order are those of the one-at-a-time loop.
    """
    job = _ProfileJob(model, dims, signs, device, sketches, projection, sketch_norms)
    stream = stream or RoleStream(model, device)
    workers = COMPUTE_WORKERS if stream.mapped and projection is None else 0  # products stay on one thread
    pending: deque[tuple[str, torch.Tensor, torch.Tensor | None, Any]] = deque()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="provenance-profile") as pool:
        for role, w in stream(profile_order(model, file_order=file_order)):
            job.out.tensors += 1
            if progress:
                progress(1)
            g, call = job.prepare(role)
            pending.append((role, w, g, pool.submit(call, w) if workers else _done(call(w))))
            while len(pending) > workers:
                job.record(*pending.popleft(), visit, stream, sketched)
        while pending:
            job.record(*pending.popleft(), visit, stream, sketched)
    return job.finish()


class _ProfileJob:
    """One model's profiles under way: the matched dims, the norms read so far, the results kept so far."""

    def __init__(self, model: CanonicalModel, dims: np.ndarray, signs: np.ndarray, device: str, sketches: bool,
                 projection: np.ndarray | None, sketch_norms: bool) -> None:
        rm = self.rm = model.roles
        self.model, self.sketches, self.sketch_norms = model, sketches, sketch_norms
        dev = self.dev = torch.device(device)
        self.idx = torch.from_numpy(np.ascontiguousarray(dims)).long().to(dev)
        self.sgn = torch.from_numpy(np.ascontiguousarray(signs)).float().to(dev)
        self.proj = None if projection is None else torch.from_numpy(
            np.ascontiguousarray(projection, np.float32)).to(dev)
        if self.proj is not None:
            dims = np.arange(self.proj.shape[1])
            self.idx = torch.arange(self.proj.shape[0], device=dev)  # the norms are read whole: before the rotation
        self.sel = torch.from_numpy(np.linspace(0, len(dims) - 1, num=min(SKETCH_DIMS, len(dims))).round()
                                    .astype(np.int64)).to(dev)
        self.out = Profiles(layers=list(rm.layers),
                            values=np.full((len(rm.layers), len(PROFILE_KEYS), len(dims)), np.nan))
        self.where = {f"layers.{layer}.{key}": (li, ki) for li, layer in enumerate(rm.layers)
                      for ki, key in enumerate(PROFILE_KEYS)}
        self.norms: dict[str, torch.Tensor | None] = {}
        self.problems: dict[tuple[int, int], str] = {}

    def norm_weight(self, role: str | None) -> torch.Tensor | None:
        """The feeding norm's weights at the matched dims (read once), None if absent or unusable."""
        if role is None or role not in self.rm.roles:
            return None
        if role not in self.norms:
            g = self.model.tensor(role, device=self.dev, dtype="float32")
            ok = g.ndim == 1 and g.numel() > int(self.idx.max()) and bool(torch.isfinite(g).all())
            self.norms[role] = g[self.idx] if ok else None
        return self.norms[role]

    def prepare(self, role: str) -> tuple[torch.Tensor | None, Callable[[torch.Tensor], Any]]:
        """(the feeding norm, the computation of `role`'s profile and sketch from its tensor)."""
        li, ki = self.where[role]
        key = PROFILE_KEYS[ki]
        keys = () if not self.sketches else (INFERRED_SKETCH_KEYS if self.rm.roles[role].inferred
                                             else SKETCH_KEYS) + COMPARE_EXTRA_KEYS
        g = self.norm_weight(feeding_norm(self.rm, self.rm.layers[li], key))
        if self.proj is not None:
            return g, lambda w: _projected_side(w, key, self.proj, g, self.sel, keys)
        arrays = (self.idx.numpy(), self.sgn.numpy(), None if g is None else g.numpy(), self.sel.numpy()) \
            if self.dev.type == "cpu" else None
        return g, lambda w: (_side_blocked(w, key, *arrays, keys, self.sketch_norms) if arrays and blocked(w)
                             else _side(w, key, self.idx, self.sgn, g, self.sel, keys, self.sketch_norms))

    def record(self, role: str, w: torch.Tensor, g: torch.Tensor | None, result: Any, visit: Visitor | None,
               stream: RoleStream, sketched: Callable[[int, str, np.ndarray], None] | None) -> None:
        """Keep one role's profile and sketch (or its problem), let `visit` see it, release its tensor."""
        prof, sketch = result.result()
        li, ki = self.where[role]
        key = PROFILE_KEYS[ki]
        if not np.isfinite(prof).all():
            self.problems[li, ki] = f"{role}: contains NaN or Inf values; not scored"
        elif not prof.any():
            self.problems[li, ki] = f"{role}: all zeros; not scored"
        else:
            self.out.values[li, ki] = prof
            if visit is not None:
                visit(role, key, w, g)
            if sketch is not None:
                self.out.sketches[(self.rm.layers[li], key)] = sketch
                if sketched is not None:
                    sketched(self.rm.layers[li], key, sketch)
        stream.release(role)

    def finish(self) -> Profiles:
        """The profiles, problems and sketches in layer order, and the share of constant feeding norms."""
        out = self.out
        out.problems += [self.problems[k] for k in sorted(self.problems)]
        out.sketches = dict(sorted(out.sketches.items(), key=lambda kv: self.where[f"layers.{kv[0][0]}.{kv[0][1]}"]))
        read_norms = [g for g in self.norms.values() if g is not None]
        if read_norms:
            out.constant_norms = sum(1 for g in read_norms if bool((g == g[0]).all())) / len(read_norms)
        return out
