"""Hostile ONNX files, each built here: refused through the CLI with one line and exit status 2,
without recursion, traps or allocations beyond a small multiple of the file's own bytes.

Tiny graphs are refused by `inspect` (the graph index checks them); the ones that only fail when
a weight is computed go through `fingerprint`, which reads the word embeddings first.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from provenance.io.onnx_reader import OnnxTensorReader
from tests.hostile import assert_bounded, baseline_rss, refused, run_measured
from tests.real_models import MINILM_INT8_ONNX, require

EMBED = "inner.embeddings.word_embeddings.weight"  # MiniLM int8: Cast(EMBED_q) -> EMBED_f; Mul(EMBED_f, EMBED_scale)
Edit = Callable[[onnx.GraphProto], None]


def _tiny(path: Path, nodes: list[onnx.NodeProto], arrays: dict[str, np.ndarray]) -> Path:
    """x [1, 4] -> nodes -> y, with `arrays` as initializers (no checker: the files are invalid on purpose)."""
    graph = helper.make_graph(nodes, "hostile", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(a, name=n) for n, a in arrays.items()])
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), str(path))
    return path


def _minilm(path: Path, edit: Edit) -> Path:
    """The real MiniLM int8 export with `edit(graph)` applied."""
    model = onnx.load(str(require(MINILM_INT8_ONNX)))
    edit(model.graph)
    path.write_bytes(model.SerializeToString())
    return path


def _replace_init(graph: onnx.GraphProto, name: str, array: np.ndarray) -> None:
    """Swap initializer `name` for `array`."""
    i = next(i for i, t in enumerate(graph.initializer) if t.name == name)
    graph.initializer[i].CopyFrom(numpy_helper.from_array(array, name=name))


def _div_before_cast(divisor: np.ndarray) -> Edit:
    """An edit: the embedding's integers pass through Div(q, divisor) before the Cast to float."""
    def edit(graph: onnx.GraphProto) -> None:
        graph.initializer.append(numpy_helper.from_array(divisor, name="divisor"))
        cast = next(n for n in graph.node if n.op_type == "Cast" and n.input[0] == f"{EMBED}_q")
        cast.input[0] = "q_div"
        graph.node.insert(0, helper.make_node("Div", [f"{EMBED}_q", "divisor"], ["q_div"], name="hostile_div"))
    return edit


def _plain(line: str) -> None:
    """A message is short printable text: never bytes of the file it refuses."""
    assert line.isprintable() and len(line) < 500 and "\\x" not in line, line[:600]


def test_identity_reading_its_own_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _tiny(tmp_path / "m.onnx", [helper.make_node("Identity", ["w"], ["w"], name="loop"),
                                       helper.make_node("MatMul", ["x", "w"], ["y"])],
                 {"w": np.ones((4, 4), np.float32)})
    line = refused(["inspect", str(path)], capsys)
    assert line.endswith("m.onnx: Identity node 'loop' reads its own output 'w' (a graph has no cycles); the file "
                         "is corrupt or built to break readers: re-export it"), line
    _plain(line)


def test_node_rewriting_an_initializer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Identity(a) -> w and Identity(w) -> a: two folds that would read each other in a loop."""
    path = _tiny(tmp_path / "m.onnx", [helper.make_node("Identity", ["a"], ["w"], name="fwd"),
                                       helper.make_node("Identity", ["w"], ["a"], name="back"),
                                       helper.make_node("MatMul", ["x", "w"], ["y"])],
                 {"a": np.ones((4, 4), np.float32)})
    line = refused(["inspect", str(path)], capsys)
    assert "Identity node 'back' writes 'a', which is already an initializer or the output of an earlier node" in line
    _plain(line)


def test_dequantize_axis_out_of_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _tiny(tmp_path / "m.onnx", [helper.make_node("DequantizeLinear", ["q", "s"], ["w"], axis=7, name="dq"),
                                       helper.make_node("MatMul", ["x", "w"], ["y"])],
                 {"q": np.ones((4, 4), np.int8), "s": np.full(4, 0.5, np.float32)})
    line = refused(["inspect", str(path)], capsys)
    assert "DequantizeLinear node 'dq' is not valid ONNX (axis 7 is out of range for an input of rank 2)" in line
    _plain(line)


def test_dequantize_block_larger_than_the_tensor(tmp_path: Path) -> None:
    """block_size 2^40 with a scale of one block: valid, and must not repeat the scale 2^40 times."""
    path = _tiny(tmp_path / "m.onnx", [helper.make_node("DequantizeLinear", ["q", "s"], ["w"], axis=0,
                                                        block_size=2**40, name="dq"),
                                       helper.make_node("MatMul", ["x", "w"], ["y"])],
                 {"q": np.arange(16, dtype=np.int8).reshape(4, 4), "s": np.full((1, 4), 0.5, np.float32)})
    with OnnxTensorReader(path) as reader:
        assert reader.read("w").tolist() == (np.arange(16).reshape(4, 4).T * 0.5).tolist()


def test_integer_division_by_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _minilm(tmp_path / "model.onnx", _div_before_cast(np.zeros(1, np.int8)))
    out = tmp_path / "m.fingerprint"
    line = refused(["fingerprint", str(path), "-o", str(out), "--no-hash"], capsys)
    assert line.endswith("model.onnx: constant Div node 'hostile_div' divides integers by zero; the file is "
                         "corrupt or built to break readers: re-export it"), line
    assert not out.exists()
    _plain(line)


@pytest.mark.slow
def test_int_min_divided_by_minus_one_does_not_trap(tmp_path: Path) -> None:
    """INT64_MIN / -1 raises SIGFPE in the CPU's division: the process would die without a word. Read in a
    child so a regression fails this test instead of killing the test run."""
    low = np.iinfo(np.int64).min
    path = _tiny(tmp_path / "m.onnx", [helper.make_node("Div", ["a", "b"], ["d"], name="div"),
                                       helper.make_node("Cast", ["d"], ["w"], to=TensorProto.FLOAT),
                                       helper.make_node("MatMul", ["x", "w"], ["y"])],
                 {"a": np.array([[low, 7, -7, 9]] * 4, np.int64), "b": np.array([-1, 2, 2, -1], np.int64)})
    code = ("import sys; from provenance.io.onnx_reader import OnnxTensorReader; "
            "print(OnnxTensorReader(sys.argv[1]).read('w')[:, 0].tolist())")  # read() gives [out, in]
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-500:]}"
    assert proc.stdout.split() == ["[-9.223372036854776e+18,", "3.0,", "-3.0,", "-9.0]"]  # MIN / -1 wraps to MIN


def test_name_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by flipping bytes of the reranker: protobuf hands a name that is not UTF-8 back as bytes, which
    then met str methods (an internal TypeError)."""
    data = require(MINILM_INT8_ONNX).read_bytes()
    name = b"inner.embeddings.LayerNorm.weight"
    at = data.index(name, data.index(name) + 1)  # the initializer's own name, after the node that reads it
    path = tmp_path / "model.onnx"
    path.write_bytes(data[:at] + b"\xff" + data[at + 1:])
    line = refused(["inspect", str(path)], capsys)
    assert line.endswith("model.onnx: a text field (onnx.TensorProto.name) holds bytes that are not UTF-8: the file "
                         "is corrupt; re-download or re-export it"), line
    _plain(line)


def _broadcast_bomb(path: Path) -> Path:
    """MiniLM int8 (11 MB) whose embedding integers are [30522, 1] and scale [1, 30000]: Mul broadcasts to a
    [30522, 30000] float32 embedding, 3.7 GB, that role mapping accepts and `fingerprint` reads."""
    def edit(graph: onnx.GraphProto) -> None:
        _replace_init(graph, f"{EMBED}_q", np.ones((30522, 1), np.int8))
        _replace_init(graph, f"{EMBED}_scale", np.full((1, 30000), 0.01, np.float32))
    return _minilm(path, edit)


def test_constant_mul_broadcasting_to_gigabytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _broadcast_bomb(tmp_path / "model.onnx")
    line = refused(["inspect", str(path)], capsys)
    assert (f"Mul node '{EMBED}_mul' would take 3.7 GB to compute '{EMBED}' of shape [30522, 30000] "
            "(from [30522, 1] x [1, 30000]) out of 150.5 KB stored in the file, more than 16x") in line, line
    _plain(line)


@pytest.mark.slow
def test_broadcast_bomb_memory_is_bounded(tmp_path: Path) -> None:
    """Before: `fingerprint` computed the 3.7 GB product (peak RSS 3.9 GB, then an IndexError). Now: refused
    while indexing the graph."""
    path = _broadcast_bomb(tmp_path / "model.onnx")
    m = run_measured(["fingerprint", str(path), "-o", str(tmp_path / "m.fingerprint"), "--no-hash"], tmp_path)
    assert m.returncode == 2 and len(m.stderr.strip().splitlines()) == 1, m.stderr[-500:]
    assert_bounded(m, path.stat().st_size, baseline_rss(tmp_path))


def test_a_graph_of_more_nodes_than_any_export_is_refused_before_indexing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """200,001 empty nodes cost 2 bytes each in the file but about 1 KiB each to index: refused after parsing."""
    from provenance.io.onnx_reader import MAX_NODES
    nodes = [onnx.NodeProto() for _ in range(MAX_NODES + 1)] + [helper.make_node("MatMul", ["x", "w"], ["y"])]
    path = _tiny(tmp_path / "m.onnx", nodes, {"w": np.ones((4, 4), np.float32)})
    line = refused(["inspect", str(path)], capsys)
    assert "m.onnx: the graph has 200,002 nodes, more than the 200,000 this reader indexes" in line, line
    _plain(line)


def test_a_fold_through_more_axes_than_numpy_broadcasts_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A constant Mul of two rank-40 tensors (found by the fuzzer: numpy's RuntimeError escaped)."""
    shape = (1,) * 40
    path = _tiny(tmp_path / "m.onnx", [helper.make_node("Mul", ["a", "b"], ["w"], name="deep"),
                                       helper.make_node("MatMul", ["x", "w"], ["y"])],
                 {"a": np.ones(shape, np.float32), "b": np.ones(shape, np.float32)})
    line = refused(["inspect", str(path)], capsys)
    assert "Mul node 'deep' is not valid ONNX (Mul reads an input of rank above 32)" in line, line
    _plain(line)
