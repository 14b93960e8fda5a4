"""Role mapping edge cases on tiny Llamas: headless saves, wrapper prefixes, ties, layout."""

from __future__ import annotations

import torch

from provenance.arch.view import open_model
from tests.tiny_models import tiny_llama_state, write_hf_dir


def test_headless_llama_model_maps_by_definition(tmp_path):
    """`LlamaModel` saves 'layers.0...' without the 'model.' the definition's templates carry."""
    state, config = tiny_llama_state()
    headless = {k.removeprefix("model."): v for k, v in state.items() if k != "lm_head.weight"}
    folder = write_hf_dir(tmp_path / "headless", headless, {**config, "architectures": ["LlamaModel"]})
    with open_model(folder) as m:
        r = m.roles
        assert r.definition == "llama" and not r.inferred
        assert r.layers == [0, 1, 2] and r.unmapped == [] and r.missing == []
        assert r.roles["layers.1.attn.q"].tensor == "layers.1.self_attn.q_proj.weight"
        assert "lm_head" not in r.roles  # the config says untied: no head, not the embedding
        assert torch.equal(m.tensor("layers.2.mlp.down"), state["model.layers.2.mlp.down_proj.weight"])


def test_wrapper_prefix_is_detected(tmp_path):
    """A PEFT-style wrapper ('base_model.model.') in front of every name still maps by definition."""
    state, config = tiny_llama_state()
    wrapped = {"base_model.model." + k: v for k, v in state.items()}
    with open_model(write_hf_dir(tmp_path / "peft", wrapped, config)) as m:
        r = m.roles
        assert r.definition == "llama" and r.unmapped == [] and r.missing == []
        assert r.roles["lm_head"].tensor == "base_model.model.lm_head.weight"


def test_tied_head_points_at_the_embedding(tmp_path):
    state, config = tiny_llama_state()
    state.pop("lm_head.weight")
    with open_model(write_hf_dir(tmp_path / "tied", state, {**config, "tie_word_embeddings": True})) as m:
        head = m.roles.roles["lm_head"]
        assert (head.tied_to, head.tensor) == ("embed", "model.embed_tokens.weight")


def test_layout_from_config(tiny_llama):
    with open_model(tiny_llama[0]) as m:
        lay = m.roles.layout
        assert (lay.hidden, lay.layers, lay.heads, lay.kv_heads, lay.head_dim, lay.intermediate, lay.vocab) == (
            64, 3, 4, 2, 16, 160, 256)
        assert (lay.q_dim, lay.kv_dim) == (64, 32)
