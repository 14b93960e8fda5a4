"""PyTorch pickles (`pytorch_model*.bin`, `.pt`, `.pth`), read only with `weights_only=True`.

A checkpoint that needs code to unpickle is refused, never executed. Zip-format files are
memory-mapped so that listing shapes costs no tensor reads; one shard is kept open at a time.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from provenance.errors import CorruptFileError, TensorNotFoundError, UnsafePickleError
from provenance.io.base import ReaderMetadata, TensorInfo

_DTYPE_NAMES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """torch.load(weights_only=True), mmapped when possible, flattened to name -> tensor."""
    mmap = zipfile.is_zipfile(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        raise UnsafePickleError(_unsafe_reason(str(exc)), path=path) from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorruptFileError(f"cannot read PyTorch checkpoint ({first}); the file is truncated or "
                               "not a PyTorch pickle", path=path) from None
    flat: dict[str, torch.Tensor] = {}
    _flatten(obj, "", flat)
    if not flat:
        raise CorruptFileError("PyTorch checkpoint holds no tensors", path=path)
    return flat


def _unsafe_reason(message: str) -> str:
    """Name the global the pickle asked for, from torch's weights-only error text."""
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", message) or re.search(r"GLOBAL ([\w.]+)", message)
    what = f" (it references {found.group(1)})" if found else ""
    return (f"pickle needs code execution to load{what}; provenance only reads plain tensors "
            "(weights_only=True). Convert it to safetensors in a sandbox you trust.")


def _flatten(obj: object, prefix: str, out: dict[str, torch.Tensor]) -> None:
    """Collect tensors from nested dicts ({'model': {...}} checkpoints) with dotted names."""
    if isinstance(obj, torch.Tensor):
        out[prefix.rstrip(".")] = obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            _flatten(v, f"{prefix}{k}.", out)


class TorchReader:
    """One or several PyTorch pickle files as one checkpoint."""

    format = "pytorch"

    def __init__(self, files: list[Path], *, expected: dict[str, str] | None = None) -> None:
        self.files = list(files)
        self._infos: dict[str, TensorInfo] = {}
        for path in self.files:
            for name, t in load_state_dict(path).items():
                if name in self._infos:
                    raise CorruptFileError(f"tensor {name!r} appears in both {self._infos[name].file.name} "
                                           f"and {path.name}", path=path)
                dtype = _DTYPE_NAMES.get(t.dtype, str(t.dtype).removeprefix("torch."))
                self._infos[name] = TensorInfo(name, tuple(t.shape), dtype, path, t.numel() * t.element_size())
        if expected:
            missing = sorted(set(expected) - set(self._infos))
            if missing:
                raise CorruptFileError(f"the shard index names {len(missing)} tensors no shard holds, "
                                       f"e.g. {missing[0]!r}", path=self.files[0].parent / "pytorch_model.bin.index.json")
        self.metadata = ReaderMetadata("pytorch", {"mmap": all(zipfile.is_zipfile(p) for p in self.files)})
        self._open: tuple[Path, dict[str, torch.Tensor]] | None = None

    def infos(self) -> dict[str, TensorInfo]:
        return self._infos

    def read(self, name: str) -> torch.Tensor:
        """Return a private copy of one tensor, loading its shard (and only it) if needed."""
        info = self._infos.get(name)
        if info is None:
            raise TensorNotFoundError(name, self._infos, path=self.files[0])
        if self._open is None or self._open[0] != info.file:
            self._open = None
            self._open = (info.file, load_state_dict(info.file))
        return self._open[1][name].clone()

    def close(self) -> None:
        self._open = None
