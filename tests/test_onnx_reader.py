"""OnnxTensorReader on real int8 exports and on tiny graphs built here with onnx.helper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from provenance.errors import (
    CorruptFileError,
    MissingFileError,
    ProvenanceError,
    TensorNotFoundError,
    UnsafePathError,
)
from provenance.io.onnx_reader import OnnxTensorReader
from tests.real_models import (
    BGE_ONNX,
    MINILM_DIR,
    MINILM_INT8_ONNX,
    RERANKER_ONNX,
    require,
)

LINEARS = ("attention.self.query", "attention.self.key", "attention.self.value",
           "attention.output.dense", "intermediate.dense", "output.dense")
SHAPES = {"intermediate.dense": (1536, 384), "output.dense": (384, 1536)}


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.double().flatten(), b.double().flatten(), dim=0).item()


def _save(tmp_path: Path, nodes: list, inits: list, inputs: list, outputs: list, name: str = "m.onnx",
          **save_kwargs: object) -> Path:
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, producer_name="tiny-test", opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / name
    onnx.save_model(model, str(path), **save_kwargs)
    return path


def _vi(name: str, shape: list[int], elem: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _linear_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"onnx::MatMul_7": rng.standard_normal((3, 4)).astype(np.float32),  # [in, out]
            "fc.bias": rng.standard_normal(4).astype(np.float32),
            "val_3": rng.standard_normal((5, 4)).astype(np.float32),           # Gemm transB=1: [out, in]
            "val_9": rng.standard_normal((5, 2)).astype(np.float32),           # [in, out], no clue
            "val_1": np.array(0.5, dtype=np.float32),                          # scalar: not a weight
            "shape_c": np.array([1, 2], dtype=np.int64)}                       # shape constant


def _linear_model(tmp_path: Path, **save_kwargs: object) -> tuple[Path, dict[str, np.ndarray]]:
    """x -> MatMul(anon)+Add(fc.bias) -> Gemm(anon, transB=1, scope /head) -> MatMul(anon) -> y."""
    arrays = _linear_arrays()
    nodes = [helper.make_node("MatMul", ["x", "onnx::MatMul_7"], ["m0"], name="node_mm0"),
             helper.make_node("Add", ["m0", "fc.bias"], ["h"], name="node_add0"),
             helper.make_node("Gemm", ["h", "val_3"], ["g"], name="/head/Gemm", transB=1),
             helper.make_node("MatMul", ["g", "val_9"], ["m2"], name="mm"),
             helper.make_node("Mul", ["m2", "val_1"], ["m3"], name="node_scale"),
             helper.make_node("Reshape", ["m3", "shape_c"], ["y"], name="node_reshape")]
    inits = [numpy_helper.from_array(a, name=n) for n, a in arrays.items()]
    path = _save(tmp_path, nodes, inits, [_vi("x", [1, 3])], [_vi("y", [1, 2])], **save_kwargs)
    return path, arrays


def test_tiny_fp32_names_orientation_and_values(tmp_path: Path) -> None:
    path, a = _linear_model(tmp_path)
    reader = OnnxTensorReader(path)
    infos = reader.infos()
    assert list(infos) == ["fc.weight", "fc.bias", "head.weight", "val_9"]
    assert {n: i.shape for n, i in infos.items()} == {
        "fc.weight": (4, 3), "fc.bias": (4,), "head.weight": (5, 4), "val_9": (2, 5)}
    assert infos["fc.weight"].original_name == "onnx::MatMul_7"
    assert infos["head.weight"].original_name == "val_3"
    assert infos["fc.weight"].dtype == "F32" and not infos["fc.weight"].quantized
    assert infos["fc.weight"].nbytes == 48 and infos["fc.weight"].file == path
    assert torch.equal(reader.read("fc.weight"), torch.from_numpy(a["onnx::MatMul_7"].T.copy()))
    assert torch.equal(reader.read("fc.bias"), torch.from_numpy(a["fc.bias"]))
    assert torch.equal(reader.read("head.weight"), torch.from_numpy(a["val_3"]))
    assert torch.equal(reader.read("val_9"), torch.from_numpy(a["val_9"].T.copy()))
    meta = reader.metadata
    assert meta.format == "onnx" and reader.files == [path]
    assert meta.values["name_recovery"] == {"kept": 1, "bias": 1, "scope": 1, "original": 1, "collision": 0}
    assert meta.values["producer_name"] == "tiny-test"
    assert meta.values["opset"] == {"ai.onnx": 17}
    assert meta.values["inputs"] == ["x"] and meta.values["outputs"] == ["y"]


def test_unknown_name_suggests_close_one(tmp_path: Path) -> None:
    path, _ = _linear_model(tmp_path)
    hint = r"no tensor named 'fc\.weigth'\. Did you mean 'fc\.weight'"
    with pytest.raises(TensorNotFoundError, match=hint):
        OnnxTensorReader(path).read("fc.weigth")


def test_read_after_close_fails(tmp_path: Path) -> None:
    path, _ = _linear_model(tmp_path)
    with OnnxTensorReader(path) as reader:
        reader.read("fc.bias")
    with pytest.raises(ProvenanceError, match="reader is closed"):
        reader.read("fc.bias")


def test_colliding_scope_names_keep_original_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    w1, w2 = rng.standard_normal((3, 3)).astype(np.float32), rng.standard_normal((3, 3)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "val_1"], ["h"], name="/blk/MatMul"),
             helper.make_node("MatMul", ["h", "val_2"], ["y"], name="/blk/MatMul_1")]
    inits = [numpy_helper.from_array(w1, "val_1"), numpy_helper.from_array(w2, "val_2")]
    reader = OnnxTensorReader(_save(tmp_path, nodes, inits, [_vi("x", [1, 3])], [_vi("y", [1, 3])]))
    assert list(reader.infos()) == ["val_1", "val_2"]
    assert reader.metadata.values["name_recovery"]["collision"] == 2
    assert torch.equal(reader.read("val_2"), torch.from_numpy(w2.T.copy()))


def _quant_model(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """DequantizeLinear on initializers, onnxruntime X_quantized naming, Cast->Mul, an fp16 weight."""
    rng = np.random.default_rng(2)
    a = {"w_q": rng.integers(-128, 128, (3, 4)).astype(np.int8),
         "w_scale": rng.uniform(0.01, 0.1, 4).astype(np.float32),
         "w_zp": rng.integers(-5, 5, 4).astype(np.int8),
         "lin.weight_quantized": rng.integers(0, 256, (4, 6)).astype(np.uint8),
         "lin.weight_scale": rng.uniform(0.01, 0.1, 6).astype(np.float32),
         "lin.weight_zero_point": rng.integers(120, 136, 6).astype(np.uint8),
         "emb.weight_q": rng.integers(-127, 128, (10, 4)).astype(np.int8),
         "emb.weight_scale": rng.uniform(0.01, 0.1, (10, 1)).astype(np.float32),
         "norm.weight": rng.standard_normal(6).astype(np.float16)}
    nodes = [helper.make_node("Cast", ["emb.weight_q"], ["emb.weight_f"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["emb.weight_f", "emb.weight_scale"], ["emb.weight"]),
             helper.make_node("Gather", ["emb.weight", "ids"], ["x"], name="node_gather"),
             helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w_dq"], axis=1),
             helper.make_node("MatMul", ["x", "w_dq"], ["h"], name="/enc/proj/MatMul"),
             helper.make_node("DynamicQuantizeLinear", ["h"], ["hq", "hs", "hz"]),
             helper.make_node("MatMulInteger", ["hq", "lin.weight_quantized", "hz", "lin.weight_zero_point"],
                              ["yi"], name="/lin/MatMul_quant"),
             helper.make_node("Cast", ["yi"], ["yf"], to=TensorProto.FLOAT16),
             helper.make_node("Mul", ["yf", "norm.weight"], ["y"])]
    inits = [numpy_helper.from_array(v, name=k) for k, v in a.items()]
    path = _save(tmp_path, nodes, inits, [_vi("ids", [1, 2], TensorProto.INT64)],
                 [_vi("y", [1, 2, 6], TensorProto.FLOAT16)])
    return path, a


def test_dequantized_weights_exact(tmp_path: Path) -> None:
    path, a = _quant_model(tmp_path)
    reader = OnnxTensorReader(path)
    infos = reader.infos()
    assert list(infos) == ["emb.weight", "enc.proj.weight", "lin.weight", "norm.weight"]
    assert {n: (i.shape, i.dtype, i.quantized) for n, i in infos.items()} == {
        "emb.weight": ((10, 4), "I8", True), "enc.proj.weight": ((4, 3), "I8", True),
        "lin.weight": ((6, 4), "U8", True), "norm.weight": ((6,), "F16", False)}
    emb = a["emb.weight_q"].astype(np.float32) * a["emb.weight_scale"]
    dq = (a["w_q"].astype(np.float32) - a["w_zp"].astype(np.float32)) * a["w_scale"]
    lin = (a["lin.weight_quantized"].astype(np.float32) - a["lin.weight_zero_point"]) * a["lin.weight_scale"]
    assert torch.equal(reader.read("emb.weight"), torch.from_numpy(emb))
    assert torch.equal(reader.read("enc.proj.weight"), torch.from_numpy(dq.T.copy()))
    assert torch.equal(reader.read("lin.weight"), torch.from_numpy(lin.T.copy()))
    assert reader.read("lin.weight").dtype == torch.float32
    assert reader.read("norm.weight").dtype == torch.float16
    assert reader.metadata.values["name_recovery"] == {
        "kept": 3, "bias": 0, "scope": 1, "original": 0, "collision": 0}


def test_external_data_reads_back_exactly(tmp_path: Path) -> None:
    path, a = _linear_model(tmp_path, save_as_external_data=True, all_tensors_to_one_file=True,
                            location="weights.bin", size_threshold=0)
    reader = OnnxTensorReader(path)
    assert reader.files == [path, tmp_path / "weights.bin"]
    assert reader.infos()["fc.weight"].file == tmp_path / "weights.bin"
    assert torch.equal(reader.read("fc.weight"), torch.from_numpy(a["onnx::MatMul_7"].T.copy()))
    assert torch.equal(reader.read("head.weight"), torch.from_numpy(a["val_3"]))
    assert torch.equal(reader.read("fc.bias"), torch.from_numpy(a["fc.bias"]))


def _relocate(path: Path, location: str) -> None:
    """Point every external tensor of `path` at `location` (written as-is, no data moved)."""
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    path.write_bytes(model.SerializeToString())


@pytest.mark.parametrize("location", ["../evil.bin", "/etc/hostname", "sub/../../evil.bin"])
def test_external_data_outside_model_dir_is_refused(tmp_path: Path, location: str) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (tmp_path / "evil.bin").write_bytes(b"\0" * 1024)
    path, _ = _linear_model(model_dir, save_as_external_data=True, all_tensors_to_one_file=True,
                            location="weights.bin", size_threshold=0)
    _relocate(path, location)
    with pytest.raises(UnsafePathError, match=rf"external data location '{location}' of tensor .* is "
                                              "outside the model directory") as err:
        OnnxTensorReader(path)
    assert str(path) in str(err.value)


def test_missing_external_file(tmp_path: Path) -> None:
    path, _ = _linear_model(tmp_path, save_as_external_data=True, all_tensors_to_one_file=True,
                            location="weights.bin", size_threshold=0)
    (tmp_path / "weights.bin").unlink()
    message = r"external data file 'weights\.bin' for tensor .* not found"
    with pytest.raises(MissingFileError, match=message) as err:
        OnnxTensorReader(path)
    assert str(path) in str(err.value)


def test_truncated_external_file(tmp_path: Path) -> None:
    path, _ = _linear_model(tmp_path, save_as_external_data=True, all_tensors_to_one_file=True,
                            location="weights.bin", size_threshold=0)
    data = (tmp_path / "weights.bin").read_bytes()
    (tmp_path / "weights.bin").write_bytes(data[:-8])
    with pytest.raises(CorruptFileError, match=r"the data file is truncated or mismatched") as err:
        OnnxTensorReader(path)
    assert str(path) in str(err.value)


def test_truncated_real_file(tmp_path: Path) -> None:
    data = require(MINILM_INT8_ONNX).read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    message = r"not a readable ONNX protobuf .*truncated or not an ONNX model"
    with pytest.raises(CorruptFileError, match=message) as err:
        OnnxTensorReader(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


@pytest.mark.parametrize("content", [b"", b"hello, this is a text file\n"])
def test_not_an_onnx_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.onnx"
    path.write_bytes(content)
    with pytest.raises(CorruptFileError, match="not a readable ONNX protobuf|not an ONNX model") as err:
        OnnxTensorReader(path)
    assert str(path) in str(err.value)


def test_raw_data_shorter_than_dims(tmp_path: Path) -> None:
    path, _ = _linear_model(tmp_path)
    model = onnx.load(str(path))
    bias = next(t for t in model.graph.initializer if t.name == "fc.bias")
    bias.raw_data = bias.raw_data[:-4]
    path.write_bytes(model.SerializeToString())
    with pytest.raises(CorruptFileError, match=r"tensor 'fc\.bias' has 12 bytes of raw_data, but dims \[4\] "
                                               r"of F32 need 16") as err:
        OnnxTensorReader(path)
    assert str(path) in str(err.value)


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="ONNX model file not found") as err:
        OnnxTensorReader(tmp_path / "absent.onnx")
    assert "absent.onnx" in str(err.value)


def test_minilm_int8_matches_fp32_safetensors() -> None:
    from safetensors.torch import load_file

    reader = OnnxTensorReader(require(MINILM_INT8_ONNX))
    fp32 = load_file(str(require(MINILM_DIR / "model.safetensors")))
    infos = reader.infos()
    names = {n.removeprefix("inner."): n for n in infos}
    assert len(names) == len(infos) == 101 and all(n.startswith("inner.") for n in infos)
    assert set(names) == {k for k in fp32 if not k.startswith("pooler.") and k != "embeddings.position_ids"}
    worst = 1.0
    for short, name in names.items():
        assert infos[name].shape == tuple(fp32[short].shape), short
        worst = min(worst, _cos(reader.read(name), fp32[short]))
    assert worst >= 0.9995  # measured 0.99978 (layer 0 output.dense): symmetric per-column int8
    for layer in range(6):
        for linear in LINEARS:
            info = infos[f"inner.encoder.layer.{layer}.{linear}.weight"]
            assert info.quantized and info.original_name.startswith("val_")
    assert reader.metadata.values["name_recovery"] == {
        "kept": 65, "bias": 36, "scope": 0, "original": 0, "collision": 0}
    assert reader.metadata.values["producer_name"] == "pytorch"


def test_bge_small_ort_matmulinteger() -> None:
    reader = OnnxTensorReader(require(BGE_ONNX))
    infos = reader.infos()
    for layer in range(12):
        for linear in LINEARS:
            info = infos[f"encoder.layer.{layer}.{linear}.weight"]
            assert info.shape == SHAPES.get(linear, (384, 384))
            assert info.quantized and info.dtype == "I8" and info.original_name.startswith("onnx::MatMul_")
    assert infos["embeddings.word_embeddings.weight"].shape == (30522, 384)
    assert reader.metadata.values["name_recovery"] == {
        "kept": 125, "bias": 72, "scope": 0, "original": 0, "collision": 0}
    assert not any(n.endswith(("_scale", "_zero_point", "_quantized")) for n in infos)
    # per-channel (q - zp) * scale, the scale running along the MatMul output axis
    base = infos["encoder.layer.0.intermediate.dense.weight"].original_name
    model = onnx.load(str(BGE_ONNX), load_external_data=False)
    stored = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer if t.name.startswith(base)}
    q, zp, scale = (stored[base + s] for s in ("_quantized", "_zero_point", "_scale"))
    expected = ((q.astype(np.float32) - zp.astype(np.float32)) * scale).T
    got = reader.read("encoder.layer.0.intermediate.dense.weight")
    assert torch.equal(got, torch.from_numpy(expected.copy()))


def test_reranker_bert_prefix_and_classifier() -> None:
    reader = OnnxTensorReader(require(RERANKER_ONNX))
    infos = reader.infos()
    for layer in range(12):
        for linear in LINEARS:
            info = infos[f"bert.encoder.layer.{layer}.{linear}.weight"]
            assert info.shape == SHAPES.get(linear, (384, 384))
    assert infos["bert.pooler.dense.weight"].shape == (384, 384)
    assert infos["classifier.weight"].shape == (1, 384)
    assert infos["classifier.bias"].shape == (1,)
    assert reader.read("classifier.weight").dtype == torch.float32
    assert reader.metadata.values["outputs"] == ["logits"]
    assert reader.metadata.values["name_recovery"] == {
        "kept": 129, "bias": 72, "scope": 0, "original": 0, "collision": 0}
