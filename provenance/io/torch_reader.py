"""PyTorch pickles (`pytorch_model*.bin`, `.pt`, `.pth`), read only with `weights_only=True`.

A checkpoint that needs code to unpickle is refused, never executed. Zip-format files are
memory-mapped so that listing shapes costs no tensor reads; one shard is kept open at a time.
Every size the pickle claims is checked against the file before torch allocates it: torch
would otherwise allocate whatever a 1 kB file asks for.
"""

from __future__ import annotations

import pickle
import pickletools
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import torch

from provenance.errors import CorruptFileError, TensorNotFoundError, UnsafePickleError
from provenance.io.base import ReaderMetadata, TensorInfo
from provenance.io.guard import open_file

_DTYPE_NAMES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}
MAX_GLOBAL_NAME = 512  # 'module qualname' of a GLOBAL; the longest real one is under 100 characters
_MAX_DEPTH = 64  # nested dicts in a checkpoint: {'model': {'encoder': ...}} needs a handful


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """torch.load(weights_only=True), mmapped when possible, flattened to name -> tensor."""
    mmap = _is_zip(path)
    names = _check_claims(path, mmap)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        code = next((n.replace(" ", ".") for n in names if not n.startswith(_PLAIN_MODULES)), None)
        if _needs_code(str(exc)) or code:
            raise UnsafePickleError(_unsafe_reason(str(exc) if _needs_code(str(exc)) else f"GLOBAL {code}"),
                                    path=path) from None
        raise _corrupt(path, _unpickler_detail(str(exc))) from None
    except Exception as exc:  # torch.load raises nearly anything on a damaged file: Assertion-, Key-, Index-...
        raise _corrupt(path, _first_line(exc)) from None
    flat: dict[str, torch.Tensor] = {}
    _flatten(obj, "", flat, path)
    if not flat:
        raise CorruptFileError("PyTorch checkpoint holds no tensors", path=path)
    return flat


def _is_zip(path: Path) -> bool:
    """`zipfile.is_zipfile`, which raises (not answers) on some damaged end records, such as multi-disk ones."""
    try:
        return zipfile.is_zipfile(path)
    except zipfile.BadZipFile as exc:
        raise _corrupt(path, f"damaged zip archive: {_first_line(exc)}") from None


def _corrupt(path: Path, detail: str) -> CorruptFileError:
    return CorruptFileError(f"cannot read PyTorch checkpoint ({detail}); the file is truncated or not a PyTorch "
                            "pickle", path=path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _needs_code(message: str) -> bool:
    """Whether torch's weights-only unpickler refused a global (code), not a damaged byte stream."""
    return "global" in message.lower()


def _unpickler_detail(message: str) -> str:
    """What follows "WeightsUnpickler error:" in torch's long refusal (e.g. 'Unsupported operand 36')."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.startswith("WeightsUnpickler error:"):
            rest = line[len("WeightsUnpickler error:"):].strip() or (lines[i + 1] if i + 1 < len(lines) else "")
            return rest[:200] or "damaged pickle"
    return lines[0][:200] if lines else "damaged pickle"


def _unsafe_reason(message: str) -> str:
    """Name the global the pickle asked for, from torch's weights-only error text."""
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", message) or re.search(r"GLOBAL ([\w.]+)", message)
    what = f" (it references {found.group(1)})" if found else ""
    return (f"pickle needs code execution to load{what}; provenance only reads plain tensors "
            "(weights_only=True). Convert it to safetensors in a sandbox you trust.")


def _flatten(obj: object, prefix: str, out: dict[str, torch.Tensor], path: Path) -> None:
    """Collect tensors from nested dicts ({'model': {...}} checkpoints) with dotted names.

    Iterative, each mapping visited once: a pickle can nest dicts thousands deep or make one contain itself.
    """
    stack: list[tuple[object, str, int]] = [(obj, prefix, 0)]
    seen: set[int] = set()
    while stack:
        item, name, depth = stack.pop()
        if isinstance(item, torch.Tensor):
            out[name.rstrip(".")] = item
        elif isinstance(item, Mapping) and id(item) not in seen:
            if depth >= _MAX_DEPTH:
                raise CorruptFileError(f"PyTorch checkpoint nests dicts more than {_MAX_DEPTH} deep", path=path)
            seen.add(id(item))
            stack.extend((v, f"{name}{k}.", depth + 1) for k, v in reversed(list(item.items())))


# Bytes per element of the storage classes a legacy checkpoint names (others count as 1: a lower bound).
_STORAGE_SIZES = {"DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
                  "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1,
                  "BoolStorage": 1, "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16}
_LEGACY_PICKLES = 5  # magic number, protocol, sys info, the object, its storage keys
_REBUILDS = ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_qtensor")
_Scan = tuple[list[object], list[tuple[str, tuple]], list[str]]  # persistent ids, calls, globals
_PLAIN_MODULES = ("torch ", "torch.", "collections ", "builtins ", "__builtin__ ", "_codecs ")  # what tensors need


def _check_claims(path: Path, zipped: bool) -> list[str]:
    """Refuse, before torch allocates anything, a file whose pickle claims more memory than the file holds.

    torch's weights-only unpickler still calls `bytearray(n)`, `torch.FloatStorage(n)` and the tensor
    rebuild functions with whatever sizes the pickle gives, and a legacy file's storages grow to fit any
    tensor view. Every claimed size must fit in the file; the pickles are only parsed, never run. Returns
    the globals the pickle names ('module name'), for the error message when torch refuses one.
    """
    with open_file(path) as f:
        size = f.seek(0, 2)
        f.seek(0)
        if zipped:
            pids, calls, names = _zip_pickle(path, f, size)
        else:
            bounded = _Bounded(f, size)
            pids, calls, names = _scan(bounded, _LEGACY_PICKLES)
            if bounded.overrun:  # torch would allocate the claimed length before finding the file too short
                raise _corrupt(path, f"a pickled string claims {bounded.overrun:,} bytes; the {size:,}-byte file "
                                     "ends first")
    claims: dict[str, int] = {}
    for pid in pids:
        if _is_storage(pid):
            if pid[4] < 0:
                raise _corrupt(path, f"a storage claims {pid[4]:,} elements")
            kind = str(pid[1]).rsplit(" ", 1)[-1].rsplit(".", 1)[-1]
            claims.setdefault(repr(pid[2]), pid[4] * _STORAGE_SIZES.get(kind, 1))
    if sum(claims.values()) > size:
        raise _corrupt(path, f"its storages claim {sum(claims.values()):,} bytes but the file has {size:,}")
    _check_calls(path, calls, size)
    long = next((n for n in names if len(n) > MAX_GLOBAL_NAME), None)
    if long is not None:  # torch formats its refusal with regexes that take quadratic time in such a name
        raise _corrupt(path, f"the pickle names a global of {len(long):,} characters (real ones are under "
                             f"{MAX_GLOBAL_NAME})")
    return names


def _zip_pickle(path: Path, f: BinaryIO, size: int) -> _Scan:
    """The scan of a zip checkpoint's data.pkl, after checking that no member inflates past the file."""
    try:
        with zipfile.ZipFile(f) as z:
            members = z.infolist()
            big = next((m for m in members if m.file_size > size), None)
            pkl = next((m for m in members if m.filename.endswith("data.pkl")), None)
            if big is None and pkl is not None:
                with z.open(pkl) as stream:
                    return _scan(stream, 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError):
        return [], [], []  # a damaged archive: torch.load reports it in its own words
    if big is not None:  # raised outside the try: CorruptFileError is a ValueError, which the try swallows
        raise _corrupt(path, f"member {big.filename[:80]!r} inflates to {big.file_size:,} bytes, more "
                             f"than the {size:,}-byte file")
    return [], [], []


def _is_storage(pid: object) -> bool:
    """A legacy persistent id: ('storage', storage type, key, location, numel, view metadata)."""
    return isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and type(pid[4]) is int


def _check_calls(path: Path, calls: list[tuple[str, tuple]], size: int) -> None:
    """Allocating calls (bytearray, storage and tensor constructors, tensor rebuilds) must fit in `size`."""
    for fn, args in calls:
        name = fn.rsplit(" ", 1)[-1].rsplit(".", 1)[-1]
        if name in _REBUILDS and len(args) >= 4:
            need = _extent(args[1], args[2], args[3])
            if name == "_rebuild_qtensor" and isinstance(args[2], tuple):
                need = max(need, _product(args[2]))
            cap = args[0][4] if _is_storage(args[0]) else size
            if need > cap:
                raise _corrupt(path, f"a tensor claims {need:,} elements but its storage holds at most {cap:,}")
        elif name == "bytearray" or name.endswith(("Storage", "Tensor")):
            need = _product(args[0] if len(args) == 1 and isinstance(args[0], tuple) else args)
            if need > size:
                raise _corrupt(path, f"it asks for a {need:,}-element {name} in a {size:,}-byte file")


def _product(values: tuple) -> int:
    """The product of the integers in `values` (non-integers ignored)."""
    n = 1
    for v in values:
        if type(v) is int and v > 0:
            n *= v
    return n if any(type(v) is int for v in values) else 0


def _extent(offset: object, shape: object, stride: object) -> int:
    """Elements a strided view reaches into its storage (0 when the sizes are not plain integers)."""
    if not (isinstance(shape, tuple) and isinstance(stride, tuple) and type(offset) is int and offset >= 0):
        return 0
    if not all(type(v) is int for v in shape + stride) or len(shape) != len(stride):
        return 0
    if any(d <= 0 for d in shape):
        return 0
    return offset + sum((d - 1) * abs(s) for d, s in zip(shape, stride)) + 1


class _Bounded:
    """A file seen through reads that never ask for more than what is left (a plain `read(n)` allocates n
    bytes first); `overrun` keeps the largest length (over 64 KiB) asked for past the end."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f, self.size, self.overrun = f, size, 0

    def read(self, n: int = -1) -> bytes:
        left = self.size - self.f.tell()
        if n > max(left, 1 << 16):
            self.overrun = max(self.overrun, n)
        return self.f.read(left if n < 0 or n > left else n)

    def readline(self) -> bytes:
        return self.f.readline(1 << 16)


def _scan(f: BinaryIO | _Bounded, pickles: int) -> _Scan:
    """(persistent ids, calls as (callable, args), globals) of the first `pickles` pickles in `f`; parsing
    stops quietly at damage (torch reports it)."""
    found: _Scan = ([], [], [])
    try:
        for _ in range(pickles):
            _scan_one(f, *found)
    except Exception:  # noqa: BLE001 - pickletools raises ValueError and others on a damaged stream
        pass
    return found


def _scan_one(f: BinaryIO | _Bounded, pids: list[object], calls: list[tuple[str, tuple]], names: list[str]) -> None:
    """Simulate one pickle's stack, keeping constants, globals, tuples and the memo; everything else is an
    opaque placeholder. Records each persistent id and each REDUCE/NEWOBJ of a named callable."""
    frames: list[list[object]] = [[]]
    memo: dict[object, object] = {}
    for op, arg, _ in pickletools.genops(f):
        top, name = frames[-1], op.name
        if pickletools.markobject in op.stack_before:
            values = frames.pop() if len(frames) > 1 else []
            frames[-1].append(tuple(values) if name == "TUPLE" else None)
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            values, top[-n:] = top[-n:], []
            top.append(tuple(values))
        elif name in ("BINPERSID", "PERSID"):
            pid = (top.pop() if top else None) if name == "BINPERSID" else arg
            pids.append(pid)
            top.append(pid)
        elif name in ("REDUCE", "NEWOBJ", "STACK_GLOBAL"):
            second, first = (top.pop() if top else None), (top.pop() if top else None)
            if name == "STACK_GLOBAL":
                glob = f"{first} {second}" if isinstance(first, str) and isinstance(second, str) else None
                names += [glob] if glob else []
                top.append(glob)
                continue
            if isinstance(first, str) and isinstance(second, tuple):
                calls.append((first, second))
            top.append(None)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            memo[arg if name != "MEMOIZE" else len(memo)] = top[-1] if top else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            top.append(memo.get(arg))
        elif pickletools.markobject in op.stack_after:
            frames.append([])
        elif name == "GLOBAL":
            names.append(str(arg))
            top.append(arg)
        else:
            del top[max(0, len(top) - len(op.stack_before)):]
            top.extend([arg if op.arg is not None and name != "PROTO" else None] * len(op.stack_after))
        if name == "STOP":
            return


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
        self.metadata = ReaderMetadata("pytorch", {"mmap": all(_is_zip(p) for p in self.files)})
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
