"""`resolve`: one rule turns every model spec into the files that every signal reads.

Weights (`open_checkpoint`), tokenizer (`load_vocabulary`, `is_tokenizer_only`), fingerprints
(`is_fingerprint_file`) and activations (`open_runner`) all go through `provenance.io.source.resolve`,
so a folder holding several weight files, or a model id in the HF cache, means the same files to
each of them. Real checkpoints from docs/REAL_MODELS.md and tiny models built here.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from provenance.errors import (
    EndpointSpecError,
    MissingFileError,
    ProvenanceError,
    SourceKindError,
    UnknownFormatError,
    UnsafePathError,
)
from provenance.fingerprint.fileformat import is_fingerprint_file
from provenance.io import open_checkpoint
from provenance.io.source import (
    DEFAULT_KEY_ENV,
    Endpoint,
    ModelSource,
    parse_endpoint,
    resolve,
)
from provenance.signals.activations import open_pair, open_runner
from provenance.vocab.load import is_tokenizer_only, load_vocabulary
from tests.real_models import CL100K_TIKTOKEN, MINILM_DIR, MINILM_INT8_ONNX, require
from tests.tiny_models import link_files, shard, write_hf_dir
from tests.vocab_helpers import write_vocab_gguf

EMBED = "model.embed_tokens.weight"


def _gguf_with_a_tensor(path: Path) -> Path:
    """A small GGUF that holds weights (one tensor), unlike a vocab-only one."""
    w = gguf.GGUFWriter(path, "llama")
    w.add_tensor("token_embd.weight", np.arange(32, dtype=np.float32).reshape(4, 8))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _minilm_tokenizer() -> Path:
    return require(MINILM_DIR) / "tokenizer.json"


def _runs_state(runner, state: dict[str, torch.Tensor]) -> bool:
    """True when the transformers model inside a runner holds `state`'s embedding (not some other file's)."""
    return torch.equal(runner.model.embed_tokens.weight.detach().float(), state[EMBED].float())


# --- each kind -----------------------------------------------------------------------------

def test_checkpoint_folder_names_weights_config_and_tokenizer():
    folder = require(MINILM_DIR)
    src = resolve(folder)
    assert (src.kind, src.weights_format, src.spec) == ("checkpoint", "safetensors", str(folder))
    assert src.path == src.root == src.folder == folder
    assert src.weights == (folder / "model.safetensors",) and src.index_file is None
    assert src.config_file == folder / "config.json" and src.vocab_file == folder / "tokenizer.json"
    assert {"tokenizer.json", "vocab.txt", "tokenizer_config.json"} <= set(src.tokenizer_files)
    assert resolve(src) is src  # a resolved source passes through
    with open_checkpoint(src) as ckpt:  # ... and every reader accepts one
        assert ckpt.reader.files == [folder / "model.safetensors"] and ckpt.root == folder
    assert len(load_vocabulary(src)) == 30522 and not is_tokenizer_only(src)


def test_shards_come_from_the_index_in_its_order(tiny_llama, tmp_path):
    folder = shard(tiny_llama[1], tmp_path / "sharded", n=3)
    src = resolve(folder)
    assert src.weights == tuple(folder / f"model-0000{k}-of-00003.safetensors" for k in (1, 2, 3))
    assert src.index_file == folder / "model.safetensors.index.json" and src.weights_format == "safetensors"
    with open_checkpoint(folder) as ckpt:
        assert ckpt.reader.files == list(src.weights) and ckpt.extra_files == [src.index_file]


def test_tokenizer_files_folders_and_vocab_only_ggufs(tmp_path):
    tiktoken = resolve(require(CL100K_TIKTOKEN))
    assert (tiktoken.kind, tiktoken.weights, tiktoken.vocab_file) == ("tokenizer", (), CL100K_TIKTOKEN)
    folder = link_files([_minilm_tokenizer()], tmp_path / "tok")
    src = resolve(folder)
    assert (src.kind, src.vocab_file, src.weights) == ("tokenizer", folder / "tokenizer.json", ())
    vocab_only = write_vocab_gguf(tmp_path / "ggml-vocab-tiny.gguf", "gpt2", ["a", "b", "ab"], [1, 1, 1])
    for spec in (vocab_only, link_files([vocab_only], tmp_path / "vocab_gguf")):
        src = resolve(spec)
        assert src.kind == "tokenizer" and src.vocab_file.name == "ggml-vocab-tiny.gguf", spec
        assert is_tokenizer_only(spec) and len(load_vocabulary(spec)) == 3
    for spec in (CL100K_TIKTOKEN, tmp_path / "tok"):
        assert is_tokenizer_only(spec)
    with pytest.raises(MissingFileError, match=r"tok: no weights found"):
        open_checkpoint(tmp_path / "tok")


def test_fingerprints_by_suffix_or_by_header_for_every_command(tmp_path):
    from provenance.fingerprint import model

    named = tmp_path / "x.fingerprint"
    named.write_bytes(b"anything")
    in_disguise = tmp_path / "model.safetensors"  # a fingerprint file is a safetensors file
    save_file({"profiles": torch.zeros(2)}, str(in_disguise), metadata={"format": model.FORMAT})
    for spec in (named, in_disguise):
        src = resolve(spec)
        assert (src.kind, src.weights, src.path) == ("fingerprint", (), spec)
        assert is_fingerprint_file(spec) and not is_tokenizer_only(spec)
        with pytest.raises(SourceKindError, match=r"a provenance fingerprint, with no weights to read; inspect"):
            open_checkpoint(spec)
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain), metadata={"format": "pt"})
    assert resolve(plain).kind == "checkpoint" and not is_fingerprint_file(plain)


def test_fingerprint_constants_agree_with_the_fingerprint_package():
    from provenance.fingerprint import fileformat, model
    from provenance.io import source

    assert (source.FINGERPRINT_FORMAT, source.FINGERPRINT_SUFFIX) == (model.FORMAT, fileformat.SUFFIX)


# --- several weight files in one folder: every signal reads the same one --------------------

def _bin_and_gguf(tiny_llama, folder: Path, config: bool) -> Path:
    state, cfg = tiny_llama[1], json.loads((tiny_llama[0] / "config.json").read_text())
    folder.mkdir()
    torch.save(state, folder / "pytorch_model.bin")
    _gguf_with_a_tensor(folder / "other-model.Q8_0.gguf")
    if config:
        (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def test_bin_and_gguf_folder_weights_and_activations_read_the_bin(tiny_llama, tmp_path):
    folder = _bin_and_gguf(tiny_llama, tmp_path / "both", config=True)
    src = resolve(folder)
    assert (src.weights, src.weights_format) == ((folder / "pytorch_model.bin",), "torch")
    with open_checkpoint(folder) as ckpt:
        assert ckpt.reader.files == [folder / "pytorch_model.bin"]
        assert torch.equal(ckpt.get(EMBED), tiny_llama[1][EMBED])
    runner = open_runner(folder, device="cpu", tokenizer=_minilm_tokenizer())
    try:
        assert _runs_state(runner, tiny_llama[1])  # the .bin's weights, not the GGUF's
    finally:
        runner.close()


def test_bin_and_gguf_folder_without_config_never_runs_the_gguf(tiny_llama, tmp_path):
    """The old activation rule ran the GGUF here while the weight signal read the .bin."""
    folder = _bin_and_gguf(tiny_llama, tmp_path / "noconfig", config=False)
    assert resolve(folder).weights == (folder / "pytorch_model.bin",)
    with pytest.raises(MissingFileError, match=r"noconfig: no config\.json: activations need"):
        open_runner(folder, device="cpu", tokenizer=_minilm_tokenizer())


def test_onnx_export_folder_runs_the_onnx_the_weights_come_from(tmp_path):
    """HF layout of an ONNX export: onnx/model.onnx, with config and tokenizer at the top."""
    minilm = require(MINILM_DIR)
    folder = link_files([minilm / "config.json", minilm / "tokenizer.json"], tmp_path / "export")
    link_files([require(MINILM_INT8_ONNX)], folder / "onnx")
    src = resolve(folder)
    assert (src.weights, src.weights_format) == ((folder / "onnx" / "model.onnx",), "onnx")
    with open_checkpoint(folder) as ckpt:
        assert ckpt.reader.files == [folder / "onnx" / "model.onnx"]
    runner = open_runner(folder, device="cpu")
    try:
        assert runner.path == folder / "onnx" / "model.onnx"
        assert runner.tokenizer_file == folder / "tokenizer.json"
    finally:
        runner.close()


def test_config_cannot_redirect_activations_to_other_weights(tiny_llama, tmp_path):
    """transformers follows config.json's `transformers_weights`; the weight signal would not."""
    state, cfg = tiny_llama[1], json.loads((tiny_llama[0] / "config.json").read_text())
    folder = write_hf_dir(tmp_path / "redirect", state, {**cfg, "transformers_weights": "other.safetensors"})
    save_file({k: v + 1 for k, v in state.items()}, str(folder / "other.safetensors"))
    with pytest.raises(UnknownFormatError) as err:
        open_runner(folder, device="cpu", tokenizer=_minilm_tokenizer())
    assert str(err.value) == (f"{folder}: transformers would run other.safetensors from this folder, but the "
                              "weight signal reads model.safetensors, other.safetensors; activations must run the "
                              "same weights: keep one model's weights in the folder")
    named = folder / "pytorch_model.bin"  # a file spec transformers would not load from its folder
    torch.save(state, named)
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "other.safetensors").unlink()
    with pytest.raises(UnknownFormatError, match=r"transformers would run model\.safetensors from this folder, "
                                                 r"but the weight signal reads pytorch_model\.bin"):
        open_runner(named, device="cpu", tokenizer=_minilm_tokenizer())


def test_two_ggufs_are_refused_in_one_line(tmp_path):
    folder = tmp_path / "quants"
    folder.mkdir()
    for name in ("m.Q4_0.gguf", "m.Q8_0.gguf"):
        _gguf_with_a_tensor(folder / name)
    for call in (resolve, open_checkpoint, load_vocabulary, lambda s: open_runner(s, device="cpu")):
        with pytest.raises(UnknownFormatError) as err:
            call(folder)
        assert str(err.value) == (f"{folder}: 2 *.gguf files (m.Q4_0.gguf, m.Q8_0.gguf); pass the one you mean "
                                  "as the model spec")
    assert not is_tokenizer_only(folder)


# --- model ids in the local HF cache --------------------------------------------------------

def _cache_repo(hub: Path, repo_id: str, files: list[Path], outside: dict[str, Path] | None = None) -> Path:
    """A cached repo laid out as huggingface_hub writes it: blobs, snapshot links into them, refs/main."""
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    snap = repo / "snapshots" / "0123abcd"
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    for i, f in enumerate(files):
        shutil.copy(f, repo / "blobs" / f"blob{i}")
        (snap / f.name).symlink_to(Path("..", "..", "blobs", f"blob{i}"))
    for name, target in (outside or {}).items():
        (snap / name).symlink_to(target)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    return snap


def test_hf_cache_id_resolves_for_weights_tokenizer_and_activations(tiny_llama, tmp_path, monkeypatch):
    folder, state = tiny_llama
    tok = _minilm_tokenizer()
    snap = _cache_repo(tmp_path / "hub", "acme/tiny-llama", [folder / "model.safetensors", folder / "config.json"])
    tok_snap = _cache_repo(tmp_path / "hub", "acme/tok", [tok])
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    src = resolve("acme/tiny-llama")
    assert (src.kind, src.path, src.weights) == ("checkpoint", snap, (snap / "model.safetensors",))
    assert src.root == snap.parent.parent  # the blobs the snapshot links to are inside the bound
    with open_checkpoint("acme/tiny-llama") as ckpt:
        assert ckpt.root == snap and torch.equal(ckpt.get(EMBED), state[EMBED])
    runner = open_runner("acme/tiny-llama", device="cpu", tokenizer=tok)  # the old rule: no such folder
    try:
        assert _runs_state(runner, state)
    finally:
        runner.close()
    assert resolve("acme/tok").kind == "tokenizer" and is_tokenizer_only("acme/tok")
    assert load_vocabulary("acme/tok").tokens == load_vocabulary(tok).tokens
    assert resolve("acme/tok").vocab_file == tok_snap / "tokenizer.json"


def test_a_snapshot_named_by_path_is_bounded_by_its_repo(tiny_llama, tmp_path):
    """A snapshot folder or file passed as a path: its links into ../../blobs are fine, as for the model id."""
    folder = tiny_llama[0]
    snap = _cache_repo(tmp_path / "hub", "acme/tiny-llama", [folder / "model.safetensors", folder / "config.json",
                                                              _minilm_tokenizer()])
    for spec in (snap, snap / "model.safetensors"):
        src = resolve(spec)
        assert (src.kind, src.root, src.config_file) == ("checkpoint", snap.parent.parent, snap / "config.json")
        with open_checkpoint(spec) as ckpt:
            assert ckpt.config["model_type"] == "llama"
    tok = resolve(snap / "tokenizer.json")
    assert (tok.kind, tok.root) == ("tokenizer", snap.parent.parent) and len(load_vocabulary(tok)) == 30522
    lookalike = tmp_path / "not-a-cache" / "snapshots" / "x"  # no models--*/blobs around it: bounded by itself
    link_files([folder / "model.safetensors"], lookalike)
    assert resolve(lookalike).root == lookalike


def test_hf_cache_link_out_of_the_repo_is_refused(tiny_llama, tmp_path, monkeypatch):
    outside = tmp_path / "secret.json"
    outside.write_text('{"version": "1.0"}')
    _cache_repo(tmp_path / "hub", "acme/leaky", [tiny_llama[0] / "model.safetensors"], {"tokenizer.json": outside})
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(UnsafePathError, match=r"tokenizer\.json: is a link to a file outside the model directory"):
        resolve("acme/leaky")


# --- links out of a model folder --------------------------------------------------------------

@pytest.mark.parametrize("linked", ["tokenizer.json", "model.safetensors", "config.json"])
def test_symlink_escaping_the_folder_is_refused_by_every_consumer(tiny_llama, tmp_path, linked):
    folder = link_files([tiny_llama[0] / "model.safetensors", tiny_llama[0] / "config.json",
                         _minilm_tokenizer()], tmp_path / "model")
    outside = link_files([folder / linked], tmp_path / "elsewhere") / linked
    (folder / linked).unlink()
    (folder / linked).symlink_to(outside)
    calls = (resolve, open_checkpoint, load_vocabulary, lambda s: open_runner(s, device="cpu"),
             lambda s: open_pair(s, s, device="cpu", notes=[]))
    for call in calls:
        with pytest.raises(UnsafePathError) as err:
            call(folder)
        assert str(err.value) == (f"{folder / linked}: is a link to a file outside the model directory; "
                                  "refusing to read it")
    assert not is_tokenizer_only(folder)


# --- endpoints --------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, endpoint", [
    ("openai+http://127.0.0.1:8080/v1#qwen2.5:7b", Endpoint("http://127.0.0.1:8080/v1", "qwen2.5:7b")),
    ("openai+https://api.example.com/v1/#meta-llama/Llama-3.1-8B-Instruct",
     Endpoint("https://api.example.com/v1", "meta-llama/Llama-3.1-8B-Instruct")),
    ("OPENAI+HTTP://[::1]:9000#my%20model", Endpoint("http://[::1]:9000", "my model")),
    ("openai+https://llm.internal/v1?key_env=LLM_KEY#m", Endpoint("https://llm.internal/v1", "m", "LLM_KEY")),
])
def test_endpoint_specs_parse_without_network(spec, endpoint):
    src = resolve(spec)
    assert (src.kind, src.endpoint, src.path, src.root, src.weights) == ("endpoint", endpoint, None, None, ())
    assert parse_endpoint(spec) == endpoint and endpoint.api_key_env in (DEFAULT_KEY_ENV, "LLM_KEY")


@pytest.mark.parametrize("spec, says", [
    ("http://127.0.0.1:8080/v1#m", "unsupported URL scheme 'http'"),
    ("openai+ftp://host/v1#m", "unsupported URL scheme 'openai+ftp'"),
    ("openai+http://127.0.0.1:8080/v1", "names no model"),
    ("openai+http://127.0.0.1:8080/v1#", "names no model"),
    ("openai+http://127.0.0.1:8080/v1#%0a", "names no model"),
    ("openai+http://127.0.0.1:99999/v1#m", "port '99999' is not a number from 1 to 65535"),
    ("openai+http://127.0.0.1:0/v1#m", "port '0' is not a number from 1 to 65535"),
    ("openai+http://127.0.0.1:http/v1#m", "port 'http' is not a number from 1 to 65535"),
    ("openai+http:///v1#m", "no valid host"),
    ("openai+http://bad!host/v1#m", "no valid host"),
    ("openai+http://[::1/v1#m", "malformed host"),
    ("openai+http://me:sk-SECRET@host/v1#m", "holds credentials"),
    ("openai+http://host/v1?api_key=sk-SECRET#m", "one query parameter, key_env=NAME"),
    ("openai+http://host/v1?key_env=sk-SECRET-1#m", "key_env must name an environment variable"),
    ("openai+http://host/v1#m\nX-Injected: sk-SECRET", "a space or a control character"),
])
def test_malformed_endpoints_raise_one_line_without_echoing_secrets(spec, says):
    with pytest.raises(EndpointSpecError) as err:
        resolve(spec)
    text = str(err.value)
    assert says in text and "\n" not in text and "SECRET" not in text
    assert isinstance(err.value, ProvenanceError) and isinstance(err.value, ValueError)


def test_an_existing_path_is_never_taken_for_an_endpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    odd = Path("openai+http:") / "host" / "v1"  # a folder whose name happens to look like a URL
    odd.mkdir(parents=True)
    shutil.copy(_minilm_tokenizer(), odd / "tokenizer.json")
    assert resolve("openai+http://host/v1").kind == "tokenizer"


def test_endpoint_has_no_weights_tokenizer_or_runner():
    spec = "openai+http://127.0.0.1:8080/v1#m"
    with pytest.raises(SourceKindError, match=r"^openai\+http://127\.0\.0\.1:8080/v1#m: a model behind an API "
                                              r"endpoint, with no weights to read; inspect"):
        open_checkpoint(spec)
    with pytest.raises(SourceKindError, match=r"not a tokenizer"):
        load_vocabulary(spec)
    with pytest.raises(SourceKindError, match=r"with no weights to run; activations run the model itself"):
        open_runner(spec, device="cpu")
    assert not is_tokenizer_only(spec) and not is_fingerprint_file(spec)


def test_inspect_of_an_endpoint_exits_2_saying_it_needs_weights(provenance_cli):
    rc, out, err = provenance_cli("inspect", "openai+http://127.0.0.1:8080/v1#m")
    assert (rc, out) == (2, "")
    assert err == ("provenance: error: openai+http://127.0.0.1:8080/v1#m: a model behind an API endpoint, with no "
                   "weights to read; inspect, fingerprint and the weight and activation signals need a checkpoint: "
                   "a model folder, a weights file or a cached model id\n")
    rc, out, err = provenance_cli("inspect", "openai+http://127.0.0.1:99999/v1#m")
    assert (rc, out) == (2, "") and err.count("\n") == 1 and "port '99999' is not a number from 1 to 65535" in err


def test_source_is_frozen_and_keeps_no_key(monkeypatch):
    monkeypatch.setenv(DEFAULT_KEY_ENV, "sk-SECRET")
    src = resolve("openai+http://127.0.0.1:8080/v1#m")
    assert "SECRET" not in repr(src)
    with pytest.raises(AttributeError):
        src.kind = "checkpoint"  # type: ignore[misc]
    assert isinstance(src, ModelSource) and os.environ[src.endpoint.api_key_env] == "sk-SECRET"
