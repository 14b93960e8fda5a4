"""ONNX's protobuf messages without importing the `onnx` package, and the few helpers we need on them.

`import onnx` costs about 0.9 s (its helpers import `ml_dtypes`), while reading weights needs only the
generated message classes, which live in `onnx/onnx_ml_pb2.py` and import nothing but protobuf. That file
is loaded from onnx's installed folder under a name of our own; where `onnx` is already imported, or the
file is not there, `onnx`'s own module is used. Both give the same classes: protobuf keeps one class per
message descriptor, so objects pass freely between this module and `onnx` (the activation runner).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np


def _load() -> ModuleType:
    """`onnx.onnx_ml_pb2`, loaded by file when `onnx` itself is not imported yet."""
    if "onnx" not in sys.modules:
        spec = importlib.util.find_spec("onnx")
        folders = list(spec.submodule_search_locations or []) if spec is not None else []
        for folder in folders:
            path = Path(folder) / "onnx_ml_pb2.py"
            pb2 = importlib.util.spec_from_file_location("provenance._onnx_ml_pb2", path)
            if path.is_file() and pb2 is not None and pb2.loader is not None:
                module = importlib.util.module_from_spec(pb2)
                pb2.loader.exec_module(module)
                return module
    import onnx

    return onnx.onnx_ml_pb2


_pb2 = _load()
ModelProto = _pb2.ModelProto
GraphProto = _pb2.GraphProto
NodeProto = _pb2.NodeProto
TensorProto = _pb2.TensorProto
AttributeProto = _pb2.AttributeProto

# numpy element type per ONNX element type this package decodes.
NP_DTYPES: dict[int, np.dtype] = {
    TensorProto.FLOAT: np.dtype(np.float32), TensorProto.FLOAT16: np.dtype(np.float16),
    TensorProto.BFLOAT16: np.dtype(np.uint16), TensorProto.DOUBLE: np.dtype(np.float64),
    TensorProto.UINT8: np.dtype(np.uint8), TensorProto.INT8: np.dtype(np.int8),
    TensorProto.UINT16: np.dtype(np.uint16), TensorProto.INT16: np.dtype(np.int16),
    TensorProto.INT32: np.dtype(np.int32), TensorProto.INT64: np.dtype(np.int64),
    TensorProto.BOOL: np.dtype(np.bool_), TensorProto.UINT32: np.dtype(np.uint32),
    TensorProto.UINT64: np.dtype(np.uint64),
}
_BITS_IN_INT32 = frozenset({TensorProto.FLOAT16, TensorProto.BFLOAT16})  # 16-bit patterns in int32_data


def parse_model(data: bytes) -> ModelProto:
    """A ModelProto from its serialized bytes (external data left where it is)."""
    return ModelProto.FromString(data)


def typed_values(tensor: TensorProto) -> np.ndarray:
    """The values of a tensor stored in its typed fields (not raw_data), flat, in its element type.

    bfloat16 comes back as its uint16 bit patterns. Per the ONNX spec: float in float_data, double in
    double_data, int64 in int64_data, uint32/uint64 in uint64_data, every narrower type in int32_data.
    """
    etype = tensor.data_type
    dtype = NP_DTYPES[etype]
    if etype == TensorProto.FLOAT:
        return np.asarray(tensor.float_data, dtype=np.float32)
    if etype == TensorProto.DOUBLE:
        return np.asarray(tensor.double_data, dtype=np.float64)
    if etype == TensorProto.INT64:
        return np.asarray(tensor.int64_data, dtype=np.int64)
    if etype in (TensorProto.UINT32, TensorProto.UINT64):
        return np.asarray(tensor.uint64_data, dtype=np.uint64).astype(dtype)
    ints = np.asarray(tensor.int32_data, dtype=np.int64)
    if etype in _BITS_IN_INT32:
        return ints.astype(np.uint16).view(dtype) if etype == TensorProto.FLOAT16 else ints.astype(np.uint16)
    return ints.astype(dtype)


def from_array(array: np.ndarray) -> TensorProto:
    """A TensorProto holding `array` as raw little-endian bytes (for Constant nodes' scalar forms)."""
    etype = next(t for t, d in NP_DTYPES.items() if d == array.dtype and t != TensorProto.BFLOAT16)
    tensor = TensorProto(data_type=etype, dims=list(array.shape))
    tensor.raw_data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return tensor
