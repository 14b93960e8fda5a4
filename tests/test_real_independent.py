"""The independently trained real models (REAL_MODELS.md, "More real checkpoints") are sane and readable.

multilingual-e5-small comes packed as E5S1 and is unpacked by tests/e5s1.py into an HF BERT folder;
Qwen2.5-Coder-0.5B-Instruct comes as six parts of one GGUF, assembled by tests/real_models.qwen_gguf.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from provenance.comparison import CompareOptions, compare
from provenance.inspect import inspect_model
from tests import e5s1
from tests.real_models import (
    E5_ENPT_Q4_BIN,
    E5_Q4_BIN,
    QWEN_GGUF_SHA256,
    qwen_gguf,
    require,
)

OPTS = CompareOptions(hashes=False, device="cpu")
WORD = "embeddings.word_embeddings.weight"


@pytest.fixture(scope="module")
def e5() -> Path:
    return e5s1.unpacked(require(E5_Q4_BIN))


@pytest.fixture(scope="module")
def e5_enpt() -> Path:
    return e5s1.unpacked(require(E5_ENPT_Q4_BIN))


def _embed(folder: Path, texts: list[str]) -> torch.Tensor:
    """Mean-pooled, L2-normalised sentence embeddings, as multilingual-e5's model card computes them."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state  # [n, T, H]
    mask = batch["attention_mask"][..., None].float()
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)


def test_q4_0_dequantizes_low_nibbles_first_as_nibble_minus_8_times_scale():
    scale = np.array([0.5], "<f2").tobytes()
    nibbles = bytes((lo | (15 - lo) << 4) for lo in range(16))  # byte j: weight j low, weight j + 16 high
    values = e5s1.dequantize_q4_0(scale + nibbles)
    assert values.tolist() == [(n - 8) * 0.5 for n in list(range(16)) + list(range(15, -1, -1))]


def test_a_truncated_or_foreign_file_is_refused_with_its_name(tmp_path):
    foreign = tmp_path / "x.bin"
    foreign.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(e5s1.E5S1Error, match=r"x\.bin: not an E5S1 file"):
        e5s1.read(foreign)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(require(E5_ENPT_Q4_BIN).read_bytes()[:2000])
    with pytest.raises(e5s1.E5S1Error, match=r"cut\.bin: truncated at byte \d+ \(wanted \d+ more of 2000\)"):
        e5s1.read(cut)
    huge = bytearray(require(E5_ENPT_Q4_BIN).read_bytes()[:64])
    struct.pack_into("<i", huge, 44, 1 << 30)  # n_pieces: magic, version, 7 dims, eps, block before it
    (tmp_path / "huge.bin").write_bytes(huge)
    with pytest.raises(e5s1.E5S1Error, match="truncated"):
        e5s1.read(tmp_path / "huge.bin")


def test_unpacked_e5_files_are_bert_folders_with_their_header_sizes(e5, e5_enpt):
    for folder, rows, pieces in ((e5, 250_037, 250_002), (e5_enpt, 47_284, 47_284)):
        info = inspect_model(folder, hashes=False)
        assert (info.format, info.architecture, info.num_layers) == ("safetensors", "bert", 12)
        assert (info.layout["hidden"], info.layout["intermediate"], info.layout["vocab"]) == (384, 1536, rows)
        assert info.missing == [] and info.unmapped == []
        canonical = info.tokenizer["canonical"]
        assert (canonical["model"], canonical["size"], canonical["specials"]) == ("unigram", pieces, 5)


@pytest.mark.slow
def test_unpacked_e5_embeds_a_paraphrase_closer_than_an_unrelated_sentence(e5):
    q = _embed(e5, ["query: how do I bake bread at home?", "query: what is a simple recipe for homemade bread?",
                    "query: the stock market fell sharply on Tuesday"])
    paraphrase, unrelated = float(q[0] @ q[1]), float(q[0] @ q[2])
    assert paraphrase > 0.9 and paraphrase - unrelated > 0.1


def test_the_tokenizer_splits_like_xlm_r(e5):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(e5 / "tokenizer.json"))
    enc = tok.encode("query: how do I bake bread at home?")
    assert enc.tokens == ["<s>", "▁que", "ry", ":", "▁how", "▁do", "▁I", "▁bake", "▁bread", "▁at", "▁home", "?", "</s>"]
    assert enc.ids[0] == 0 and enc.ids[-1] == 2


def test_e5_enpt_keeps_every_shared_row_and_every_layer_of_e5(e5, e5_enpt):
    full, pruned = e5s1.read(require(E5_Q4_BIN)), e5s1.read(require(E5_ENPT_Q4_BIN))
    index = {p: i for i, p in enumerate(full.pieces)}
    kept = [(i, index[p]) for i, p in enumerate(pruned.pieces) if p in index]
    assert len(kept) == len(pruned.pieces) == 47_284
    with safe_open(str(e5 / "model.safetensors"), "pt") as a, safe_open(str(e5_enpt / "model.safetensors"), "pt") as b:
        names = set(a.keys())
        assert names == set(b.keys())
        small, big = (torch.tensor(ix) for ix in zip(*kept))
        assert torch.equal(b.get_tensor(WORD)[small], a.get_tensor(WORD)[big])
        assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in sorted(names - {WORD}))


def test_provenance_finds_the_pruned_vocabulary(e5, e5_enpt):
    v = compare(e5, e5_enpt, OPTS).verdict
    assert (v.label, v.relation) == ("derived", "vocabulary changed")
    assert v.p_value < 1e-6


@pytest.mark.slow
def test_qwen_gguf_assembles_to_its_sha256_and_reads_as_qwen2():
    path = qwen_gguf()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    assert digest.hexdigest() == QWEN_GGUF_SHA256
    info = inspect_model(path, hashes=False)
    assert (info.format, info.architecture, info.num_layers) == ("gguf", "qwen2", 24)
    assert (info.layout["hidden"], info.layout["kv_heads"], info.layout["vocab"]) == (896, 2, 151_936)
    assert (info.tokenizer["canonical"]["model"], info.tokenizer["canonical"]["size"]) == ("bpe", 151_936)
