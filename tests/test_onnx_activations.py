"""OnnxActivationModel on real int8 BERT-style exports, checked against transformers in fp32,
and on tiny graphs built here with onnx.helper (refusals and error messages)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from provenance.activations.onnx_runner import OnnxActivationModel
from provenance.errors import (
    CorruptFileError,
    InvalidParameterError,
    MissingFileError,
    UnknownFormatError,
)
from tests.real_models import (
    BGE_ONNX,
    COLBERT_ONNX,
    MINILM_DIR,
    MINILM_INT8_ONNX,
    RERANKER_ONNX,
    require,
)

TEXTS = ["The quick brown fox jumps over the lazy dog.",
         "Provenance audits check whether one model was built from another.",
         "Short one.",
         "Numbers like 3.14159 and 2718 tokenize into pieces."]


def _all_positions(model: OnnxActivationModel) -> tuple[object, list[list[int]]]:
    enc = model.encode(TEXTS)
    return enc, [list(range(len(ids))) for ids in enc.input_ids]


@pytest.fixture(scope="module")
def minilm() -> OnnxActivationModel:
    model = OnnxActivationModel(require(MINILM_INT8_ONNX), tokenizer=require(MINILM_DIR) / "tokenizer.json")
    yield model
    model.close()


@pytest.fixture(scope="module")
def bge() -> OnnxActivationModel:
    model = OnnxActivationModel(require(BGE_ONNX))
    yield model
    model.close()


def _hf_reference(enc, positions: list[list[int]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per layer, fp32 transformers hidden_states[i+1] and intermediate (GELU) outputs at positions."""
    from transformers import BertModel

    hf = BertModel.from_pretrained(str(MINILM_DIR)).eval()
    acts: list[torch.Tensor] = []
    hooks = [layer.intermediate.register_forward_hook(lambda _m, _i, out: acts.append(out))
             for layer in hf.encoder.layer]
    n = len(hf.encoder.layer)
    res: list[list[np.ndarray]] = [[] for _ in range(n)]
    act: list[list[np.ndarray]] = [[] for _ in range(n)]
    with torch.no_grad():
        for ids, pos in zip(enc.input_ids, positions):
            acts.clear()
            out = hf(input_ids=torch.tensor([ids]), output_hidden_states=True)
            for layer in range(n):
                res[layer].append(out.hidden_states[layer + 1][0, pos].numpy())
                act[layer].append(acts[layer][0, pos].numpy())
    for h in hooks:
        h.remove()
    return [np.concatenate(r) for r in res], [np.concatenate(a) for a in act]


def test_minilm_int8_tracks_fp32_bert_layer_by_layer(minilm: OnnxActivationModel) -> None:
    enc, positions = _all_positions(minilm)
    got = minilm.capture(enc, positions, batch_size=3)
    n = sum(len(p) for p in positions)
    assert got.residual.shape == (6, n, 384) and got.residual.dtype == np.float32
    assert got.mlp["act"].shape == (6, n, 1536) and got.mlp["act"].dtype == np.float32
    assert got.tokens == n
    # LayerNorm γ keeps its parameter name in this dynamo export; its Erf nodes are anonymous.
    assert (minilm.layout_.residual_by, minilm.layout_.act_by) == ("names", "order")
    ref_res, ref_act = _hf_reference(enc, positions)
    r_res = [np.corrcoef(ref_res[i].ravel(), got.residual[i].ravel())[0, 1] for i in range(6)]
    r_act = [np.corrcoef(ref_act[i].ravel(), got.mlp["act"][i].ravel())[0, 1] for i in range(6)]
    print("residual r per layer:", np.round(r_res, 5), "act r per layer:", np.round(r_act, 5))
    assert min(r_res) > 0.99 and min(r_act) > 0.99


def test_encode_offsets_specials_and_truncation(minilm: OnnxActivationModel) -> None:
    enc = minilm.encode(["Hello world", "word " * 1000])
    assert enc.input_ids[0] == [101, 7592, 2088, 102]
    assert enc.offsets[0] == [(0, 0), (0, 5), (6, 11), (0, 0)]
    assert minilm.max_length == 512  # the position-embedding table, not tokenizer.json's 128
    assert len(enc.input_ids[1]) == 512 and enc.input_ids[1][-1] == 102 and enc.offsets[1][-1] == (0, 0)


@pytest.mark.parametrize("path", [BGE_ONNX, COLBERT_ONNX, RERANKER_ONNX], ids=lambda p: p.parent.name)
def test_vectrix_int8_exports_shapes_and_determinism(path: Path) -> None:
    model = OnnxActivationModel(require(path))
    enc, _ = _all_positions(model)
    positions = [[0, len(ids) - 1] for ids in enc.input_ids]
    first, again = model.capture(enc, positions), model.capture(enc, positions)
    assert first.residual.shape == (12, 8, 384)
    assert first.mlp["act"].shape == (12, 8, 1536)
    assert first.tokens == sum(len(ids) for ids in enc.input_ids)
    assert (model.layout_.residual_by, model.layout_.act_by) == ("names", "names")
    assert np.array_equal(first.residual, again.residual) and np.array_equal(first.mlp["act"], again.mlp["act"])


def test_last_layer_equals_the_unedited_graph_output(bge: OnnxActivationModel) -> None:
    enc, positions = _all_positions(bge)
    got = bge.capture(enc, positions, batch_size=len(TEXTS))
    plain = ort.InferenceSession(str(BGE_ONNX), providers=["CPUExecutionProvider"])
    hidden = plain.run(["last_hidden_state"], bge.feeds(enc.input_ids))[0]
    want = np.concatenate([hidden[t, p] for t, p in enumerate(positions)])
    assert np.array_equal(got.residual[-1], want)


def _anonymize(path: Path) -> onnx.ModelProto:
    """The model with initializers renamed w0, w1, ... and nodes n0, n1, ...: no names to go by."""
    model = onnx.load(str(path))
    renames = {t.name: f"w{i}" for i, t in enumerate(model.graph.initializer)}
    for t in model.graph.initializer:
        t.name = renames[t.name]
    for i, node in enumerate(model.graph.node):
        node.name = f"n{i}"
        node.input[:] = [renames.get(x, x) for x in node.input]
    return model


def test_decomposed_layers_found_by_order_when_names_are_gone(tmp_path: Path, bge: OnnxActivationModel) -> None:
    onnx.save(_anonymize(BGE_ONNX), str(tmp_path / "model.onnx"))
    anon = OnnxActivationModel(tmp_path / "model.onnx", tokenizer=BGE_ONNX.parent / "tokenizer.json")
    assert (anon.layout_.residual_by, anon.layout_.act_by) == ("order", "order")
    assert anon.layout_.residual == bge.layout_.residual and anon.layout_.act == bge.layout_.act
    enc, positions = _all_positions(bge)
    a, b = anon.capture(enc, positions), bge.capture(enc, positions)
    assert np.array_equal(a.residual, b.residual) and np.array_equal(a.mlp["act"], b.mlp["act"])


def test_fused_layers_by_order_with_external_data_nothing_written(tmp_path: Path,
                                                                   minilm: OnnxActivationModel) -> None:
    onnx.save(_anonymize(MINILM_INT8_ONNX), str(tmp_path / "model.onnx"), save_as_external_data=True,
              location="model.onnx.data", size_threshold=1024)
    before = sorted(p.name for p in tmp_path.iterdir())
    anon = OnnxActivationModel(tmp_path / "model.onnx", tokenizer=MINILM_DIR / "tokenizer.json")
    assert (anon.layout_.residual_by, anon.layout_.act_by) == ("order", "order")
    assert anon.layout_.residual == ("layer_norm_2", "layer_norm_4", "layer_norm_6", "layer_norm_8",
                                     "layer_norm_10", "last_hidden_state")
    assert anon.layout_.act == ("gelu", "gelu_1", "gelu_2", "gelu_3", "gelu_4", "gelu_5")
    enc, positions = _all_positions(minilm)
    a, b = anon.capture(enc, positions), minilm.capture(enc, positions)
    assert np.array_equal(a.residual, b.residual) and np.array_equal(a.mlp["act"], b.mlp["act"])
    assert sorted(p.name for p in tmp_path.iterdir()) == before == ["model.onnx", "model.onnx.data"]


def _tiny(tmp_path: Path, op: str = "Identity", domain: str = "", tokenizer: bool = False) -> Path:
    node = helper.make_node(op, ["input_ids"], ["out"], name="the_node", domain=domain)
    graph = helper.make_graph([node], "tiny", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, 4])],
                              [helper.make_tensor_value_info("out", TensorProto.INT64, [1, 4])])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    if tokenizer:
        shutil.copy(require(MINILM_DIR) / "tokenizer.json", tmp_path / "tokenizer.json")
    return path


@pytest.mark.parametrize(("op", "domain", "says"), [
    ("Boom", "com.evil", "node 'the_node' runs com.evil::Boom, custom domain 'com.evil'; provenance never "
                         "runs custom ops: export with standard ONNX ops"),
    ("NotAnOp", "", "node 'the_node' runs ai.onnx::NotAnOp, an op onnxruntime does not know; provenance "
                    "never runs custom ops: export with standard ONNX ops"),
])
def test_unknown_ops_are_refused_before_anything_runs(tmp_path: Path, op: str, domain: str, says: str) -> None:
    path = _tiny(tmp_path, op, domain, tokenizer=True)
    with pytest.raises(UnknownFormatError) as err:
        OnnxActivationModel(path)
    assert str(err.value) == f"{path}: {says}"
    assert "\n" not in str(err.value)


def test_missing_tokenizer_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError) as err:
        OnnxActivationModel(_tiny(tmp_path))
    assert str(err.value) == (f"{tmp_path}: no tokenizer.json in {tmp_path}; pass tokenizer= a "
                              "tokenizer.json with the same vocabulary")


def test_graph_without_bert_layers_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnknownFormatError, match=r"found 0 LayerNorms and 0 GELUs, not the 2L\+1 and L"):
        OnnxActivationModel(_tiny(tmp_path, tokenizer=True))


def test_truncated_file_is_corrupt(tmp_path: Path) -> None:
    data = require(MINILM_INT8_ONNX).read_bytes()
    (tmp_path / "model.onnx").write_bytes(data[:len(data) // 2])
    with pytest.raises(CorruptFileError, match="not a readable ONNX protobuf .* the file is truncated"):
        OnnxActivationModel(tmp_path / "model.onnx", tokenizer=MINILM_DIR / "tokenizer.json")


def test_positions_out_of_range(minilm: OnnxActivationModel) -> None:
    enc = minilm.encode(["Hello world"])
    with pytest.raises(InvalidParameterError) as err:
        minilm.capture(enc, [[0, 4]])
    assert str(err.value) == ("The 'positions' parameter of capture must be indices in [0, 4) for text 0. "
                              "Got [4] instead.")
