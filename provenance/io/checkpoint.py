"""`Checkpoint`: one opened model — lazy tensors, config, tokenizer files and file hashes."""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from provenance.io.base import TensorInfo, TensorReader, is_buffer
from provenance.io.convert import place, resolve_device, resolve_dtype
from provenance.io.read_hashes import (
    ReadHashes,
    TensorDigest,
    digest_tensor,
    probe_keys,
)

_HASH_CHUNK = 16 * 1024 * 1024


@dataclass
class Checkpoint:
    """An opened model spec. Nothing is read until `get` asks for one tensor.

    >>> from provenance.io import open_checkpoint              # doctest: +SKIP
    >>> with open_checkpoint("path/to/model") as ckpt:         # doctest: +SKIP
    ...     q = ckpt.get("model.layers.0.self_attn.q_proj.weight", dtype="float32")
    """

    spec: str
    root: Path  # the directory (or the single file) the spec resolved to
    reader: TensorReader
    config: dict[str, Any] = field(default_factory=dict)
    config_file: Path | None = None
    tokenizer_files: dict[str, Path] = field(default_factory=dict)
    embedded_tokenizer: dict[str, Any] | None = None  # GGUF's own vocabulary
    extra_files: list[Path] = field(default_factory=list)  # shard indexes etc., hashed too
    _sha256: dict[str, str] | None = field(default=None, repr=False)
    _read_hashes: ReadHashes | None = field(default=None, repr=False)
    _tensor_digests: dict[str, TensorDigest] | None = field(default=None, repr=False)

    @property
    def format(self) -> str:
        return self.reader.format

    @property
    def tensors(self) -> dict[str, TensorInfo]:
        """Every tensor's name, shape and dtype, from headers only."""
        return self.reader.infos()

    def get(self, name: str, *, device: str | torch.device = "cpu",
            dtype: str | torch.dtype | None = None) -> torch.Tensor:
        """One tensor on `device` ('cpu', 'cuda', 'auto'), cast to `dtype` if given."""
        return place(self.reader.read(name), resolve_device(device), resolve_dtype(dtype))

    def parameter_count(self) -> int:
        """Number of weight elements stored (integer buffers such as position ids excluded)."""
        return sum(i.numel for i in self.tensors.values() if not is_buffer(i))

    def files(self) -> list[Path]:
        """Every file that makes up the checkpoint: weights, indexes, config, tokenizer."""
        out = list(self.reader.files) + list(self.extra_files)
        if self.config_file is not None:
            out.append(self.config_file)
        out += list(self.tokenizer_files.values())
        seen: dict[Path, None] = {}
        for p in out:
            seen.setdefault(p, None)
        return list(seen)

    def hash_reads(self, tensors: Collection[str] | None = None) -> bool:
        """Hash the weight files from the bytes later reads fetch anyway, so `sha256()` costs no second
        pass over them; False (and nothing changes) where the reader cannot report its reads. Per-tensor
        digests come from the same bytes: a sha256 for `tensors` (all when None), for the others only
        whether they are constant."""
        if self._sha256 is not None or self._read_hashes is not None or not hasattr(self.reader, "observer"):
            return self._read_hashes is not None
        spans = self.reader.byte_spans() if hasattr(self.reader, "byte_spans") else None
        self._read_hashes = ReadHashes(list(self.reader.files), spans=spans, hashed=tensors)
        self.reader.observer = self._read_hashes.observe
        return True

    def sha256(self) -> dict[str, str]:
        """sha256 of every file, keyed by its path relative to the checkpoint root (computed once).

        After `hash_reads()`, the weight files' digests come from what was read since, plus a read of
        the bytes nothing read (headers, skipped tensors)."""
        if self._sha256 is None:
            streamed: dict[Path, str] = {}
            if self._read_hashes is not None:
                self.reader.observer = None
                streamed = self._read_hashes.finish()
                self._tensor_digests = self._read_hashes.tensor_digests() or None
                self._read_hashes = None
            base = self.root if self.root.is_dir() else self.root.parent
            self._sha256 = {_relative(p, base): streamed.get(Path(p)) or file_sha256(p) for p in self.files()}
        return self._sha256

    def tensor_probes(self) -> dict[str, bytes] | None:
        """`read_hashes.probe_keys` of every tensor, or None where the reader gives no byte spans."""
        if not hasattr(self.reader, "byte_spans"):
            return None
        return probe_keys(self.reader.byte_spans())

    def tensor_digests(self) -> dict[str, TensorDigest]:
        """sha256 of every tensor's stored bytes, and whether it is constant (computed once).

        After `hash_reads()` they come from the same reads as the file hashes (this finishes those);
        otherwise, and for formats whose reader gives no byte spans (PyTorch pickles, ONNX), each tensor
        is read once and the digest is of its values as read, in the stored dtype."""
        if self._tensor_digests is None and self._read_hashes is not None:
            self.sha256()
        if self._tensor_digests is None:
            self._tensor_digests = {name: digest_tensor(self.reader.read(name)) for name in self.tensors}
        return self._tensor_digests

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def file_sha256(path: Path) -> str:
    """Streamed sha256 of one file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()
