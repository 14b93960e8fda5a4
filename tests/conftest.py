"""Shared fixtures: tiny deterministic models built by the tests themselves, once per session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file


def tiny_llama_state(seed: int = 0, layers: int = 3) -> tuple[dict[str, torch.Tensor], dict]:
    """A small Llama (GQA: 4 heads, 2 kv heads) built with transformers, fixed seed."""
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(hidden_size=64, num_hidden_layers=layers, num_attention_heads=4,
                                   num_key_value_heads=2, intermediate_size=160, vocab_size=256,
                                   pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    model = transformers.LlamaForCausalLM(cfg)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    return state, cfg.to_dict()


def write_hf_dir(path: Path, state: dict[str, torch.Tensor], config: dict) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """(directory, state dict) of a 3-layer tiny Llama in HF layout."""
    state, config = tiny_llama_state()
    return write_hf_dir(tmp_path_factory.mktemp("tiny_llama"), state, config), state
