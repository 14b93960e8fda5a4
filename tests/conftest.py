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


def cache_dir() -> Path:
    """Where expensive deterministic fixtures live between runs (PROVENANCE_TEST_CACHE to move it)."""
    import os

    root = Path(os.environ.get("PROVENANCE_TEST_CACHE", Path.home() / ".cache" / "provenance-tests"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def pytest_report_header(config: pytest.Config) -> str:
    """Free disk where the suite writes: a full run needs about 14 GB (cached families + tmp copies)."""
    import shutil
    import tempfile

    places = {"cache": cache_dir(), "tmp": Path(tempfile.gettempdir())}
    free = (f"{k} {shutil.disk_usage(p).free / 2**30:.1f} GiB ({p})" for k, p in places.items())
    return "disk free: " + ", ".join(free)


@pytest.fixture(scope="session")
def smollm2_hf() -> Path:
    """SmolLM2-135M-Instruct dequantized from its GGUF by *transformers* (an independent reader),
    saved once as an HF directory (fp32 safetensors + config) and reused by later runs."""
    from tests.real_models import SMOLLM2_GGUF, require

    gguf = require(SMOLLM2_GGUF)
    target = cache_dir() / "smollm2-135m-instruct-hf"
    if not (target / "config.json").is_file():
        import shutil

        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        tmp = target.with_name(target.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        if model.config.tie_word_embeddings:
            state.pop("lm_head.weight", None)
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        write_hf_dir(tmp, state, config)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    return target


@pytest.fixture(scope="session")
def smollm2_hf_tok(smollm2_hf: Path) -> Path:
    """`smollm2_hf` plus the tokenizer.json transformers converts from the GGUF (weights hard-linked)."""
    import os
    import shutil

    from tests.families import smollm2_tokenizer

    target = cache_dir() / "smollm2-135m-instruct-hf-tok"
    if not (target / "tokenizer.json").is_file():
        tmp = target.with_name(target.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for f in smollm2_hf.iterdir():
            try:
                os.link(f, tmp / f.name)
            except OSError:
                shutil.copy2(f, tmp / f.name)
        smollm2_tokenizer().save_pretrained(tmp)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    return target
