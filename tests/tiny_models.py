"""Tiny seeded checkpoints, built under a tmp dir (never the repo): a small Llama for most tests, and one
model per architecture for the architecture-definition tests.

Transformers builds the architectures it ships (`build_hf`); Baichuan and ChatGLM exist only as
remote code, so their state dicts are written by hand following their public modeling files.
Every parameter is redrawn from a seeded normal so biases and norms are not trivially 0 or 1.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

HIDDEN, LAYERS, HEADS, KV_HEADS, INTER, VOCAB = 64, 2, 4, 2, 128, 128
HEAD_DIM = HIDDEN // HEADS
_COMMON = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=KV_HEADS,
               intermediate_size=INTER, vocab_size=VOCAB, pad_token_id=0, bos_token_id=1, eos_token_id=2)
_FALCON = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS, vocab_size=VOCAB,
               pad_token_id=0, bos_token_id=1, eos_token_id=2)

# name -> (transformers config class, keyword arguments)
HF_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "llama": ("LlamaConfig", _COMMON),
    "mistral": ("MistralConfig", _COMMON),
    "mixtral": ("MixtralConfig", {**_COMMON, "num_local_experts": 4, "num_experts_per_tok": 2}),
    "qwen2": ("Qwen2Config", _COMMON),
    "qwen2_moe": ("Qwen2MoeConfig", {**_COMMON, "num_experts": 4, "num_experts_per_tok": 2,
                                     "moe_intermediate_size": 32, "shared_expert_intermediate_size": 48}),
    "qwen3": ("Qwen3Config", {**_COMMON, "head_dim": HEAD_DIM}),
    "gemma": ("GemmaConfig", {**_COMMON, "head_dim": HEAD_DIM}),
    "gemma2": ("Gemma2Config", {**_COMMON, "head_dim": HEAD_DIM}),
    "gemma3": ("Gemma3TextConfig", {**_COMMON, "head_dim": HEAD_DIM}),
    "phi3": ("Phi3Config", _COMMON),
    "gpt2": ("GPT2Config", dict(n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, vocab_size=VOCAB, n_positions=32,
                                bos_token_id=1, eos_token_id=2)),
    "gpt_neox": ("GPTNeoXConfig", {k: v for k, v in _COMMON.items() if k != "num_key_value_heads"}),
    "falcon_7b": ("FalconConfig", {**_FALCON, "multi_query": True, "new_decoder_architecture": False}),
    "falcon_rw": ("FalconConfig", {**_FALCON, "multi_query": False, "new_decoder_architecture": False,
                                   "parallel_attn": False, "bias": True}),
    "falcon_40b": ("FalconConfig", {**_FALCON, "new_decoder_architecture": True, "num_kv_heads": KV_HEADS}),
    "falcon2_11b": ("FalconConfig", {**_FALCON, "new_decoder_architecture": True, "num_kv_heads": KV_HEADS,
                                     "num_ln_in_parallel_attn": 1}),
}


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
    """An HF directory at `path`: model.safetensors holding `state`, and config.json."""
    path.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(config))
    return path


def link_files(files: list[Path], folder: Path) -> Path:
    """`folder` holding hard links to `files` (copies across file systems): a model directory put together
    from other directories' files; symlinks would not do, the readers refuse links leaving the directory."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        try:
            os.link(f, folder / f.name)
        except OSError:
            shutil.copy2(f, folder / f.name)
    return folder


def shard(state: dict[str, torch.Tensor], folder: Path, n: int = 2) -> Path:
    """Write `state` as n safetensors shards with an index, like save_pretrained does."""
    folder.mkdir(parents=True, exist_ok=True)
    names = sorted(state)
    weight_map = {}
    for k in range(n):
        part = {name: state[name] for name in names[k::n]}
        fname = f"model-{k + 1:05d}-of-{n:05d}.safetensors"
        save_file(part, str(folder / fname))
        weight_map.update({name: fname for name in part})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


def _randomize(params: list[torch.nn.Parameter] | list[torch.Tensor], seed: int) -> None:
    """Redraw every tensor from N(0, 0.2^2) with a fixed seed (shared tensors are listed once)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


def build_hf(name: str, root: Path) -> tuple[Path, torch.nn.Module]:
    """Save a tiny transformers model `name` under root/name; return its directory and the model (eval)."""
    import transformers

    cls_name, kwargs = HF_CONFIGS[name]
    config = getattr(transformers, cls_name)(**kwargs)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    _randomize(list(model.parameters()), seed=0)
    out = root / name
    model.save_pretrained(out)
    return out, model


def _write(out: Path, tensors: dict[str, torch.Tensor], config: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, out / "model.safetensors", metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return out


def build_yi(llama_dir: Path, root: Path) -> Path:
    """A Yi-style copy of a tiny llama: model_type 'Yi' and input/post_attention_layernorm renamed ln1/ln2."""
    with safe_open(llama_dir / "model.safetensors", "pt") as f:
        tensors = {k.replace("input_layernorm", "ln1").replace("post_attention_layernorm", "ln2"): f.get_tensor(k)
                   for k in f.keys()}
    config = json.loads((llama_dir / "config.json").read_text(encoding="utf-8"))
    config.update(model_type="Yi", architectures=["YiForCausalLM"])
    return _write(root / "yi", tensors, config)


def build_baichuan(root: Path) -> Path:
    """Baichuan2-7B layout (modeling_baichuan.py): W_pack = Linear(hidden, 3*hidden), Llama names otherwise."""
    shapes = {"model.embed_tokens.weight": (VOCAB, HIDDEN), "model.norm.weight": (HIDDEN,),
              "lm_head.weight": (VOCAB, HIDDEN)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        shapes.update({p + "input_layernorm.weight": (HIDDEN,), p + "self_attn.W_pack.weight": (3 * HIDDEN, HIDDEN),
                       p + "self_attn.o_proj.weight": (HIDDEN, HIDDEN),
                       p + "post_attention_layernorm.weight": (HIDDEN,),
                       p + "mlp.gate_proj.weight": (INTER, HIDDEN), p + "mlp.up_proj.weight": (INTER, HIDDEN),
                       p + "mlp.down_proj.weight": (HIDDEN, INTER)})
    tensors = {k: torch.empty(s) for k, s in shapes.items()}
    _randomize(list(tensors.values()), seed=1)
    tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.rand(HEAD_DIM // 2)  # Baichuan-7B keeps this buffer
    config = {"model_type": "baichuan", "architectures": ["BaichuanForCausalLM"], "hidden_size": HIDDEN,
              "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "intermediate_size": INTER,
              "vocab_size": VOCAB, "tie_word_embeddings": False, "hidden_act": "silu", "rms_norm_eps": 1e-6}
    return _write(root / "baichuan", tensors, config)


# ChatGLM sizes chosen so that a wrong reading of the config shows: kv_channels != hidden/heads,
# ffn_hidden_size != 4*hidden, and two kv groups for four heads.
GLM_KV_CHANNELS, GLM_GROUPS, GLM_FFN = 8, 2, 96


def build_chatglm(root: Path) -> Path:
    """ChatGLM3/GLM-4 layout (modeling_chatglm.py): fused query_key_value with bias, swiglu dense_h_to_4h."""
    q_dim, kv_dim = HEADS * GLM_KV_CHANNELS, GLM_GROUPS * GLM_KV_CHANNELS
    shapes = {"transformer.embedding.word_embeddings.weight": (VOCAB, HIDDEN),
              "transformer.encoder.final_layernorm.weight": (HIDDEN,),
              "transformer.output_layer.weight": (VOCAB, HIDDEN)}
    for i in range(LAYERS):
        p = f"transformer.encoder.layers.{i}."
        shapes.update({p + "input_layernorm.weight": (HIDDEN,),
                       p + "self_attention.query_key_value.weight": (q_dim + 2 * kv_dim, HIDDEN),
                       p + "self_attention.query_key_value.bias": (q_dim + 2 * kv_dim,),
                       p + "self_attention.dense.weight": (HIDDEN, q_dim),
                       p + "post_attention_layernorm.weight": (HIDDEN,),
                       p + "mlp.dense_h_to_4h.weight": (2 * GLM_FFN, HIDDEN),
                       p + "mlp.dense_4h_to_h.weight": (HIDDEN, GLM_FFN)})
    tensors = {k: torch.empty(s) for k, s in shapes.items()}
    _randomize(list(tensors.values()), seed=2)
    tensors["transformer.rotary_pos_emb.inv_freq"] = torch.rand(GLM_KV_CHANNELS // 4)
    config = {"model_type": "chatglm", "architectures": ["ChatGLMModel"], "hidden_size": HIDDEN,
              "num_layers": LAYERS, "num_attention_heads": HEADS, "kv_channels": GLM_KV_CHANNELS,
              "multi_query_attention": True, "multi_query_group_num": GLM_GROUPS, "ffn_hidden_size": GLM_FFN,
              "padded_vocab_size": VOCAB, "add_qkv_bias": True, "add_bias_linear": False, "rmsnorm": True,
              "post_layer_norm": True, "layernorm_epsilon": 1e-5, "seq_length": 32}
    return _write(root / "chatglm", tensors, config)
