"""The fingerprint file: one safetensors file, JSON metadata in its header, every byte checksummed.

Layout (version 1): the header's `__metadata__` holds `format`, `version`, `fingerprint`
(the JSON metadata as text) and `sha256` (of that text). The JSON lists the sha256 of every
tensor's bytes, so a reader can verify the whole file, or only the tensors it reads (the
identify pre-filter). Nothing in the file is executable: no pickle, only arrays and JSON.
The checksums are no signature (whoever writes the file can recompute them), so a reader also
checks every tensor's dtype and shape against the metadata and the other tensors before any
arithmetic (`_check_layout`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open

from provenance.errors import CorruptFileError, ProvenanceError, UnknownFormatError
from provenance.fingerprint.anchors import TAG_OF, Anchors
from provenance.fingerprint.model import FORMAT, VERSION, Fingerprint, Sketch
from provenance.fingerprint.screen import MINHASH, SCREEN_ANCHORS
from provenance.fingerprint.vocab_codec import decode, encode
from provenance.io.source import (
    FINGERPRINT_SUFFIX,
    is_fingerprint_path,
    safetensors_header,
)

MAX_HEADER = 64 * 1024 * 1024  # provenance.io.source reads headers up to this size too
TAG = TAG_OF
MODE = {v: k for k, v in TAG.items()}
_ANCHOR_PARTS = ("keys", "offsets", "ids", "rows", "row_scale")
_OBJECTS = ("source", "created_by", "model", "roles", "facts", "config_facts", "weights", "tokenizer")
Layout = dict[str, tuple[str, tuple[int, ...]]]  # tensor name -> (safetensors dtype, shape), from the header


def _f16(x: np.ndarray) -> tuple[np.ndarray, float]:
    """float16 copy of x divided by its largest magnitude (so nothing overflows), and that scale."""
    finite = x[np.isfinite(x)]
    scale = float(np.abs(finite).max()) if finite.size else 1.0
    scale = scale if scale > 0 else 1.0
    return (x / scale).astype(np.float16), scale


def _i8(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 rows with one float32 scale per row (the alignment reads correlations: 0.4% noise is nothing)."""
    scale = np.abs(x).max(axis=1) / 127.0 if x.size else np.zeros(len(x))
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    return np.clip(np.rint(x / scale[:, None]), -127, 127).astype(np.int8), scale


def _blob(keys: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(k) for k in keys])
    return np.frombuffer(b"".join(keys), dtype=np.uint8).copy(), offsets


def _unblob(blob: np.ndarray, offsets: np.ndarray) -> list[bytes]:
    raw = blob.tobytes()
    return [raw[int(a):int(b)] for a, b in zip(offsets[:-1], offsets[1:])]


def to_bytes(fp: Fingerprint) -> bytes:
    """The file's bytes: deterministic for the same fingerprint."""
    tensors: dict[str, np.ndarray] = {}
    meta = json.loads(json.dumps(fp.meta))
    if fp.profiles is not None:
        prof = fp.profiles
        peak = np.nanmax(np.abs(prof), axis=-1, initial=0.0)  # [L, K]
        absent = np.isnan(prof).any(axis=-1)
        peak = np.where((peak > 0) & ~absent, peak, 1.0)
        tensors["profiles"] = np.nan_to_num(prof / peak[..., None]).astype(np.float16)
        tensors["profiles.scale"] = np.where(absent, np.nan, peak).astype(np.float32)
    for mode, a in fp.anchors.items():
        tag = TAG[mode]
        tensors[f"anchors.{tag}.keys"], tensors[f"anchors.{tag}.offsets"] = _blob(a.keys)
        tensors[f"anchors.{tag}.ids"] = a.ids.astype(np.int64)
        tensors[f"anchors.{tag}.rows"], tensors[f"anchors.{tag}.row_scale"] = _i8(fp.anchor_rows[mode])
    sk_meta: dict[str, dict[str, Any]] = {}
    for mode, sketches in fp.sketches.items():
        for (layer, key), s in sorted(sketches.items()):
            name = f"{TAG[mode]}.{layer}.{key}"
            tensors[f"sketch.{name}"], scale = _f16(s.rows)
            tensors[f"sketch.{name}.neurons"] = s.neurons.astype(np.int64)
            sk_meta[name] = {"scale": scale, "n_out": int(s.n_out), "top": int(s.top)}
    for name, vec in fp.screens.items():
        tensors[f"screen.{name}"] = vec
    if fp.vocabulary is not None:
        tensors["vocab.table"], meta["tokenizer"] = encode(fp.vocabulary)
    meta["format"], meta["version"] = FORMAT, VERSION
    meta["weights"] = {**meta.get("weights", {}), "sketches": sk_meta,
                       "sketch_anchors": {TAG[m]: n for m, n in fp.sketch_anchors.items()},
                       "layers": list(fp.layers)}
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    meta["tensors"] = {k: hashlib.sha256(v.tobytes()).hexdigest() for k, v in sorted(tensors.items())}
    text = json.dumps(meta, sort_keys=True, ensure_ascii=False, allow_nan=False)
    header = {"format": FORMAT, "version": str(VERSION), "fingerprint": text,
              "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
    return _serialize(tensors, header)


_DTYPES = {"float16": "F16", "float32": "F32", "int8": "I8", "uint8": "U8", "int64": "I64", "uint64": "U64"}


def _serialize(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """safetensors bytes with a key-sorted header and tensors in name order, so equal content gives equal
    bytes (the library's writer orders the metadata differently from run to run)."""
    head: dict[str, Any] = {"__metadata__": metadata}
    offset, chunks = 0, []
    for name in sorted(tensors):
        arr = tensors[name]
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        head[name] = {"dtype": _DTYPES[arr.dtype.name], "shape": list(arr.shape),
                      "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(head, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def _round(x: np.ndarray) -> np.ndarray:
    y, scale = _f16(x)
    return y.astype(np.float32) * np.float32(scale)


def _round_i8(x: np.ndarray) -> np.ndarray:
    q, scale = _i8(x)
    return q.astype(np.float32) * scale[:, None]


def as_stored(fp: Fingerprint) -> Fingerprint:
    """Round the arrays in place the way the file stores them, so an in-memory fingerprint compares
    exactly like one read back from disk (a model against its own fingerprint file is identical)."""
    if fp.profiles is not None:
        absent = np.isnan(fp.profiles).any(axis=-1)
        peak = np.nanmax(np.abs(fp.profiles), axis=-1, initial=0.0)
        peak = np.where((peak > 0) & ~absent, peak, 1.0).astype(np.float32)
        prof = np.nan_to_num(fp.profiles / peak[..., None]).astype(np.float16).astype(np.float32) * peak[..., None]
        prof[absent] = np.nan
        fp.profiles = prof
    fp.anchor_rows = {m: _round_i8(r) for m, r in fp.anchor_rows.items()}
    for sketches in fp.sketches.values():
        for s in sketches.values():
            s.rows = _round(s.rows)
    return fp


def save(fp: Fingerprint, path: str | os.PathLike[str]) -> None:
    """Write the fingerprint atomically (whole or not at all)."""
    from provenance.outfile import write_atomic

    write_atomic(path, to_bytes(fp))


def _header(path: Path) -> dict[str, Any] | None:
    """The safetensors header of `path`, or None when the file is not a safetensors file."""
    return safetensors_header(path)


SUFFIX = FINGERPRINT_SUFFIX


def _why_no_header(p: Path) -> str:
    """Why `_header` found none: truncated (the declared header is longer than the file), or not safetensors."""
    size = p.stat().st_size
    with open(p, "rb") as f:
        first = f.read(8)
    n = int.from_bytes(first, "little") if len(first) == 8 else None
    if n is not None and 0 < n <= MAX_HEADER and n + 8 > size:
        return f"truncated fingerprint file (its header needs {n + 8:,} bytes, the file has {size:,})"
    return "not a fingerprint file (no safetensors header with provenance metadata)"


def is_fingerprint_file(path: str | os.PathLike[str]) -> bool:
    """True for a `.fingerprint` file, or any file whose header says it is one (reads the header only).

    The same test `provenance.io.source.resolve` applies, so a spec is a fingerprint for every command or none.
    """
    return is_fingerprint_path(path)


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The verified JSON metadata of a fingerprint file (header checksum checked, tensors not read)."""
    p = Path(path)
    head = _header(p) if p.is_file() else None
    if head is None:
        if not p.exists():
            raise ProvenanceError(f"no such fingerprint file: {p}")
        raise CorruptFileError(_why_no_header(p), path=p)
    return _verified_meta(head.get("__metadata__"), p)


def _verified_meta(meta: Any, p: str | Path) -> dict[str, Any]:
    """The JSON metadata from a header's `__metadata__`, its format, version and checksum checked."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UnknownFormatError("not a provenance fingerprint (its header has no 'format: "
                                 f"{FORMAT}')", path=p)
    if meta.get("version") != str(VERSION):
        raise UnknownFormatError(f"fingerprint version {meta.get('version')!r}; this provenance reads version "
                                 f"{VERSION} (re-create it with `provenance fingerprint`)", path=p)
    text = meta.get("fingerprint")
    encoded = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else b""
    if not isinstance(text, str) or hashlib.sha256(encoded).hexdigest() != meta.get("sha256"):
        raise CorruptFileError("checksum mismatch in the fingerprint's metadata: the file was edited or damaged; "
                               "re-create it with `provenance fingerprint`", path=p)
    try:
        data = json.loads(text)
    except ValueError:
        raise CorruptFileError("the fingerprint's metadata is not JSON", path=p) from None
    if not isinstance(data, dict) or not isinstance(data.get("tensors"), dict):
        raise CorruptFileError("the fingerprint's metadata lists no tensors", path=p)
    return data


class _Tensors:
    """Reads tensors of one fingerprint file, each checked against the sha256 its metadata lists."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path, self.listed = path, meta["tensors"]
        try:
            self._file = safe_open(str(path), framework="np")
            present = set(self._file.keys())
        except (SafetensorError, OSError) as exc:
            raise CorruptFileError(f"the fingerprint's tensors do not parse ({_first_line(exc)})", path=path) from None
        if present != set(self.listed):
            raise CorruptFileError("checksum mismatch: the fingerprint holds other tensors than its metadata "
                                   "lists", path=path)
        self.layout: Layout = {}
        for name in present:
            part = self._file.get_slice(name)
            self.layout[name] = (str(part.get_dtype()), tuple(int(d) for d in part.get_shape()))

    def __contains__(self, name: str) -> bool:
        return name in self.listed

    def get(self, name: str) -> np.ndarray:
        try:
            arr = self._file.get_tensor(name)
        except (SafetensorError, OSError) as exc:
            raise CorruptFileError(f"tensor {name!r} does not read ({_first_line(exc)})", path=self.path) from None
        if hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest() != self.listed[name]:
            raise CorruptFileError(f"checksum mismatch in tensor {name!r}: the file was edited or damaged; "
                                   "re-create it with `provenance fingerprint`", path=self.path)
        return arr


class _BytesTensors(_Tensors):
    """The same checked reads over a fingerprint held in memory (a results store keeps them as blobs)."""

    def __init__(self, data: bytes, head: dict[str, Any], meta: dict[str, Any], where: str) -> None:
        self.path, self.listed = Path(where), meta["tensors"]
        n = int.from_bytes(data[:8], "little")
        self._data, self._start, self._head = data, 8 + n, head
        if {k for k in head if k != "__metadata__"} != set(self.listed):
            raise CorruptFileError("checksum mismatch: the fingerprint holds other tensors than its metadata "
                                   "lists", path=where)
        self.layout = {}
        for name in self.listed:
            info = head[name]
            shape = info.get("shape") if isinstance(info, dict) else None
            if (not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape)
                    or not isinstance(info.get("dtype"), str) or info["dtype"] not in _NP_DTYPES):
                raise CorruptFileError(f"tensor {_quote(name)} has no valid dtype and shape in the header", path=where)
            self.layout[name] = (info["dtype"], tuple(shape))

    def get(self, name: str) -> np.ndarray:
        info = self._head[name]
        try:
            dtype = np.dtype(_NP_DTYPES[info["dtype"]]).newbyteorder("<")
            a, b = (int(x) for x in info["data_offsets"])
            raw = self._data[self._start + a:self._start + b]
            if a < 0 or b < a or len(raw) != b - a:
                raise ValueError("offsets outside the data")
            arr = np.frombuffer(raw, dtype=dtype).reshape(info["shape"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptFileError(f"tensor {name!r} does not read ({_first_line(exc)})", path=self.path) from None
        if hashlib.sha256(arr.tobytes()).hexdigest() != self.listed[name]:
            raise CorruptFileError(f"checksum mismatch in tensor {name!r}", path=self.path)
        return arr


_NP_DTYPES = {v: k for k, v in _DTYPES.items()}


def from_bytes(data: bytes, where: str = "<fingerprint bytes>") -> Fingerprint:
    """A fingerprint from the bytes `to_bytes` wrote, verified like a file."""
    n = int.from_bytes(data[:8], "little") if len(data) >= 8 else -1
    try:
        if n <= 0 or 8 + n > len(data):
            raise ValueError("truncated")
        head = json.loads(data[8:8 + n].decode("utf-8"))
        meta = _verified_meta(head.get("__metadata__"), where)
    except (UnicodeDecodeError, ValueError, AttributeError) as exc:
        raise CorruptFileError(f"not fingerprint bytes ({_first_line(exc)})", path=where) from None
    fp = _assemble(Path(where), meta, _BytesTensors(data, head, meta, where))
    fp.path = None  # not a file: nothing to hash or name
    return fp


def _quote(name: str) -> str:
    """A tensor name from the file for a message, cut short."""
    return repr(name if len(name) <= 80 else name[:80] + "...")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_screens(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(metadata, pre-filter vectors) of a fingerprint, each verified; the rest is not read."""
    p = Path(path)
    meta = read_meta(p)
    t = _Tensors(p, meta)
    _check_layout(meta, t.layout, p)
    return meta, {name[len("screen."):]: t.get(name) for name in meta["tensors"] if name.startswith("screen.")}


def load(path: str | os.PathLike[str]) -> Fingerprint:
    """Read and verify a whole fingerprint file; any damage is a one-line `CorruptFileError`."""
    p = Path(path)
    meta = read_meta(p)
    return _assemble(p, meta, _Tensors(p, meta))


def _assemble(p: Path, meta: dict[str, Any], t: _Tensors) -> Fingerprint:
    _check_layout(meta, t.layout, p)
    try:
        return _assemble_checked(p, meta, t)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        if isinstance(exc, ProvenanceError):
            raise
        raise CorruptFileError(f"the fingerprint is inconsistent ({type(exc).__name__}: {_first_line(exc)})",
                               path=p) from None


def _assemble_checked(p: Path, meta: dict[str, Any], t: _Tensors) -> Fingerprint:
    w = meta.get("weights", {})
    fp = Fingerprint(meta=meta, path=str(p), layers=[int(x) for x in w.get("layers", [])])
    if "profiles" in t:
        scale = t.get("profiles.scale").astype(np.float32)
        prof = t.get("profiles").astype(np.float32) * np.nan_to_num(scale, nan=1.0)[..., None]
        prof[np.isnan(scale)] = np.nan
        if prof.shape[0] != len(fp.layers):
            raise ValueError(f"profiles cover {prof.shape[0]} layers, the metadata lists {len(fp.layers)}")
        fp.profiles = prof
    for tag, mode in MODE.items():
        if f"anchors.{tag}.keys" in t:
            blob, offsets = t.get(f"anchors.{tag}.keys"), t.get(f"anchors.{tag}.offsets")
            if offsets[0] != 0 or offsets[-1] != blob.size or np.any(np.diff(offsets) < 0):
                raise ValueError(f"anchors.{tag}.offsets do not split the {blob.size} key bytes")
            keys = _unblob(blob, offsets)
            ids = t.get(f"anchors.{tag}.ids").astype(np.int64)
            rows = t.get(f"anchors.{tag}.rows").astype(np.float32) * t.get(f"anchors.{tag}.row_scale")[:, None]
            if not len(keys) == len(ids) == rows.shape[0]:
                raise ValueError(f"anchors.{tag}: keys, ids and rows differ in length")
            fp.anchors[mode], fp.anchor_rows[mode] = Anchors(mode, keys, ids), rows
    fp.sketch_anchors = {MODE[tag]: int(n) for tag, n in w.get("sketch_anchors", {}).items()}
    for name, info in w.get("sketches", {}).items():
        tag, layer, key = name.split(".", 2)
        mode = MODE[tag]
        rows = t.get(f"sketch.{name}").astype(np.float32) * float(info["scale"])
        neurons = t.get(f"sketch.{name}.neurons").astype(np.int64)
        if rows.shape != (len(neurons), len(fp.sketch_keys(mode))):
            raise ValueError(f"sketch {name} has shape {rows.shape}")
        fp.sketches.setdefault(mode, {})[(int(layer), key)] = Sketch(rows, neurons, int(info["n_out"]),
                                                                     int(info["top"]))
    for name in meta["tensors"]:
        if name.startswith("screen."):
            fp.screens[name[len("screen."):]] = t.get(name)
    if "vocab.table" in t:
        fp.vocabulary = decode(t.get("vocab.table"), meta["tokenizer"], str(p))
    return fp


class _LayoutError(Exception):
    """One way the tensors contradict the metadata; becomes a CorruptFileError naming the file."""


def _check_layout(meta: dict[str, Any], layout: Layout, p: str | Path) -> None:
    """Every tensor's dtype and shape as the metadata and the other tensors say, and nothing else, before any
    tensor is read (a 1-D row and a 1-D scale would otherwise broadcast to gigabytes)."""
    try:
        expected = _expected_layout(meta, layout)
        for name, (dtype, shape) in sorted(layout.items()):
            if name not in expected:
                raise _LayoutError(f"tensor {_quote(name)} is not part of a version-1 fingerprint")
            want = expected.pop(name)
            if (dtype, shape) != want:
                raise _LayoutError(f"tensor {_quote(name)} is {dtype} {list(shape)}, but its metadata and the other "
                                   f"tensors say {want[0]} {list(want[1])}")
        if expected:
            raise _LayoutError(f"tensor {_quote(min(expected))}, which its metadata describes, is missing")
    except _LayoutError as exc:
        raise CorruptFileError(f"the fingerprint is inconsistent: {exc}", path=p) from None


_SIZE = (int, type(None))
_FACTS = {"format": (str,), "hidden": _SIZE, "intermediate": _SIZE, "vocab": _SIZE, "inferred": (bool,),
          "role_tensors": (dict,), "dtype": (str, type(None)), "quantized": (bool,),
          "tolerance": (int, float)}  # what comparison.model_facts writes and compare reads


def _check_facts(meta: dict[str, Any]) -> None:
    """The model facts compare words its verdict with, each present with its type (a model fingerprint)."""
    facts, config = meta.get("facts", {}), meta.get("config_facts", {})
    for key, types in _FACTS.items():
        if type(facts.get(key, ...)) not in types:
            raise _LayoutError(f"its model facts give {key} as {str(facts.get(key, 'nothing'))[:40]}")
    if not all(type(v) is str for v in facts["role_tensors"].values()):
        raise _LayoutError("its model facts name a role's tensor with something other than text")
    if type(config.get("architecture")) not in (str, type(None)) or not isinstance(config.get("layout"), dict):
        raise _LayoutError("its config facts lack an architecture name or layout")
    if type(meta.get("model", {}).get("parameters")) is not int:
        raise _LayoutError("it gives no parameter count for its model")


def _count(value: Any, what: str, low: int = 0, high: int = 1 << 40) -> int:
    """`value` as a metadata count in [low, high]."""
    if type(value) is not int or not low <= value <= high:
        raise _LayoutError(f"{what} is {str(value)[:40]}, not an integer in [{low}, {high}]")
    return value


def _dims(layout: Layout, name: str, rank: int) -> tuple[int, ...]:
    """The shape of tensor `name`, which must be present with `rank` dims."""
    if name not in layout or len(layout[name][1]) != rank:
        raise _LayoutError(f"a {rank}-D tensor {_quote(name)} is missing")
    return layout[name][1]


def _expected_layout(meta: dict[str, Any], layout: Layout) -> Layout:
    """(dtype, shape) of every tensor the metadata implies, sized from the metadata and the index tensors."""
    for key in _OBJECTS:
        if not isinstance(meta.get(key, {}), dict):
            raise _LayoutError(f"its {key!r} metadata is not an object")
    if not isinstance(meta.get("notes", []), list):
        raise _LayoutError("its notes are not a list")
    if "facts" in meta or "profiles" in layout:
        _check_facts(meta)
    w = meta.get("weights", {})
    layers = w.get("layers", [])
    if not isinstance(layers, list):
        raise _LayoutError("its layers are not a list")
    for layer in layers:
        _count(layer, "a layer number", 0, 1 << 20)
    norms = w.get("constant_norms")
    if not (norms is None or type(norms) in (int, float) and math.isfinite(norms)) \
            or not isinstance(w.get("problems", []), list):
        raise _LayoutError("its weight statistics (constant norms, problems) are not a number and a list")
    out: Layout = {}
    if "profiles" in layout or "profiles.scale" in layout:
        hidden, keys = _count(w.get("hidden"), "the hidden size", 1), w.get("profile_keys")
        if not isinstance(keys, list):
            raise _LayoutError("it has profiles but no list of profile keys")
        out["profiles"] = ("F16", (len(layers), len(keys), hidden))
        out["profiles.scale"] = ("F32", (len(layers), len(keys)))
    anchors: dict[str, int] = {}
    for tag in MODE:
        if any(f"anchors.{tag}.{part}" in layout for part in _ANCHOR_PARTS):
            n, hidden = _dims(layout, f"anchors.{tag}.ids", 1)[0], _count(w.get("hidden"), "the hidden size", 1)
            anchors[tag] = n
            for part, dtype, shape in (("keys", "U8", _dims(layout, f"anchors.{tag}.keys", 1)),
                                       ("offsets", "I64", (n + 1,)), ("ids", "I64", (n,)),
                                       ("rows", "I8", (n, hidden)), ("row_scale", "F32", (n,))):
                out[f"anchors.{tag}.{part}"] = (dtype, shape)
    out.update(_expected_sketches(w, layout, anchors))
    out.update(_expected_screens(layout))
    if "vocab.table" in layout:
        if not isinstance(meta.get("tokenizer"), dict):
            raise _LayoutError("it has a token table but no tokenizer metadata")
        out["vocab.table"] = ("U8", _dims(layout, "vocab.table", 1))
    return out


def _expected_sketches(w: dict[str, Any], layout: Layout, anchors: dict[str, int]) -> Layout:
    """The sketch tensors `weights.sketches` lists: [rows, sketch anchors] and their neuron ids."""
    counts, sketches = w.get("sketch_anchors", {}), w.get("sketches", {})
    if not isinstance(counts, dict) or not isinstance(sketches, dict):
        raise _LayoutError("its sketch metadata is not an object")
    for tag, n in counts.items():
        if tag not in anchors:
            raise _LayoutError(f"it counts sketch anchors for {_quote(tag)}, which has no anchors")
        _count(n, f"{tag} sketch anchors", 0, anchors[tag])
    out: Layout = {}
    for name, info in sketches.items():
        tag, _, rest = name.partition(".")
        layer, _, key = rest.partition(".")
        if tag not in counts or not layer.isdigit() or not key or not isinstance(info, dict):
            raise _LayoutError(f"sketch {_quote(name)} is not described as a version-1 sketch")
        rows = _dims(layout, f"sketch.{name}.neurons", 1)[0]
        _count(info.get("n_out"), f"sketch {name} width", 1)
        _count(info.get("top"), f"sketch {name} top rows", 1, rows)
        scale = info.get("scale")
        if type(scale) not in (int, float) or not math.isfinite(scale):
            raise _LayoutError(f"sketch {_quote(name)} has the scale {str(scale)[:40]}, not a finite number")
        out[f"sketch.{name}"] = ("F16", (rows, counts[tag]))
        out[f"sketch.{name}.neurons"] = ("I64", (rows,))
    return out


def _expected_screens(layout: Layout) -> Layout:
    """identify's pre-filter vectors: a MinHash, and per mode the cosines among at most SCREEN_ANCHORS anchors."""
    out: Layout = {"screen.minhash": ("U64", (MINHASH,))} if "screen.minhash" in layout else {}
    for tag in MODE:
        if f"screen.{tag}" in layout or f"screen.{tag}.anchors" in layout:
            k = _dims(layout, f"screen.{tag}.anchors", 1)[0]
            if k > SCREEN_ANCHORS:
                raise _LayoutError(f"its screen holds {k} anchors by {tag}, more than the {SCREEN_ANCHORS} a screen "
                                   "keeps")
            out[f"screen.{tag}.anchors"] = ("U64", (k,))
            out[f"screen.{tag}"] = ("F16", (k * (k - 1) // 2,))
    return out
