"""The parts of a result dict (`provenance.compare/1`) that reports show, as plain data.

Every renderer (HTML, Markdown, notebooks) reads the result through these functions, so a
saved JSON file re-renders to the same report as the run that wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def item(result: dict[str, Any], signal: str, kind: str) -> dict[str, Any] | None:
    """The first evidence item of this signal and kind, or None."""
    return next((e for e in result["evidence"] if e["signal"] == signal and e["kind"] == kind), None)


@dataclass(frozen=True)
class LayerMatrix:
    """A layer x layer similarity matrix with its axes and the matched cells."""

    values: np.ndarray  # [base layers, candidate layers]; NaN where not measured
    base_layers: list[int]
    candidate_layers: list[int]
    matched: list[tuple[int, int]]  # (base layer, candidate layer) pairs to mark
    title: str
    measure: str


def weight_matrix(result: dict[str, Any]) -> LayerMatrix | None:
    """The weight signal's profile-correlation matrix and the significant layer pairs."""
    e = item(result, "weights", "layer test")
    if e is None or "similarity_matrix" not in e["details"]:
        return None
    m = e["details"]["similarity_matrix"]
    values = np.array([[np.nan if v is None else v for v in row] for row in m["values"]], dtype=float)
    if values.size == 0:
        return None
    return LayerMatrix(values, list(m["base_layers"]), list(m["candidate_layers"]),
                       [(int(a), int(b)) for a, b, _ in result["layer_map"]],
                       "Weights: layer x layer profile correlation", "profile correlation")


def cka_matrix(result: dict[str, Any]) -> LayerMatrix | None:
    """The activation signal's debiased-CKA matrix and its layer map."""
    e = item(result, "activations", "cka")
    if e is None or not e["details"].get("cka"):
        return None
    values = np.array([[np.nan if v is None else v for v in row] for row in e["details"]["cka"]], dtype=float)
    return LayerMatrix(values, list(range(values.shape[0])), list(range(values.shape[1])),
                       [(int(a), int(b)) for a, b, _ in e["details"]["layer_map"]],
                       "Activations: layer x layer debiased CKA", "CKA")


def weight_layers(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per candidate layer: its best base layer, the similarity and the layer's p-value (weights)."""
    e = item(result, "weights", "layer test")
    return list(e["details"].get("per_layer", [])) if e else []


def neuron_layers(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per candidate layer: the matched-neuron statistics of the activation signal."""
    e = item(result, "activations", "neurons")
    return list(e["details"].get("per_layer", [])) if e else []


TOKENIZER_FIGURES = (
    ("vocab_base", "base vocabulary (ordinary tokens)"),
    ("vocab_candidate", "candidate vocabulary (ordinary tokens)"),
    ("shared", "shared tokens"),
    ("shared_same_id", "shared tokens with the same id"),
    ("shared_same_id_multibyte", "same id among multi-byte shared tokens"),
    ("base_in_candidate", "base tokens found in the candidate"),
    ("candidate_in_base", "candidate tokens found in the base"),
    ("jaccard", "Jaccard overlap"),
    ("id_offset", "constant id offset"),
    ("order_agreement", "shared tokens in one increasing id run"),
    ("step_concordance", "neighbour steps that increase (independent: about 0.5)"),
    ("score", "order score (0 unrelated, 1 inherited)"),
    ("p_value", "p-value of the order test"),
)


FRACTIONS = frozenset(label for key, label in TOKENIZER_FIGURES if key in {
    "shared_same_id_multibyte", "base_in_candidate", "candidate_in_base", "jaccard", "order_agreement",
    "step_concordance"})  # shown as percentages


def tokenizer_facts(result: dict[str, Any]) -> list[tuple[str, Any]]:
    """(label, value) rows of the tokenizer comparison's figures."""
    e = item(result, "tokenizer", "vocabulary")
    if e is None:
        return []
    d = e["details"]
    return [(label, d.get(key)) for key, label in TOKENIZER_FIGURES if key in d]


def tokenizer_examples(result: dict[str, Any]) -> dict[str, list[str]]:
    """Examples of shared tokens and of tokens only on one side (already rendered as Python literals)."""
    e = item(result, "tokenizer", "vocabulary")
    return dict(e["details"].get("examples") or {}) if e else {}


def missing_classes(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Token classes one side lacks, with the side named (`missing_from` = base | candidate)."""
    e = item(result, "tokenizer", "vocabulary")
    if e is None:
        return []
    d = e["details"]
    return ([{**c, "missing_from": "candidate"} for c in d.get("missing_from_candidate") or []] +
            [{**c, "missing_from": "base"} for c in d.get("missing_from_base") or []])


def inputs(result: dict[str, Any]) -> list[dict[str, str]]:
    """Every input file with its side and sha256 (for the reproducibility section)."""
    rows = []
    for side in ("base", "candidate"):
        for name, digest in (result[side].get("sha256") or {}).items():
            rows.append({"side": side, "file": name, "sha256": digest})
    return rows
