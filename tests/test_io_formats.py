"""Loaders: safetensors (single, sharded), PyTorch pickles, HF cache ids — and bad input."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest
import torch
from safetensors.torch import save_file

from provenance.errors import (
    CheckpointNotFoundError,
    CorruptFileError,
    MissingFileError,
    UnknownFormatError,
    UnsafePathError,
    UnsafePickleError,
)
from provenance.io import open_checkpoint
from tests.real_models import MINILM_DIR, require
from tests.tiny_models import shard


def test_real_minilm_safetensors_reads_every_tensor_exactly():
    from safetensors.torch import load_file

    folder = require(MINILM_DIR)
    expected = load_file(str(folder / "model.safetensors"))
    with open_checkpoint(folder) as ckpt:
        assert ckpt.format == "safetensors"
        assert ckpt.config["model_type"] == "bert"
        assert set(ckpt.tensors) == set(expected)
        assert ckpt.parameter_count() == 22_713_216  # all-MiniLM-L6-v2's published size
        for name, t in expected.items():
            assert torch.equal(ckpt.get(name), t), name
        assert set(ckpt.tokenizer_files) >= {"tokenizer.json", "vocab.txt"}
        assert len(ckpt.sha256()["model.safetensors"]) == 64


def test_sharded_safetensors_and_bf16_fast_conversion(tiny_llama, tmp_path):
    _, state = tiny_llama
    bf16 = {k: v.to(torch.bfloat16) for k, v in state.items()}
    folder = shard(bf16, tmp_path / "sharded", n=3)
    with open_checkpoint(folder) as ckpt:
        assert len(ckpt.reader.files) == 3
        assert set(ckpt.tensors) == set(state)
        for name, t in bf16.items():
            got = ckpt.get(name, dtype="float32")
            assert got.dtype == torch.float32
            assert torch.equal(got, t.float()), name
        assert "model.safetensors.index.json" in ckpt.sha256()


def test_pytorch_bin_roundtrip(tiny_llama, tmp_path):
    _, state = tiny_llama
    folder = tmp_path / "bin"
    folder.mkdir()
    torch.save(state, folder / "pytorch_model.bin")
    with open_checkpoint(folder) as ckpt:
        assert ckpt.format == "pytorch"
        for name, t in state.items():
            assert torch.equal(ckpt.get(name), t)


def test_hf_cache_model_id_resolves_offline(tiny_llama, tmp_path, monkeypatch):
    folder, state = tiny_llama
    repo = tmp_path / "hub" / "models--acme--tiny-llama"
    snap = repo / "snapshots" / "0123abcd"
    shutil.copytree(folder, snap)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with open_checkpoint("acme/tiny-llama") as ckpt:
        assert ckpt.root == snap
        assert set(ckpt.tensors) == set(state)
    with pytest.raises(CheckpointNotFoundError, match=r"'acme/other' is not in the local Hugging Face cache"):
        open_checkpoint("acme/other")
    with pytest.raises(CheckpointNotFoundError, match=r"revision 'v2' of 'acme/tiny-llama' is not in the local"):
        open_checkpoint("acme/tiny-llama@v2")


# --- bad input: one clear error naming the file ---------------------------------------------

def test_truncated_safetensors_is_reported(tiny_llama, tmp_path):
    folder, _ = tiny_llama
    data = (folder / "model.safetensors").read_bytes()
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match=r"cut\.safetensors: truncated: tensor '.*' needs bytes"):
        open_checkpoint(bad)
    bad.write_bytes(data[:20])
    with pytest.raises(CorruptFileError, match=r"cut\.safetensors: truncated or not safetensors: the 8-byte header length is larger than the file"):
        open_checkpoint(bad)


def test_corrupt_safetensors_header(tmp_path):
    bad = tmp_path / "bad.safetensors"
    header = b'{"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 8]}}'
    bad.write_bytes(len(header).to_bytes(8, "little") + header + bytes(8))
    with pytest.raises(CorruptFileError, match=r"tensor 'w' spans 8 bytes but shape \[2, 2\] F32 needs 16"):
        open_checkpoint(bad)
    header = b'{"w": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}}'
    bad.write_bytes(len(header).to_bytes(8, "little") + header + bytes(8))
    with pytest.raises(CorruptFileError, match=r"tensor 'w' has an unknown dtype 'F33'"):
        open_checkpoint(bad)
    bad.write_bytes((5).to_bytes(8, "little") + b"{nope")
    with pytest.raises(CorruptFileError, match=r"corrupt safetensors header \(not JSON"):
        open_checkpoint(bad)


def test_missing_shard(tiny_llama, tmp_path):
    folder = shard(tiny_llama[1], tmp_path / "m")
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(MissingFileError, match=r"shard model-00002-of-00002\.safetensors listed in "
                                               r"model\.safetensors\.index\.json is missing"):
        open_checkpoint(folder)


@pytest.mark.parametrize("evil", ["../outside.safetensors", "/etc/passwd", "sub/../../x.safetensors"])
def test_shard_index_path_tricks_are_refused(tiny_llama, tmp_path, evil):
    folder = shard(tiny_llama[1], tmp_path / "evil")
    index = folder / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    first = next(iter(data["weight_map"]))
    data["weight_map"][first] = evil
    index.write_text(json.dumps(data))
    with pytest.raises(UnsafePathError, match=r"index\.json: refers to .*, outside the model directory"):
        open_checkpoint(folder)


def test_index_naming_a_tensor_no_shard_holds(tiny_llama, tmp_path):
    folder = shard(tiny_llama[1], tmp_path / "lying")
    index = folder / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    data["weight_map"]["model.layers.9.ghost.weight"] = "model-00001-of-00002.safetensors"
    index.write_text(json.dumps(data))
    with pytest.raises(CorruptFileError, match=r"tensor 'model\.layers\.9\.ghost\.weight' .* not in any shard"):
        open_checkpoint(folder)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_needing_code_is_refused_not_run(tmp_path):
    bad = tmp_path / "pytorch_model.bin"
    torch.save({"w": torch.zeros(2), "x": _Exploit()}, bad)
    with pytest.raises(UnsafePickleError, match=r"pickle needs code execution to load \(it references "
                                                r"(posix|os)\.system\); provenance only reads plain tensors"):
        open_checkpoint(bad)
    legacy = tmp_path / "legacy.pt"
    with open(legacy, "wb") as f:
        pickle.dump(_Exploit(), f)
    with pytest.raises(UnsafePickleError, match=r"legacy\.pt: pickle needs code execution"):
        open_checkpoint(legacy)


def test_truncated_pickle(tiny_llama, tmp_path):
    bad = tmp_path / "model.bin"
    torch.save(tiny_llama[1], bad)
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(CorruptFileError, match=r"model\.bin: cannot read PyTorch checkpoint .* truncated"):
        open_checkpoint(bad)


def test_unknown_format_and_missing_paths(tmp_path):
    odd = tmp_path / "weights.xyz"
    odd.write_bytes(b"hello world")
    with pytest.raises(UnknownFormatError, match=r"weights\.xyz: unknown weights format \(suffix '\.xyz'\)"):
        open_checkpoint(odd)
    with pytest.raises(CheckpointNotFoundError, match=r"no such file or directory: /nonexistent/model"):
        open_checkpoint("/nonexistent/model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingFileError, match=r"empty: no weights found"):
        open_checkpoint(tmp_path / "empty")
    bad_cfg = tmp_path / "cfg"
    bad_cfg.mkdir()
    save_file({"w": torch.zeros(2)}, str(bad_cfg / "model.safetensors"))
    (bad_cfg / "config.json").write_text("{not json")
    with pytest.raises(CorruptFileError, match=r"config\.json: not valid JSON"):
        open_checkpoint(bad_cfg)


def test_zip_member_claiming_more_than_the_file_is_refused_before_torch_reads_it(tmp_path):
    """A member whose central record claims 4 GiB (torch allocates what a member claims) is refused up front."""
    good = tmp_path / "good.bin"
    torch.save({"w": torch.zeros(4)}, good)
    data = bytearray(good.read_bytes())
    record = data.find(b"PK\x01\x02")  # the first central-directory record; its uncompressed size is at +24
    data[record + 24:record + 28] = (0xFFFFFFFE).to_bytes(4, "little")
    bad = tmp_path / "pytorch_model.bin"
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=r"member '.*' inflates to 4,294,967,294 bytes, more than the "):
        open_checkpoint(bad)
