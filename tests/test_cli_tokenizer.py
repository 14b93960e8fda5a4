"""`provenance compare` on tokenizers: alone (a file or a directory without weights), with
`--signals tokenizer` on models, and alongside the weights; bad input exits 2 with one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from provenance import CompareOptions, compare
from tests.real_models import (
    BGE_ONNX,
    CL100K_TIKTOKEN,
    COLBERT_ONNX,
    LLAMA3_JSON,
    MINILM_DIR,
    QWEN_TIKTOKEN,
    SMOLLM2_GGUF,
    require,
)

DETAILS = {"vocab_base", "vocab_candidate", "shared", "shared_same_id", "base_in_candidate", "candidate_in_base",
           "id_offset", "order_agreement", "relation"}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "provenance", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_tokenizer_files_alone_run_only_the_tokenizer_signal(tmp_path):
    out = tmp_path / "r.json"
    proc = _cli("compare", str(require(CL100K_TIKTOKEN)), str(require(LLAMA3_JSON)), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("verdict     DERIVED — tokenizer extension (candidate extends base)")
    data = json.loads(out.read_text())
    assert {e["signal"] for e in data["evidence"]} == {"tokenizer"} and data["layer_map"] == []
    main = data["evidence"][0]
    assert DETAILS <= set(main["details"])
    d = main["details"]
    assert (d["shared"], d["shared_same_id"], d["id_offset"], d["relation"]) == (100256, 100256, 0, "extension")
    assert data["base"]["format"] == "tokenizer (tiktoken)" and list(data["base"]["sha256"]) == ["cl100k_base.tiktoken"]
    assert data["candidate"]["tokenizer"]["merges"] == 280147


@pytest.mark.slow
def test_fail_on_derived_for_a_derived_tokenizer(tmp_path):
    proc = _cli("compare", str(require(CL100K_TIKTOKEN)), str(require(QWEN_TIKTOKEN)), "--fail-on", "derived",
                "--no-hash")
    assert proc.returncode == 3, proc.stderr
    assert "The candidate lacks all multi-digit numbers (1,100) of the base." in proc.stdout


@pytest.mark.slow
def test_weights_signal_on_a_tokenizer_is_refused(tmp_path):
    out = tmp_path / "r.json"
    proc = _cli("compare", str(require(CL100K_TIKTOKEN)), str(require(MINILM_DIR)), "--signals", "weights",
                "--json", str(out))
    assert proc.returncode == 2 and not out.exists()
    assert proc.stderr.startswith("provenance: error: The 'signals' parameter of compare must be 'tokenizer' when "
                                  "an input is a tokenizer without weights")
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_malformed_tokenizer_exits_2_without_output(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"model": {"type": "BPE", "vocab": {"a": -1}}}')
    out = tmp_path / "r.json"
    proc = _cli("compare", str(bad), str(require(LLAMA3_JSON)), "--json", str(out))
    assert proc.returncode == 2 and not out.exists()
    assert proc.stderr == f"provenance: error: {bad}: vocabulary ids must be integers in [0, 2^24)\n"


def test_models_restricted_to_the_tokenizer_signal():
    r = compare(require(MINILM_DIR), require(BGE_ONNX).parent, CompareOptions(signals=("tokenizer",), hashes=False))
    assert (r.verdict.label, r.verdict.relation) == ("identical", "tokenizer identical")
    assert [e.signal for e in r.evidence] == ["tokenizer", "tokenizer"] and r.weights is None
    assert r.base["tokenizer"]["format"] == "tokenizer.json" and r.base["layers"] == 6


def test_tokenizer_evidence_sits_beside_the_weights():
    r = compare(require(BGE_ONNX), require(COLBERT_ONNX), CompareOptions(device="cpu", hashes=False))
    assert r.verdict.label == "derived"  # the weights decide
    tok = [e for e in r.evidence if e.signal == "tokenizer"]
    assert tok[0].details["relation"] == "identical" and r.tokenizer.shared == 30517
    assert r.base["tokenizer"]["digest"] == r.candidate["tokenizer"]["digest"]


def test_independent_weights_with_unrelated_tokenizers():
    r = compare(require(MINILM_DIR), require(SMOLLM2_GGUF), CompareOptions(device="cpu", hashes=False,
                                                                          signals=("tokenizer", "config")))
    assert r.verdict.label == "independent" and r.tokenizer.relation == "independent"


def test_broken_tokenizer_beside_good_weights_is_reported_not_fatal(tiny_llama, tmp_path):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(tiny_llama[0], folder)
    (folder / "tokenizer.json").write_text("{broken")
    r = compare(tiny_llama[0], folder, CompareOptions(device="cpu", hashes=False))
    assert r.verdict.label == "identical"  # the weights still decide
    finding = next(e.finding for e in r.evidence if e.kind == "unreadable")
    assert finding.startswith(f"The candidate's tokenizer could not be read: {folder / 'tokenizer.json'}: not valid JSON")


def test_inspect_reports_the_canonical_tokenizer(tiny_llama, tmp_path):
    from provenance import inspect_model

    t = inspect_model(require(SMOLLM2_GGUF), hashes=False).tokenizer["canonical"]
    assert (t["format"], t["ordinary"], t["specials"], t["merges"]) == ("gguf", 49135, 17, 48900)
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(tiny_llama[0], folder)
    (folder / "vocab.txt").write_bytes(b"\xff\xfe")
    broken = inspect_model(folder, hashes=False).tokenizer["canonical"]
    assert broken == {"error": f"{folder / 'vocab.txt'}: vocab.txt is not UTF-8 text (invalid start byte at byte 0)"}
