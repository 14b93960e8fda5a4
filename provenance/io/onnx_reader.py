"""Read the weights of an ONNX model as PyTorch-named, PyTorch-oriented CPU tensors.

The graph analysis (which constants are weights, what to call them, which way round they
are) lives in `onnx_graph`; this module loads the protobuf without external data, checks
every stored tensor against its dims and its external file, and computes one weight at a
time on `read`: dequantizing integers and transposing MatMul weights to [out, in]. Folding
runs without recursion, drops each intermediate once used, and never divides by zero.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from provenance.errors import (
    CorruptFileError,
    MissingFileError,
    ProvenanceError,
    TensorNotFoundError,
    UnknownFormatError,
    UnsafePathError,
)
from provenance.io.base import ReaderMetadata, TensorInfo
from provenance.io.onnx_graph import (
    DTYPE_NAMES,
    GraphIndex,
    WeightSpec,
    find_weights,
    int_attr,
    needs_transpose,
    numel,
    quote,
)
from provenance.io.onnx_names import recover_names, recovery_counts
from provenance.io.onnx_proto import (
    ModelProto,
    NodeProto,
    TensorProto,
    parse_model,
    typed_values,
)

_TORCH_DTYPES: dict[int, torch.dtype] = {
    TensorProto.FLOAT: torch.float32, TensorProto.UINT8: torch.uint8, TensorProto.INT8: torch.int8,
    TensorProto.INT16: torch.int16, TensorProto.INT32: torch.int32, TensorProto.INT64: torch.int64,
    TensorProto.BOOL: torch.bool, TensorProto.FLOAT16: torch.float16, TensorProto.DOUBLE: torch.float64,
    TensorProto.BFLOAT16: torch.bfloat16,
    **{getattr(TensorProto, n.upper()): getattr(torch, n)  # unsigned wide types: torch >= 2.3
       for n in ("uint16", "uint32", "uint64") if hasattr(torch, n)},
}
# Bytes per element, for checking raw data against dims (4-bit types pack two per byte).
_ITEMSIZE: dict[int, float] = {
    **{t: torch.empty(0, dtype=d).element_size() for t, d in _TORCH_DTYPES.items()},
    TensorProto.UINT16: 2, TensorProto.UINT32: 4, TensorProto.UINT64: 8,
    TensorProto.COMPLEX64: 8, TensorProto.COMPLEX128: 16,
    **{getattr(TensorProto, n): size for n, size in (  # newer element types, where onnx has them
        ("FLOAT8E4M3FN", 1), ("FLOAT8E4M3FNUZ", 1), ("FLOAT8E5M2", 1), ("FLOAT8E5M2FNUZ", 1),
        ("UINT4", 0.5), ("INT4", 0.5), ("FLOAT4E2M1", 0.5)) if hasattr(TensorProto, n)},
}


@dataclass(frozen=True)
class _External:
    """Where one tensor's bytes live outside the .onnx file."""

    file: Path
    offset: int
    length: int


@dataclass(frozen=True)
class _Plan:
    """How `read` builds one exposed tensor."""

    spec: WeightSpec
    transpose: bool


class OnnxTensorReader:
    """An ONNX model's float weights under PyTorch names, read lazily one at a time.

    Dequantizes onnxruntime's `X_quantized`/`X_scale`/`X_zero_point` triples and constant
    Cast/Mul/Sub/DequantizeLinear chains; recovers anonymous MatMul weight names from the
    bias added after them or from the exporter's node scope (see `metadata['name_recovery']`).
    """

    format = "onnx"

    def __init__(self, path: Path) -> None:
        """Parse the graph and check every stored tensor; no weight data is decoded yet."""
        self.path = Path(path)
        model = load_model_proto(self.path)
        self._index = GraphIndex.build(model.graph, path=self.path)
        self._external = check_external_tensors(self.path, self._index.consts)
        specs, skipped = find_weights(self._index)
        names, methods = recover_names(self._index, specs)
        self._plans = {n: _Plan(s, needs_transpose(self._index, s)) for n, s in zip(names, specs)}
        self._infos = {n: self._info(n, p) for n, p in self._plans.items()}
        externals = sorted({e.file for e in self._external.values()})
        self.files: list[Path] = [self.path, *externals]
        self.metadata = ReaderMetadata(self.format, _model_facts(model, methods, skipped))
        self._closed = False

    def _info(self, name: str, plan: _Plan) -> TensorInfo:
        """Shape in PyTorch order, storage dtype, and the file holding the largest source."""
        spec = plan.spec
        shape = spec.shape[::-1] if plan.transpose else spec.shape
        main = max(spec.sources, key=lambda n: numel(self._index.shapes[n]))
        ext = self._external.get(main)
        nbytes = sum(_nbytes(self._index.consts[s]) for s in spec.sources)
        return TensorInfo(name=name, shape=tuple(shape), dtype=spec.dtype,
                          file=ext.file if ext else self.path, nbytes=nbytes,
                          original_name=spec.base,
                          quantized=spec.quantized)

    def infos(self) -> dict[str, TensorInfo]:
        """Every exposed weight, by recovered name, in the order the graph first uses them."""
        return dict(self._infos)

    def read(self, name: str) -> torch.Tensor:
        """One weight on the CPU: float32 when dequantized, the stored float dtype otherwise."""
        if self._closed:
            raise ProvenanceError("this reader is closed; open the file again with OnnxTensorReader(path)",
                                  path=self.path)
        plan = self._plans.get(name)
        if plan is None:
            raise TensorNotFoundError(name, self._plans, path=self.path)
        spec = plan.spec
        value = self._dequantize_ort(spec) if spec.ort else self._evaluate(spec.value)
        if spec.quantized and value.dtype != torch.float32:
            value = value.to(torch.float32)
        return value.t().contiguous() if plan.transpose else value

    def close(self) -> None:
        """Drop the parsed graph (and the weights embedded in it); reads fail afterwards."""
        self._closed = True
        self._index = GraphIndex(outputs=set())

    def __enter__(self) -> OnnxTensorReader:
        """Use as `with OnnxTensorReader(path) as reader:`."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on leaving the block."""
        self.close()

    def _const(self, name: str) -> torch.Tensor:
        """A stored constant as a CPU tensor (from the protobuf or its external file)."""
        return _to_torch(name, self._index.consts[name], self._external.get(name), self.path)

    def _evaluate(self, name: str) -> torch.Tensor:
        """A constant, folding the Cast/Mul/Sub/DequantizeLinear/... nodes that compute it in order,
        each intermediate dropped as soon as nothing left needs it."""
        folds = self._index.folds
        order = self._index.fold_order(name)
        if not order:
            return self._const(name)
        left = Counter(a for value in order for a in folds[value].input if a)  # reads still to come
        memo: dict[str, torch.Tensor] = {}
        for value in order:
            node = folds[value]
            for a in node.input:
                if a and a not in memo:
                    memo[a] = self._const(a)  # folds come in order: anything else is stored
            memo[value] = _apply(node, [memo[a] if a else None for a in node.input], self._index.types[value],
                                 self.path)
            for a in filter(None, node.input):
                left[a] -= 1
                if left[a] == 0:
                    del memo[a]
        return memo[name]

    def _dequantize_ort(self, spec: WeightSpec) -> torch.Tensor:
        """(q - zero_point) * scale for onnxruntime's X_quantized naming."""
        scale_name, zp_name, axis = spec.ort  # type: ignore[misc]
        q, scale = self._const(spec.value), self._const(scale_name)
        zp = self._const(zp_name) if zp_name else None
        return dequantize(q, scale, zp, axis=axis, out_dtype=torch.float32)


def dequantize(q: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor | None, *, axis: int | None,
               out_dtype: torch.dtype, block_size: int = 0) -> torch.Tensor:
    """(q - zp) * scale, per tensor, per `axis` (1-D scale) or per block (scale of q's rank).

    >>> dequantize(torch.tensor([[4, 8], [2, 6]], dtype=torch.int8), torch.tensor([0.5, 0.25]),
    ...            torch.tensor([2, 2], dtype=torch.int8), axis=1, out_dtype=torch.float32)
    tensor([[1.0000, 1.5000],
            [0.0000, 1.0000]])
    """
    x = q.to(torch.float32)
    s = _align(scale.to(torch.float32), x, axis, block_size)
    if zp is not None:
        x = x - _align(zp.to(torch.float32), x, axis, block_size)
    return (x * s).to(out_dtype)


def _align(p: torch.Tensor, x: torch.Tensor, axis: int | None, block_size: int) -> torch.Tensor:
    """Shape a scale or zero point to broadcast against `x` along `axis` (or per block)."""
    if axis is None or p.numel() == 1:
        return p
    if p.dim() == 1 and x.dim() > 1:
        view = [1] * x.dim()
        view[axis] = -1
        return p.reshape(view)
    if block_size and p.dim() == x.dim():  # index, never repeat: block_size may be far larger than x
        return p.index_select(axis, torch.arange(x.shape[axis]) // block_size)
    return p


def _apply(node: NodeProto, args: list[torch.Tensor | None], out_type: int, path: Path) -> torch.Tensor:
    """Run one foldable node on constant tensors (GraphIndex checked its attributes, shapes and types)."""
    op, a = node.op_type, args[0]
    assert a is not None
    if op == "Identity":
        return a
    if op == "Cast":
        return a.to(_TORCH_DTYPES[out_type])
    if op == "Transpose":
        perm = next((list(attr.ints) for attr in node.attribute if attr.name == "perm"), None)
        return a.permute(*(range(a.dim() - 1, -1, -1) if perm is None else perm)).contiguous()
    if op == "DequantizeLinear":
        zp = args[2] if len(args) > 2 else None
        axis = int_attr(node, "axis", 1)
        axis = axis + a.dim() if axis < 0 else axis
        return dequantize(a, args[1], zp, axis=axis if a.dim() else None,  # type: ignore[arg-type]
                          out_dtype=_TORCH_DTYPES[out_type], block_size=int_attr(node, "block_size", 0))
    b = args[1]
    assert b is not None
    if op == "Div" and not a.is_floating_point():
        return _int_div(node, a, b, path)
    return {"Mul": torch.mul, "Sub": torch.sub, "Div": torch.div, "Add": torch.add}[op](a, b)


def _int_div(node: NodeProto, a: torch.Tensor, b: torch.Tensor, path: Path) -> torch.Tensor:
    """Integer a / b truncated, as ONNX Div; refuses a zero divisor, and computes MIN / -1 (which
    traps the CPU, killing the process) as the wrapped negation."""
    if bool((b == 0).any()):
        raise CorruptFileError(f"constant Div node {quote(node.name)} divides integers by zero; the file is "
                               "corrupt or built to break readers: re-export it", path=path)
    if not b.dtype.is_signed:
        return torch.div(a, b, rounding_mode="trunc")
    minus_one = b == -1
    q = torch.div(a, torch.where(minus_one, torch.ones_like(b), b), rounding_mode="trunc")
    return torch.where(minus_one, -a, q)


MAX_NODES = 200_000  # indexing takes about 1 KiB per node; a 70B-parameter export has fewer than 20,000


def load_model_proto(path: Path) -> ModelProto:
    """The ModelProto without external data; bad files become one-line CorruptFileErrors."""
    if not path.exists():
        raise MissingFileError("ONNX model file not found; check the path", path=path)
    if path.is_dir():
        raise UnknownFormatError("is a directory, not an .onnx file; pass the .onnx file inside it",
                                 path=path)
    size = path.stat().st_size
    try:
        model = parse_model(path.read_bytes())
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CorruptFileError(f"not a readable ONNX protobuf ({first}; {size} bytes): the file is "
                               "truncated or not an ONNX model; re-download or re-export it",
                               path=path) from None
    if not model.HasField("graph") or model.ir_version <= 0:
        raise CorruptFileError(f"not an ONNX model: {size} bytes parsed without a graph or IR "
                               "version; pass an .onnx file exported by torch.onnx or onnxruntime",
                               path=path)
    if len(model.graph.node) > MAX_NODES:
        raise CorruptFileError(f"the graph has {len(model.graph.node):,} nodes, more than the {MAX_NODES:,} this "
                               "reader indexes (exported language models have tens of thousands at most); the file "
                               "is built to exhaust memory, or pass the weights as safetensors", path=path)
    if (field := _non_text_field(model)) is not None:
        raise CorruptFileError(f"a text field ({field}) holds bytes that are not UTF-8: the file is corrupt; "
                               "re-download or re-export it", path=path)
    return model


def _non_text_field(model: ModelProto) -> str | None:
    """The first string field (doc strings aside: nothing reads them) that protobuf handed back as bytes (not
    UTF-8), walking the messages iteratively."""
    stack: list[Message] = [model]
    while stack:
        message = stack.pop()
        for fd, value in message.ListFields():
            if fd.type == FieldDescriptor.TYPE_MESSAGE:
                stack.extend([value] if isinstance(value, Message) else value)
            elif fd.type != FieldDescriptor.TYPE_STRING or fd.name == "doc_string":
                continue
            elif any(not isinstance(v, str) for v in ([value] if isinstance(value, (str, bytes)) else value)):
                return fd.full_name
    return None


def _model_facts(model: ModelProto, methods: list[str], skipped: dict[str, str]) -> dict:
    """Producer, opsets, graph inputs/outputs and how names were recovered."""
    inits = {t.name for t in model.graph.initializer}
    return {
        "producer_name": model.producer_name, "producer_version": model.producer_version,
        "ir_version": int(model.ir_version),
        "opset": {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
        "inputs": [i.name for i in model.graph.input if i.name not in inits],
        "outputs": [o.name for o in model.graph.output],
        "name_recovery": recovery_counts(methods),
        "skipped": dict(skipped),
    }


def _nbytes(tensor: TensorProto) -> int:
    """Stored bytes of a tensor: its dims times its element size (rounded up for 4-bit), exactly."""
    size = _ITEMSIZE.get(tensor.data_type)
    if size is None:
        return 0
    n = numel(list(tensor.dims))
    return (n + 1) // 2 if size == 0.5 else n * int(size)


def check_external_tensors(path: Path, consts: dict[str, TensorProto]) -> dict[str, _External]:
    """Check each stored tensor's data against its dims; map external ones to safe file spans."""
    external: dict[str, _External] = {}
    for name, tensor in consts.items():
        if any(d < 0 for d in tensor.dims):
            raise CorruptFileError(f"tensor {name!r} has negative dims {list(tensor.dims)}; "
                                   "the file is corrupt, re-export it", path=path)
        if tensor.data_location == TensorProto.EXTERNAL:
            external[name] = _external_span(path, name, tensor)
        elif tensor.data_type in _ITEMSIZE:
            _check_embedded(path, name, tensor)
    return external


def _check_embedded(path: Path, name: str, tensor: TensorProto) -> None:
    """Raise if a tensor's raw_data (or typed values) cannot hold its dims."""
    expected = _nbytes(tensor)
    dims, dtype = list(tensor.dims), DTYPE_NAMES.get(tensor.data_type, str(tensor.data_type))
    if tensor.HasField("raw_data"):
        if len(tensor.raw_data) != expected:
            raise CorruptFileError(f"tensor {name!r} has {len(tensor.raw_data)} bytes of raw_data, "
                                   f"but dims {dims} of {dtype} need {expected}; the file is corrupt "
                                   "or truncated, re-export it", path=path)
        return
    count = max(len(tensor.float_data), len(tensor.int32_data), len(tensor.int64_data),
                len(tensor.double_data), len(tensor.uint64_data))
    n = numel(dims)
    want = n * 2 if tensor.data_type in (TensorProto.COMPLEX64, TensorProto.COMPLEX128) else n
    if _ITEMSIZE[tensor.data_type] == 0.5:
        want = (n + 1) // 2
    if count != want:
        raise CorruptFileError(f"tensor {name!r} holds {count} values, but dims {dims} need {want}; "
                               "the file is corrupt, re-export it", path=path)


def _external_span(path: Path, name: str, tensor: TensorProto) -> _External:
    """Resolve an external-data reference, refusing paths outside the model directory."""
    info = {e.key: e.value for e in tensor.external_data}
    location = info.get("location", "")
    base = path.parent.resolve()
    pure = PurePosixPath(location.replace("\\", "/"))
    target = (base / pure).resolve()
    if not location or pure.is_absolute() or os.path.isabs(location) or not target.is_relative_to(base):
        raise UnsafePathError(f"external data location {location!r} of tensor {name!r} is outside "
                              f"the model directory {base}; keep external data files next to the "
                              ".onnx file and reference them by relative name", path=path)
    if not target.is_file():
        raise MissingFileError(f"external data file {location!r} for tensor {name!r} not found "
                               f"(looked for {target}); copy it next to the .onnx file", path=path)
    try:
        offset = int(info.get("offset", 0))
        length = int(info.get("length", _nbytes(tensor)))
    except ValueError:
        raise CorruptFileError(f"tensor {name!r} has a non-integer external offset/length "
                               f"{info.get('offset')!r}/{info.get('length')!r}; re-export it",
                               path=path) from None
    expected, size = _nbytes(tensor), target.stat().st_size
    if length != expected or offset < 0 or offset + length > size:
        raise CorruptFileError(f"tensor {name!r} needs {expected} bytes but its external data says "
                               f"offset {offset}, length {length} in {location!r} ({size} bytes); "
                               "the data file is truncated or mismatched, re-export it", path=path)
    return _External(target, offset, length)


def _to_torch(name: str, tensor: TensorProto, ext: _External | None, path: Path) -> torch.Tensor:
    """Decode one stored tensor (raw, typed-field or external bytes) into a CPU tensor."""
    dtype = _TORCH_DTYPES.get(tensor.data_type)
    if dtype is None:
        raise CorruptFileError(f"tensor {name!r} has element type {tensor.data_type}, which "
                               "provenance cannot decode; export float, int8 or uint8 weights", path=path)
    shape = tuple(int(d) for d in tensor.dims)
    if ext is not None:
        with open(ext.file, "rb") as f:
            f.seek(ext.offset)
            data = f.read(ext.length)
        if len(data) != ext.length:
            raise CorruptFileError(f"external data for tensor {name!r} ended after {len(data)} of "
                                   f"{ext.length} bytes in {ext.file}; the file changed or is "
                                   "truncated, re-export it", path=path)
    elif tensor.HasField("raw_data"):
        data = tensor.raw_data
    else:
        array = typed_values(tensor)
        if tensor.data_type == TensorProto.BFLOAT16:
            return torch.from_numpy(array).view(torch.bfloat16).reshape(shape)
        return torch.from_numpy(np.ascontiguousarray(array)).reshape(shape)
    if not data:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(data), dtype=dtype).reshape(shape)
