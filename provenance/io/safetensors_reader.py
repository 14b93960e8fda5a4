"""Lazy safetensors: parse and check the header ourselves, read one tensor with pread or a mapping.

`read` reads into a fresh buffer, so resident memory stays bounded by the largest tensor however
many tensors are read; the page cache does the rest. A stream may instead view tensors in a
read-only mapping of the file (`read_mapped`, see `provenance.io.mapped`), which saves the copy
and lets the kernel read ahead; it then drops each tensor's pages from the mapping after use.
"""

from __future__ import annotations

import json
import math
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from provenance.errors import CorruptFileError, TensorNotFoundError
from provenance.io.base import ReaderMetadata, TensorInfo, TensorSpan
from provenance.io.guard import open_fd, open_file
from provenance.io.mapped import MappedFile

_MAX_HEADER = 100 * 1024 * 1024  # the safetensors spec's own limit

DTYPES: dict[str, tuple[torch.dtype, int]] = {
    "F64": (torch.float64, 8), "F32": (torch.float32, 4), "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2), "I64": (torch.int64, 8), "I32": (torch.int32, 4),
    "I16": (torch.int16, 2), "I8": (torch.int8, 1), "U8": (torch.uint8, 1),
    "BOOL": (torch.bool, 1), "F8_E4M3": (torch.float8_e4m3fn, 1), "F8_E5M2": (torch.float8_e5m2, 1),
    "U16": (torch.uint16, 2), "U32": (torch.uint32, 4), "U64": (torch.uint64, 8),
}


def read_header(path: Path) -> tuple[dict[str, dict], dict[str, str], int]:
    """Return (tensor entries, __metadata__, data start) after checking them against the file size."""
    with open_file(path) as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        if len(head) < 8:
            raise CorruptFileError(f"not a safetensors file: {size} bytes, shorter than the 8-byte header length",
                                   path=path)
        (n,) = struct.unpack("<Q", head)
        if n > _MAX_HEADER or 8 + n > size:  # the claimed length is not quoted: it may be any file's bytes
            raise CorruptFileError(f"truncated or not safetensors: the 8-byte header length is larger than the "
                                   f"file ({size} bytes); re-download or re-save the file", path=path)
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(f"corrupt safetensors header (not JSON: {exc})", path=path) from None
    except RecursionError:
        raise CorruptFileError("corrupt safetensors header: JSON nested too deeply", path=path) from None
    if not isinstance(header, dict):
        raise CorruptFileError("corrupt safetensors header: expected a JSON object", path=path)
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise CorruptFileError("corrupt safetensors header: __metadata__ must be an object", path=path)
    _check_entries(path, header, size - 8 - n)
    return header, {str(k): str(v) for k, v in meta.items()}, 8 + n


def _count(v: object, limit: int) -> bool:
    """A JSON integer in [0, limit] (a bool is an int to Python, not to us)."""
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= limit


def _check_entries(path: Path, header: dict, data_size: int) -> None:
    """Each entry must have a known dtype, a shape, and offsets that fit its bytes and the file.

    Sizes are exact Python integers checked against the file before anything is allocated: no
    int64 product can wrap a claimed [2^62, 4] shape to zero bytes.
    """
    for name, e in header.items():
        dtype = e.get("dtype") if isinstance(e, dict) else None
        if not isinstance(dtype, str) or dtype not in DTYPES:
            got = dtype if isinstance(e, dict) else type(e).__name__
            raise CorruptFileError(f"tensor {str(name)[:80]!r} has an unknown dtype {str(got)[:40]!r}", path=path)
        shape, offs = e.get("shape"), e.get("data_offsets")
        if (not isinstance(shape, list) or len(shape) > 16 or not all(_count(d, 2**62) for d in shape)
                or not isinstance(offs, list) or len(offs) != 2 or not all(_count(o, 2**62) for o in offs)):
            raise CorruptFileError(f"tensor {str(name)[:80]!r} has a malformed shape or data_offsets (at most 16 "
                                   "whole numbers below 2^62)", path=path)
        begin, end = offs
        expected = math.prod(shape) * DTYPES[dtype][1]
        if end - begin != expected:
            raise CorruptFileError(f"tensor {name!r} spans {end - begin} bytes but shape {shape} "
                                   f"{e['dtype']} needs {expected}", path=path)
        # An empty [0, 4, 2^62] spans its 0 bytes, but torch's int64 strides for it would overflow.
        if math.prod(d for d in shape if d) * DTYPES[dtype][1] > 2**62:
            raise CorruptFileError(f"tensor {str(name)[:80]!r} has shape {shape}, too large to index even when "
                                   "empty", path=path)
        if end > data_size:
            raise CorruptFileError(f"truncated: tensor {name!r} needs bytes {begin}..{end} of the data "
                                   f"section but the file holds {data_size}; re-download the file",
                                   path=path)


class SafetensorsReader:
    """One or several `.safetensors` files read as one checkpoint (shards included)."""

    format = "safetensors"

    def __init__(self, files: list[Path], *, expected: dict[str, str] | None = None) -> None:
        """Open `files`; `expected` (tensor -> file name, from a shard index) is checked."""
        self.files = list(files)
        self._infos: dict[str, TensorInfo] = {}
        self._where: dict[str, tuple[Path, int, int]] = {}
        meta: dict[str, str] = {}
        for path in self.files:
            header, file_meta, start = read_header(path)
            meta.update(file_meta)
            for name, e in header.items():
                if name in self._infos:
                    raise CorruptFileError(f"tensor {name!r} appears in both {self._infos[name].file.name} "
                                           f"and {path.name}", path=path)
                begin, end = e["data_offsets"]
                self._infos[name] = TensorInfo(name, tuple(e["shape"]), e["dtype"], path, end - begin)
                self._where[name] = (path, start + begin, end - begin)
        self._infos = dict(sorted(self._infos.items(), key=lambda kv: (str(kv[1].file), self._where[kv[0]][1])))
        if expected:
            self._check_index(expected)
        self.metadata = ReaderMetadata("safetensors", {"header_metadata": meta})
        self._fds: dict[Path, int] = {}
        self._maps: dict[Path, MappedFile] = {}
        self._map_lock = threading.Lock()
        self.observer: Callable[[Path, int, np.ndarray], None] | None = None  # sees every read's raw bytes

    def _check_index(self, expected: dict[str, str]) -> None:
        """Every tensor the index names must be in the shard it names."""
        for name, shard in expected.items():
            info = self._infos.get(name)
            if info is None or info.file.name != Path(shard).name:
                raise CorruptFileError(f"the shard index says tensor {name!r} is in {shard}, but "
                                       f"{'it is not in any shard' if info is None else 'it is in ' + info.file.name}",
                                       path=self.files[0].parent / "model.safetensors.index.json")

    def infos(self) -> dict[str, TensorInfo]:
        return self._infos

    def byte_spans(self) -> dict[Path, list[TensorSpan]]:
        """Each file's tensors: where their stored bytes lie (for per-tensor digests of the reads)."""
        out: dict[Path, list[TensorSpan]] = {}
        for name, (path, offset, nbytes) in self._where.items():
            numel = self._infos[name].numel
            out.setdefault(path, []).append(TensorSpan(name, offset, nbytes, nbytes // numel if numel else 1))
        return out

    def read(self, name: str) -> torch.Tensor:
        """Read one tensor's bytes into a new buffer and view them with the stored dtype."""
        return self.read_into(name, None)

    def read_into(self, name: str, scratch: np.ndarray | None) -> torch.Tensor:
        """Like `read`, but into the caller's uint8 `scratch` when it is large enough.

        Streaming code reuses two such buffers, so no tensor costs fresh pages from the kernel;
        the result is a view that is only valid until the buffer is reused.
        """
        try:
            path, offset, nbytes = self._where[name]
        except KeyError:
            raise TensorNotFoundError(name, self._infos, path=self.files[0]) from None
        info = self._infos[name]
        buf = scratch[:nbytes] if scratch is not None and scratch.size >= nbytes else np.empty(nbytes, np.uint8)
        fd = self._fds.get(path)
        if fd is None:
            fd = self._fds[path] = open_fd(path)
        pread_into(fd, buf, offset, path)
        if self.observer is not None:
            self.observer(path, offset, buf)
        dtype = DTYPES[info.dtype][0]
        if nbytes == 0:
            return torch.empty(info.shape, dtype=dtype)
        return torch.frombuffer(buf, dtype=dtype).reshape(info.shape)

    def mapping(self, name: str) -> tuple[MappedFile, int, int]:
        """(its file, mapped, offset, nbytes) of one tensor; each file is mapped once, on first use."""
        try:
            path, offset, nbytes = self._where[name]
        except KeyError:
            raise TensorNotFoundError(name, self._infos, path=self.files[0]) from None
        with self._map_lock:
            mapped = self._maps.get(path)
            if mapped is None:
                mapped = self._maps[path] = MappedFile(path)
        return mapped, offset, nbytes

    def read_mapped(self, name: str, raw: np.ndarray | None = None) -> torch.Tensor:
        """Like `read`, but a view of the mapped file (no copy), valid until `close`; the observer sees it.

        `raw`: the tensor's bytes, already read by the caller (a direct read, `provenance.io.direct`), to
        view instead of the mapping."""
        mapped, offset, nbytes = self.mapping(name)
        info = self._infos[name]
        dtype = DTYPES[info.dtype][0]
        view = mapped.view(offset, nbytes) if raw is None else raw
        if self.observer is not None:
            self.observer(mapped.path, offset, view)
        if nbytes == 0:
            return torch.empty(info.shape, dtype=dtype)
        return torch.frombuffer(view, dtype=dtype).reshape(info.shape)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        for mapped in self._maps.values():
            mapped.close()
        self._maps.clear()


def pread_into(fd: int, buf: np.ndarray, offset: int, path: Path) -> None:
    """Fill `buf` from `fd` at `offset`; a short read means the file changed or was truncated."""
    view = memoryview(buf).cast("B")
    done = 0
    while done < len(view):
        n = os.preadv(fd, [view[done:]], offset + done)
        if n == 0:
            raise CorruptFileError(f"truncated: expected {len(view)} bytes at offset {offset}, got {done}",
                                   path=path)
        done += n
