"""Canonical roles on real checkpoints: SmolLM2 (GGUF vs HF), renamed shells, MiniLM fp32 vs int8 ONNX."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from provenance.arch.view import open_model
from tests.real_models import (
    BGE_ONNX,
    COLBERT_ONNX,
    MINILM_DIR,
    MINILM_INT8_ONNX,
    RERANKER_ONNX,
    SMOLLM2_GGUF,
    require,
)

LLAMA_KEYS = ["norm1", "attn.q", "attn.k", "attn.v", "attn.o", "norm2", "mlp.gate", "mlp.up", "mlp.down"]


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.double().flatten(), b.double().flatten(), dim=0).item()


def test_smollm2_gguf_maps_to_30_llama_layers():
    with open_model(require(SMOLLM2_GGUF)) as m:
        r = m.roles
        assert r.definition == "gguf_llama"
        assert r.layers == list(range(30))
        assert r.unmapped == [] and r.missing == []
        assert (r.layout.hidden, r.layout.heads, r.layout.kv_heads, r.layout.intermediate) == (576, 9, 3, 1536)
        assert {f"layers.{i}.{k}" for i in range(30) for k in LLAMA_KEYS} <= set(r.roles)
        assert r.roles["lm_head"].tied_to == "embed"
        assert r.roles["layers.7.attn.k"].shape == (192, 576)


@pytest.mark.slow
def test_smollm2_gguf_roles_equal_transformers_dequantized_weights(smollm2_hf):
    """Our GGUF view (Q/K rope permutation undone) equals what transformers makes of the same file."""
    with open_model(SMOLLM2_GGUF) as g, open_model(smollm2_hf) as h:
        assert h.roles.definition == "llama"
        shared = set(g.roles.roles) & set(h.roles.roles)
        assert len(shared) == 30 * 9 + 3
        for role in sorted(shared):
            if role in ("lm_head", "embed") or role.startswith(("layers.0.", "layers.29.", "layers.13.")):
                assert torch.equal(g.tensor(role), h.tensor(role, dtype="float32")), role


def _renamed_copy(src: Path, dst: Path, *, shuffle: bool) -> dict[str, str]:
    """Save every tensor of `src` under meaningless names; return new name -> canonical role."""
    mapping: dict[str, str] = {}
    out: dict[str, torch.Tensor] = {}
    rng = random.Random(7)
    with open_model(src) as m:
        for i in m.roles.layers:
            slots = list(range(len(LLAMA_KEYS)))
            if shuffle:
                rng.shuffle(slots)
            for slot, key in zip(slots, LLAMA_KEYS):
                name = f"trunk.cells.{i}.t{slot:02d}.w"
                out[name] = m.tensor(f"layers.{i}.{key}")
                mapping[name] = f"layers.{i}.{key}"
        for name, role in (("trunk.vocab.w", "embed"), ("trunk.closing.w", "final_norm")):
            out[name] = m.tensor(role)
            mapping[name] = role
    dst.mkdir(parents=True, exist_ok=True)
    save_file(out, str(dst / "model.safetensors"))
    return mapping


@pytest.mark.slow
def test_renamed_smollm2_maps_back_to_the_same_roles(smollm2_hf, tmp_path):
    mapping = _renamed_copy(smollm2_hf, tmp_path / "shell", shuffle=False)
    with open_model(tmp_path / "shell") as m:
        r = m.roles
        assert r.definition is None and r.inferred
        assert "inferred from tensor shapes" in r.how
        assert r.layers == list(range(30)) and r.unmapped == []
        got = {s.tensor: role for role, s in r.roles.items() if s.tied_to is None}
        assert got == mapping
        assert any("told apart by file order only" in n for n in r.notes)


@pytest.mark.slow
def test_shuffled_names_keep_shape_determined_roles(smollm2_hf, tmp_path):
    """With names shuffled inside each layer, shapes pin k/v, the MLP and the norms, and the weights'
    head structure tells q from o; k/v, gate/up and norm1/norm2 stay order-based (and say so)."""
    mapping = _renamed_copy(smollm2_hf, tmp_path / "shuffled", shuffle=True)
    with open_model(tmp_path / "shuffled") as m:
        got = {s.tensor: role for role, s in m.roles.roles.items()}
        notes = m.roles.notes
    assert any("attn.q/attn.o swapped back by head structure" in n for n in notes)
    assert any("attn.k/attn.v have the same shape and uninformative names" in n for n in notes)
    groups = {"attn.k": "kv", "attn.v": "kv", "attn.q": "q", "attn.o": "o", "mlp.gate": "gu", "mlp.up": "gu",
              "mlp.down": "down", "norm1": "norm", "norm2": "norm", "embed": "embed", "final_norm": "final"}

    def group(role: str) -> str:
        return groups[role.split(".", 2)[-1] if role.startswith("layers.") else role]

    assert {n: group(r) for n, r in got.items()} == {n: group(r) for n, r in mapping.items()}


def test_minilm_safetensors_and_int8_onnx_map_to_the_same_roles():
    with open_model(require(MINILM_DIR)) as fp32, open_model(require(MINILM_INT8_ONNX)) as int8:
        assert fp32.roles.definition == int8.roles.definition == "bert"
        a, b = set(fp32.roles.roles), set(int8.roles.roles)
        assert fp32.roles.layers == int8.roles.layers == list(range(6))
        assert a - b == {"pooler", "pooler.bias"}  # the export drops the pooler head
        assert b - a == set()
        worst = min(cosine(fp32.tensor(r), int8.tensor(r)) for r in sorted(a & b))
        assert worst >= 0.999


@pytest.mark.parametrize("path,layers", [(BGE_ONNX, 12), (COLBERT_ONNX, 12), (RERANKER_ONNX, 12)])
def test_vectrix_onnx_exports_map_to_bert_roles(path, layers):
    with open_model(require(path)) as m:
        r = m.roles
        assert r.definition == "bert"
        assert r.layers == list(range(layers))
        assert r.missing == []
        for i in range(layers):
            assert r.roles[f"layers.{i}.attn.q"].shape == (384, 384)
            assert r.roles[f"layers.{i}.mlp.up"].shape == (1536, 384)
            assert r.roles[f"layers.{i}.mlp.down"].shape == (384, 1536)
