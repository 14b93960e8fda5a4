"""GGUFTensorReader on the real SmolLM2 Q4_1 file and on tiny GGUF files written in tmp_path."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import gguf
import gguf.quants
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from gguf.constants import GGML_QUANT_SIZES

from provenance.errors import (
    CorruptFileError,
    ProvenanceError,
    TensorNotFoundError,
    UnknownFormatError,
)
from provenance.io.gguf_reader import PLAIN_DTYPES, GGUFTensorReader, can_dequantize
from tests.real_models import SMOLLM2_GGUF, require

DEQUANTIZABLE = [t for t in Q if t.name not in PLAIN_DTYPES and can_dequantize(t)]
NOT_DEQUANTIZABLE = [t for t in Q if t.name not in PLAIN_DTYPES and not can_dequantize(t)]
TOKENS = ["<unk>", "<s>", "</s>", "a", "b", "ab", "c", "abc"]


# ---- the real SmolLM2-135M-Instruct Q4_1 file -------------------------------------------------

@pytest.fixture(scope="module")
def smollm() -> GGUFTensorReader:
    reader = GGUFTensorReader(require(SMOLLM2_GGUF))
    yield reader
    reader.close()


def test_real_tensor_infos(smollm: GGUFTensorReader) -> None:
    infos = smollm.infos()
    assert len(infos) == 272
    assert list(infos)[:3] == ["token_embd.weight", "blk.0.attn_norm.weight", "blk.0.ffn_down.weight"]
    assert {int(n.split(".")[1]) for n in infos if n.startswith("blk.")} == set(range(30))
    assert "blk.29.attn_q.weight" in infos and "blk.30.attn_q.weight" not in infos
    embd, k, norm = infos["token_embd.weight"], infos["blk.0.attn_k.weight"], infos["blk.0.attn_norm.weight"]
    assert (embd.shape, embd.dtype, embd.quantized, embd.nbytes) == ((49152, 576), "Q8_0", True, 49152 * 18 * 34)
    assert (k.shape, k.dtype, k.quantized, k.nbytes) == ((192, 576), "Q4_1", True, 192 * 18 * 20)
    assert (norm.shape, norm.dtype, norm.quantized, norm.nbytes) == ((576,), "F32", False, 576 * 4)
    assert infos["blk.0.ffn_down.weight"].shape == (576, 1536)
    assert k.file == SMOLLM2_GGUF and smollm.files == [SMOLLM2_GGUF] and smollm.format == "gguf"


def test_real_metadata_and_config(smollm: GGUFTensorReader) -> None:
    values = smollm.metadata.values
    assert smollm.metadata.format == "gguf"
    assert values["general.architecture"] == "llama"
    assert values["general.languages"] == ["en"]
    assert values["llama.attention.layer_norm_rms_epsilon"] == 1e-05
    assert values["tokenizer.ggml.tokens"] == {"array_length": 49152, "type": "STRING"}
    assert values["tokenizer.ggml.merges"] == {"array_length": 48900, "type": "STRING"}
    assert smollm.config() == {
        "model_type": "llama", "hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9,
        "num_key_value_heads": 3, "intermediate_size": 1536, "vocab_size": 49152,
        "max_position_embeddings": 8192, "rope_theta": 100000.0, "rms_norm_eps": 1e-05, "head_dim": 64,
        "gguf_architecture": "llama",
    }


def test_real_tokenizer(smollm: GGUFTensorReader) -> None:
    tok = smollm.tokenizer()
    assert (tok["model"], tok["pre"]) == ("gpt2", "smollm")
    assert len(tok["tokens"]) == 49152 and len(tok["token_types"]) == 49152 and len(tok["merges"]) == 48900
    assert tok["tokens"][:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert tok["merges"][:3] == ["Ġ t", "Ġ a", "i n"]
    assert tok["token_types"][:3] == [3, 3, 3]
    assert tok["scores"] is None
    assert (tok["bos_token_id"], tok["eos_token_id"], tok["unk_token_id"], tok["pad_token_id"]) == (1, 2, 0, 2)
    assert tok["chat_template"].startswith("{% for message in messages %}")


@pytest.mark.slow
def test_real_read_matches_gguf_own_reader(smollm: GGUFTensorReader) -> None:
    k = smollm.read("blk.0.attn_k.weight")
    assert k.dtype == torch.float32 and k.shape == (192, 576) and bool(torch.isfinite(k).all())
    norm = smollm.read("blk.0.attn_norm.weight")
    assert norm.dtype == torch.float32 and norm.shape == (576,)
    own = {t.name: t for t in gguf.GGUFReader(SMOLLM2_GGUF).tensors}
    t = own["blk.0.attn_k.weight"]
    assert torch.equal(k, torch.from_numpy(gguf.quants.dequantize(t.data, t.tensor_type)))
    assert torch.equal(norm, torch.from_numpy(np.array(own["blk.0.attn_norm.weight"].data)))


def test_real_unknown_tensor_suggests_names(smollm: GGUFTensorReader) -> None:
    with pytest.raises(TensorNotFoundError, match=r"no tensor named 'blk\.0\.attn_qq\.weight'\. "
                                                  r"Did you mean 'blk\.0\.attn_q\.weight'") as err:
        smollm.read("blk.0.attn_qq.weight")
    assert err.value.path == SMOLLM2_GGUF and isinstance(err.value, KeyError)


def test_real_file_truncated_in_tensor_data(tmp_path: Path) -> None:
    cut = require(SMOLLM2_GGUF).stat().st_size // 2
    path = tmp_path / "half.gguf"
    with open(SMOLLM2_GGUF, "rb") as src, open(path, "wb") as dst:
        dst.write(src.read(cut))
    pattern = (re.escape(str(path)) + r": truncated GGUF: tensor 'blk\.\d+\.\w+\.weight' needs bytes "
               rf"\d+\.\.\d+ but the file has {cut} bytes; re-download the file")
    with pytest.raises(CorruptFileError, match=pattern):
        GGUFTensorReader(path)


# ---- tiny files written with gguf.GGUFWriter --------------------------------------------------

def _write(path: Path, tensors: dict[str, tuple[np.ndarray, Q | None]], *, vocab: bool = True) -> Path:
    """A llama GGUF with a small config, an optional vocabulary and `tensors` (array, raw type)."""
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(1)
    w.add_context_length(256)
    w.add_embedding_length(64)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    if vocab:
        w.add_tokenizer_model("gpt2")
        w.add_token_list(TOKENS)
        w.add_token_types([3, 3, 3, 1, 1, 1, 1, 1])
        w.add_token_merges(["a b", "ab c"])
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
    for name, (array, raw_dtype) in tensors.items():
        w.add_tensor(name, array, raw_dtype=raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture
def weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "token_embd.weight": rng.standard_normal((8, 64), dtype=np.float32),
        "blk.0.attn_norm.weight": rng.standard_normal(64, dtype=np.float32).astype(np.float16),
        "blk.0.attn_q.weight": rng.standard_normal((64, 64), dtype=np.float32),
        "blk.0.attn_k.weight": rng.standard_normal((32, 64), dtype=np.float32),
        "blk.0.ffn_up.weight": rng.standard_normal((128, 64), dtype=np.float32),
        "blk.0.ffn_down.weight": rng.standard_normal((64, 128), dtype=np.float32),
        "blk.0.ffn_gate_exps.weight": rng.standard_normal((4, 16, 32), dtype=np.float32),
        "blk.0.positions": np.arange(12, dtype=np.int32).reshape(3, 4),
    }


@pytest.fixture
def tiny(tmp_path: Path, weights: dict[str, np.ndarray]) -> Path:
    w = weights
    return _write(tmp_path / "tiny.gguf", {
        "token_embd.weight": (w["token_embd.weight"], None),
        "blk.0.attn_norm.weight": (w["blk.0.attn_norm.weight"], None),
        "blk.0.attn_q.weight": (gguf.quants.quantize(w["blk.0.attn_q.weight"], Q.BF16), Q.BF16),
        "blk.0.attn_k.weight": (gguf.quants.quantize(w["blk.0.attn_k.weight"], Q.Q8_0), Q.Q8_0),
        "blk.0.ffn_up.weight": (gguf.quants.quantize(w["blk.0.ffn_up.weight"], Q.Q4_0), Q.Q4_0),
        "blk.0.ffn_down.weight": (gguf.quants.quantize(w["blk.0.ffn_down.weight"], Q.Q4_1), Q.Q4_1),
        "blk.0.ffn_gate_exps.weight": (w["blk.0.ffn_gate_exps.weight"], None),
        "blk.0.positions": (w["blk.0.positions"], None),
    })


def test_tiny_infos(tiny: Path) -> None:
    with GGUFTensorReader(tiny) as r:
        got = {n: (i.shape, i.dtype, i.quantized) for n, i in r.infos().items()}
    assert got == {
        "token_embd.weight": ((8, 64), "F32", False),
        "blk.0.attn_norm.weight": ((64,), "F16", False),
        "blk.0.attn_q.weight": ((64, 64), "BF16", False),
        "blk.0.attn_k.weight": ((32, 64), "Q8_0", True),
        "blk.0.ffn_up.weight": ((128, 64), "Q4_0", True),
        "blk.0.ffn_down.weight": ((64, 128), "Q4_1", True),
        "blk.0.ffn_gate_exps.weight": ((4, 16, 32), "F32", False),
        "blk.0.positions": ((3, 4), "I32", False),
    }


def test_tiny_plain_types_read_back_exactly(tiny: Path, weights: dict[str, np.ndarray]) -> None:
    with GGUFTensorReader(tiny) as r:
        for name in ("token_embd.weight", "blk.0.attn_norm.weight", "blk.0.ffn_gate_exps.weight", "blk.0.positions"):
            got = r.read(name)
            assert torch.equal(got, torch.from_numpy(weights[name])), name
        bf16 = r.read("blk.0.attn_q.weight")
    assert bf16.dtype == torch.bfloat16
    assert torch.equal(bf16, torch.from_numpy(weights["blk.0.attn_q.weight"]).to(torch.bfloat16))


@pytest.mark.parametrize(("name", "qtype", "max_rel_err"), [
    ("blk.0.attn_k.weight", Q.Q8_0, 0.01),
    ("blk.0.ffn_up.weight", Q.Q4_0, 0.1),
    ("blk.0.ffn_down.weight", Q.Q4_1, 0.1),
])
def test_tiny_quants_within_error(tiny: Path, weights: dict[str, np.ndarray], name: str, qtype: Q,
                                  max_rel_err: float) -> None:
    with GGUFTensorReader(tiny) as r:
        got = r.read(name)
    original = torch.from_numpy(weights[name])
    assert got.dtype == torch.float32 and got.shape == original.shape
    assert float((got - original).norm() / original.norm()) < max_rel_err
    expected = gguf.quants.dequantize(gguf.quants.quantize(weights[name], qtype), qtype)
    assert torch.equal(got, torch.from_numpy(expected))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # random bytes: inf * 0
@pytest.mark.parametrize("qtype", DEQUANTIZABLE, ids=lambda t: t.name)
def test_every_dequantizable_type_matches_gguf(tmp_path: Path, qtype: Q) -> None:
    block, type_size = GGML_QUANT_SIZES[qtype]
    raw = np.random.default_rng(int(qtype)).integers(0, 256, (2, 256 // block * type_size), dtype=np.uint8)
    path = _write(tmp_path / "q.gguf", {"w": (raw, qtype)}, vocab=False)
    with GGUFTensorReader(path) as r:
        assert (r.infos()["w"].shape, r.infos()["w"].dtype) == ((2, 256), qtype.name)
        got = r.read("w")
    assert got.dtype == torch.float32 and got.shape == (2, 256)
    assert np.array_equal(got.numpy(), gguf.quants.dequantize(raw, qtype), equal_nan=True)


@pytest.mark.skipif(not NOT_DEQUANTIZABLE, reason="this gguf version dequantizes every type")
def test_type_without_dequantizer_is_refused(tmp_path: Path) -> None:
    qtype = NOT_DEQUANTIZABLE[0]
    block, type_size = GGML_QUANT_SIZES[qtype]
    raw = np.zeros((1, 256 // block * type_size), dtype=np.uint8)
    path = _write(tmp_path / "q.gguf", {"w": (raw, qtype)}, vocab=False)
    with GGUFTensorReader(path) as r:
        assert r.infos()["w"].dtype == qtype.name
        with pytest.raises(UnknownFormatError, match=re.escape(str(path)) + rf": cannot dequantize tensor 'w': "
                                                     rf"gguf .* has no dequantizer for GGML type {qtype.name}"):
            r.read("w")


def test_big_endian_file(tmp_path: Path) -> None:
    a, b = np.arange(64, dtype=np.float32).reshape(2, 32), np.arange(6, dtype=np.int64).reshape(2, 3)
    path = tmp_path / "be.gguf"
    w = gguf.GGUFWriter(path, "llama", endianess=gguf.GGUFEndian.BIG)
    w.add_block_count(2)
    w.add_tensor("a", a)
    w.add_tensor("b", b)
    w.add_tensor("q", gguf.quants.quantize(a, Q.Q8_0), raw_dtype=Q.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with GGUFTensorReader(path) as r:
        assert r.metadata.values["llama.block_count"] == 2
        assert torch.equal(r.read("a"), torch.from_numpy(a)) and torch.equal(r.read("b"), torch.from_numpy(b))
        with pytest.raises(UnknownFormatError, match=re.escape(f"{path}: cannot dequantize tensor 'q': it is "
                                                               f"Q8_0 in a GGUF of the other byte order")):
            r.read("q")


def test_tiny_config_and_tokenizer(tiny: Path) -> None:
    with GGUFTensorReader(tiny) as r:
        config, tok = r.config(), r.tokenizer()
    assert config == {
        "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
        "num_key_value_heads": 4, "intermediate_size": 128, "max_position_embeddings": 256,
        "rope_theta": 10000.0, "rms_norm_eps": 1e-06, "head_dim": 16, "vocab_size": 8,
        "gguf_architecture": "llama",
    }
    assert tok == {"model": "gpt2", "pre": None, "tokens": TOKENS, "token_types": [3, 3, 3, 1, 1, 1, 1, 1],
                   "merges": ["a b", "ab c"], "scores": None, "bos_token_id": 1, "eos_token_id": 2}


def test_no_vocabulary_gives_no_tokenizer(tmp_path: Path) -> None:
    path = _write(tmp_path / "novocab.gguf", {"w": (np.ones((2, 32), dtype=np.float32), None)}, vocab=False)
    with GGUFTensorReader(path) as r:
        assert r.tokenizer() is None
        assert "vocab_size" not in r.config()


def test_read_after_close(tiny: Path) -> None:
    r = GGUFTensorReader(tiny)
    r.close()
    r.close()
    with pytest.raises(ProvenanceError, match="the reader was closed; open the file again"):
        r.read("token_embd.weight")


# ---- bad input --------------------------------------------------------------------------------

def _truncated_copy(src: Path, dst: Path, size: int) -> Path:
    dst.write_bytes(src.read_bytes()[:size])
    return dst


def test_not_a_gguf_file(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(CorruptFileError, match=re.escape(f"{path}: not a GGUF file: it starts with "
                                                         f"b'PK\\x03\\x04' instead of b'GGUF'")):
        GGUFTensorReader(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    with pytest.raises(CorruptFileError, match=re.escape(f"{path}: truncated GGUF: the file has 0 bytes")):
        GGUFTensorReader(path)


def test_tiny_truncated_in_tensor_data(tiny: Path, tmp_path: Path) -> None:
    last = gguf.GGUFReader(tiny).tensors[-1]
    start, end = int(last.data_offset), int(last.data_offset + last.n_bytes)
    path = _truncated_copy(tiny, tmp_path / "cut.gguf", start + 10)
    with pytest.raises(CorruptFileError, match=re.escape(
            f"{path}: truncated GGUF: tensor 'blk.0.positions' needs bytes {start}..{end} but the file has "
            f"{start + 10} bytes; re-download the file")):
        GGUFTensorReader(path)


def test_tiny_truncated_in_header(tiny: Path, tmp_path: Path) -> None:
    path = _truncated_copy(tiny, tmp_path / "cut.gguf", 100)
    with pytest.raises(CorruptFileError,
                       match=re.escape(str(path)) + r": truncated GGUF: the header needs bytes \d+\.\.\d+ but "
                                                    r"the file has 100 bytes; re-download the file"):
        GGUFTensorReader(path)


def test_array_length_beyond_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.gguf", {}, vocab=True)
    data = bytearray(path.read_bytes())
    at = data.index(b"tokenizer.ggml.tokens") + len("tokenizer.ggml.tokens") + 4 + 4  # key, ARRAY, STRING
    data[at:at + 8] = (2**40).to_bytes(8, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=re.escape(str(path)) + rf": truncated GGUF: a metadata array at "
                                                         rf"byte \d+ claims {2**40} items"):
        GGUFTensorReader(path)


def test_unknown_tensor_type_id(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.gguf", {"w": (np.ones((2, 32), dtype=np.float32), None)}, vocab=False)
    data = bytearray(path.read_bytes())
    at = data.index(b"w\x02\x00\x00\x00") + 1 + 4 + 16  # name, n_dims, two dims -> type id
    data[at:at + 4] = (250).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=re.escape(f"{path}: tensor 'w' has unknown GGML type id 250")):
        GGUFTensorReader(path)


def test_unsupported_version_is_wrapped(tiny: Path, tmp_path: Path) -> None:
    path = tmp_path / "v99.gguf"
    shutil.copy(tiny, path)
    data = bytearray(path.read_bytes())
    data[4:8] = (99).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=re.escape(f"{path}: malformed GGUF header (ValueError: ") +
                       r".*version 99.*; re-download the file or re-convert it"):
        GGUFTensorReader(path)


def test_the_private_gguf_hooks_are_still_called(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bounds checks live in overrides of gguf's private `_get`, `_get_field_parts`, `_build_tensors`
    and the `data` attribute (pyproject caps gguf for that reason). A gguf release that stops calling
    any of them would silently drop a check: this fails loudly first."""
    from provenance.io import gguf_reader

    cls = gguf_reader._BoundedGGUFReader
    calls: dict[str, int] = {}

    def counting(name: str):
        original = getattr(cls, name)

        def wrapper(self, *args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return original(self, *args, **kwargs)
        return wrapper

    for name in ("_get", "_get_field_parts", "_build_tensors"):
        monkeypatch.setattr(cls, name, counting(name))
    with GGUFTensorReader(tiny) as reader:
        assert reader.infos()
    assert set(calls) == {"_get", "_get_field_parts", "_build_tensors"}, \
        f"gguf {gguf_reader._gguf_version()} no longer calls {sorted({'_get', '_get_field_parts', '_build_tensors'} - set(calls))}"
    raw = cls(tiny)  # gguf still assigns `data`: the memmap is replaced by a plain ndarray view (speed)
    assert "_plain_data" in vars(raw) and type(raw.data) is np.ndarray
