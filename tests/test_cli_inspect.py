"""`provenance inspect` end to end: human table, JSON contract, exit status 2 on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from provenance.cli.main import main
from tests.real_models import MINILM_DIR, MINILM_INT8_ONNX, SMOLLM2_GGUF, require


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "provenance", *args], capture_output=True, text=True, timeout=300)


def test_inspect_json_contract_on_real_gguf(tmp_path, capsys):
    out = tmp_path / "smol.json"
    assert main(["inspect", str(require(SMOLLM2_GGUF)), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["schema"] == "provenance.inspect/1"
    assert (data["format"], data["architecture"], data["definition"]) == ("gguf", "llama", "gguf_llama")
    assert data["num_layers"] == 30
    assert data["parameters"] == 134_515_008
    assert data["roles"]["layers.29.mlp.down"] == {
        "name": "blk.29.ffn_down.weight", "shape": [576, 1536], "dtype": "Q4_1", "tied_to": None,
        "inferred": False, "part": None}
    assert data["roles"]["lm_head"]["tied_to"] == "embed"
    assert data["tokenizer"]["embedded"]["tokens"] == 49152
    assert list(data["sha256"]) == [SMOLLM2_GGUF.name]
    assert data["unmapped"] == [] and data["missing"] == []
    text = capsys.readouterr().out
    assert "gguf_llama" in text and "layers.0.attn.q" in text and "134,515,008" in text


@pytest.mark.parametrize("spec", [MINILM_DIR, MINILM_INT8_ONNX])
def test_inspect_minilm_both_formats(spec, tmp_path):
    out = tmp_path / "r.json"
    assert main(["inspect", str(require(spec)), "--json", str(out), "--no-hash"]) == 0
    data = json.loads(out.read_text())
    assert data["definition"] == "bert" and data["num_layers"] == 6
    assert data["roles"]["layers.5.mlp.up"]["shape"] == [1536, 384]


@pytest.mark.slow
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    out = tmp_path / "never.json"
    proc = run_cli("inspect", str(bad), "--json", str(out))
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"provenance: error: {bad}: truncated or not safetensors")
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


@pytest.mark.slow
def test_missing_model_exits_2(tmp_path):
    proc = run_cli("inspect", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"provenance: error: no such file or directory: {tmp_path / 'nope'}"


def test_unknown_command_exits_2():
    proc = run_cli("frobnicate")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
