"""Lazy GGUF (llama.cpp): `gguf.GGUFReader` parses the header, tensor bytes come from `os.pread`.

The reader's memmap is dropped once the header is parsed, so resident memory stays bounded
by one tensor (plus its float32 dequantization) however many tensors are streamed.
"""

from __future__ import annotations

import functools
import math
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import gguf.quants
import numpy as np
import torch
from gguf import GGMLQuantizationType, GGUFValueType
from gguf.constants import GGML_QUANT_SIZES
from gguf.gguf_reader import ReaderField

from provenance.errors import (
    CorruptFileError,
    MissingFileError,
    ProvenanceError,
    TensorNotFoundError,
    UnknownFormatError,
)
from provenance.io.base import ReaderMetadata, TensorInfo, TensorSpan
from provenance.io.guard import open_fd

_MAGIC = b"GGUF"
_MAX_INLINE_ARRAY = 64  # longer metadata arrays are summarised in `metadata.values`
_READ_CHUNK = 64 * 1024 * 1024  # bytes per pread call: bounds the transient copy

PLAIN_DTYPES: dict[str, torch.dtype] = {
    "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
    "I8": torch.int8, "I16": torch.int16, "I32": torch.int32, "I64": torch.int64,
}

_TOKENIZER_ARRAYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                     "tokenizer.ggml.merges", "tokenizer.ggml.scores")
_SPECIAL_IDS = (("bos_token_id", "tokenizer.ggml.bos_token_id"),
                ("eos_token_id", "tokenizer.ggml.eos_token_id"),
                ("unk_token_id", "tokenizer.ggml.unknown_token_id"),
                ("pad_token_id", "tokenizer.ggml.padding_token_id"))
# HF config key <- GGUF key below `{arch}.`
_CONFIG_KEYS = (("hidden_size", "embedding_length"), ("num_hidden_layers", "block_count"),
                ("num_attention_heads", "attention.head_count"),
                ("num_key_value_heads", "attention.head_count_kv"),
                ("intermediate_size", "feed_forward_length"), ("head_dim", "attention.key_length"),
                ("vocab_size", "vocab_size"), ("max_position_embeddings", "context_length"),
                ("rope_theta", "rope.freq_base"),
                ("rms_norm_eps", "attention.layer_norm_rms_epsilon"),
                ("layer_norm_eps", "attention.layer_norm_epsilon"),
                ("num_local_experts", "expert_count"), ("num_experts_per_tok", "expert_used_count"))


class _GGUFProblem(Exception):
    """Raised inside the parser; turned into a CorruptFileError that names the file."""


class _BoundedGGUFReader(gguf.GGUFReader):
    """`GGUFReader` that refuses reads past the end of the file and checks tensor extents first.

    Hooks gguf 0.x internals (`_get`, `_get_field_parts`, `_build_tensors`); anything else the
    package raises is still wrapped by `_parse`.
    """

    @property
    def data(self) -> np.ndarray:
        return self._plain_data

    @data.setter
    def data(self, value: np.memmap) -> None:
        # A plain ndarray view of the memmap: memmap-subclass views cost ~3 us each to create
        # and the header of a 50k-token vocabulary needs ~250k of them.
        self._plain_data = value.view(np.ndarray)

    def _get(self, offset: int, dtype: Any, count: int = 1, override_order: Any = None) -> np.ndarray:
        end = int(offset) + _itemsize(dtype) * int(count)
        if end > self.data.size:
            raise _GGUFProblem(f"truncated GGUF: the header needs bytes {int(offset)}..{end} but the file "
                               f"has {self.data.size} bytes; re-download the file")
        return super()._get(offset, dtype, count, override_order)

    def _get_field_parts(self, orig_offs: int, raw_type: int) -> Any:
        """Arrays are parsed here, compactly: gguf makes one numpy view per item (hundreds of bytes
        for a one-byte item: a 5 MB array cost 2 GB). A scalar array becomes one view; a string
        array one object array of bytes (about the size of the strings). Nested arrays go to gguf."""
        if raw_type != _ARRAY:
            return super()._get_field_parts(orig_offs, raw_type)
        raw_itype = self._get(orig_offs, np.uint32)
        raw_len = self._get(orig_offs + 4, np.uint64)
        item_type, n = int(raw_itype[0]), int(raw_len[0])
        end = orig_offs + 12 + n * _min_item_size(item_type)
        if end > self.data.size:  # reject absurd lengths before looping over them
            raise _GGUFProblem(f"truncated GGUF: a metadata array at byte {orig_offs} claims {n} items "
                               f"(at least {end} bytes) but the file has {self.data.size} bytes; "
                               f"re-download the file")
        if item_type == int(GGUFValueType.STRING):
            items, size = self._strings(orig_offs + 12, n)
            return 12 + size, [raw_itype, raw_len, items], [2], [GGUFValueType.ARRAY, GGUFValueType.STRING]
        if item_type in _SCALAR_DTYPES:
            dtype = _SCALAR_DTYPES[item_type]
            items = self._get(orig_offs + 12, dtype, n)
            return (12 + n * _itemsize(dtype), [raw_itype, raw_len, items], [2],
                    [GGUFValueType.ARRAY, GGUFValueType(item_type)])
        return super()._get_field_parts(orig_offs, raw_type)

    def _strings(self, offset: int, n: int) -> tuple[np.ndarray, int]:
        """`n` length-prefixed strings from `offset` as an object array of bytes, and their size in bytes."""
        raw, size, out = memoryview(self.data), self.data.size, np.empty(n, dtype=object)
        pos = offset
        swap = self.byte_order == "S"
        for i in range(n):
            if pos + 8 > size:
                raise _GGUFProblem(f"truncated GGUF: string {i} of an array at byte {offset} starts past the "
                                   f"end of the file; re-download the file")
            length = int.from_bytes(raw[pos:pos + 8], "big" if swap else "little")
            if length > size - pos - 8:
                raise _GGUFProblem(f"truncated GGUF: string {i} of an array at byte {offset} runs past the "
                                   f"end of the file; re-download the file")
            out[i] = bytes(raw[pos + 8:pos + 8 + length])
            pos += 8 + length
        return out, pos - offset

    def _build_tensors(self, start_offs: int, fields: list[ReaderField]) -> None:
        for field in fields:
            _check_extent(field, start_offs, int(self.data.size))
        super()._build_tensors(start_offs, fields)


_ARRAY = int(GGUFValueType.ARRAY)  # plain ints: enum attribute lookups are slow in a hot loop
_SCALAR_DTYPES: dict[int, Any] = {int(t): n for t, n in gguf.GGUFReader.gguf_scalar_to_np.items()}
_MIN_ITEM_SIZE: dict[int, int] = {
    int(GGUFValueType.STRING): 8, _ARRAY: 12,
    **{int(t): np.dtype(n).itemsize for t, n in gguf.GGUFReader.gguf_scalar_to_np.items()},
}


def _min_item_size(raw_type: int) -> int:
    """Fewest bytes one array item of this GGUF value type can take (1 if unknown: gguf raises)."""
    return _MIN_ITEM_SIZE.get(int(raw_type), 1)


@functools.cache
def _itemsize(dtype: Any) -> int:
    """Bytes per item of a numpy dtype-like, cached for the parser's hot loop."""
    return np.dtype(dtype).itemsize


def _check_extent(field: ReaderField, data_start: int, file_size: int) -> None:
    """A tensor must have a known type, whole quant blocks per row, and data inside the file."""
    name = bytes(field.parts[1]).decode("utf-8", errors="replace")
    dims = [int(d) for d in field.parts[3]]
    raw_type = int(field.parts[4][0])
    try:
        qtype = GGMLQuantizationType(raw_type)
    except ValueError:
        raise _GGUFProblem(f"tensor {name!r} has unknown GGML type id {raw_type} (removed from or newer "
                           f"than gguf {_gguf_version()}); re-convert the file with a current llama.cpp") from None
    block, type_size = GGML_QUANT_SIZES[qtype]
    if dims and dims[0] % block:
        raise _GGUFProblem(f"tensor {name!r} has rows of {dims[0]} values, not a multiple of the "
                           f"{qtype.name} block size {block}; the header is corrupt")
    if math.prod(d for d in dims if d) > 2**60:  # torch's int64 strides would overflow, even for an empty tensor
        raise _GGUFProblem(f"tensor {name!r} has dims {dims}, too large to index even when empty; the header is "
                           "corrupt")
    begin = data_start + int(field.parts[5][0])
    end = begin + math.prod(dims) * type_size // block
    if end > file_size:
        raise _GGUFProblem(f"truncated GGUF: tensor {name!r} needs bytes {begin}..{end} but the file has "
                           f"{file_size} bytes; re-download the file")


@functools.cache
def _gguf_version() -> str:
    """The installed gguf package version, for messages."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("gguf")
    except PackageNotFoundError:
        return "(unknown version)"


@functools.cache
def can_dequantize(qtype: GGMLQuantizationType) -> bool:
    """Whether the installed gguf package has a dequantizer for `qtype` (probed on one zero block)."""
    _, type_size = GGML_QUANT_SIZES[qtype]
    try:
        gguf.quants.dequantize(np.zeros((1, type_size), dtype=np.uint8), qtype)
    except NotImplementedError:
        return False
    return True


@dataclass(frozen=True)
class _Location:
    """Where a tensor's bytes are and how they are encoded."""

    offset: int  # absolute, in the file
    qtype: GGMLQuantizationType


@dataclass
class _Parsed:
    """Everything kept from the header: plain Python, no views into the file."""

    values: dict[str, Any]
    infos: dict[str, TensorInfo]
    locations: dict[str, _Location]
    tokenizer_arrays: dict[str, list]
    byte_swapped: bool


class GGUFTensorReader:
    """One `.gguf` file: tensors by their GGUF names, shapes in PyTorch order, quants dequantized.

    `read` returns the stored dtype for F32/F16/BF16/F64/I* tensors and float32 otherwise;
    `config()` and `tokenizer()` turn the embedded metadata into HF-style dicts.
    """

    format = "gguf"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.files = [self.path]
        fd = _open(self.path)
        self._closer = weakref.finalize(self, os.close, fd)
        self._fd = fd
        try:
            parsed = _parse(self.path, fd)
        except BaseException:
            self.close()
            raise
        self.metadata = ReaderMetadata("gguf", parsed.values)
        self._infos = parsed.infos
        self._locations = parsed.locations
        self._tokenizer_arrays = parsed.tokenizer_arrays
        self._byte_swapped = parsed.byte_swapped
        self.observer: Callable[[Path, int, bytearray], None] | None = None  # sees every read's raw bytes

    def __enter__(self) -> GGUFTensorReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def infos(self) -> dict[str, TensorInfo]:
        """Every tensor, by GGUF name, in file order."""
        return dict(self._infos)

    def byte_spans(self) -> dict[Path, list[TensorSpan]]:
        """The tensors' stored bytes (for per-tensor digests of the reads); period: one quantization block."""
        block = gguf.GGML_QUANT_SIZES
        return {self.path: [TensorSpan(n, loc.offset, self._infos[n].nbytes, block.get(loc.qtype, (1, 1))[1])
                            for n, loc in self._locations.items()]}

    def read(self, name: str) -> torch.Tensor:
        """One tensor on the CPU: stored dtype for plain types, float32 dequantized for quants."""
        info = self._infos.get(name)
        if info is None:
            raise TensorNotFoundError(name, self._infos, path=self.path)
        if not self._closer.alive:
            raise ProvenanceError(f"cannot read {name!r}: the reader was closed; open the file again",
                                  path=self.path)
        qtype = self._locations[name].qtype
        if info.quantized:
            self._check_dequantizable(name, qtype)
        buf = self._pread(self._locations[name].offset, info.nbytes)
        if not info.quantized:
            return _plain_tensor(buf, info, swap=self._byte_swapped)
        if info.numel == 0:  # gguf's dequantizers cannot reshape an empty array
            return torch.zeros(info.shape, dtype=torch.float32)
        raw = np.frombuffer(buf, dtype=np.uint8).reshape(gguf.quants.quant_shape_to_byte_shape(info.shape, qtype))
        try:
            values = gguf.quants.dequantize(raw, qtype)  # [*shape] float32
        except (ValueError, IndexError) as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CorruptFileError(f"cannot dequantize tensor {name!r} ({qtype.name} {list(info.shape)}): {detail}",
                                   path=self.path) from None
        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)).reshape(info.shape)

    def config(self) -> dict[str, Any]:
        """HF-style config from the `{general.architecture}.*` keys; absent keys are omitted."""
        values = self.metadata.values
        arch = values.get("general.architecture")
        cfg: dict[str, Any] = {} if arch is None else {"model_type": arch}
        for hf_key, gguf_key in _CONFIG_KEYS:
            if arch is not None and f"{arch}.{gguf_key}" in values:
                cfg[hf_key] = values[f"{arch}.{gguf_key}"]
        _fill_config_defaults(cfg, self._tokenizer_arrays.get("tokenizer.ggml.tokens"))
        if arch is not None:
            cfg["gguf_architecture"] = arch
        return cfg

    def tokenizer(self) -> dict[str, Any] | None:
        """The embedded vocabulary (tokens, types, merges, scores, special ids); None if there is none."""
        arrays = self._tokenizer_arrays
        if "tokenizer.ggml.tokens" not in arrays:
            return None
        values = self.metadata.values
        tok: dict[str, Any] = {
            "model": values.get("tokenizer.ggml.model"),
            "pre": values.get("tokenizer.ggml.pre"),
            "tokens": list(arrays["tokenizer.ggml.tokens"]),
            "token_types": _copy_or_none(arrays.get("tokenizer.ggml.token_type")),
            "merges": _copy_or_none(arrays.get("tokenizer.ggml.merges")),
            "scores": _copy_or_none(arrays.get("tokenizer.ggml.scores")),
        }
        for key, gguf_key in _SPECIAL_IDS:
            if gguf_key in values:
                tok[key] = values[gguf_key]
        if "tokenizer.chat_template" in values:
            tok["chat_template"] = values["tokenizer.chat_template"]
        return tok

    def close(self) -> None:
        """Close the file descriptor (idempotent)."""
        self._closer()

    def _check_dequantizable(self, name: str, qtype: GGMLQuantizationType) -> None:
        """Refuse, before reading any bytes, quant types or byte orders we cannot decode."""
        if not can_dequantize(qtype):
            raise UnknownFormatError(f"cannot dequantize tensor {name!r}: gguf {_gguf_version()} has no "
                                     f"dequantizer for GGML type {qtype.name}; upgrade gguf or re-quantize "
                                     f"the file to a supported type such as Q8_0", path=self.path)
        if self._byte_swapped:
            raise UnknownFormatError(f"cannot dequantize tensor {name!r}: it is {qtype.name} in a GGUF of "
                                     f"the other byte order; run `gguf-convert-endian FILE native` first",
                                     path=self.path)

    def _pread(self, offset: int, nbytes: int) -> bytearray:
        """Exactly `nbytes` at `offset`; a short read means the file shrank after opening."""
        buf = bytearray(nbytes)
        done = 0
        while done < nbytes:
            chunk = os.pread(self._fd, min(_READ_CHUNK, nbytes - done), offset + done)
            if not chunk:
                raise CorruptFileError(f"truncated GGUF: expected bytes {offset}..{offset + nbytes} but the "
                                       f"file ends at {offset + done}; it changed after opening, re-download it",
                                       path=self.path)
            buf[done:done + len(chunk)] = chunk
            done += len(chunk)
        if self.observer is not None:
            self.observer(self.path, offset, buf)
        return buf


def _open(path: Path) -> int:
    """Open `path` read-only and check the GGUF magic; errors name the file."""
    try:
        fd = open_fd(path)
    except FileNotFoundError:
        raise MissingFileError("no such GGUF file; check the path", path=path) from None
    try:
        size = os.fstat(fd).st_size
        if size < 4:
            raise CorruptFileError(f"truncated GGUF: the file has {size} bytes, fewer than the 4-byte magic; "
                                   f"re-download the file", path=path)
        head = os.pread(fd, 4, 0)
        if head != _MAGIC:
            raise CorruptFileError(f"not a GGUF file: it starts with {head!r} instead of {_MAGIC!r}; pass a "
                                   f".gguf file written by llama.cpp or the gguf package", path=path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _parse(path: Path, fd: int) -> _Parsed:
    """Parse the header with gguf's reader, keep plain Python copies, and drop the memmap."""
    try:
        reader = _BoundedGGUFReader(path)
        return _extract(reader, path)
    except ProvenanceError:
        raise
    except _GGUFProblem as exc:
        raise CorruptFileError(str(exc), path=path) from None
    except Exception as exc:  # numpy/struct/Index/Key/Unicode errors from a damaged header
        raise CorruptFileError(f"malformed GGUF header ({type(exc).__name__}: {exc}); re-download the file "
                               f"or re-convert it with a current llama.cpp", path=path) from None


def _extract(reader: gguf.GGUFReader, path: Path) -> _Parsed:
    """Copy metadata, tensor infos and tokenizer arrays out of a parsed reader."""
    values: dict[str, Any] = {}
    tokenizer_arrays: dict[str, list] = {}
    for key, field in reader.fields.items():
        values[key] = _field_value(field)
        if key in _TOKENIZER_ARRAYS:
            _check_tokenizer_array(key, field)
            tokenizer_arrays[key] = _array_items(field)
    infos: dict[str, TensorInfo] = {}
    locations: dict[str, _Location] = {}
    for t in reader.tensors:
        dtype = t.tensor_type.name
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))  # GGUF ne order -> PyTorch order
        infos[t.name] = TensorInfo(t.name, shape, dtype, path, int(t.n_bytes),
                                   quantized=dtype not in PLAIN_DTYPES)
        locations[t.name] = _Location(int(t.data_offset), t.tensor_type)
    return _Parsed(values, infos, locations, tokenizer_arrays, reader.byte_order == "S")


def _field_value(field: ReaderField) -> Any:
    """A metadata value as plain Python; arrays over 64 items become {"array_length", "type"}."""
    kind = field.types[0]
    if kind != GGUFValueType.ARRAY:
        return _scalar(field.parts[-1], kind)
    item_type = GGUFValueType(int(field.parts[3][0]))
    n = int(field.parts[4][0])
    if n > _MAX_INLINE_ARRAY or item_type == GGUFValueType.ARRAY:  # nested arrays: summary only
        return {"array_length": n, "type": item_type.name}
    return _array_items(field)


def _array_items(field: ReaderField) -> list:
    """All items of a (non-nested) metadata array as plain Python values."""
    item_type = GGUFValueType(int(field.parts[3][0]))
    items = [field.parts[i] for i in field.data]
    if item_type == GGUFValueType.STRING:
        flat = (b for part in items for b in (part if part.dtype == object else [bytes(part)]))
        return [b.decode("utf-8", errors="replace") for b in flat]
    if not items:
        return []
    return np.concatenate(items).tolist()


# What each tokenizer array must hold: GGUF value types (any integer type for token types).
_INTS = {GGUFValueType.INT8, GGUFValueType.UINT8, GGUFValueType.INT16, GGUFValueType.UINT16,
         GGUFValueType.INT32, GGUFValueType.UINT32, GGUFValueType.INT64, GGUFValueType.UINT64}
_TOKENIZER_ITEM_TYPES = {"tokenizer.ggml.tokens": {GGUFValueType.STRING},
                         "tokenizer.ggml.merges": {GGUFValueType.STRING},
                         "tokenizer.ggml.token_type": _INTS,
                         "tokenizer.ggml.scores": {GGUFValueType.FLOAT32, GGUFValueType.FLOAT64}}


def _check_tokenizer_array(key: str, field: ReaderField) -> None:
    """A tokenizer array of the wrong item type (ints where strings belong, say) is a corrupt file."""
    if field.types[0] != GGUFValueType.ARRAY or len(field.types) < 2:
        raise _GGUFProblem(f"{key} must be an array, not a {field.types[0].name}")
    item = field.types[1]
    if item not in _TOKENIZER_ITEM_TYPES[key]:
        want = " or ".join(sorted(t.name for t in _TOKENIZER_ITEM_TYPES[key]))
        raise _GGUFProblem(f"{key} holds {item.name} items where {want} belong; the vocabulary is corrupt")


def _scalar(part: np.ndarray, kind: GGUFValueType) -> Any:
    """One scalar or string; float32 keeps its shortest repr (1e-05, not 9.99999974e-06)."""
    if kind == GGUFValueType.STRING:
        return bytes(part).decode("utf-8", errors="replace")
    if kind == GGUFValueType.FLOAT32:
        return float(str(part[0]))
    return part[0].item()


def _plain_tensor(buf: bytearray, info: TensorInfo, *, swap: bool) -> torch.Tensor:
    """View F32/F16/BF16/F64/I* bytes with their torch dtype, fixing the byte order if needed."""
    dtype = PLAIN_DTYPES[info.dtype]
    if not buf:
        return torch.empty(info.shape, dtype=dtype)
    if swap:
        np.frombuffer(buf, dtype=f"u{dtype.itemsize}").byteswap(inplace=True)
    return torch.frombuffer(buf, dtype=dtype).reshape(info.shape)


def _fill_config_defaults(cfg: dict[str, Any], tokens: list[str] | None) -> None:
    """kv heads default to heads, head_dim to hidden/heads, vocab_size to the token count."""
    heads, hidden = cfg.get("num_attention_heads"), cfg.get("hidden_size")
    if heads is not None and "num_key_value_heads" not in cfg:
        cfg["num_key_value_heads"] = heads
    if "head_dim" not in cfg and isinstance(heads, int) and isinstance(hidden, int) and heads > 0:
        cfg["head_dim"] = hidden // heads
    if "vocab_size" not in cfg and tokens is not None:
        cfg["vocab_size"] = len(tokens)


def _copy_or_none(items: list | None) -> list | None:
    """A shallow copy, so callers cannot change the reader's state."""
    return None if items is None else list(items)
