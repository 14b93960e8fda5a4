"""Weight evidence on a family with known ground truth built from real SmolLM2 (dequantized).

Every disguise a shell maker can apply for free, plus real modifications, must come out
`derived` (or `identical` where only the storage changed) with a combined p-value below
1e-6 and the right relation; independently trained models of the same shape must not.
"""

from __future__ import annotations

import pytest

from provenance.comparison import compare
from tests.smollm2_family import CASES, OPTS, build, full_result, merged_variant
from tests.tiny_models import link_files

pytestmark = pytest.mark.slow  # builds (once, then cached) and compares 25 checkpoints of 135M parameters


@pytest.mark.parametrize("name,label,words", CASES, ids=[c[0] for c in CASES])
def test_smollm2_family(base, name, label, words):
    result = full_result(base[0], build(name, base))
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


def test_merge_with_an_independent_model(base, independent):
    v = full_result(base[0], merged_variant(base, independent)).verdict
    assert v.label == "derived" and v.p_value < 1e-6
    assert "merged with another model" in v.relation


def test_independent_same_shape_models_are_not_derived(base, independent):
    pairs = [(base[0], independent[0]), (base[0], independent[1]), (independent[0], independent[1])]
    for a, b in pairs:
        v = full_result(a, b).verdict
        assert v.label == "independent", (a.name, b.name, v.label, v.p_value, v.explanation)
        assert v.p_value > 0.01


def test_same_tokenizer_on_independent_weights_is_a_reported_disagreement(smollm2_hf_tok, independent, tmp_path):
    """The common honest case: a model trained from scratch with a borrowed tokenizer."""
    weights = [independent[0] / "model.safetensors", independent[0] / "config.json"]
    scratch = link_files([*weights, smollm2_hf_tok / "tokenizer.json"], tmp_path / "scratch")
    v = compare(smollm2_hf_tok, scratch, OPTS).verdict
    assert v.label == "independent" and v.decided_by == ["weights"]
    roles = {s["signal"]: (s["label"], s["role"]) for s in v.signals}
    assert roles["tokenizer"] == ("identical", "disagrees") and roles["config"][1] == "context"
    assert len(v.disagreements) == 1 and "reused tokenizer is common" in v.disagreements[0]
