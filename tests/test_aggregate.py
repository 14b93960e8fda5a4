"""Verdict aggregation: calibrated tests decide, dependent p-values are not multiplied, disagreement is shown,
metadata never decides."""

from __future__ import annotations

import pytest

from provenance.aggregate import SignalVerdict, aggregate
from provenance.evidence import Verdict


def V(label: str, p: float | None, relation: str | None = None, text: str = "") -> Verdict:
    return Verdict(label, relation, 1.0 - (p or 0.0), p, text or f"{label} reading")


def readings(weights=None, activations=None, tokenizer=None, config: str | None = "same shapes") -> list:
    return [SignalVerdict("weights", weights, ran=weights is not None),
            SignalVerdict("activations", activations, ran=activations is not None),
            SignalVerdict("tokenizer", tokenizer, ran=tokenizer is not None),
            SignalVerdict("config", None, config or "", ran=config is not None)]


def roles(v: Verdict) -> dict[str, str]:
    return {s["signal"]: s["role"] for s in v.signals}


def test_agreeing_model_signals_combine_by_bonferroni_not_by_product():
    v = aggregate(readings(V("derived", 1e-20, "fine-tune"), V("derived", 1e-30)))
    assert v.label == "derived" and v.relation == "fine-tune"
    assert v.p_value == pytest.approx(2e-30)  # k * min p over the two dependent tests; a product would give 1e-50
    assert v.decided_by == ["weights", "activations"] and v.disagreements == []
    assert "the activations say derived" in v.explanation


def test_a_positive_test_is_not_undone_by_one_that_finds_nothing():
    v = aggregate(readings(V("derived", 1e-12), V("independent", 0.4)))
    assert v.label == "derived" and v.p_value == pytest.approx(2e-12)
    assert roles(v) == {"weights": "decides", "activations": "disagrees", "tokenizer": "not run", "config": "context"}
    assert len(v.disagreements) == 1 and "weights say derived but the activations find no correspondence" in \
        v.disagreements[0]
    assert "Signals disagree" in v.explanation


def test_activations_decide_when_the_weights_find_nothing():
    v = aggregate(readings(V("independent", 0.3), V("derived", 1e-40, "MLP neurons inherited")))
    assert v.label == "derived" and v.decided_by == ["activations"]
    assert roles(v)["weights"] == "disagrees" and v.disagreements


def test_identical_comes_from_the_weights_when_both_are_positive():
    v = aggregate(readings(V("identical", 1e-50, "exact copy"), V("derived", 1e-9)))
    assert v.label == "identical" and v.relation == "exact copy"


def test_independent_needs_every_deciding_signal():
    assert aggregate(readings(V("independent", 0.5), V("independent", 0.2))).label == "independent"
    grey = aggregate(readings(V("inconclusive", 1e-4), V("independent", 0.2)))
    assert grey.label == "inconclusive" and grey.decided_by == []
    assert roles(grey) == {"weights": "inconclusive", "activations": "does not decide", "tokenizer": "not run",
                           "config": "context"}


def test_same_tokenizer_under_independent_weights_is_reported_as_an_honest_disagreement():
    v = aggregate(readings(V("independent", 0.6), tokenizer=V("identical", 1e-300, "tokenizer identical")))
    assert v.label == "independent"
    assert roles(v)["tokenizer"] == "disagrees"
    assert "reused tokenizer is common among independently trained models" in v.disagreements[0]


def test_inherited_weights_under_a_new_tokenizer_are_called_a_re_vocabularied_copy():
    v = aggregate(readings(V("derived", 1e-15), tokenizer=V("independent", 0.5)))
    assert v.label == "derived" and "re-vocabularied" in v.disagreements[0]


def test_the_tokenizer_never_decides_beside_model_signals():
    v = aggregate(readings(V("inconclusive", None, text="too few comparable tensors"),
                           tokenizer=V("derived", 1e-100, "tokenizer derived")))
    assert v.label == "inconclusive" and v.decided_by == []
    assert roles(v)["tokenizer"] == "does not decide"


def test_the_tokenizer_decides_alone_when_no_model_was_compared():
    v = aggregate(readings(tokenizer=V("derived", 1e-100, "tokenizer extension", "extends the base"), config=None))
    assert v.label == "derived" and v.decided_by == ["tokenizer"] and v.p_value == pytest.approx(1e-100)
    assert v.explanation.startswith("Tokenizer evidence only:")


def test_metadata_alone_decides_nothing():
    v = aggregate(readings(config="same architecture (llama) and identical shapes"))
    assert v.label == "inconclusive" and v.p_value is None and v.decided_by == []
    assert "metadata alone decides nothing" in v.explanation
    assert roles(v) == {"weights": "not run", "activations": "not run", "tokenizer": "not run", "config": "context"}
