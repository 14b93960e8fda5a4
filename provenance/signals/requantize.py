"""Redo a storage step on a tensor: a dtype cast, a GGUF quantization, an int8 export — as the tools do it.

Each function returns the values the other side would hold if it were this tensor stored that way
(dequantized to float32 where the scheme is lossy), so a reproduction test compares values, which
agree only where both the codes and the block or channel scales agree.

>>> x = torch.tensor([[0.5, -1.0] * 16])
>>> torch.equal(gguf_round_trip(x, "Q8_0"), gguf_round_trip(gguf_round_trip(x, "Q8_0"), "Q8_0"))
True
"""

from __future__ import annotations

import functools

import numpy as np
import torch

FLOAT_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
PRECISION = {"F64": 4, "F32": 3, "F16": 2, "BF16": 1}  # a cast goes from the higher to the lower
INT8_DTYPES = ("I8", "U8")


@functools.cache
def can_requantize(qtype_name: str) -> bool:
    """Whether the installed gguf package can quantize `qtype_name` (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 in gguf 0.19;
    not the K-quants), probed on one block."""
    import gguf
    import gguf.quants

    qtype = getattr(gguf.GGMLQuantizationType, qtype_name, None)
    if qtype is None or qtype_name in FLOAT_DTYPES:
        return False
    block, _ = gguf.GGML_QUANT_SIZES[qtype]
    try:
        gguf.quants.quantize(np.zeros((1, block), dtype=np.float32), qtype)
    except NotImplementedError:
        return False
    return True


def gguf_round_trip(x: torch.Tensor, qtype_name: str) -> torch.Tensor | None:
    """`x` quantized with gguf's reference quantizer (llama.cpp's `quantize_row_*_ref` rounding) along its
    last dimension and dequantized again, as float32; None when gguf cannot quantize the type or the rows
    are not whole blocks."""
    import gguf
    import gguf.quants

    if not can_requantize(qtype_name):
        return None
    qtype = getattr(gguf.GGMLQuantizationType, qtype_name)
    block, _ = gguf.GGML_QUANT_SIZES[qtype]
    if x.dim() == 0 or x.shape[-1] % block or x.numel() == 0:
        return None
    arr = np.ascontiguousarray(x.detach().to(torch.float32).cpu().numpy())
    out = gguf.quants.dequantize(gguf.quants.quantize(arr, qtype), qtype)
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).reshape(x.shape)


def int8_round_trips(x: torch.Tensor, rows: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """`x` through each common int8 weight export, dequantized: symmetric absmax/127 per row, per column and
    per tensor (torch and optimum-style exports), and onnxruntime's dynamic uint8 per tensor (scale
    (max − min)/255 over a range that includes 0, zero point round(−min/scale)). Rounding is half to even,
    as numpy's and torch's. Scales come from the whole of `x`; with `rows`, only those rows are returned
    (a 30522-row embedding costs 0.9 s whole)."""
    x = x.detach().to(torch.float32)
    xs = x if rows is None else x[rows]
    out: dict[str, torch.Tensor] = {}
    ax = x.abs()
    if x.dim() == 2:
        per_row = ax.amax(dim=1, keepdim=True)
        out["int8 symmetric per row (absmax/127)"] = _symmetric(xs, per_row if rows is None else per_row[rows])
        out["int8 symmetric per column (absmax/127)"] = _symmetric(xs, ax.amax(dim=0, keepdim=True))
    out["int8 symmetric per tensor (absmax/127)"] = _symmetric(xs, ax.amax())
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = np.float32((hi - lo) / 255.0)
    if scale > 0:
        zp = float(np.clip(np.round(-lo / scale), 0, 255))
        q = torch.clamp(torch.round(xs / torch.tensor(scale)) + zp, 0, 255)
        out["uint8 asymmetric per tensor (onnxruntime dynamic)"] = (q - zp) * torch.tensor(scale)
    return out


def _symmetric(x: torch.Tensor, absmax: torch.Tensor) -> torch.Tensor:
    scale = absmax / 127
    safe = torch.where(scale == 0, torch.ones_like(scale), scale)
    return torch.clamp(torch.round(x / safe), -127, 127) * scale


def cast(x: torch.Tensor, dtype_name: str) -> torch.Tensor:
    """`x` cast to the float type `dtype_name` with torch's rounding (to nearest, ties to even)."""
    return x.to(FLOAT_DTYPES[dtype_name])
