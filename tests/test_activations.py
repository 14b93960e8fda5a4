"""Activation evidence on real models and SmolLM2 copies built here (known ground truth).

SmolLM2 runs on 8 probe texts (512 aligned positions) to keep CPU time bounded; the base
runner is shared, so its capture is reused across candidates."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from provenance.activations.probes import load_probes
from provenance.signals.activations import (
    activation_evidence,
    activation_verdict,
    carrying_layers,
    open_pair,
    open_runner,
)
from tests import families as fam
from tests.real_models import (
    BGE_ONNX,
    COLBERT_ONNX,
    MINILM_DIR,
    MINILM_INT8_ONNX,
    RERANKER_ONNX,
    require,
)
from tests.tiny_models import write_hf_dir

PROBES = 16
SMOL_PROBES, SMOL_POSITIONS = 8, 512  # SmolLM2 runs at ~300 tokens/s on 2 CPU cores: keep it small
ALPHA = 0.01


def smol_probes():
    return load_probes().subset(SMOL_PROBES)


@pytest.fixture(scope="module")
def probes():
    return load_probes().subset(PROBES)


@pytest.fixture(scope="module")
def smol(smollm2_hf_tok):
    """(base dir, its state, its config, the base runner)."""
    state, cfg = fam.load_variant(smollm2_hf_tok)
    return smollm2_hf_tok, state, cfg, open_runner(smollm2_hf_tok, device="cpu")


def _variant(root: Path, name: str, state, cfg, base_dir: Path, *, tokenizer: bool = True) -> Path:
    out = write_hf_dir(root / name, state, cfg)
    if tokenizer:
        shutil.copy(base_dir / "tokenizer.json", out / "tokenizer.json")
    return out


@pytest.mark.slow
def test_minilm_against_itself_is_identical_behaviour(probes):
    a = open_runner(require(MINILM_DIR), device="cpu")
    ev = activation_evidence(a, a, probes)
    v = activation_verdict(ev)
    assert (v.label, v.relation) == ("identical", "same behaviour")
    assert [(i, j) for i, j, _ in ev.layer_map] == [(i, i) for i in range(6)]
    assert min(c for *_, c in ev.layer_map) > 0.999 and ev.positions >= 500
    assert ev.probe_set == "provenance-probes/1[16 of 320]"


def _pair(base: Path, candidate: Path, probes):
    notes: list[str] = []
    a, b = open_pair(require(base), require(candidate), device="cpu", notes=notes)
    return activation_evidence(a, b, probes, notes=notes)


@pytest.mark.slow
def test_minilm_fp32_against_its_int8_onnx_export_behaves_identically(probes):
    ev = _pair(MINILM_DIR, MINILM_INT8_ONNX, probes)  # the export ships no tokenizer: it borrows the base's
    assert ev.notes == ["the candidate ships no tokenizer: it read the base's"]
    assert (activation_verdict(ev).label, activation_verdict(ev).relation) == ("identical", "same behaviour")
    assert min(c for *_, c in ev.layer_map) > 0.99 and min(t["in_place"] for t in ev.neurons) > 0.95


@pytest.mark.slow
def test_bge_against_its_colbert_fine_tune_is_derived_in_every_layer(probes):
    ev = _pair(BGE_ONNX, COLBERT_ONNX, probes)
    v = activation_verdict(ev)
    assert v.label == "derived" and ev.p_value < 1e-100
    carried = [(t["base_layer"], t["candidate_layer"]) for t in carrying_layers(ev)]
    assert carried == [(i, i) for i in range(12)]  # the layers that carry it, each in place
    assert v.explanation.startswith("MLP neurons of 12 of 12 candidate layers correspond")


@pytest.mark.slow
def test_minilm_l6_keeps_every_second_layer_of_the_l12_reranker(probes):
    """REAL_MODELS.md: all-MiniLM-L6-v2's layers line up with ms-marco-MiniLM-L-12-v2's 0, 2, 4, ..."""
    ev = _pair(RERANKER_ONNX, MINILM_DIR, probes)
    assert activation_verdict(ev).label == "derived"
    carried = [(t["base_layer"], t["candidate_layer"]) for t in carrying_layers(ev)]
    assert carried[:3] == [(0, 0), (2, 1), (4, 2)] and all(b == 2 * c for b, c in carried)
    assert [(i, j) for i, j, _ in ev.layer_map] == [(0, 0), (2, 1), (4, 2), (6, 3), (8, 4), (10, 5)]


@pytest.mark.slow
def test_smollm2_permuted_rotated_and_extended_copy_is_derived(smol, tmp_path):
    """Neurons permuted, residual stream rotated, vocabulary extended — all at once — and the
    function kept: the activations still say derived, through the gate/up agreement."""
    base_dir, state, cfg, base = smol
    vstate, vcfg = fam.permute_mlp(state, cfg, seed=1)
    vstate, vcfg = fam.rotate_residual(vstate, vcfg, seed=2)
    vstate, vcfg = fam.extend_vocab(vstate, vcfg, n_new=512, seed=3)
    ids = torch.tensor([[1, 504, 3070, 314, 260, 2471, 30]])
    with torch.no_grad():
        a = fam.build_model(state, cfg)(ids).logits
        b = fam.build_model(vstate, vcfg)(ids).logits[..., :a.shape[-1]]
    assert torch.allclose(a, b, atol=2e-3, rtol=0), (a - b).abs().max()  # the same function
    cand = open_runner(_variant(tmp_path, "disguised", vstate, vcfg, base_dir), device="cpu")
    ev = activation_evidence(base, cand, smol_probes(), max_positions=SMOL_POSITIONS)
    v = activation_verdict(ev)  # the function is kept, so "identical" (a special case of derived) is right
    assert (v.label, v.relation) == ("identical", "same behaviour, neurons permuted") and ev.p_value < 1e-6
    assert [(i, j) for i, j, _ in ev.layer_map] == [(i, i) for i in range(30)]  # CKA: rotation-invariant
    assert np.median([t["agreement"] for t in ev.neurons]) > 0.9  # the permutation is found twice ...
    assert np.median([t["in_place"] for t in ev.neurons]) < 0.01  # ... though no neuron kept its index
    assert len(carrying_layers(ev)) >= 25


@pytest.mark.slow
def test_smollm2_against_same_shape_independent_models(smol, tmp_path):
    """Random-init SmolLM2-shaped models: independent; none below α (benchmarks/activation_null.py
    reports the rate over more pairs)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    base_dir, state, cfg, base = smol
    p_values = []
    for seed in (11, 12):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in cfg.items() if k != "architectures"}))
        indep = {k: v.detach().clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}
        cand = open_runner(_variant(tmp_path, f"indep{seed}", indep, cfg, base_dir), device="cpu")
        ev = activation_evidence(base, cand, smol_probes(), max_positions=SMOL_POSITIONS)
        p_values.append(ev.p_value)
        assert activation_verdict(ev).label == "independent", activation_verdict(ev).explanation
    assert sum(p < ALPHA for p in p_values) == 0


@pytest.mark.slow
def test_compare_with_the_activation_signal(tmp_path, provenance_cli):
    import json

    out = tmp_path / "r.json"
    rc, stdout, stderr = provenance_cli("compare", require(MINILM_DIR), require(MINILM_INT8_ONNX), "--signals",
                                        "activations", "--probes", "16", "--no-hash", "--json", out)
    assert rc == 0, stderr
    assert stdout.startswith("verdict     IDENTICAL — same behaviour")
    data = json.loads(out.read_text())
    assert [e["signal"] for e in data["evidence"]] == ["activations", "activations"]
    neurons = data["evidence"][0]["details"]
    assert neurons["probe_set"] == "provenance-probes/1[16 of 320]" and len(neurons["per_layer"]) == 6
    assert data["layer_map"] == [[i, i, pytest.approx(1.0, abs=2e-3)] for i in range(6)]


def test_activations_refuse_a_tokenizer_alone(tmp_path):
    from provenance import CompareOptions, compare
    from provenance.errors import InvalidParameterError
    from tests.real_models import CL100K_TIKTOKEN

    with pytest.raises(InvalidParameterError, match="when an input is a tokenizer without weights"):
        compare(require(CL100K_TIKTOKEN), require(MINILM_DIR), CompareOptions(signals=("activations",)))


@pytest.mark.slow
def test_model_code_shipped_with_a_checkpoint_is_refused(tiny_llama, tmp_path):
    """An `auto_map` config asks for the checkpoint's own Python code: exit 2, never run it (checked in a
    separate interpreter, so that code could not touch this one)."""
    import json
    import subprocess
    import sys

    folder = tmp_path / "custom"
    shutil.copytree(tiny_llama[0], folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(model_type="totally_new", auto_map={"AutoModel": "modeling_evil.EvilModel"})
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "modeling_evil.py").write_text("raise SystemExit('executed!')\n")
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "provenance", "compare", str(tiny_llama[0]), str(folder),
                           "--signals", "activations", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and not out.exists()
    assert proc.stderr.startswith(f"provenance: error: {folder / 'config.json'}: the config asks for code shipped "
                                  "with the model (auto_map)")
    assert "executed!" not in proc.stdout + proc.stderr


def test_renamed_shell_is_refused_rather_than_run_with_random_weights(tiny_llama, tmp_path):
    """transformers would silently initialise weights it cannot find by name; the runner refuses."""
    from provenance.errors import UnknownFormatError

    state, cfg = fam.load_variant(tiny_llama[0])
    folder = write_hf_dir(tmp_path / "renamed", fam.rename_opaque(state, seed=1), cfg)
    with pytest.raises(UnknownFormatError, match=r"weights transformers' LlamaModel needs are not in the checkpoint"):
        open_runner(folder, device="cpu")
