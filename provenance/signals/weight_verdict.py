"""The weight signal's verdict and evidence items, from a `WeightEvidence`.

The p-value printed is the exact neuron-order test's (stats/neuron_order.py) wherever both
models' MLP rows could be compared: its null holds by the relabelling symmetry of training, so
it stays valid on real independent models that share structure. `derived` needs that p below
DERIVED_P and an effect of at least NEURON_EFFECT. The layer-profile test maps the layers; its
re-pairing null is too narrow on real trained models to print as a p-value on its own.
`identical` also needs the weights to be the same up to what storage (casts, quantization) explains.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from provenance import relation
from provenance.evidence import Evidence, Verdict, confidence
from provenance.signals.copy_check import settle
from provenance.signals.weights import WeightEvidence
from provenance.stats.neuron_order import NeuronAgreement, NeuronOrder

DERIVED_P = 1e-6  # combined p-value below which the weights say "derived"
MIN_EFFECT = 0.3  # ... and the mean best-layer profile correlation must reach this
INDEPENDENT_P = 1e-2  # above this (or an effect below NULL_EFFECT) the weights look independent
NULL_EFFECT = 0.15
NEURON_EFFECT = 0.05  # mean same-row minus chance cosine; independent real pairs measure < 0.01
AGREEMENT_EFFECT = 0.3  # relabelled neurons: mean agreement above the inflated decoy rate


def _stats(w: WeightEvidence) -> str:
    """The layer test in one sentence (the relation's sentences come first)."""
    lm = w.layer_map
    return (f"{len(lm.pairs)} of {len(lm.candidate_layers)} candidate layers match base layers far beyond chance "
            f"(mean profile correlation {lm.statistic:.3f} vs {lm.null_mean:.3f} ± {lm.null_sd:.3f} under "
            f"independence, z = {lm.z:.1f}).")


def _placed(nt: NeuronOrder) -> int:
    """Layers whose own neuron-order p is below 1e-3."""
    return sum(1 for r in nt.layers if r.p_value < 1e-3)


def _rates(ag: NeuronAgreement) -> tuple[float, float]:
    """Mean share of neurons picking the same partner in both views, and the decoys' mean share."""
    return float(np.mean([r.agreement for r in ag.layers])), float(np.mean([r.decoy_agreement for r in ag.layers]))


def _order_stats(w: WeightEvidence) -> str:
    """The exact neuron-order test in one sentence."""
    nt = w.neuron_order
    assert nt is not None
    return (f"In {_placed(nt)} of {len(nt.layers)} layers the candidate's MLP neurons sit where the base's are "
            f"(same-neuron cosine exceeds chance by {nt.effect:.3f}); under independence neuron labels are "
            f"exchangeable, which bounds p exactly.")


def decide(w: WeightEvidence | None, shapes: dict[str, Any]) -> Verdict:
    """Verdict from the weight evidence; `shapes` holds (base, candidate) pairs and flags."""
    if w is None or w.layer_map is None or w.comparable < 2 or len(w.layer_map.candidate_layers) < 2:
        why = "; ".join(w.notes) if w is not None and w.notes else "too few comparable tensors"
        return Verdict("inconclusive", None, 0.0, None, f"The weights could not be compared: {why}.")
    if w.neuron_order is not None:
        return _decide_by_order(w, shapes)
    return _decide_by_profiles(w, shapes)


def _derived(w: WeightEvidence, shapes: dict[str, Any], p: float, stats: str) -> Verdict:
    """`identical` or `derived` with the relation, once a test has said the weights are related."""
    label, rel = settle(w, shapes, relation.describe(w, shapes))  # identical only for a reproduced storage step
    return Verdict(label, rel.label, confidence(label, p), p, f"{rel.text} {stats}")


def _decide_by_order(w: WeightEvidence, shapes: dict[str, Any]) -> Verdict:
    """The exact neuron-order test decides; the profile test only names what it cannot (permuted neurons)."""
    nt, lm = w.neuron_order, w.layer_map
    assert nt is not None and lm is not None
    if nt.p_value < DERIVED_P and nt.effect >= NEURON_EFFECT:
        return _derived(w, shapes, nt.p_value, f"{_order_stats(w)} {_stats(w)}")
    ag = w.neuron_agreement
    if ag is not None and ag.p_value < DERIVED_P and ag.effect >= AGREEMENT_EFFECT:
        same, decoys = _rates(ag)
        return _derived(w, shapes, ag.p_value,
                        f"The MLP neurons were relabelled: matched separately by {ag.views}, {same:.0%} of them "
                        f"pick the same partner (decoys: {decoys:.1%}); this p is calibrated by decoys, not exact. "
                        f"{_stats(w)}")
    if lm.p_value < DERIVED_P and lm.statistic >= MIN_EFFECT:
        return Verdict("inconclusive", None, 0.0, nt.p_value,
                       f"The layers' residual profiles match (mean profile correlation {lm.statistic:.3f}, "
                       f"z = {lm.z:.1f}) but the MLP neurons are not in the base's order (exact test p = "
                       f"{nt.p_value:.2g}): either the neurons were relabelled, or this is structure that "
                       f"independently trained models share; the weights alone cannot tell which.")
    if nt.p_value > INDEPENDENT_P:
        return Verdict("independent", None, 0.0, nt.p_value,
                       f"The candidate's MLP neurons are not where the base's are (exact test p = "
                       f"{nt.p_value:.2g}, same-neuron cosine exceeds chance by {nt.effect:.3f}), and no layer's "
                       f"residual profile tracks a base layer beyond what independent models show.")
    return Verdict("inconclusive", None, 0.0, nt.p_value,
                   f"The MLP neurons line up more than chance (exact test p = {nt.p_value:.2g}) but not enough "
                   f"to call the weights derived (same-neuron cosine exceeds chance by {nt.effect:.3f}).")


def _decide_by_profiles(w: WeightEvidence, shapes: dict[str, Any]) -> Verdict:
    """Where no neuron rows could be compared (MLPs of unequal widths, fingerprints without shared anchors): the
    profile test, whose re-pairing p is not shown to hold on real models."""
    lm = w.layer_map
    assert lm is not None
    if lm.p_value < DERIVED_P and lm.statistic >= MIN_EFFECT:
        return _derived(w, shapes, lm.p_value, _stats(w))
    if lm.p_value > INDEPENDENT_P or lm.statistic < NULL_EFFECT:
        quiet = sum(1 for *_, p in lm.best if p > 0.01)
        return Verdict("independent", None, 0.0, lm.p_value,
                       f"No candidate layer's weights track a base layer more than independent models do "
                       f"({quiet} of {len(lm.best)} layers within chance; mean profile correlation "
                       f"{lm.statistic:.3f}, z = {lm.z:.1f}).")
    return Verdict("inconclusive", None, 0.0, lm.p_value,
                   f"The weights agree more than chance (z = {lm.z:.1f}) but not enough to call it derived "
                   f"(mean profile correlation {lm.statistic:.3f}).")


def weight_items(w: WeightEvidence) -> list[Evidence]:
    """Evidence items of the weight signal: the layer test, the alignment, the magnitudes, problems."""
    items: list[Evidence] = []
    lm, al = w.layer_map, w.alignment
    if lm is not None:
        items.append(Evidence("weights", round(lm.statistic, 6), lm.p_value,
                              f"{len(lm.pairs)} of {len(lm.candidate_layers)} candidate layers have residual "
                              f"profiles matching a base layer (z = {lm.z:.1f} against re-paired dimensions).",
                              {"test": "joint permutation of matched residual dimensions", "z": round(lm.z, 3),
                               "p_exact_bound": lm.p_exact, "null_mean": round(lm.null_mean, 6),
                               "null_sd": round(lm.null_sd, 6), "comparable_roles": w.comparable,
                               "per_layer": [{"base": a, "candidate": b, "similarity": round(s, 6),
                                              "p_value": p} for a, b, s, p in lm.best],
                               "similarity_matrix": {"base_layers": list(lm.base_layers),
                                                     "candidate_layers": list(lm.candidate_layers),
                                                     "values": np.round(lm.similarity, 4).tolist()},
                               **w.map_facts}, kind="layer test"))
    nt = w.neuron_order
    if nt is not None:
        items.append(Evidence("weights", round(nt.effect, 6), nt.p_value,
                              f"MLP neurons in the base's order in {_placed(nt)} of {len(nt.layers)} layers "
                              f"(same-neuron "
                              f"cosine exceeds chance by {nt.effect:.3f}; exact test: neuron labels are exchangeable "
                              f"under independent training).", nt.summary(), kind="neuron order"))
    ag = w.neuron_agreement
    if ag is not None:
        same, decoys = _rates(ag)
        items.append(Evidence("weights", round(ag.effect, 6), ag.p_value,
                              f"Matched separately by {ag.views}, {same:.1%} of the sampled neurons pick the same "
                              f"candidate neuron (decoys {decoys:.1%}; calibrated, not exact).",
                              ag.summary(), kind="neuron agreement"))
    if al is not None:
        items.append(Evidence("weights", round(al.quality, 6), None,
                              f"Residual dimensions aligned from {al.n_tokens} embedding rows paired by "
                              f"{al.paired_by}: held-out median correlation {al.quality:.3f}"
                              f"{' (identity map)' if al.is_identity else ''}.", al.summary(), kind="alignment"))
    if w.similarity.get("sketches_compared"):
        items.append(Evidence("weights", w.similarity.get("matched_cosine"), None,
                              f"Matched layers' weights agree at cosine {w.similarity.get('matched_cosine')} "
                              f"(relative change {w.similarity.get('relative_change')}).", dict(w.similarity),
                              kind="magnitudes"))
    for problem in w.problems:
        items.append(Evidence("weights", None, None, problem, {}, kind="bad tensor"))
    if w.notes or any(w.only_in.values()):
        missing = "; ".join(f"{k} only in the {side}" for side, ks in w.only_in.items() for k in ks)
        items.append(Evidence("weights", None, None, "Not compared: " + "; ".join(filter(None, [missing] + w.notes))
                              + ".", {"only_in": w.only_in, "notes": w.notes}, kind="coverage"))
    return items
