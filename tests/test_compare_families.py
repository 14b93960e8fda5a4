"""Weight evidence on a family with known ground truth built from real SmolLM2 (dequantized).

Every disguise a shell maker can apply for free, plus real modifications, must come out
`derived` (or `identical` where only the storage changed) with a combined p-value below
1e-6 and the right relation; independently trained models of the same shape must not.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from provenance.comparison import CompareOptions, compare
from provenance.result import CompareResult
from tests import families as fam

OPTS = CompareOptions(hashes=False, device="cpu")


@functools.cache
def full_result(base: Path, candidate: Path) -> CompareResult:
    """The full-checkpoint comparison, computed once per session (the fingerprint agreement test reuses it)."""
    return compare(base, candidate, OPTS)


@pytest.fixture(scope="session")
def base(smollm2_hf: Path) -> tuple[Path, dict, dict]:
    state = load_file(str(smollm2_hf / "model.safetensors"))
    cfg = json.loads((smollm2_hf / "config.json").read_text())
    return smollm2_hf, state, cfg


@pytest.fixture(scope="session")
def independent(base) -> list[Path]:
    """Two SmolLM2-shaped models trained briefly from their own random inits."""
    _, _, cfg = base
    return [fam.variant(f"smollm2-scratch-seed{s}", lambda s=s: fam.train_from_scratch(cfg, steps=30, seed=s))
            for s in (1, 2)]


def _build(name: str, base) -> Path:
    _, state, cfg = base
    L = cfg["num_hidden_layers"]
    recipes = {
        "copy": lambda: (fam.to_dtype(state, torch.float32), cfg),
        "renamed": lambda: (fam.rename_opaque(state, seed=3), {}),
        "permute_mlp": lambda: fam.permute_mlp(state, cfg, seed=1),
        "permute_heads": lambda: fam.permute_heads(state, cfg, seed=2),
        "permute_residual": lambda: fam.permute_residual(state, cfg, seed=3),
        "rescale": lambda: fam.rescale(state, cfg, seed=4),
        "fold_norms": lambda: fam.fold_norms(state, cfg),
        "noise_1": lambda: fam.add_noise(state, cfg, 0.01, seed=5),
        "noise_5": lambda: fam.add_noise(state, cfg, 0.05, seed=6),
        "noise_20": lambda: fam.add_noise(state, cfg, 0.20, seed=7),
        "fine_tune": lambda: fam.fine_tune(state, cfg, steps=30, seed=0),
        "drop_third": lambda: fam.drop_layers(state, cfg, [i for i in range(L) if i % 3 != 1]),
        "duplicate": lambda: fam.duplicate_layers(state, cfg, sorted(list(range(L)) + list(range(10, 20)))),
        "vocab_extended": lambda: fam.extend_vocab(state, cfg, 4000, seed=8),
        "vocab_truncated": lambda: fam.truncate_vocab(state, cfg, 40000),
        "fp16": lambda: (fam.to_dtype(state, torch.float16), cfg),
        "bf16": lambda: (fam.to_dtype(state, torch.bfloat16), cfg),
        "q8_0": lambda: (fam.quantize_q8_0(state), cfg),
        "q4_0": lambda: (fam.quantize_q4_0(state), cfg),
        "combo": lambda: _combo(state, cfg),
    }
    return fam.variant(f"smollm2-{name}", recipes[name])


def _combo(state: dict, cfg: dict) -> tuple[dict, dict]:
    """Residual + neuron permutation, rescaling, noise, a third of the layers dropped, renamed."""
    s, c = fam.permute_residual(state, cfg, seed=11)
    s, c = fam.permute_mlp(s, c, seed=12)
    s, c = fam.rescale(s, c, seed=13)
    s, c = fam.add_noise(s, c, 0.02, seed=14)
    s, c = fam.drop_layers(s, c, [i for i in range(c["num_hidden_layers"]) if i % 3 != 2])
    return fam.rename_opaque(s, seed=15), {}


# (variant, expected label, words every relation must contain)
CASES = [
    ("copy", "identical", ["exact copy"]),
    ("fp16", "identical", ["dtype"]),
    ("bf16", "identical", ["dtype"]),
    ("renamed", "derived", ["tensors renamed"]),
    ("permute_mlp", "derived", ["neurons/heads permuted"]),
    ("permute_heads", "derived", ["neurons/heads permuted"]),
    ("permute_residual", "derived", ["residual dimensions permuted"]),
    ("rescale", "derived", ["rescaled tensors"]),
    ("fold_norms", "derived", ["norm weights folded"]),
    ("noise_1", "derived", ["perturbation"]),
    ("noise_5", "derived", ["perturbation"]),
    ("noise_20", "derived", ["perturbation"]),
    ("fine_tune", "derived", ["fine-tune"]),
    ("q8_0", "derived", ["perturbation"]),
    ("q4_0", "derived", ["perturbation"]),
    ("drop_third", "derived", ["layer subset"]),
    ("duplicate", "derived", ["depth up-scaled"]),
    ("vocab_extended", "derived", ["vocabulary changed"]),
    ("vocab_truncated", "derived", ["vocabulary changed"]),
    ("combo", "derived", ["layer subset", "residual dimensions permuted", "neurons/heads permuted", "renamed"]),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,label,words", CASES, ids=[c[0] for c in CASES])
def test_smollm2_family(base, name, label, words):
    result = full_result(base[0], _build(name, base))
    v = result.verdict
    assert v.label == label, (v.label, v.relation, v.explanation)
    assert v.p_value is not None and v.p_value < 1e-6
    for w in words:
        assert w in (v.relation or ""), (w, v.relation)
    if name == "drop_third":
        kept = [i for i in range(30) if i % 3 != 1]
        assert [row[:2] for row in result.layer_map] == [[k, j] for j, k in enumerate(kept)]
    if name == "duplicate":
        assert [row[0] for row in result.layer_map] == sorted(list(range(30)) + list(range(10, 20)))


def merged_variant(base, independent) -> Path:
    """50/50 with an independent model of the same weight scale (a briefly trained model's weights are
    ~5x smaller than SmolLM2's, which would make the merge read as a 22% perturbation)."""
    _, state, cfg = base
    other = load_file(str(independent[0] / "model.safetensors"))
    matched = {k: v * (state[k].norm() / v.norm()) if v.norm() > 0 else v for k, v in other.items()}
    return fam.variant("smollm2-merge-scratch1-scaled", lambda: (fam.merge(state, matched, 0.5), cfg))


@pytest.mark.slow
def test_merge_with_an_independent_model(base, independent):
    v = full_result(base[0], merged_variant(base, independent)).verdict
    assert v.label == "derived" and v.p_value < 1e-6
    assert "merged with another model" in v.relation


@pytest.mark.slow
def test_independent_same_shape_models_are_not_derived(base, independent):
    pairs = [(base[0], independent[0]), (base[0], independent[1]), (independent[0], independent[1])]
    for a, b in pairs:
        v = full_result(a, b).verdict
        assert v.label == "independent", (a.name, b.name, v.label, v.p_value, v.explanation)
        assert v.p_value > 0.01


@pytest.mark.slow
def test_same_tokenizer_on_independent_weights_is_a_reported_disagreement(smollm2_hf_tok, independent, tmp_path):
    """The common honest case: a model trained from scratch with a borrowed tokenizer."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    for f in independent[0].iterdir():
        (scratch / f.name).symlink_to(f)
    (scratch / "tokenizer.json").symlink_to(smollm2_hf_tok / "tokenizer.json")
    v = compare(smollm2_hf_tok, scratch, OPTS).verdict
    assert v.label == "independent" and v.decided_by == ["weights"]
    roles = {s["signal"]: (s["label"], s["role"]) for s in v.signals}
    assert roles["tokenizer"] == ("identical", "disagrees") and roles["config"][1] == "context"
    assert len(v.disagreements) == 1 and "reused tokenizer is common" in v.disagreements[0]
