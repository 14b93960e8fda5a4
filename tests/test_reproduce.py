"""The reproduction test: `identical` only where a cast or a quantization of the base gives the candidate.

Quantizers against gguf's own (de)quantization, checks on small tensors, the verdict on a tiny Llama,
and (slow lane) the SmolLM2 family, its GGUF files and MiniLM's int8 ONNX export.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from gguf.quants import dequantize, quantize

from provenance.arch.view import open_model
from provenance.comparison import CompareOptions, compare
from provenance.signals import requantize as rq
from provenance.signals.copy_check import cast_tolerance
from provenance.signals.reproduce import CODES_EQUAL, check_tensor, reproduce
from tests import families as fam
from tests.fixture_cache import cached, recipe_key
from tests.tiny_models import tiny_llama_state, write_hf_dir

OPTS = CompareOptions(hashes=False, device="cpu")
F32 = ("F32", True)


def _x(rows: int = 64, cols: int = 256, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * 0.02


def _lora(x: torch.Tensor, rank: int, rel: float, seed: int) -> torch.Tensor:
    """`x` plus B·A of rank `rank`, scaled to move it by `rel` (Frobenius)."""
    g = torch.Generator().manual_seed(seed)
    delta = torch.randn(x.shape[0], rank, generator=g) @ torch.randn(rank, x.shape[1], generator=g)
    return x + delta * (rel * x.norm() / delta.norm())


# ----------------------------------------------------------------------------- quantizers

@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_0", "Q4_1"])
def test_requantizing_a_dequantized_tensor_gives_back_its_codes(qtype):
    q = getattr(gguf.GGMLQuantizationType, qtype)
    codes = quantize(_x().numpy(), q)
    values = torch.from_numpy(dequantize(codes, q))
    assert np.array_equal(quantize(values.numpy(), q), codes)  # the codes, byte for byte
    assert torch.equal(rq.gguf_round_trip(values, qtype), values)
    assert torch.equal(rq.gguf_round_trip(_x(), qtype), values)


def test_k_quants_and_partial_blocks_cannot_be_redone():
    assert rq.can_requantize("Q8_0") and not rq.can_requantize("Q4_K") and not rq.can_requantize("F16")
    assert rq.gguf_round_trip(_x(cols=40), "Q8_0") is None


def test_int8_per_row_export_is_redone():
    x = _x()
    scale = x.abs().amax(dim=1, keepdim=True) / 127
    stored = torch.round(x / scale) * scale
    assert torch.equal(rq.int8_round_trips(x)["int8 symmetric per row (absmax/127)"], stored)


# ----------------------------------------------------------------------------- one tensor

@pytest.mark.parametrize("make,stored,scheme", [
    (lambda x: x.clone(), F32, "same storage (F32)"),
    (lambda x: x.to(torch.bfloat16), ("BF16", True), "cast F32 -> BF16"),
    (lambda x: x.to(torch.float16), ("F16", True), "cast F32 -> F16"),
    (lambda x: rq.gguf_round_trip(x, "Q8_0"), F32, "Q8_0 round trip stored as F32"),
    (lambda x: rq.gguf_round_trip(x, "Q4_0"), F32, "Q4_0 round trip stored as F32"),
    (lambda x: rq.gguf_round_trip(x, "Q4_1"), ("Q4_1", True), "GGUF Q4_1"),
    (lambda x: rq.int8_round_trips(x)["int8 symmetric per row (absmax/127)"], ("I8", True),
     "int8 symmetric per row (absmax/127)"),
])
def test_a_storage_step_is_reproduced(make, stored, scheme):
    x = _x()
    c = check_tensor("layers.0.mlp.up", x, make(x), F32, stored)
    assert (c.scheme, c.reproduced, c.max_abs_diff, c.ok) == (scheme, 1.0, 0.0, True)


@pytest.mark.parametrize("stored", [F32, ("BF16", True), ("Q8_0", True)])
def test_a_03_percent_fine_tune_is_not_reproduced(stored):
    x = _x()
    moved = x + torch.randn(x.shape, generator=torch.Generator().manual_seed(1)) * 0.003 * x.std()
    cand = {"F32": moved, "BF16": moved.to(torch.bfloat16), "Q8_0": rq.gguf_round_trip(moved, "Q8_0")}[stored[0]]
    c = check_tensor("layers.0.mlp.up", x, cand, F32, stored)
    assert not c.ok and c.reproduced < CODES_EQUAL and c.energy_rank > 4


def test_a_low_rank_update_is_measured():
    x = _x(256, 256)
    c = check_tensor("layers.0.attn.q", x, _lora(x, 8, 0.003, seed=2), F32, F32)
    assert not c.ok and c.low_rank and c.delta_rank == 8 and c.energy_rank <= 8


def test_unreproducible_schemes_say_why():
    x = _x()
    c = check_tensor("layers.0.mlp.up", x, x * 1.01, F32, ("Q4_K", True))  # not a dequantized copy either
    assert (c.reproduced, c.why) == (None, "gguf cannot quantize Q4_K")
    c = check_tensor("layers.0.mlp.up", x, x, ("Q4_1", True), ("Q8_0", True))
    assert (c.reproduced, c.why) == (None, "both sides are lossy (Q4_1 vs Q8_0)")


def test_fingerprints_allow_only_rounding():
    assert cast_tolerance(("F32", "BF16")) == 0.004 and cast_tolerance(("F32", "Q4_1")) == 1e-6


# ----------------------------------------------------------------------------- verdicts on a tiny Llama

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    state, cfg = tiny_llama_state(seed=0, layers=4)
    root = tmp_path_factory.mktemp("tiny_reproduce")

    def write(name, f):
        return write_hf_dir(root / name, {k: f(k, v) for k, v in state.items()}, cfg)

    adapted = ("q_proj", "v_proj", "o_proj", "up_proj", "down_proj")
    return {"base": write("base", lambda k, v: v),
            "bf16": write("bf16", lambda k, v: v.to(torch.bfloat16)),
            "q8_0": write("q8_0", lambda k, v: rq.gguf_round_trip(v, "Q8_0") if v.dim() == 2 else v),
            "tuned": write("tuned", lambda k, v: v + torch.randn(v.shape, generator=torch.Generator().manual_seed(
                zlib.crc32(k.encode()))) * 0.003 * v.std()),
            "lora": write("lora", lambda k, v: _lora(v, 2, 0.003, zlib.crc32(k.encode()))
                          if k.endswith(tuple(f"{a}.weight" for a in adapted)) else v)}


@pytest.mark.parametrize("name,label,relation,words", [
    ("bf16", "identical", "dtype or format change", "cast F32 -> BF16"),
    ("q8_0", "identical", "quantized copy", "Q8_0 round trip stored as F32"),
    ("tuned", "derived", "fine-tune or perturbation", "no cast or quantization"),
    ("lora", "derived", "LoRA-merged fine-tune", "rank ≈ 2"),
])
def test_tiny_llama_verdicts(tiny, name, label, relation, words):
    r = compare(tiny["base"], tiny[name], OPTS)
    assert (r.verdict.label, r.verdict.relation) == (label, relation), r.verdict.explanation
    assert words in r.verdict.explanation
    item = next(e for e in r.evidence if e.kind == "reproduction")
    assert item.details["verdict"] == ("reproduced" if label == "identical" else "not reproduced")
    json.dumps(item.details)  # plain JSON


# ----------------------------------------------------------------------------- SmolLM2 and MiniLM (slow)

def _smollm2_lora(state: dict, cfg: dict) -> tuple[dict, dict]:
    """Rank-8 updates B·A on q/v/o/up/down of every layer, each moving its matrix by 0.3% (seeded per name)."""
    adapted = tuple(f"{p}.weight" for p in ("q_proj", "v_proj", "o_proj", "up_proj", "down_proj"))
    return {k: _lora(v, 8, 0.003, zlib.crc32(k.encode())) if k.endswith(adapted) else v.clone()
            for k, v in state.items()}, cfg


def _q8_0_gguf(hf: Path) -> Path:
    """`hf` (a SmolLM2-shaped HF dir) as a Q8_0 GGUF (matrices Q8_0, norms F32), cached."""
    from tests import gguf_export as ge

    def write(folder: Path) -> None:
        config = json.loads((hf / "config.json").read_text())
        out = folder / "model.Q8_0.gguf"
        writer = gguf.GGUFWriter(str(out), "llama")
        metadata = ge.reference_metadata(ge.SMOLLM2_GGUF)
        for key, value, kind, item in metadata:
            if key.startswith("general."):
                writer.add_key_value(key, value, kind, sub_type=item)
        ge._add_hyperparameters(writer, config)
        writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_Q8_0))
        for key, value, kind, item in metadata:
            if key.startswith("tokenizer."):
                writer.add_key_value(key, value, kind, sub_type=item)
        from safetensors import safe_open

        with safe_open(str(hf / "model.safetensors"), framework="pt") as f:
            for name, (_, key), transform, shape in ge._plan(ge._tensor_files(hf), config, hf):
                t = transform(f.get_tensor(key).to(torch.float32)).numpy()
                if len(shape) == 2:
                    writer.add_tensor(name, quantize(t, gguf.GGMLQuantizationType.Q8_0),
                                      raw_dtype=gguf.GGMLQuantizationType.Q8_0)
                else:
                    writer.add_tensor(name, np.ascontiguousarray(t, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    return cached("gguf/smollm2-q8_0", recipe_key(write, hf.name), write) / "model.Q8_0.gguf"


@pytest.mark.slow
@pytest.mark.parametrize("name,label,words", [
    ("copy", "identical", "exact copy"), ("fp16", "identical", "dtype or format change"),
    ("bf16", "identical", "dtype or format change"), ("q8_0", "identical", "quantized copy"),
    ("q4_0", "identical", "quantized copy"), ("fine_tune", "derived", "fine-tune"),
])
def test_smollm2_family_reproduction(base, name, label, words):
    from tests.smollm2_family import build, full_result

    v = full_result(base[0], build(name, base)).verdict
    assert v.label == label and words in v.relation, (v.relation, v.explanation)


@pytest.mark.slow
def test_smollm2_lora_merge_is_a_low_rank_fine_tune(base):
    lora = fam.variant("smollm2-lora8", lambda: _smollm2_lora(base[1], base[2]))
    v = compare(base[0], lora, OPTS).verdict
    assert (v.label, v.relation) == ("derived", "LoRA-merged fine-tune"), v.explanation
    assert "rank ≈ 8" in v.explanation


@pytest.mark.slow
def test_smollm2_fine_tune_as_q8_0_gguf_is_derived(base):
    from tests.smollm2_family import build

    v = compare(base[0], _q8_0_gguf(build("fine_tune", base)), OPTS).verdict
    assert v.label == "derived" and "fine-tune" in v.relation, (v.relation, v.explanation)


@pytest.mark.slow
def test_smollm2_fine_tune_against_the_q4_1_gguf_is_derived(base):
    from tests.real_models import SMOLLM2_GGUF, require
    from tests.smollm2_family import build

    v = compare(require(SMOLLM2_GGUF), build("fine_tune", base), OPTS).verdict
    assert v.label == "derived" and "fine-tune" in v.relation, (v.relation, v.explanation)


def test_minilm_int8_onnx_reproduces_from_the_fp32_weights():
    from tests.real_models import MINILM_DIR, MINILM_INT8_ONNX, require

    with open_model(require(MINILM_DIR)) as a, open_model(require(MINILM_INT8_ONNX)) as b:
        rep = reproduce(a, b)
    assert rep.verdict == "reproduced" and len(rep.tensors) == 7
    assert {(t.scheme, t.reproduced) for t in rep.tensors} == {("int8 symmetric per row (absmax/127)", 1.0)}


def test_int8_round_trips_on_sampled_rows_equal_the_whole_tensor_sliced():
    """Scales come from the whole tensor, so a row sample's round trips are the whole one's rows, exactly."""
    from provenance.signals import requantize as rq

    x = torch.randn(300, 48, generator=torch.Generator().manual_seed(3))
    rows = torch.tensor([0, 7, 150, 299])
    whole, sampled = rq.int8_round_trips(x), rq.int8_round_trips(x, rows)
    assert list(whole) == list(sampled) and len(whole) == 4
    for name in whole:
        assert torch.equal(whole[name][rows], sampled[name]), name
