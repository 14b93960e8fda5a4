"""Is the candidate the base after a cast or a quantization we can redo? A test on a sample of tensors.

`identical` claims that nothing was done to the weights beyond storage. Sketch magnitudes cannot
back that claim (a 0.3% fine-tune sits inside a quantization's error), so for a pair whose layers
and residual dimensions map one to one, this module reads a seeded sample of matched tensors from
both checkpoints and redoes the storage step: a cast of the higher-precision side to the lower one's
dtype, or a quantization of the float side with the other side's scheme (`requantize`). Values must
come out the same: a cast in all but CAST_EXACT's ties, a quantization in CODES_EQUAL of the
elements (same code and same block or channel scale).

Measured on SmolLM2-135M (9 sampled tensors each): a copy, its fp16 and bf16 casts, its Q8_0 and
Q4_0 round trips stored as F32, and the shipped Q4_1 GGUF against its dequantized copy reproduce
100.00% of values in every tensor; all-MiniLM-L6-v2 against its int8 ONNX export 100.00% (symmetric
per-row absmax/127, the file's own scheme). What moved reproduces at most 15% under the best scheme:
the 30-step fine-tune 1.7-7.5% (tensors moved 0.35-1.4%), the fine-tune as Q8_0 GGUF 2.3-14.6%, a
rank-8 LoRA merge moving q/v/o/up/down by 0.3% 10.3-15.0% on those matrices, 1% noise 2-5%. A cast
must reproduce all but CAST_EXACT's ties, a quantization CODES_EQUAL = 99.5%: far from both.
Cost: 0.2-1.8 s on a warm cache against ~15 s for the whole comparison (2 shared CPU cores).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from provenance.arch.view import CanonicalModel
from provenance.signals import requantize as rq

CAST_EXACT = 1 - 1e-4  # fraction of elements a cast or a copy must reproduce (rounding ties aside)
CODES_EQUAL = 0.995  # fraction a quantization must reproduce
SAMPLE = 8  # layer tensors checked, spread over the layers, plus the embedding
MAX_ROWS = 4096  # rows checked of a larger tensor (block schemes work row by row)
KINDS = ("attn.q", "attn.k", "attn.v", "attn.o", "mlp.gate", "mlp.up", "mlp.down")
LATTICES = ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1")  # quantization round trips stored as float
SCREEN_ROWS = 64  # rows a quantization round trip must reproduce before all rows are tried
LOW_RANK_ENERGY = 0.9  # a delta is low rank when this share of its energy sits in ...
LOW_RANK_SHARE = 1 / 16  # ... at most this share of its singular values
RANK_ROWS = 256  # rows of a delta whose rank is measured
RANK_FLOOR = 0.01  # singular values above this fraction of the largest count towards the measured rank


@dataclass
class TensorCheck:
    """One sampled tensor: which storage step was redone and how much of it came out the same."""

    role: str
    scheme: str  # e.g. "cast F32 -> BF16", "GGUF Q8_0", "Q4_0 round trip stored as F32"
    reproduced: float | None  # fraction of elements reproduced; None: the scheme cannot be redone
    max_abs_diff: float | None  # largest |redone − stored| (0 for an exact reproduction)
    relative_change: float  # ‖candidate − base‖ / ‖base‖
    delta_rank: int | None = None  # singular values of candidate − base above RANK_FLOOR of the largest
    energy_rank: int | None = None  # singular values holding LOW_RANK_ENERGY of the delta's energy
    why: str = ""  # why the scheme cannot be redone
    _n: int = field(default=0, repr=False)  # the measured delta's full rank

    @property
    def ok(self) -> bool:
        need = CAST_EXACT if self.scheme.startswith(("cast", "same storage", "dequantized")) else CODES_EQUAL
        return self.reproduced is not None and self.reproduced >= need

    @property
    def low_rank(self) -> bool:
        """Whether the delta holds LOW_RANK_ENERGY of its energy in LOW_RANK_SHARE of its singular values."""
        return self.energy_rank is not None and self.energy_rank <= max(1, int(self._n * LOW_RANK_SHARE))


@dataclass
class Reproduction:
    """The per-tensor checks and what they add up to: `reproduced`, `not reproduced` or `not reproducible`."""

    tensors: list[TensorCheck]
    seconds: float

    @property
    def verdict(self) -> str:
        tried = [t for t in self.tensors if t.reproduced is not None]
        if any(not t.ok for t in tried):
            return "not reproduced"
        return "reproduced" if tried and 2 * len(tried) >= len(self.tensors) else "not reproducible"

    @property
    def kind(self) -> str:
        """What storage step the reproduced tensors took: exact, cast or quantized (relation's vocabulary)."""
        from provenance import relation

        schemes = [t.scheme for t in self.tensors if t.ok]
        if any(not s.startswith(("same storage", "cast")) for s in schemes):  # dequantized copies too
            return relation.QUANTIZED
        return relation.DTYPE if any(s.startswith("cast") for s in schemes) else relation.EXACT

    @property
    def moved(self) -> list[TensorCheck]:
        """The tensors that did not reproduce, most changed first."""
        return sorted((t for t in self.tensors if t.reproduced is not None and not t.ok),
                      key=lambda t: -t.relative_change)

    @property
    def lora_rank(self) -> int | None:
        """The measured rank of the update when every moved matrix's delta is low rank (a merged LoRA)."""
        ranks = [t for t in self.moved if t.role != "embed" and t.energy_rank is not None]
        if not ranks or not all(t.low_rank for t in ranks):
            return None
        return int(np.median([t.delta_rank for t in ranks]))

    def details(self) -> dict[str, Any]:
        """Plain JSON for the evidence item."""
        rows = [{k: v for k, v in asdict(t).items() if not k.startswith("_")} for t in self.tensors]
        for r in rows:
            for k in ("reproduced", "max_abs_diff", "relative_change"):
                r[k] = None if r[k] is None else float(f"{r[k]:.6g}")
        return {"verdict": self.verdict, "tensors": rows, "cast_threshold": CAST_EXACT,
                "quantization_threshold": CODES_EQUAL, "lora_rank": self.lora_rank}  # no seconds: same inputs, same JSON


def sample_roles(base: CanonicalModel, cand: CanonicalModel, *, seed: int = 0, n: int = SAMPLE) -> list[str]:
    """Up to `n` matrix roles present in both models with one shape, spread over the layers (seeded), and the
    embedding.

    Layers are taken evenly from first to last; the role kind of each is a seeded permutation of KINDS.
    """
    ra, rb = base.roles.roles, cand.roles.roles
    layers = sorted(set(base.roles.layers) & set(cand.roles.layers))
    kinds = [KINDS[i] for i in np.random.default_rng(seed).permutation(len(KINDS))]
    picked: list[str] = []
    if layers:
        at = sorted({layers[round(x)] for x in np.linspace(0, len(layers) - 1, min(n, len(layers)))})
        for j, layer in enumerate(at):
            for k in range(len(kinds)):  # the j-th kind, or the next one this layer has
                role = f"layers.{layer}.{kinds[(j + k) % len(kinds)]}"
                if role in ra and role in rb and ra[role].shape == rb[role].shape:
                    picked.append(role)
                    break
    if "embed" in ra and "embed" in rb and ra["embed"].shape == rb["embed"].shape:
        picked.append("embed")
    return picked


def reproduce(base: CanonicalModel, cand: CanonicalModel, *, seed: int = 0, device: str = "cpu") -> Reproduction:
    """Read the sampled tensors of both models and redo the storage step that separates them."""
    t0 = time.perf_counter()
    checks: list[TensorCheck] = []
    for role in sample_roles(base, cand, seed=seed):
        a, b = base.tensor(role, device=device).cpu(), cand.tensor(role, device=device).cpu()
        sa, sb = (_storage(m, role) for m in (base, cand))
        rows = None
        if {sa[0], sb[0]} & set(rq.INT8_DTYPES):  # int8 scales span the whole tensor: compared on sampled rows
            rows = _row_index(a, seed)
        else:
            a, b = _rows(a, seed), _rows(b, seed)
        failed = any(c.reproduced is not None and not c.ok for c in checks)
        checks.append(check_tensor(role, a, b, sa, sb, search=not failed, rows=rows))
    return Reproduction(checks, time.perf_counter() - t0)


def _storage(m: CanonicalModel, role: str) -> tuple[str, bool]:
    """(stored dtype, whether the block structure of the stored tensor survives into the canonical one)."""
    src = m.roles.roles[role]
    intact = "transpose" not in src.pre and (src.cut is None or src.cut.dim == 0)
    return src.dtype, intact


def _rows(t: torch.Tensor, seed: int) -> torch.Tensor:
    """At most MAX_ROWS rows of a matrix, seeded, in order."""
    rows = _row_index(t, seed)
    return t if rows is None else t[rows]


def _row_index(t: torch.Tensor, seed: int) -> torch.Tensor | None:
    """The MAX_ROWS rows `_rows` keeps of a larger matrix (seeded, in order); None where it keeps all."""
    if t.dim() != 2 or t.shape[0] <= MAX_ROWS:
        return None
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(t.shape[0], generator=g)[:MAX_ROWS].sort().values


def check_tensor(role: str, a: torch.Tensor, b: torch.Tensor, sa: tuple[str, bool], sb: tuple[str, bool], *,
                 search: bool = True, rows: torch.Tensor | None = None) -> TensorCheck:
    """Redo the storage step between base `a` (stored as `sa`) and candidate `b` (`sb`) on one tensor.

    Two float tensors of one dtype that differ are tried against quantization round trips unless `search` is
    off (`reproduce` turns it off once a tensor has failed: the verdict is settled, the rest only measures).
    With `rows`, values are compared on those rows only; int8 scales still come from the whole tensor.
    """
    (da, ia), (db, ib) = sa, sb
    af, bf = a.to(torch.float32), b.to(torch.float32)
    change = float((bf - af).norm() / af.norm().clamp_min(1e-30))
    fa, fb = da in rq.FLOAT_DTYPES, db in rq.FLOAT_DTYPES
    if a.shape != b.shape:
        return TensorCheck(role, "shapes differ", None, None, change, why=f"{list(a.shape)} vs {list(b.shape)}")
    whole = a if fa else b  # the float side, whole, for int8 scales
    if rows is not None:
        a, b, af, bf = a[rows], b[rows], af[rows], bf[rows]
    if fa and fb:
        if da == db:
            best = _score(f"same storage ({da})", a, b)
            if search and not best[1] >= CAST_EXACT:
                best = max(best, _lattices(af, bf, da, db), key=lambda s: s[1])
        else:
            hi, lo, low = (a, b, db) if rq.PRECISION[da] > rq.PRECISION[db] else (b, a, da)
            best = _score(f"cast {da if lo is b else db} -> {low}", rq.cast(hi, low), lo)
    elif fa or fb:
        hi, lo, scheme, intact = (a, bf, db, ib) if fa else (b, af, da, ia)
        best = _score(f"dequantized copy of {scheme}", hi, lo)
        if best[1] < CAST_EXACT:
            if scheme in rq.INT8_DTYPES:
                rts = rq.int8_round_trips(whole, rows)
                best = max((_score(name, r, lo) for name, r in rts.items()), key=lambda s: s[1])
            elif not rq.can_requantize(scheme) or not intact:
                why = (f"gguf cannot quantize {scheme}" if intact else
                       f"the {scheme} blocks do not survive the role's transpose or cut")
                return _finish(TensorCheck(role, f"GGUF {scheme}", None, None, change, why=why), af, bf)
            else:
                best = _screened(f"GGUF {scheme}", lambda x: rq.gguf_round_trip(x, scheme), hi, lo)
    elif da == db:
        best = _score(f"same storage ({da})", af, bf)
    else:
        return _finish(TensorCheck(role, f"{da} vs {db}", None, None, change,
                                   why=f"both sides are lossy ({da} vs {db})"), af, bf)
    return _finish(TensorCheck(role, best[0], best[1], best[2], change), af, bf)


def _lattices(a: torch.Tensor, b: torch.Tensor, da: str, db: str) -> tuple[str, float, float | None]:
    """The best quantization round trip stored as float, either way round (the first that reproduces)."""
    best: tuple[str, float, float | None] = ("no quantization round trip", -1.0, None)
    for q in LATTICES:
        for scheme, x, y in ((f"{q} round trip stored as {db}", a, b), (f"{q} round trip stored as {da} (base)", b, a)):
            found = _screened(scheme, lambda t, q=q: rq.gguf_round_trip(t, q), x, y)
            best = max(best, found, key=lambda s: s[1])
            if best[1] >= CODES_EQUAL:
                return best
    return best


def _screened(scheme: str, redo: Callable[[torch.Tensor], torch.Tensor | None], x: torch.Tensor,
              stored: torch.Tensor) -> tuple[str, float, float | None]:
    """`_score` of `redo(x)` on SCREEN_ROWS rows, then on every row only when those reproduce (a fine-tune
    fails on the first rows: the fraction reported is theirs)."""
    found = _score(scheme, redo(x[:SCREEN_ROWS]), stored[:SCREEN_ROWS])
    if found[1] >= CODES_EQUAL and x.shape[0] > SCREEN_ROWS:
        found = _score(scheme, redo(x), stored)
    return found


def _score(scheme: str, redone: torch.Tensor | None, stored: torch.Tensor) -> tuple[str, float, float | None]:
    """(scheme, fraction of elements equal, max |redone − stored|); fraction −1 when it could not be redone."""
    if redone is None:
        return scheme, -1.0, None
    x, y = redone.to(torch.float32), stored.to(torch.float32)
    if x.numel() == 0:
        return scheme, 1.0, 0.0
    return scheme, float((x == y).float().mean()), float((x - y).abs().max())


def _finish(c: TensorCheck, a: torch.Tensor, b: torch.Tensor) -> TensorCheck:
    """Measure the delta's rank where a matrix did not reproduce (a merged LoRA is low rank)."""
    if c.reproduced is not None and c.reproduced < 0:
        c.reproduced, c.why = None, c.why or "the rows are not whole quantization blocks"
    if c.ok or c.role == "embed" or a.dim() != 2 or min(a.shape) < 16 or not torch.isfinite(b - a).all():
        return c
    d = (b - a)[:RANK_ROWS]  # a rank-r update keeps rank r on any rows; a full-rank one stays far above the limit
    gram = d.T @ d if d.shape[0] >= d.shape[1] else d @ d.T  # its eigenvalues are the squared singular values
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 256 x 256 problem: more threads only contend (measured 3 ms vs up to 2.6 s)
    try:
        s2 = torch.linalg.eigvalsh(gram).flip(0).clamp_min(0)  # faster than an SVD on a CPU
    finally:
        torch.set_num_threads(threads)
    if s2[0] <= 0:
        return c
    energy = torch.cumsum(s2, 0) / s2.sum()
    c.energy_rank = int(torch.searchsorted(energy, torch.tensor(LOW_RANK_ENERGY, dtype=energy.dtype))) + 1
    c.delta_rank = int((s2 > RANK_FLOOR ** 2 * s2[0]).sum())
    c._n = min(d.shape)
    return c
