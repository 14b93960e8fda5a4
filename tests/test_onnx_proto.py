"""`provenance.io.onnx_proto`: ONNX messages without `import onnx`, agreeing with onnx's own helpers."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from provenance.io import onnx_proto


def test_reading_an_onnx_file_does_not_import_onnx(tmp_path) -> None:
    """The reader's import and a parse load protobuf only: `onnx` (0.9 s, ml_dtypes) stays unimported."""
    path = tmp_path / "m.onnx"
    node = helper.make_node("MatMul", ["x", "w"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                              [numpy_helper.from_array(np.ones((2, 3), np.float32), "w")])
    onnx.save(helper.make_model(graph), path)
    code = ("import sys; from provenance.io.onnx_reader import OnnxTensorReader as R; "
            f"r = R({str(path)!r}); print(sorted(r.infos()), tuple(r.read('w').shape), 'onnx' in sys.modules, 'ml_dtypes' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["['w']", "(3,", "2)", "False", "False"], out


def test_message_classes_are_onnx_own() -> None:
    """Loaded by file or through onnx, the classes are one: messages pass between the two."""
    assert onnx_proto.TensorProto is onnx.TensorProto
    assert onnx_proto.ModelProto is onnx.ModelProto


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int8, np.uint8, np.int16,
                                   np.uint16, np.int32, np.int64, np.uint32, np.uint64, np.bool_])
def test_typed_values_match_numpy_helper(dtype) -> None:
    """Values stored in the typed fields (not raw_data) decode as onnx's `to_array` does."""
    rng = np.random.default_rng(0)
    values = (rng.normal(size=(3, 4)) * 50).astype(dtype)
    etype = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    tensor = helper.make_tensor("t", etype, values.shape, values.flatten().tolist(), raw=False)
    assert not tensor.HasField("raw_data")
    got = onnx_proto.typed_values(tensor).reshape(values.shape)
    np.testing.assert_array_equal(got, numpy_helper.to_array(tensor))
    assert got.dtype == values.dtype


def test_bfloat16_typed_values_are_bit_patterns() -> None:
    """bfloat16 in int32_data comes back as its uint16 bit patterns, exactly."""
    bits = np.array([0x3F80, 0xBF80, 0x4049, 0x0000], np.uint16)  # 1, -1, 3.140625, 0
    tensor = TensorProto(data_type=TensorProto.BFLOAT16, dims=[4], int32_data=bits.astype(np.int32).tolist())
    np.testing.assert_array_equal(onnx_proto.typed_values(tensor), bits)


@pytest.mark.parametrize("value", [np.array(2.5, np.float32), np.array([1, -2, 3], np.int64),
                                   np.array([0.5, 1.5], np.float32)])
def test_from_array_matches_numpy_helper(value) -> None:
    """A Constant's scalar or list form becomes the tensor onnx would build."""
    ours = onnx_proto.from_array(value)
    np.testing.assert_array_equal(numpy_helper.to_array(ours), value)
    assert ours.data_type == numpy_helper.from_array(value).data_type


def test_broadcast_shape_is_numpys() -> None:
    """The graph's folding infers shapes as numpy broadcasts them, mismatches included."""
    import itertools

    from provenance.io.onnx_graph import broadcast_shape

    shapes = [(), (1,), (3,), (1, 3), (2, 1), (2, 3), (4, 1, 3), (0,), (0, 3), (1, 0), (5, 0, 1)]
    for a, b in itertools.product(shapes, shapes):
        try:
            expected = tuple(int(d) for d in np.broadcast_shapes(a, b))
        except ValueError:
            with pytest.raises(ValueError, match="do not broadcast"):
                broadcast_shape(a, b)
        else:
            assert broadcast_shape(a, b) == expected, (a, b)
