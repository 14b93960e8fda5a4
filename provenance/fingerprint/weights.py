"""The weight signal between two fingerprints: the same alignment, layer test and magnitudes.

The alignment pairs the anchor rows both fingerprints kept; the layer test runs on the
stored all-dims profiles restricted to the matched dims, exactly as on full checkpoints;
the magnitudes compare anchor-projected sketches, matching each of the base's largest
rows to its most similar candidate row (so permuted neurons and heads still pair up).
"""

from __future__ import annotations

import numpy as np

from provenance.fingerprint.anchors import BY_IDS, BY_TOKENS, common
from provenance.fingerprint.model import Fingerprint, Sketch
from provenance.signals.align import align_residual
from provenance.signals.direct import cosine
from provenance.signals.profiles import Profiles, gated
from provenance.signals.layermap import LayerMap
from provenance.signals.weights import (
    MIN_SHARED_TOKENS,
    ORDER_DECIDES_P,
    WeightEvidence,
    evidence_from_profiles,
    layer_similarities,
)
from provenance.stats.neuron_order import (
    NeuronAgreement,
    NeuronOrder,
    agreement_layer,
    best_of,
    combine_agreement,
    neuron_order,
    unit_rows,
)

QUERY_ROWS = 32  # the base's largest rows, each matched among the candidate's kept largest rows
MIN_SKETCH_ANCHORS = 16
MIN_DIRECT_ROWS = 8
MIN_COMMON_NEURONS = 8  # base neurons kept in both the gate and the up sketch, for the relabelled-neuron test
IN_PLACE_COSINE = 0.2  # probe rows agreeing this well with the same id are in place (merges 0.3-0.65, permuted ~0)


def sketch_pair_similarity(a: Sketch, cols_a: np.ndarray, b: Sketch, cols_b: np.ndarray) -> dict[str, float | None]:
    """`sketch_similarity`'s fields from two projected sketches on their common anchor columns.

    Neurons are in place when the probe rows (the same neuron ids on both sides) agree; the
    magnitudes are then read on them. Otherwise each of the base's largest rows is matched to
    its most similar kept candidate row, as permuted neurons and heads require.
    """
    qa = a.rows[:min(QUERY_ROWS, a.top)][:, cols_a]
    pool = b.rows[:b.top][:, cols_b]
    sa, sb = qa, pool[(unit_rows(qa) @ unit_rows(pool).T).argmax(axis=1)]
    pairing = cosine(sa, sb)  # best-match agreement: comparable across alternative keys (gate/up swaps)
    in_place = direct = None
    if a.n_out == b.n_out and len(a.neurons) - a.top >= MIN_DIRECT_ROWS:
        pa, pb = a.rows[a.top:][:, cols_a], b.rows[b.top:][:, cols_b]
        direct = cosine(pa, pb)
        same = np.sum(unit_rows(pa) * unit_rows(pb), axis=1)
        in_place = float(np.mean(same >= IN_PLACE_COSINE))
        if in_place >= 0.5:
            sa, sb = pa, pb
    na = float(np.linalg.norm(sa))
    scale = float(np.linalg.norm(sb) / na) if na > 0 else 1.0
    rel = float(np.linalg.norm(sb / scale - sa) / na) if na > 0 and scale > 0 else None
    return {"direct": direct, "matched": cosine(sa, sb), "rel_change": rel, "scale": scale,
            "neurons_in_place": in_place, "pairing": pairing}


def _profiles(fp: Fingerprint, dims: np.ndarray) -> Profiles:
    w = fp.meta.get("weights", {})
    assert fp.profiles is not None
    return Profiles(layers=list(fp.layers), values=fp.profiles[:, :, dims].astype(np.float64),
                    problems=list(w.get("problems", [])), constant_norms=w.get("constant_norms"))


def _pairing(fa: Fingerprint, fb: Fingerprint, notes: list[str]) -> tuple[str, np.ndarray, np.ndarray] | None:
    """Anchor rows to pair: by token strings where both kept some in common, else by id."""
    if BY_TOKENS in fa.anchors and BY_TOKENS in fb.anchors:
        ia, ib = common(fa.anchors[BY_TOKENS].keys, fb.anchors[BY_TOKENS].keys)
        if len(ia) >= MIN_SHARED_TOKENS:
            return BY_TOKENS, ia, ib
        notes.append(f"only {len(ia)} anchor tokens shared; embedding rows paired by id instead")
    else:
        notes.append("no tokenizer on one side or both: embedding rows paired by token id")
    ia, ib = common(fa.anchors[BY_IDS].keys, fb.anchors[BY_IDS].keys)
    if len(ia) < MIN_SHARED_TOKENS:
        notes.append(f"only {len(ia)} anchor rows in common: residual dimensions cannot be aligned")
        return None
    return BY_IDS, ia, ib


def fingerprint_weight_evidence(fa: Fingerprint, fb: Fingerprint, *, seed: int = 0) -> WeightEvidence:
    """Align, test and measure from fingerprints; reports what was comparable, never raises on shapes."""
    notes: list[str] = []
    if not fa.anchors or not fb.anchors:
        notes.append("no embedding in one model: residual dimensions cannot be aligned")
        return WeightEvidence(None, None, {}, {}, 0, notes=notes)
    pairing = _pairing(fa, fb, notes)
    if pairing is None:
        return WeightEvidence(None, None, {}, {}, 0, notes=notes)
    mode, ia, ib = pairing
    al = align_residual(fa.anchor_rows[mode][ia], fb.anchor_rows[mode][ib], paired_by=mode, seed=seed)
    if not fa.layers or not fb.layers or fa.profiles is None or fb.profiles is None:
        notes.append("no transformer layers in one model: nothing to compare layer by layer")
        return WeightEvidence(al, None, {}, {}, 0, notes=notes)
    pa, pb = _profiles(fa, al.dims_a), _profiles(fb, al.dims_b)
    sk_a, sk_b = fa.sketches.get(mode, {}), fb.sketches.get(mode, {})
    ca, cb = common(fa.sketch_keys(mode), fb.sketch_keys(mode)) if sk_a and sk_b else (np.zeros(0), np.zeros(0))
    if len(ca) < MIN_SKETCH_ANCHORS:
        notes.append(f"the fingerprints' sketches share {len(ca)} anchor tokens: weight magnitudes not measured")

    def measure(a: int, key: str, b: int, alt: str) -> dict | None:
        sa, sb = sk_a.get((a, key)), sk_b.get((b, alt))
        if sa is None or sb is None or len(ca) < MIN_SKETCH_ANCHORS:
            return None
        return sketch_pair_similarity(sa, ca, sb, cb)

    facts_a, facts_b = fa.meta.get("facts", {}), fb.meta.get("facts", {})
    extra = sorted(set(fa.meta.get("roles", {})) ^ set(fb.meta.get("roles", {})))

    def order(lm: LayerMap) -> tuple[NeuronOrder | None, NeuronAgreement | None]:
        exact = probe_neuron_order(sk_a, ca, sk_b, cb, lm, seed=seed)
        if exact is not None and exact.p_value < ORDER_DECIDES_P:
            return exact, None
        return exact, top_row_agreement(sk_a, ca, sk_b, cb, lm, seed=seed)

    return evidence_from_profiles(al, pa, pb, inferred=bool(facts_a.get("inferred") or facts_b.get("inferred")),
                                  seed=seed, notes=notes, extra_roles=extra,
                                  similarities=lambda lm: layer_similarities(lm, measure, pa.constant_norms,
                                                                             pb.constant_norms),
                                  neuron_test=order if len(ca) >= MIN_SKETCH_ANCHORS else None)


def probe_neuron_order(sk_a: dict, cols_a: np.ndarray, sk_b: dict, cols_b: np.ndarray, lm: LayerMap, *,
                       seed: int) -> NeuronOrder | None:
    """The exact neuron-order test on the probe rows both fingerprints keep at the same neuron ids.

    The probe ids depend only on the layer's width. Under independence, given which of the
    candidate's neurons sit at those ids, their order among them is uniform: the test holds on
    the probes' own rows × rows array, on the anchor columns both fingerprints share.
    """
    key = "mlp.gate" if gated(sk_a) else "mlp.up"
    alternatives = (key, "mlp.up") if key == "mlp.gate" else (key,)  # gate/up may be swapped in a renamed file
    pairs = []
    for a, b, _, _ in lm.best:
        sa = sk_a.get((a, key))
        if sa is None:
            continue
        options = [sb.rows[sb.top:][:, cols_b] for sb in (sk_b.get((b, alt)) for alt in alternatives)
                   if sb is not None and sb.n_out == sa.n_out
                   and np.array_equal(sa.neurons[sa.top:], sb.neurons[sb.top:])]
        if options:
            pairs.append((a, b, sa.rows[sa.top:][:, cols_a], options))
    return neuron_order(pairs, role=f"{key} (fingerprint probe rows)", seed=seed)


def top_row_agreement(sk_a: dict, cols_a: np.ndarray, sk_b: dict, cols_b: np.ndarray, lm: LayerMap, *,
                      seed: int) -> NeuronAgreement | None:
    """Relabelled neurons from fingerprints: the base neurons kept in both the gate and the up sketch are
    matched among the candidate's kept gate rows and kept up rows; a relabelled copy names the same
    neuron twice (the chance rate from decoys, as on full checkpoints: calibrated, not exact). A renamed
    checkpoint's gate and up may be swapped in any layer: each layer tries both readings, at twice the p."""
    if not gated(sk_a):
        return _split_agreement(sk_a, cols_a, sk_b, cols_b, lm, seed=seed)
    layers = []
    for i, (a, b, _, _) in enumerate(lm.best):
        ga, ua = sk_a.get((a, "mlp.gate")), sk_a.get((a, "mlp.up"))
        if ga is None or ua is None:
            continue
        both = np.intersect1d(ga.neurons[:ga.top], ua.neurons[:ua.top])
        if len(both) < MIN_COMMON_NEURONS:
            continue
        rg = {int(n): j for j, n in enumerate(ga.neurons)}
        ru = {int(n): j for j, n in enumerate(ua.neurons)}
        va, vu = ga.rows[[rg[int(n)] for n in both]][:, cols_a], ua.rows[[ru[int(n)] for n in both]][:, cols_a]
        tried = []
        for kg, ku in (("mlp.gate", "mlp.up"), ("mlp.up", "mlp.gate")):
            gb, ub = sk_b.get((b, kg)), sk_b.get((b, ku))
            if gb is not None and ub is not None:
                tried.append(agreement_layer((va, gb.rows[:, cols_b]), (vu, ub.rows[:, cols_b]), seed=seed + i,
                                             base_layer=a, candidate_layer=b, candidate_ids=(gb.neurons, ub.neurons)))
        if tried:
            layers.append(best_of(tried))
    return combine_agreement(layers, views="mlp.gate / mlp.up (fingerprint kept rows, either reading per layer)")


def _split_agreement(sk_a: dict, cols_a: np.ndarray, sk_b: dict, cols_b: np.ndarray, lm: LayerMap, *,
                     seed: int) -> NeuronAgreement | None:
    """Ungated MLPs (a fingerprint keeps only their up rows): the two views are the up rows read on two
    disjoint halves of the anchor tokens; a relabelled copy picks the same partner on both halves."""
    half1, half2 = np.arange(0, len(cols_a), 2), np.arange(1, len(cols_a), 2)
    layers = []
    for i, (a, b, _, _) in enumerate(lm.best):
        ua, ub = sk_a.get((a, "mlp.up")), sk_b.get((b, "mlp.up"))
        if ua is None or ub is None or ua.top < MIN_COMMON_NEURONS:
            continue
        ra, rb = ua.rows[:ua.top][:, cols_a], ub.rows[:, cols_b]
        layers.append(agreement_layer((ra[:, half1], rb[:, half1]), (ra[:, half2], rb[:, half2]), seed=seed + i,
                                      base_layer=a, candidate_layer=b, candidate_ids=(ub.neurons, ub.neurons)))
    return combine_agreement(layers, views="mlp.up on two halves of the anchor tokens (fingerprint kept rows)")
