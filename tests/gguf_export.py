"""Llama GGUF files written from HF Llama checkpoints, and the SmolLM2 family as GGUF for llama.cpp's server.

`export_gguf` uses only the `gguf` package's public API (GGUFReader, GGUFWriter, GGMLQuantizationType) and
streams one tensor at a time. The vocabulary and general metadata come from a reference GGUF (`like`), so
an export of a SmolLM2-shaped checkpoint tokenizes exactly as the shipped SmolLM2 GGUF does.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import os
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
import torch
from safetensors import safe_open

from tests.fixture_cache import cached, recipe_key
from tests.real_models import SMOLLM2_GGUF, require

# HF Llama name -> GGUF llama name: the architecture as data, not branches.
GLOBAL_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
LAYER_NAMES = {  # under model.layers.{i}. -> under blk.{i}.
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
SKIPPED = ("rotary_emb.inv_freq",)  # buffers some old checkpoints saved; llama.cpp recomputes them

# dtype -> (numpy dtype of 2-D tensors, general.file_type); 1-D tensors (norms) stay float32 either way
DTYPES = {
    "f32": (np.float32, gguf.LlamaFileType.ALL_F32),
    "f16": (np.float16, gguf.LlamaFileType.MOSTLY_F16),
}
# metadata that describes the reference file's own encoding, not the model: never copied
NOT_COPIED = ("general.architecture", "general.file_type", "general.quantization_version")


Metadata = tuple[tuple[str, object, gguf.GGUFValueType, gguf.GGUFValueType | None], ...]
"""(key, value, type, item type of an array) of the general.* and tokenizer.* keys a reference GGUF lends."""


def export_gguf(hf_dir: Path, out: Path, *, like: Path = SMOLLM2_GGUF, dtype: str = "f16") -> Path:
    """Write `out`, a llama-architecture GGUF of the HF Llama checkpoint `hf_dir` (safetensors + config.json),
    with `like`'s tokenizer.* and general.* metadata; deterministic (same input, same bytes)."""
    if dtype not in DTYPES:
        raise ValueError(f"The 'dtype' parameter of export_gguf must be one of {sorted(DTYPES)}. "
                         f"Got {dtype!r} instead.")
    config = json.loads((hf_dir / "config.json").read_text())
    shards = _tensor_files(hf_dir)
    metadata = reference_metadata(like)
    _check_vocab(metadata, config, like, hf_dir)
    plan = _plan(shards, config, hf_dir)
    np_dtype, file_type = DTYPES[dtype]

    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), "llama")
    try:
        for key, value, kind, item in metadata:
            if key.startswith("general."):
                writer.add_key_value(key, value, kind, sub_type=item)
        _add_hyperparameters(writer, config)
        writer.add_file_type(int(file_type))
        for key, value, kind, item in metadata:
            if key.startswith("tokenizer."):
                writer.add_key_value(key, value, kind, sub_type=item)
        for name, _, _, shape in plan:
            kind = _stored_as(shape, np_dtype)
            writer.add_tensor_info(name, shape, kind, int(np.prod(shape)) * kind.itemsize)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        with contextlib.ExitStack() as stack:
            handles = {f: stack.enter_context(safe_open(str(f), framework="pt")) for f in sorted(set(shards.values()))}
            for _, (file, key), transform, shape in plan:
                t = transform(handles[file].get_tensor(key).to(torch.float32))
                writer.write_tensor_data(np.ascontiguousarray(t.numpy().astype(_stored_as(shape, np_dtype))))
        writer.close()
        tmp.replace(out)
    finally:
        writer.close()
        tmp.unlink(missing_ok=True)
    return out


def _stored_as(shape: tuple[int, ...], matrices: type) -> np.dtype:
    """Matrices in the export's dtype; vectors (norm weights) in float32, which llama.cpp's norms expect."""
    return np.dtype(matrices if len(shape) == 2 else np.float32)


Plan = list[tuple[str, tuple[Path, str], Callable[[torch.Tensor], torch.Tensor], tuple[int, ...]]]
"""(GGUF name, (file, HF name), transform, shape), in the order the tensors are written."""


def _tensor_files(hf_dir: Path) -> dict[str, Path]:
    """HF tensor name -> the safetensors file holding it (one file or shards)."""
    files = sorted(hf_dir.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors in {hf_dir}: export_gguf reads an HF checkpoint directory "
                                f"(model.safetensors or shards, and config.json)")
    where: dict[str, Path] = {}
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            names = f.keys()
        where.update((k, file) for k in names)
    return where


def _plan(where: dict[str, Path], config: dict, hf_dir: Path) -> Plan:
    """What to write, in layer order: GGUF names, with the Q/K row interleave for rotary."""
    heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
    keep = {name for name in where if not name.endswith(SKIPPED)}
    if config.get("tie_word_embeddings", False):
        keep.discard("lm_head.weight")  # llama.cpp reads token_embd when there is no output.weight
    elif "lm_head.weight" not in keep:
        raise ValueError(f"{hf_dir}: config.json says tie_word_embeddings is false but there is no lm_head.weight")
    order = ["model.embed_tokens.weight"]
    for i in range(config["num_hidden_layers"]):
        order += [f"model.layers.{i}.{suffix}" for suffix in LAYER_NAMES]
    order += ["model.norm.weight"] + (["lm_head.weight"] if "lm_head.weight" in keep else [])
    missing = [n for n in order if n not in keep]
    unknown = sorted(keep - set(order))
    if missing or unknown:
        raise ValueError(f"{hf_dir} is not a plain HF Llama checkpoint of {config['num_hidden_layers']} layers: "
                         f"missing {missing[:5]}, not mapped {unknown[:5]} (biases and other architectures "
                         f"are not exported)")
    plan: Plan = []
    for hf_name in order:
        with safe_open(str(where[hf_name]), framework="pt") as f:
            shape = tuple(f.get_slice(hf_name).get_shape())
        transform: Callable[[torch.Tensor], torch.Tensor] = _same
        if hf_name.endswith("q_proj.weight"):
            transform = functools.partial(interleave_rotary, n_heads=heads)
        elif hf_name.endswith("k_proj.weight"):
            transform = functools.partial(interleave_rotary, n_heads=kv_heads)
        plan.append((_gguf_name(hf_name), (where[hf_name], hf_name), transform, shape))
    return plan


def _same(t: torch.Tensor) -> torch.Tensor:
    """The tensor as it is (every tensor but q_proj and k_proj)."""
    return t


def _gguf_name(hf_name: str) -> str:
    """`model.layers.3.mlp.up_proj.weight` -> `blk.3.ffn_up.weight`, through the tables above."""
    if hf_name in GLOBAL_NAMES:
        return GLOBAL_NAMES[hf_name]
    _, _, layer, suffix = hf_name.split(".", 3)  # model.layers.{i}.{suffix}
    return f"blk.{layer}.{LAYER_NAMES[suffix]}"


def interleave_rotary(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Rows of each head of q_proj/k_proj from HF's rotate-half order (the pairs rotated together are rows
    j and j + d/2) to GGUF llama's order (pairs are rows 2j and 2j + 1), which llama.cpp's rope expects.

    >>> interleave_rotary(torch.arange(8.0)[:, None], n_heads=2).flatten().tolist()
    [0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]
    """
    d = w.shape[0] // n_heads
    if d * n_heads != w.shape[0] or d % 2:
        raise ValueError(f"{w.shape[0]} rows do not split into {n_heads} heads of an even size")
    half = torch.arange(d // 2)
    in_head = torch.stack([half, half + d // 2], dim=1).reshape(-1)  # [d]: 0, d/2, 1, d/2 + 1, ...
    rows = (torch.arange(n_heads)[:, None] * d + in_head).reshape(-1)  # [n_heads * d]
    return w[rows]


def _check_vocab(metadata: Metadata, config: dict, like: Path, hf_dir: Path) -> None:
    """The reference's vocabulary must be the checkpoint's: its size is all a config can tell."""
    n = next((len(value) for key, value, _, _ in metadata if key == "tokenizer.ggml.tokens"), None)
    if n != config["vocab_size"]:
        raise ValueError(f"{like} has {n} tokens but {hf_dir} has vocab_size {config['vocab_size']}: "
                         f"pass like= a GGUF of the checkpoint's own vocabulary")


def reference_metadata(like: Path) -> Metadata:
    """`like`'s general.* and tokenizer.* keys, byte for byte (strings as raw bytes, arrays with their item
    type), read once per process and file version: GGUFReader takes seconds over a 49k-token vocabulary."""
    stat = like.stat()
    return _read_metadata(like.resolve(), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _read_metadata(like: Path, size: int, mtime_ns: int) -> Metadata:
    reader = gguf.GGUFReader(str(like))
    copied = []
    for key, field in reader.fields.items():
        if not key.startswith(("general.", "tokenizer.")) or key in NOT_COPIED:
            continue
        kind, item = field.types[0], None
        if kind == gguf.GGUFValueType.ARRAY:
            if len(field.types) != 2:
                raise ValueError(f"{like}: {key} is a nested GGUF array, which export_gguf does not copy")
            item = field.types[1]
            value = [bytes(field.parts[i]) for i in field.data] if item == gguf.GGUFValueType.STRING \
                else field.contents()
        elif kind == gguf.GGUFValueType.STRING:
            value = bytes(field.parts[field.data[0]])
        else:
            value = field.contents()
        copied.append((key, value, kind, item))
    return tuple(copied)


def _add_hyperparameters(writer: gguf.GGUFWriter, config: dict) -> None:
    """llama.* keys from an HF LlamaConfig (transformers 4 and 5 spellings of the rope theta)."""
    if config.get("hidden_act", "silu") != "silu":
        raise ValueError(f"hidden_act {config['hidden_act']!r}: GGUF llama computes SiLU MLPs only")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise ValueError(f"rope scaling {rope!r} is not exported (only the default rope)")
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.get("num_key_value_heads", heads))
    writer.add_rope_freq_base(float(rope.get("rope_theta", config.get("rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_vocab_size(config["vocab_size"])
    writer.add_rope_dimension_count(head_dim)
    if head_dim * heads != config["hidden_size"]:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)


# ----------------------------------------------------------------------------- the SmolLM2 family as GGUF

def smollm2_gguf_variants() -> dict[str, Path]:
    """GGUF files of SmolLM2 for llama.cpp's server, each cached: the shipped Q4_1 file itself, an f16
    export of its dequantized checkpoint (an exact copy), of the family's fine-tune, and of an
    independently trained model of the same shape (tests/smollm2_family.py)."""
    return dict(_variants())


@functools.cache
def _variants() -> tuple[tuple[str, Path], ...]:
    from tests import smollm2_family as smol

    shipped = require(SMOLLM2_GGUF)
    hf = smol.dequantized()
    base = smol.load_base(hf)
    return (("base_q4_1", shipped),
            ("copy_f16", exported("copy_f16", hf)),
            ("fine_tune", exported("fine_tune", smol.build("fine_tune", base))),
            ("independent", exported("independent", smol.independent_models(base)[0])))


def exported(name: str, hf_dir: Path, *, dtype: str = "f16") -> Path:
    """The cached `export_gguf` of `hf_dir` (a recipe-keyed cache entry, so its name changes with its
    contents), keyed by the exporter's source, the reference GGUF and gguf's version."""
    like = require(SMOLLM2_GGUF)
    version = importlib.metadata.version("gguf")
    key = recipe_key(export_gguf, hf_dir.name, like.name, like.stat().st_size, dtype, version)
    folder = cached(f"gguf/smollm2-{name}", key,
                    lambda folder: export_gguf(hf_dir, folder / "model.gguf", like=like, dtype=dtype))
    return folder / "model.gguf"
