"""The interface every format reader implements: list tensors cheaply, read one at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch


@dataclass(frozen=True)
class TensorInfo:
    """What a file says about one tensor, without reading its data.

    `name` is the name a reader exposes; for ONNX exports that anonymise weights it is the
    name recovered from the graph, and `original_name` keeps what the file calls it.
    `shape` is in PyTorch order (for `nn.Linear` weights: [d_out, d_in]).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str  # storage type as the file states it: "F32", "BF16", "Q4_K", "I8" ...
    file: Path
    nbytes: int
    original_name: str | None = None
    quantized: bool = False  # True when reading dequantizes (GGUF quants, ONNX int8)

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class TensorSpan:
    """Where one tensor's stored bytes lie in its file; `period`: bytes per element (or quantization block)."""

    name: str
    offset: int  # absolute, in the file
    nbytes: int
    period: int

    @property
    def end(self) -> int:
        return self.offset + self.nbytes


@dataclass
class ReaderMetadata:
    """Format-level facts a reader found: e.g. GGUF key/values or ONNX producer."""

    format: str
    values: dict[str, Any] = field(default_factory=dict)


_NON_FLOAT = ("I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64", "BOOL")
_BUFFER_SUFFIXES = ("position_ids", "inv_freq", "attn.bias", "attn.masked_bias", "_float_tensor")


def is_buffer(info: TensorInfo) -> bool:
    """Integer/bool tensors and well-known non-weight buffers (rotary inv_freq, causal masks)."""
    name = info.name
    return (info.dtype in _NON_FLOAT and not info.quantized) or any(
        name == s or name.endswith("." + s) for s in _BUFFER_SUFFIXES)


class TensorReader(Protocol):
    """One open checkpoint format. Readers never hold more than one tensor's data."""

    format: str
    files: list[Path]
    metadata: ReaderMetadata

    def infos(self) -> dict[str, TensorInfo]:
        """Every tensor, by exposed name, in file order."""
        ...

    def read(self, name: str) -> torch.Tensor:
        """One tensor on the CPU: stored dtype for plain formats, float32 when dequantized."""
        ...

    def close(self) -> None:
        """Release file handles."""
        ...
