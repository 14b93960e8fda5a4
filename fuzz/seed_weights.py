"""Seed checkpoints cut from the real MiniLM safetensors and SmolLM2 GGUF: a few real tensors each."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import torch

from fuzz import real_files

_MINILM = ("embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias", "embeddings.token_type_embeddings.weight",
           "embeddings.position_ids", "embeddings.word_embeddings.weight",
           "encoder.layer.0.attention.self.query.weight", "encoder.layer.0.attention.self.query.bias")


def minilm_tensors(rows: int = 8, cols: int = 48) -> dict[str, torch.Tensor]:
    """A few real MiniLM tensors, each cut to at most `rows` x `cols`."""
    from safetensors import safe_open

    out: dict[str, torch.Tensor] = {}
    with safe_open(str(real_files.MINILM_DIR / "model.safetensors"), "pt") as f:
        for name in _MINILM:
            t = f.get_slice(name)
            shape = t.get_shape()
            index = tuple(slice(0, rows if i == 0 and len(shape) > 1 else cols) for i in range(len(shape)))
            out[name] = t[index].contiguous().clone()
    return out


def safetensors_seeds() -> dict[str, bytes]:
    """F32 as stored; F16/BF16/I8/U8/BOOL copies; a zero-size tensor beside header metadata."""
    from safetensors.torch import save

    t = minilm_tensors()
    mixed = {"ln.f16": t["embeddings.LayerNorm.weight"].half(), "ln.bf16": t["embeddings.LayerNorm.bias"].bfloat16(),
             "q.i8": (t["encoder.layer.0.attention.self.query.weight"] * 100).to(torch.int8),
             "q.u8": (t["encoder.layer.0.attention.self.query.weight"] * 100).to(torch.uint8),
             "mask": t["embeddings.LayerNorm.bias"] > 0, "q.f64": t["encoder.layer.0.attention.self.query.bias"].double()}
    empty = {"empty": torch.zeros(0, 4), "scalar": torch.tensor(1.5), "ids": t["embeddings.position_ids"]}
    return {"minilm-f32": save(t, metadata={"format": "pt"}),
            "minilm-mixed": save(mixed, metadata={"format": "pt", "source": "all-MiniLM-L6-v2"}),
            "zero-size": save(empty)}


def torch_seeds() -> dict[str, bytes]:
    """torch.save zip archives (flat, nested with shared storage and ints) and the legacy format."""
    t = minilm_tensors(rows=4, cols=32)
    q = t["encoder.layer.0.attention.self.query.weight"]
    nested = {"model": {"q": q, "q_view": q[1:3], "ids": t["embeddings.position_ids"]}, "epoch": 3,
              "optimizer": {"lr": 0.1, "betas": (0.9, 0.99)}}
    out = {}
    for name, obj, zipped in (("minilm-zip", t, True), ("nested-zip", nested, True),
                              ("minilm-legacy", {k: t[k] for k in list(t)[:3]}, False)):
        buf = io.BytesIO()
        torch.save(obj, buf, _use_new_zipfile_serialization=zipped)
        out[name] = buf.getvalue()
    return out


def _smollm2() -> tuple[dict, dict[str, np.ndarray], dict[str, str]]:
    """(tokenizer dict, raw tensor bytes by name, raw dtype by name) from the real SmolLM2 GGUF."""
    from provenance.io.gguf_reader import GGUFTensorReader

    raw: dict[str, np.ndarray] = {}
    with GGUFTensorReader(real_files.SMOLLM2_GGUF) as reader:
        tok = reader.tokenizer() or {}
        values = dict(reader.metadata.values)
        reader.observer = lambda _path, _offset, buf: raw.__setitem__("last", np.frombuffer(bytes(buf), np.uint8))
        infos = reader.infos()
        cuts = {"token_embd.weight": 8, "blk.0.attn_norm.weight": 1, "blk.0.attn_k.weight": 4}
        kept: dict[str, np.ndarray] = {}
        dtypes: dict[str, str] = {}
        for name, rows in cuts.items():
            reader.read(name)
            info = infos[name]
            per_row = info.nbytes // (info.shape[0] if len(info.shape) > 1 else 1)
            kept[name] = raw["last"][:per_row * rows].reshape(rows, per_row) if len(info.shape) > 1 else \
                raw["last"].view(np.float32).copy()
            dtypes[name] = info.dtype
    return {**tok, "values": values}, kept, dtypes


def _write_gguf(build, endian: str = "little") -> bytes:
    """Run `build(writer)` on a GGUFWriter and return the file's bytes."""
    import gguf

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seed.gguf"
        e = gguf.GGUFEndian.BIG if endian == "big" else gguf.GGUFEndian.LITTLE
        writer = gguf.GGUFWriter(str(path), "llama", endianess=e)
        build(writer)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path.read_bytes()


def _gguf_config(w, values: dict) -> None:  # w: gguf.GGUFWriter
    """SmolLM2's own general.* and llama.* values (one block)."""
    for key in ("general.name", "general.organization", "general.basename", "general.size_label"):
        w.add_string(key, values[key])
    w.add_block_count(1)
    w.add_context_length(values["llama.context_length"])
    w.add_embedding_length(values["llama.embedding_length"])
    w.add_feed_forward_length(values["llama.feed_forward_length"])
    w.add_head_count(values["llama.attention.head_count"])
    w.add_head_count_kv(values["llama.attention.head_count_kv"])
    w.add_rope_freq_base(values["llama.rope.freq_base"])
    w.add_layer_norm_rms_eps(values["llama.attention.layer_norm_rms_epsilon"])
    w.add_array("general.languages", ["en"])


def _gguf_vocab(w, tok: dict, n: int) -> None:  # w: gguf.GGUFWriter
    """SmolLM2's first `n` tokens, token types and merges, special ids and chat template."""
    w.add_tokenizer_model(tok["model"])
    w.add_tokenizer_pre(tok["pre"])
    w.add_token_list(tok["tokens"][:n])
    w.add_token_types(tok["token_types"][:n])
    w.add_token_merges(tok["merges"][:n])
    w.add_bos_token_id(tok["bos_token_id"])
    w.add_eos_token_id(tok["eos_token_id"])
    w.add_chat_template(tok["chat_template"])


def gguf_seeds(n_tokens: int = 1000) -> dict[str, bytes]:
    """SmolLM2's first tokens and merges with a few real tensors; a vocab-only file; a big-endian file
    (plain types only: the reader refuses quants in the other byte order)."""
    import gguf

    tok, tensors, dtypes = _smollm2()

    def full(w: gguf.GGUFWriter) -> None:
        _gguf_config(w, tok["values"])
        _gguf_vocab(w, tok, n_tokens)
        for name, data in tensors.items():
            qtype = getattr(gguf.GGMLQuantizationType, dtypes[name])
            w.add_tensor(name, data, raw_dtype=None if dtypes[name] == "F32" else qtype)

    def big(w: gguf.GGUFWriter) -> None:
        _gguf_config(w, tok["values"])
        _gguf_vocab(w, tok, 200)
        norm = tensors["blk.0.attn_norm.weight"]
        w.add_tensor("blk.0.attn_norm.weight", norm)
        w.add_tensor("blk.0.ffn_norm.weight", norm[:64].astype(np.float16))
        w.add_tensor("blk.0.attn_q.bias", norm[:32].astype(np.float64))

    return {"smollm2": _write_gguf(full), "vocab-only": _write_gguf(lambda w: _gguf_vocab(w, tok, 300)),
            "big-endian": _write_gguf(big, "big")}
