"""`compare` on real pairs with public lineage, the JSON contract, the CLI and bad tensors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from provenance.comparison import CompareOptions, compare
from provenance.report.schema import validate_result
from tests.real_models import (
    BGE_ONNX,
    COLBERT_ONNX,
    MINILM_DIR,
    MINILM_INT8_ONNX,
    RERANKER_ONNX,
    SMOLLM2_GGUF,
    require,
)

OPTS = CompareOptions(hashes=False, device="cpu")


def test_minilm_vs_its_int8_onnx_is_an_identical_quantized_copy():
    r = compare(require(MINILM_DIR), require(MINILM_INT8_ONNX), OPTS)
    assert (r.verdict.label, r.verdict.relation) == ("identical", "quantized copy")
    assert r.verdict.p_value < 1e-6
    assert [row[:2] for row in r.layer_map] == [[i, i] for i in range(6)]


@pytest.mark.slow
def test_bge_small_vs_colbert_small_is_a_fine_tune():
    v = compare(require(BGE_ONNX), require(COLBERT_ONNX), OPTS).verdict
    assert v.label == "derived" and v.p_value < 1e-6
    assert "fine-tune" in v.relation


def test_minilm_l6_keeps_every_second_layer_of_the_l12_reranker():
    r = compare(require(RERANKER_ONNX), require(MINILM_DIR), OPTS)
    assert r.verdict.label == "derived" and r.verdict.p_value < 1e-6
    assert "layer subset" in r.verdict.relation
    assert [row[:2] for row in r.layer_map] == [[0, 0], [2, 1], [4, 2], [6, 3], [8, 4], [10, 5]]
    assert all(0.5 < row[2] <= 1.0 for row in r.layer_map)


@pytest.mark.slow
def test_smollm2_gguf_vs_its_dequantized_copy(smollm2_hf):
    v = compare(require(SMOLLM2_GGUF), smollm2_hf, OPTS).verdict
    assert (v.label, v.relation) == ("identical", "quantized copy")


@pytest.mark.slow
def test_models_of_different_width_and_lineage_are_independent(smollm2_hf):
    r = compare(require(MINILM_DIR), smollm2_hf, OPTS)
    assert r.verdict.label == "independent" and r.verdict.p_value > 0.01
    assert r.layer_map == []
    config = next(e for e in r.evidence if e.signal == "config")
    assert set(config.details["differ"]) >= {"hidden", "layers", "vocab"}


def test_json_contract(tiny_llama, tmp_path):
    folder, _ = tiny_llama
    data = compare(folder, folder, CompareOptions(device="cpu")).to_dict()
    assert data["schema"] == "provenance.compare/1"
    assert set(data) == {"schema", "base", "candidate", "verdict", "evidence", "layer_map", "environment"}
    assert set(data["base"]) >= {"spec", "architecture", "parameters", "sha256"}
    assert list(data["base"]["sha256"]) == ["model.safetensors", "config.json"]
    assert data["verdict"]["label"] == "identical" and 0.0 <= data["verdict"]["confidence"] <= 1.0
    assert {e["signal"] for e in data["evidence"]} == {"weights", "tokenizer", "config"}
    tok = next(e for e in data["evidence"] if e["signal"] == "tokenizer")  # the tiny model ships none
    assert tok["finding"] == "Not compared: no tokenizer found for either model." and tok["statistic"] is None
    assert all({"statistic", "p_value", "finding", "details"} <= set(e) for e in data["evidence"])
    assert data["layer_map"] == [[i, i, 1.0] for i in range(3)]
    assert {"provenance", "torch", "device", "seed"} <= set(data["environment"])
    json.dumps(data, allow_nan=False)  # plain JSON all the way down
    validate_result(data)


def test_nan_and_zero_tensors_are_reported_not_scored(tiny_llama, tmp_path):
    folder, state = tiny_llama
    bad = dict(state)
    bad["model.layers.1.mlp.up_proj.weight"] = torch.full_like(state["model.layers.1.mlp.up_proj.weight"], float("nan"))
    bad["model.layers.2.self_attn.k_proj.weight"] = torch.zeros_like(state["model.layers.2.self_attn.k_proj.weight"])
    (tmp_path / "bad").mkdir()
    save_file(bad, str(tmp_path / "bad" / "model.safetensors"))
    (tmp_path / "bad" / "config.json").write_text((folder / "config.json").read_text())
    r = compare(folder, tmp_path / "bad", OPTS)
    findings = [e.finding for e in r.evidence if e.kind == "bad tensor"]
    assert findings == ["candidate layers.1.mlp.up: contains NaN or Inf values; not scored",
                        "candidate layers.2.attn.k: all zeros; not scored"]
    assert r.verdict.label == "derived"


def test_cli_compare_fail_on_and_outputs(tiny_llama, tmp_path, provenance_cli):
    folder, _ = tiny_llama
    out, md, html = tmp_path / "r.json", tmp_path / "r.md", tmp_path / "r.html"
    rc, stdout, stderr = provenance_cli("compare", folder, folder, "--json", out, "--md", md, "--html", html,
                                        "--fail-on", "derived")
    assert rc == 3, stderr
    assert stdout.startswith("verdict     IDENTICAL — byte-identical files")
    data = json.loads(out.read_text())
    validate_result(data)
    assert data["verdict"]["label"] == "identical"
    assert md.read_text().startswith("# Provenance: ")
    assert html.read_text().startswith("<!DOCTYPE html>") and "IDENTICAL" in html.read_text()
    assert provenance_cli("compare", folder, folder, "--fail-on", "independent")[0] == 0


@pytest.mark.parametrize("args,message", [
    (["--probes", "4"], "The 'probe_texts' parameter of compare must be between 8 and 320. Got 4 instead."),
    (["--signals", "weights,colour"], "The 'signals' parameter of compare must be a subset of ('weights', "
                                      "'tokenizer', 'activations', 'outputs', 'config'). Got 'colour' instead."),
    (["--max-queries", "0"], "The 'max_queries' parameter of compare must be between 1 and 10000. Got 0 instead."),
    (["--fail-on", "maybe"], "The '--fail-on' parameter of provenance compare must be labels from"),
    (["--device", "tpu"], "The 'device' parameter of compare must be 'auto', 'cpu' or 'cuda[:N]'"),
    (["--seed", "-5"], "The 'seed' parameter of compare must be between 0 and 4294967295. Got -5 instead."),
    (["--batch-size", "0"], "The 'batch_size' parameter of compare must be between 1 and 4096. Got 0 instead."),
])
def test_cli_compare_bad_options_exit_2(tiny_llama, tmp_path, provenance_cli, args, message):
    folder, _ = tiny_llama
    rc, _, stderr = provenance_cli("compare", folder, folder, "--json", tmp_path / "x.json", *args)
    assert rc == 2
    assert stderr.startswith(f"provenance: error: {message}")
    assert len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.json").exists()


def test_cli_compare_output_in_a_missing_directory_fails_before_any_work(tiny_llama, tmp_path, provenance_cli):
    json_out = tmp_path / "r.json"
    rc, stdout, stderr = provenance_cli("compare", tiny_llama[0], tiny_llama[0], "--json", json_out, "--html",
                                        tmp_path / "nowhere" / "r.html")
    assert rc == 2 and "directory" in stderr and "does not exist" in stderr
    assert not json_out.exists() and stdout == ""


def test_cli_compare_missing_candidate_exit_2(tiny_llama, tmp_path, provenance_cli):
    rc, _, stderr = provenance_cli("compare", tiny_llama[0], tmp_path / "missing")
    assert rc == 2
    assert stderr.strip() == f"provenance: error: no such file or directory: {tmp_path / 'missing'}"


def test_truncated_candidate_shard_exit_2(tiny_llama, tmp_path, provenance_cli):
    folder, _ = tiny_llama
    data = (folder / "model.safetensors").read_bytes()
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "model.safetensors").write_bytes(data[: len(data) - 100])
    rc, _, stderr = provenance_cli("compare", folder, tmp_path / "cut")
    assert rc == 2
    assert "model.safetensors: truncated: tensor" in stderr


# ----------------------------------------------------------------------------- as a CI job runs it

def _subprocess(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m provenance ARGS` in a fresh interpreter, as a CI job calls it."""
    return subprocess.run([sys.executable, "-m", "provenance", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


@pytest.mark.slow
def test_subprocess_fail_on_sets_the_exit_status_and_stdout_holds_only_the_summary(tiny_llama, tmp_path):
    folder, _ = tiny_llama
    proc = _subprocess("compare", folder, folder, "--json", tmp_path / "r.json", "--fail-on", "derived", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.startswith("verdict     IDENTICAL — byte-identical files")
    assert "\r" not in proc.stdout and "%|" not in proc.stdout  # no progress bar mixed into what a pipe reads
    assert json.loads((tmp_path / "r.json").read_text())["verdict"]["label"] == "identical"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # nothing else in its working directory


@pytest.mark.slow
def test_subprocess_bad_input_exit_2_one_line_and_nothing_written(tiny_llama, tmp_path):
    out = tmp_path / "r.json"
    proc = _subprocess("compare", tiny_llama[0], tmp_path / "missing", "--json", out, cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (2, ""), (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.splitlines() == [f"provenance: error: no such file or directory: {tmp_path / 'missing'}"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_renamed_bert_is_read_post_norm_and_only_renamed(tmp_path):
    """all-MiniLM-L6-v2 under opaque names (`blocks.{i}.p{k}.weight`, `globals.g{k}.weight`): the token-type
    table says BERT-style post-norm, the one global norm follows the embeddings, biases follow their matrices."""
    import shutil

    from safetensors.torch import load_file

    from tests.families import rename_bert_opaque

    renamed = rename_bert_opaque(load_file(str(require(MINILM_DIR) / "model.safetensors")))
    folder = tmp_path / "renamed"
    folder.mkdir()
    save_file(renamed, str(folder / "model.safetensors"))
    shutil.copy(MINILM_DIR / "tokenizer.json", folder / "tokenizer.json")
    r = compare(MINILM_DIR, folder, CompareOptions(device="cpu", hashes=False))
    assert r.verdict.label == "derived" and r.verdict.relation == "tensors renamed", r.verdict.relation
    assert r.layer_map and [(a, b) for a, b, _ in r.layer_map] == [(i, i) for i in range(6)]
