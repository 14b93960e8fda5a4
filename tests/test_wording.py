"""What a newcomer and an auditor read: one relation label per pair in every view, a quotable first
sentence, numbers whose meaning the report states, p-value floors printed as bounds, no field names."""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser
from typing import ClassVar

import numpy as np
import pytest
import torch

from provenance import relation
from provenance.aggregate import NUMBERS, SignalVerdict, aggregate
from provenance.audit.graph import short_label
from provenance.audit.lineage import direction
from provenance.audit.result import AuditPair
from provenance.comparison import CompareOptions, compare
from provenance.evidence import Verdict
from provenance.fingerprint.build import fingerprint
from provenance.fingerprint.compare import compare_loaded
from provenance.report.html_parts import num
from provenance.report.markdown import _num
from provenance.report.pvalues import P_FLOOR
from provenance.stats.ranks import z_from_null
from tests.real_models import (
    BGE_ONNX,
    MINILM_DIR,
    MINILM_INT8_ONNX,
    RERANKER_ONNX,
    require,
)

OPTS = CompareOptions(device="cpu", signals=("weights", "tokenizer", "config"))


def _both(base, candidate):
    """(full comparison, fingerprint comparison: what identify and audit run) of one pair, hashes on."""
    full = compare(require(base), require(candidate), OPTS)
    fa, fb = (fingerprint(str(s), device="cpu", hashes=True) for s in (base, candidate))
    return full, compare_loaded(fa, fb, str(base), str(candidate), OPTS, torch.device("cpu"))


@pytest.fixture(scope="module")
def reranker_minilm():
    return _both(RERANKER_ONNX, MINILM_DIR)


def test_layer_subset_reads_as_one_relation_then_the_training(reranker_minilm):
    for r in reranker_minilm:
        v = r.verdict
        assert (v.label, v.relation) == ("derived", "layer subset, fine-tune or perturbation")
        assert v.explanation.startswith(
            "The candidate keeps 6 of the base's 12 layers (0, 2, 4, 6, 8, 10: every second one). Its weights also "
            "moved ")
        assert "so it was fine-tuned or distilled as well" in v.explanation
        assert "merged" not in v.explanation and "depth up-scaled" not in v.explanation


def test_full_and_fingerprint_comparisons_give_the_same_label(reranker_minilm):
    full, fp = reranker_minilm
    assert full.verdict.relation == fp.verdict.relation  # the magnitudes differ (36.5% vs 66%), the label does not
    assert full.verdict.confidence == fp.verdict.confidence == 1.0


@pytest.mark.slow  # two more full comparisons of 12-layer models
def test_the_reverse_pair_calls_the_deeper_model_the_fuller_one_and_the_lineage_agrees():
    v = compare(require(MINILM_DIR), require(RERANKER_ONNX), OPTS).verdict
    assert v.relation == "base is a layer subset, fine-tune or perturbation", v.relation
    assert v.explanation.startswith("The base keeps 6 of the candidate's 12 layers (0, 2, 4, 6, 8, 10: every second "
                                    "one): the deeper candidate reads as the fuller model")
    pair = AuditPair("minilm", "reranker", {}, True, v.label, v.relation, v.p_value)
    parent, child, directed, reason = direction(pair, {"layers": 6}, {"layers": 12})
    assert (parent, child, directed) == ("reranker", "minilm", True)
    assert reason == "layer subset: minilm keeps 6 of reranker's 12 layers"
    assert short_label(v.relation, reason) == "layer subset"  # the graph's edge says what the reason says


@pytest.mark.slow  # two more full comparisons of 12-layer models
def test_equal_layer_counts_are_never_depth_up_scaled_and_onnx_names_are_not_renamings():
    """ms-marco-MiniLM-L-12 and bge-small: 12 layers each, both ONNX, one under a task head's `bert.` prefix."""
    for r in _both(RERANKER_ONNX, BGE_ONNX):
        v = r.verdict
        assert v.label == "derived" and v.relation == "merged with another model or heavily modified", v.relation
        assert "up-scaled" not in v.explanation and "renamed" not in v.explanation
        assert "Candidate layers 9 and 10 both match base layer 9 best: with equal layer counts" in v.explanation


@pytest.mark.parametrize("spec", [MINILM_DIR, MINILM_INT8_ONNX], ids=["safetensors", "int8-onnx"])
def test_a_file_against_itself_is_byte_identical_in_every_view(spec):
    for r in _both(spec, spec):
        v = r.verdict
        assert (v.label, v.relation) == ("identical", "byte-identical files"), v.relation
        assert v.explanation.startswith("The candidate's weight files are the base's, byte for byte (same sha256).")
        assert "would look the same" not in v.explanation
        assert {s["signal"]: s["relation"] for s in v.signals}["weights"] == "byte-identical files"


def test_without_hashes_a_self_comparison_is_an_exact_copy_even_when_quantized():
    v = compare(require(MINILM_INT8_ONNX), MINILM_INT8_ONNX, OPTS, hashes=False).verdict
    assert (v.label, v.relation) == ("identical", "exact copy")
    assert "would look the same" not in v.explanation


def test_confidence_is_one_minus_p_for_a_relation_and_zero_otherwise():
    def reading(label: str, p: float | None) -> list[SignalVerdict]:
        return [SignalVerdict("weights", Verdict(label, None, 0.7, p, "x"))]

    assert aggregate(reading("independent", 0.517)).confidence == 0.0  # was 1.000 beside p 0.517
    assert aggregate(reading("inconclusive", 1e-4)).confidence == 0.0
    assert aggregate(reading("derived", 1e-9)).confidence == pytest.approx(1 - 1e-9, abs=1e-15)
    assert "Confidence is 1 − p when the verdict claims a relation" in NUMBERS


def test_p_value_floors_print_as_the_same_bound_everywhere():
    z, p = z_from_null(1e6, np.random.default_rng(0).normal(size=100))
    assert math.isfinite(z) and p == P_FLOOR  # the floor the reports know is the one the tests clamp at
    for value, shown in [(1e-300, "≤ 1e-300"), (2e-300, "≤ 2e-300"), (1.5e-299, "≤ 1.5e-299")]:
        assert num(value) == _num(value, p=True) == shown
    assert num(3.2e-12) == _num(3.2e-12, p=True) == "3.2e-12"


class _Prose(HTMLParser):
    """The text a reader sees, outside code, style, svg and the command line (where names are literal)."""

    SKIP: ClassVar[set[str]] = {"code", "style", "svg", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth, self.text, self.pre = 0, [], []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "pre":
            self.pre.append(("class", "command") in attrs)
        self.depth += tag in self.SKIP or (tag == "pre" and self.pre[-1])

    def handle_endtag(self, tag: str) -> None:
        self.depth -= tag in self.SKIP or (tag == "pre" and self.pre.pop())

    def handle_data(self, data: str) -> None:
        if self.depth == 0:
            self.text.append(data)


def test_the_html_report_shows_words_not_field_names(reranker_minilm):
    html = reranker_minilm[0].to_html()
    prose = _Prose()
    prose.feed(html)
    text = " ".join(prose.text)
    field_names = re.findall(r"(?<![\w./-])[a-z0-9]+_[a-z0-9_]+(?![\w./-])", text)  # not file names or paths
    assert field_names == [] and "tokenizer_config.json" in text
    assert "exact permutation bound" in text and "cosine, after matching dimensions" in text
    assert "roles inferred from structure" in text and "p-value ≤ 1e-300" in text
    assert NUMBERS.split(":")[0] in text


def test_tags_carry_no_numbers_and_every_tag_has_a_short_form():
    tags = [v for k, v in vars(relation).items() if k.isupper() and isinstance(v, str) and k not in ("ORDINALS",)]
    assert tags and not any(ch.isdigit() for t in tags for ch in t)
    assert all("," not in t for t in tags)  # the relation string splits back into its tags
    assert {relation.short_tag(t) for t in (relation.TRAINED, relation.HEAVY, relation.BASE_SUBSET)} == \
        {"fine-tune", "merged or modified", "layer subset"}
