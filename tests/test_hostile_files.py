"""Hand-made hostile checkpoints and tokenizers (safetensors, GGUF, tokenizer files, paths): each is
refused through the CLI with one line and exit status 2, never blocks, never reads outside the model
folder, never quotes the bytes it refused, and costs memory bounded by its own size."""

from __future__ import annotations

import json
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hostile import assert_bounded, baseline_rss, refused, run_measured, safetensors_bytes

# ---- safetensors headers -------------------------------------------------------------------------

ST_HEADERS: dict[str, tuple[object, str]] = {
    "shape above 2^63": ({"w": {"dtype": "F32", "shape": [2**64], "data_offsets": [0, 4]}},
                         "malformed shape or data_offsets"),
    "shape whose int64 product wraps to 0": ({"w": {"dtype": "F32", "shape": [2**62, 4], "data_offsets": [0, 0]}},
                                             "spans 0 bytes but shape"),
    "bool in the shape": ({"w": {"dtype": "F32", "shape": [True, 4], "data_offsets": [0, 16]}},
                          "malformed shape or data_offsets"),
    "dtype given as a list": ({"w": {"dtype": ["F32"], "shape": [4], "data_offsets": [0, 16]}}, "unknown dtype"),
    "entry that is a number": ({"w": 7}, "unknown dtype"),
    "header nested 100,000 deep": (b'{"w": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    "negative offset": ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}},
                        "malformed shape or data_offsets"),
}


@pytest.mark.parametrize("case", list(ST_HEADERS))
def test_hostile_safetensors_header(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    header, message = ST_HEADERS[case]
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_bytes(header, bytes(16)))
    line = refused(["inspect", str(path)], capsys)
    assert message in line and "model.safetensors" in line


def test_header_length_from_another_file_is_not_quoted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The first 8 bytes of a file that is not safetensors are its content: never echo them."""
    secret = b"root:x:0:0:secret-line\n" * 3
    path = tmp_path / "model.safetensors"
    path.write_bytes(secret)
    said = refused(["inspect", str(path)], capsys).split("model.safetensors:", 1)[1]
    assert str(struct.unpack("<Q", secret[:8])[0]) not in said and "root" not in said and "secret" not in said


# ---- paths and special files -----------------------------------------------------------------------

def _tiny_safetensors(path: Path) -> Path:
    path.write_bytes(safetensors_bytes({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, bytes(8)))
    return path


def _fifo_folder(tmp_path: Path) -> list[str]:
    folder = tmp_path / "model"
    folder.mkdir()
    os.mkfifo(folder / "model.safetensors")
    return ["inspect", str(folder)]


def _fifo_file(tmp_path: Path) -> list[str]:
    os.mkfifo(tmp_path / "weights.gguf")
    return ["inspect", str(tmp_path / "weights.gguf")]


def _symlink_out(tmp_path: Path) -> list[str]:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").symlink_to(_tiny_safetensors(tmp_path / "outside.safetensors"))
    return ["inspect", str(folder)]


def _symlink_passwd(tmp_path: Path) -> list[str]:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").symlink_to("/etc/passwd")
    return ["inspect", str(folder)]


def _shard_symlink_out(tmp_path: Path) -> list[str]:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model-00001-of-00001.safetensors").symlink_to(_tiny_safetensors(tmp_path / "elsewhere.safetensors"))
    index = {"metadata": {}, "weight_map": {"w": "model-00001-of-00001.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return ["inspect", str(folder)]


def _tokenizer_symlink_out(tmp_path: Path) -> list[str]:
    folder = tmp_path / "model"
    folder.mkdir()
    _tiny_safetensors(folder / "model.safetensors")
    (tmp_path / "private.json").write_text(json.dumps({"model": {"type": "BPE", "vocab": {"a": 0}}}))
    (folder / "tokenizer.json").symlink_to(tmp_path / "private.json")
    return ["compare", str(folder), str(folder), "--signals", "tokenizer"]


PATH_CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "FIFO as model.safetensors in a folder": (_fifo_folder, "is a FIFO, not a regular file"),
    "FIFO named as the model file": (_fifo_file, "no such file"),
    "weights symlinked outside the folder": (_symlink_out, "outside the model directory"),
    "weights symlinked to /etc/passwd": (_symlink_passwd, "outside the model directory"),
    "shard symlinked outside the folder": (_shard_symlink_out, "outside the model directory"),
    "tokenizer.json symlinked outside the folder": (_tokenizer_symlink_out, "outside the model directory"),
}


@pytest.mark.parametrize("case", list(PATH_CASES))
def test_hostile_paths(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build, message = PATH_CASES[case]
    argv = build(tmp_path)
    done: list[str] = []
    worker = threading.Thread(target=lambda: done.append(refused(argv, capsys)), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), f"{case}: still blocked after 60 s"
    assert done and message in done[0], done
    assert "root:x" not in done[0]


# ---- GGUF metadata ---------------------------------------------------------------------------------

_STRING, _ARRAY, _U8, _I32, _U64 = 8, 9, 0, 5, 10


def _gguf(kvs: list[bytes], tensors: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, tensors, len(kvs)) + b"".join(kvs)


def _key(name: str) -> bytes:
    return struct.pack("<Q", len(name)) + name.encode()


def _array(name: str, item_type: int, n: int, payload: bytes) -> bytes:
    return _key(name) + struct.pack("<IIQ", _ARRAY, item_type, n) + payload


def _strings(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<Q", len(s)) + s for s in items)


GGUF_CASES: dict[str, tuple[bytes, str]] = {
    "u64 token array claiming 2^40 items": (_gguf([_array("tokenizer.ggml.tokens", _U64, 2**40, bytes(64))]),
                                            "claims 1099511627776 items"),
    "token array of negative ints": (_gguf([_array("tokenizer.ggml.tokens", _I32, 4, struct.pack("<4i", -1, -9, 3, 4))]),
                                     "tokenizer.ggml.tokens holds INT32 items where STRING belong"),
    "token types given as strings": (_gguf([_array("tokenizer.ggml.tokens", _STRING, 2, _strings([b"a", b"b"])),
                                            _array("tokenizer.ggml.token_type", _STRING, 2, _strings([b"1", b"x"]))]),
                                     "tokenizer.ggml.token_type holds STRING items"),
    "string longer than the file": (_gguf([_array("tokenizer.ggml.tokens", _STRING, 2,
                                                  struct.pack("<Q", 1) + b"a" + struct.pack("<Q", 2**62))]),
                                    "runs past the end of the file"),
}


@pytest.mark.parametrize("case", list(GGUF_CASES))
def test_hostile_gguf_metadata(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, message = GGUF_CASES[case]
    path = tmp_path / "model.gguf"
    path.write_bytes(data)
    line = refused(["inspect", str(path)], capsys)
    assert message in line, line


# ---- tokenizer files -------------------------------------------------------------------------------

def _tokenizer_json(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(data))
    return path


TOKENIZER_CASES: dict[str, tuple[str, object, str]] = {
    "pre-tokenizer that is an int": ("tokenizer.json", {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}},
                                                        "pre_tokenizer": 5, "decoder": [1, 2]}, ""),
    "one id of 2^24 - 1 in a 60-byte file": ("tokenizer.json", {"model": {"type": "BPE", "vocab": {"a": 2**24 - 1}}},
                                             "token ids reach 16,777,215"),
    "Tekken claiming 2e8 special tokens": ("tekken.json",
                                           {"config": {"pattern": "x", "default_num_special_tokens": 200_000_000,
                                                       "default_vocab_size": 200_000_001},
                                            "vocab": [{"rank": 0, "token_bytes": "YQ=="}]},
                                           "token ids reach"),
    "merges that are numbers": ("tokenizer.json", {"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [1, 2]}},
                                "is not a pair of pieces"),
}


@pytest.mark.parametrize("case", list(TOKENIZER_CASES))
def test_hostile_tokenizer_files(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name, data, message = TOKENIZER_CASES[case]
    (tmp_path / "a").mkdir()
    path = tmp_path / "a" / name
    path.write_text(json.dumps(data))
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}}}))
    argv = ["compare", str(good), str(path)]
    if not message:  # odd but harmless fields: read, compared, no crash
        from provenance.cli.main import main
        assert main(argv) == 0
        return
    line = refused(argv, capsys)
    assert message in line, line


def test_bert_vocab_beside_a_config_of_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\nworld\n")
    (folder / "config.json").write_text(json.dumps({"model_type": ["bert"], "vocab_size": [4]}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"unk_token": [["[UNK]"]], "cls_token": {"a": [1]}}))
    from provenance.cli.main import main
    assert main(["compare", str(folder / "vocab.txt"), str(folder)]) == 0
    assert "Traceback" not in capsys.readouterr().err


# ---- memory: files built to make a parser allocate far more than they hold -------------------------

AMPLIFIERS: dict[str, Callable[[Path], tuple[list[str], int]]] = {}


def _amplifier(fn: Callable[[Path], tuple[list[str], int]]) -> Callable[[Path], tuple[list[str], int]]:
    AMPLIFIERS[fn.__name__.strip("_").replace("_", " ")] = fn
    return fn


@_amplifier
def _gguf_5mb_u8_array(tmp_path: Path) -> tuple[list[str], int]:
    n = 5 * 2**20
    path = tmp_path / "model.gguf"
    path.write_bytes(_gguf([_array("general.blob", _U8, n, bytes(n))]))
    return ["inspect", str(path)], path.stat().st_size


@_amplifier
def _gguf_3gb_token_claim(tmp_path: Path) -> tuple[list[str], int]:
    path = tmp_path / "model.gguf"
    path.write_bytes(_gguf([_array("tokenizer.ggml.tokens", _STRING, 3 * 2**30 // 8, bytes(4096))]))
    return ["inspect", str(path)], path.stat().st_size


@_amplifier
def _tokenizer_json_sparse_id(tmp_path: Path) -> tuple[list[str], int]:
    path = _tokenizer_json(tmp_path, {"model": {"type": "BPE", "vocab": {"a": 2**24 - 1}}})
    return ["compare", str(path), str(path)], path.stat().st_size


@_amplifier
def _tekken_special_claim(tmp_path: Path) -> tuple[list[str], int]:
    path = tmp_path / "tekken.json"
    path.write_text(json.dumps({"config": {"pattern": "x", "default_num_special_tokens": 200_000_000,
                                           "default_vocab_size": 200_000_001},
                                "vocab": [{"rank": 0, "token_bytes": "YQ=="}]}))
    return ["compare", str(path), str(path)], path.stat().st_size


@pytest.mark.slow
@pytest.mark.parametrize("case", list(AMPLIFIERS))
def test_memory_is_bounded_by_the_input(case: str, tmp_path: Path) -> None:
    argv, size = AMPLIFIERS[case](tmp_path)
    m = run_measured(argv, tmp_path)
    assert m.returncode in (0, 2) and "Traceback" not in m.stderr, m.stderr[-500:]
    assert len(m.stderr.strip().splitlines()) <= 1 or m.returncode == 0, m.stderr[-500:]
    assert_bounded(m, size, baseline_rss(tmp_path))
    assert m.seconds < 60


# ---- activations never run code shipped with a checkpoint ------------------------------------------

def _payload(folder: Path, marker: Path) -> None:
    """A config.json asking for code beside the weights, and the code: it would create `marker`."""
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('code from the checkpoint ran')\n")
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama", "architectures": ["EvilForCausalLM"],
        "auto_map": {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel",
                     "AutoModelForCausalLM": "evil.EvilForCausalLM"}}))


def _gguf_of_unknown_architecture(path: Path) -> Path:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "evilarch")
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize("kind", ["hf folder asking for its own code", "gguf of an architecture transformers lacks"])
def test_activations_refuse_checkpoints_that_need_their_own_code(kind: str, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    marker = tmp_path / "MARKER"
    _payload(folder, marker)
    if kind.startswith("hf"):
        spec = folder
        _tiny_safetensors(folder / "model.safetensors")
    else:
        spec = _gguf_of_unknown_architecture(folder / "model.gguf")
    line = refused(["compare", str(spec), str(spec), "--signals", "activations", "--probes", "8"], capsys)
    assert "code" in line or "transformers' own implementations" in line, line
    assert not marker.exists()
