"""The fingerprint file: what it keeps, that it reads back exactly, and that damage is refused.

Bad input (a flipped byte, an edited header, a truncated or foreign file, a wrong version)
is one line on stderr with exit status 2, and nothing is written.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file as np_load_file
from safetensors.numpy import save_file as np_save_file

from provenance.cli.main import main
from provenance.comparison import CompareOptions, compare
from provenance.errors import (
    CorruptFileError,
    InvalidParameterError,
    ProvenanceError,
    UnknownFormatError,
)
from provenance.fingerprint import fingerprint, is_fingerprint_file, load, save
from provenance.fingerprint.fileformat import read_meta, to_bytes
from tests.real_models import CL100K_TIKTOKEN, LLAMA3_JSON, MINILM_DIR, require
from tests.tiny_models import link_files

OPTS = CompareOptions(hashes=False, device="cpu")


@pytest.fixture(scope="module")
def minilm_fp(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fp") / "minilm.fingerprint"
    save(fingerprint(require(MINILM_DIR), device="cpu", source={"name": "all-MiniLM-L6-v2"}), path)
    return path


def _header_len(path: Path) -> int:
    return struct.unpack("<Q", path.read_bytes()[:8])[0]


def test_round_trip_keeps_every_array_and_the_vocabulary(minilm_fp):
    built = fingerprint(MINILM_DIR, device="cpu", source={"name": "all-MiniLM-L6-v2"})
    back = load(minilm_fp)
    assert back.layers == built.layers == list(range(6))
    np.testing.assert_array_equal(back.profiles, built.profiles)
    for mode in built.anchors:
        assert back.anchors[mode].keys == built.anchors[mode].keys
        np.testing.assert_allclose(back.anchor_rows[mode], built.anchor_rows[mode], rtol=0, atol=0)
        for key, s in built.sketches[mode].items():
            np.testing.assert_array_equal(back.sketches[mode][key].rows, s.rows)
            np.testing.assert_array_equal(back.sketches[mode][key].neurons, s.neurons)
    assert back.vocabulary.tokens == built.vocabulary.tokens and back.vocabulary.kinds == built.vocabulary.kinds
    assert back.vocabulary.digest() == built.vocabulary.digest()
    assert back.vocabulary.merges_digest() == built.vocabulary.merges_digest()
    assert back.meta["source"]["name"] == "all-MiniLM-L6-v2" and back.meta["model"]["parameters"] == 22713216
    assert os.path.getsize(minilm_fp) < 2_000_000  # 91 MB of fp32 weights


def test_the_same_model_gives_the_same_bytes(minilm_fp):
    again = to_bytes(fingerprint(MINILM_DIR, device="cpu", source={"name": "all-MiniLM-L6-v2"}))
    assert again == minilm_fp.read_bytes()
    assert to_bytes(load(minilm_fp)) == minilm_fp.read_bytes()


@pytest.mark.slow
def test_a_model_against_its_own_fingerprint_is_an_exact_copy(minilm_fp):
    for a, b in ((minilm_fp, MINILM_DIR), (MINILM_DIR, minilm_fp), (minilm_fp, minilm_fp)):
        r = compare(a, b, OPTS)
        assert (r.verdict.label, r.verdict.relation) == ("identical", "exact copy"), r.verdict.explanation
        assert r.layer_map == [[i, i, pytest.approx(1.0)] for i in range(6)]
    info = compare(minilm_fp, MINILM_DIR, OPTS).to_dict()["base"]
    assert info["format"] == "fingerprint of safetensors" and info["fingerprint"]["name"] == "all-MiniLM-L6-v2"
    assert info["layers"] == 6 and info["tokenizer"]["size"] == 30522


def test_tokenizer_fingerprint_compares_like_the_file(tmp_path):
    path = tmp_path / "cl100k.fingerprint"
    save(fingerprint(require(CL100K_TIKTOKEN)), path)
    fp = load(path)
    assert not fp.has_weights and fp.vocabulary is not None and "minhash" in fp.screens
    r = compare(path, require(LLAMA3_JSON), OPTS)
    assert r.verdict.label == "derived" and r.tokenizer.relation == "extension"
    assert r.verdict.relation == "tokenizer extension (candidate extends base)"
    assert os.path.getsize(path) < 1_000_000


def test_activations_are_refused_for_fingerprints(minilm_fp):
    with pytest.raises(InvalidParameterError, match="activations run the models themselves"):
        compare(minilm_fp, MINILM_DIR, OPTS, signals="weights,activations")


def _flip(src: Path, dst: Path, offset: int) -> Path:
    data = bytearray(src.read_bytes())
    data[offset] ^= 0x01
    dst.write_bytes(bytes(data))
    return dst


def _edit_metadata(src: Path, dst: Path, edit) -> Path:
    """Rewrite the file with its tensors intact and `edit(header_metadata)` applied (no checksum update)."""
    tensors = np_load_file(str(src))
    n = _header_len(src)
    meta = json.loads(src.read_bytes()[8:8 + n])["__metadata__"]
    edit(meta, tensors)
    np_save_file(tensors, str(dst), metadata=meta)
    return dst


def _bump_layers(meta, tensors):
    meta["fingerprint"] = meta["fingerprint"].replace('"layers": 6', '"layers": 7')


def _drop_tensor(meta, tensors):
    tensors.pop(sorted(k for k in tensors if k.startswith("sketch."))[0])


def _version(meta, tensors):
    meta["version"] = "99"


DAMAGE = {
    "flipped data byte": (lambda s, d: _flip(s, d, -4000), CorruptFileError, "checksum mismatch in tensor"),
    "edited metadata": (lambda s, d: _edit_metadata(s, d, _bump_layers), CorruptFileError,
                        "checksum mismatch in the fingerprint's metadata"),
    "dropped tensor": (lambda s, d: _edit_metadata(s, d, _drop_tensor), CorruptFileError, "other tensors"),
    "other version": (lambda s, d: _edit_metadata(s, d, _version), UnknownFormatError, "version '99'"),
    "truncated": (lambda s, d: d.write_bytes(s.read_bytes()[:3000]) and d, CorruptFileError, "truncated"),
    "truncated data": (lambda s, d: d.write_bytes(s.read_bytes()[:-5000]) and d, CorruptFileError, "do not parse"),
    "not safetensors": (lambda s, d: d.write_bytes(b"\x80\x04K\x01.") and d, CorruptFileError,
                        "not a fingerprint file"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_files_are_refused(minilm_fp, tmp_path, case):
    make, error, words = DAMAGE[case]
    bad = make(minilm_fp, tmp_path / "bad.fingerprint")
    with pytest.raises(error, match=words):
        load(bad)


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_cli_damaged_files_exit_2_with_one_line_and_write_nothing(minilm_fp, tmp_path, capsys, case):
    make, _, words = DAMAGE[case]
    bad = make(minilm_fp, tmp_path / "bad.fingerprint")
    out = tmp_path / "r.json"
    assert main(["compare", str(bad), str(minilm_fp), "--json", str(out), "--no-hash"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and "bad.fingerprint" in err and "Traceback" not in err
    assert not out.exists()


def test_a_plain_safetensors_file_is_not_taken_for_a_fingerprint(tmp_path):
    plain = tmp_path / "model.safetensors"
    np_save_file({"w": np.zeros((2, 2), np.float32)}, str(plain))
    assert not is_fingerprint_file(plain)
    named = tmp_path / "model.fingerprint"
    named.write_bytes(plain.read_bytes())
    with pytest.raises(UnknownFormatError, match="not a provenance fingerprint"):
        read_meta(named)


@pytest.mark.slow
def test_cli_fingerprint_writes_a_file_inspect_and_compare_read(tmp_path, capsys):
    out = tmp_path / "m.fingerprint"
    assert main(["fingerprint", str(require(MINILM_DIR)), "-o", str(out), "--name", "MiniLM", "--license",
                 "apache-2.0", "--lineage", "distilled from MiniLM-L12", "--no-hash"]) == 0
    text = capsys.readouterr().out
    assert f"fingerprint {out}" in text and "6 layers, hidden 384" in text and "30,522" not in text
    assert (out.stat().st_mode & 0o777) == (0o666 & ~_umask())
    src = load(out).meta["source"]
    assert (src["name"], src["license"], src["lineage"]) == ("MiniLM", "apache-2.0", ["distilled from MiniLM-L12"])
    assert main(["inspect", str(out), "--json", str(tmp_path / "i.json")]) == 0
    info = json.loads((tmp_path / "i.json").read_text())
    assert info["schema"] == "provenance.fingerprint-info/1" and info["summary"]["layers"] == 6
    assert main(["compare", str(out), str(MINILM_DIR), "--no-hash", "--fail-on", "derived"]) == 3


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_cli_fingerprint_checks_the_output_directory_first(tmp_path, capsys):
    assert main(["fingerprint", str(MINILM_DIR), "-o", str(tmp_path / "missing" / "m.fingerprint")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_broken_tokenizer_beside_weights_is_noted_not_fatal(tiny_llama, tmp_path):
    folder = link_files(list(tiny_llama[0].iterdir()), tmp_path / "m")
    (folder / "tokenizer.json").write_text("{not json")
    fp = fingerprint(folder, device="cpu")
    assert fp.vocabulary is None and fp.has_weights
    assert any("tokenizer could not be read" in n for n in fp.meta["notes"])


def test_missing_spec_is_a_clear_error():
    with pytest.raises(ProvenanceError, match="no such file"):
        fingerprint("/nonexistent/model")


@pytest.mark.slow
def test_identify_json_matches_its_published_schema(tmp_path, capsys):
    """`identify --json` against the committed registry: a tokenizer query and a model query."""
    import jsonschema

    from provenance.report.schema import identify_schema, validate_identify

    jsonschema.Draft202012Validator.check_schema(identify_schema())
    for spec in (require(LLAMA3_JSON), require(MINILM_DIR)):
        out = tmp_path / "id.json"
        assert main(["identify", str(spec), "--no-hash", "--top", "3", "--json", str(out)]) == 0
        data = json.loads(out.read_text())
        validate_identify(data)
        assert data["scanned"] >= 18 and len(data["candidates"]) == 3
    assert data["match"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "most likely base: sentence-transformers/all-MiniLM-L6-v2" in capsys.readouterr().out


@pytest.mark.slow
def test_profiles_and_sketches_do_not_depend_on_the_summation_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """What another BLAS, SIMD width or thread count would do: sum every column norm and every kept
    sketch row in another order. The stored float16 arrays stay bit-identical (in float32 arithmetic,
    this changed most of MiniLM's column norms and ~1 in 400 sketch values). The reordering patches the
    plain path's `_norms_sq`, so both reordered and plain runs take the plain path, and the fast path (block
    kernels on mapped reads) must give the same bytes as the plain one."""
    import torch

    import provenance.fingerprint.build as build
    import provenance.signals.profiles as profiles
    from provenance import fastpath

    fast = fingerprint(require(MINILM_DIR), device="cpu", hashes=False)
    with fastpath.plain():
        plain = fingerprint(MINILM_DIR, device="cpu", hashes=False)
    assert to_bytes(fast) == to_bytes(plain)
    norms_sq, exact_rows = profiles._norms_sq, build._exact_rows

    def reordered_norms(w: torch.Tensor, axis: int) -> torch.Tensor:
        if axis == 0:  # column sums over rows: permute the rows
            return norms_sq(w[torch.randperm(w.shape[0], generator=torch.Generator().manual_seed(1))], 0)
        perm = torch.randperm(w.shape[1], generator=torch.Generator().manual_seed(2))
        return norms_sq(w[:, perm], 1)  # row sums over columns: permute the columns

    def reordered_rows(w: torch.Tensor, x: torch.Tensor, ids: np.ndarray) -> np.ndarray:
        perm = torch.randperm(w.shape[1], generator=torch.Generator().manual_seed(3))
        return exact_rows(w[:, perm], x[:, perm], ids)

    monkeypatch.setattr(profiles, "_norms_sq", reordered_norms)
    monkeypatch.setattr(build, "_exact_rows", reordered_rows)
    with fastpath.plain():
        other = fingerprint(MINILM_DIR, device="cpu", hashes=False)
    assert to_bytes(other) == to_bytes(plain)
