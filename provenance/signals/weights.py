"""The weight signal: align residual dims, stream profiles of both models, map layers, test.

Reads each tensor once: both embeddings first (for the alignment), then every profiled
role of the base, then of the candidate. Keeps only profiles and small sketches.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from provenance import fastpath, heap
from provenance.arch.view import CanonicalModel, materialize
from provenance.blas import single_threaded
from provenance.io.convert import resolve_device
from provenance.signals.align import (
    ResidualAlignment,
    align_residual,
    align_rotation,
    subsample_rows,
)
from provenance.signals.direct import sketch_similarity
from provenance.signals.layermap import (
    SWAPPABLE,
    SWAPPABLE_INFERRED,
    LayerMap,
    describe_map,
    match_layers,
)
from provenance.signals.profiles import (
    PROFILE_KEYS,
    Profiles,
    compute_profiles,
    gated,
    profile_order,
)
from provenance.signals.stream import RoleStream, maps_files
from provenance.stats.neuron_order import (
    LayerOrder,
    NeuronAgreement,
    NeuronOrder,
    neuron_agreement,
    neuron_order,
    neuron_order_layer,
)
from provenance.vocab.model import Vocabulary
from provenance.vocab.token_map import TokenMap, shared_tokens

MIN_SHARED_TOKENS = 64
# base key -> candidate keys (k and v are sketched only where the candidate's roles were inferred)
SKETCH_PAIRS = (("attn.q", ("attn.q", "attn.k", "attn.v")), ("mlp.up", ("mlp.up", "mlp.gate")))


@dataclass
class WeightEvidence:
    """Everything the weight signal measured, as plain data."""

    alignment: ResidualAlignment | None
    layer_map: LayerMap | None
    map_facts: dict
    similarity: dict  # medians of direct / matched cosine and relative change over matched layers
    comparable: int  # profiled role kinds present in both models
    problems: list[str] = field(default_factory=list)
    only_in: dict[str, list[str]] = field(default_factory=dict)  # role kinds one model lacks
    notes: list[str] = field(default_factory=list)
    neuron_order: NeuronOrder | None = None  # the exact test; None where no MLP rows could be compared
    neuron_agreement: NeuronAgreement | None = None  # relabelled neurons (calibrated by decoys)


def _embedding_pairs(base: CanonicalModel, cand: CanonicalModel, token_map: TokenMap | None,
                     notes: list[str]) -> tuple[list[int], list[int], str]:
    """Embedding rows to pair: by shared token bytes when both tokenizers are known, else by id."""
    rows_a = base.roles.roles["embed"].shape[0]
    rows_b = cand.roles.roles["embed"].shape[0]
    if token_map is not None:
        m = token_map.within(rows_a, rows_b)
        if len(m) >= MIN_SHARED_TOKENS:
            return m.base_ids.tolist(), m.candidate_ids.tolist(), "token strings"
        notes.append(f"only {len(m)} tokens shared; embedding rows paired by id instead")
    else:
        notes.append("no tokenizer on one side or both: embedding rows paired by token id")
    n = min(rows_a, rows_b)
    return list(range(n)), list(range(n)), "token ids"


def align_models(base: CanonicalModel, cand: CanonicalModel, *, device: str, seed: int,
                 notes: list[str], token_map: TokenMap | None = None,
                 then: Callable[[], None] | None = None) -> ResidualAlignment | None:
    """Residual alignment from the two embeddings (None when either has no embedding).

    `then()` runs once both embeddings are read, before the alignment is computed (to start the next
    reads while it computes). On the fast path only the rows the alignment keeps are widened.
    """
    if "embed" not in base.roles.roles or "embed" not in cand.roles.roles:
        notes.append("no embedding in one model: residual dimensions cannot be aligned")
        return None
    ia, ib, how = _embedding_pairs(base, cand, token_map, notes)
    keep = subsample_rows(len(ia), seed) if fastpath.enabled() else None
    if keep is not None:  # the same rows align_residual and align_rotation would keep of all of them
        ia, ib = [ia[k] for k in keep], [ib[k] for k in keep]
    ea, eb = _embedding_rows(base, ia, device), _embedding_rows(cand, ib, device)  # gather rows, then widen
    if then is not None:
        then()
    return align_rotation(ea, eb, align_residual(ea, eb, paired_by=how, seed=seed), seed=seed)


def _embedding_rows(model: CanonicalModel, rows: list[int], device: str) -> np.ndarray:
    """Float32 embedding rows `rows`; on the fast CPU path gathered from the mapped file, which is read
    at the disk's pace in one go and never copied whole."""
    reader = model.checkpoint.reader
    if not maps_files(model, resolve_device(device)):
        return model.tensor("embed", device=device)[rows].float().cpu().numpy()
    src = model.roles.roles["embed"]
    mfile, offset, nbytes = reader.mapping(src.tensor)
    mfile.populate(offset, nbytes)
    try:
        return materialize(reader.read_mapped(src.tensor), src)[rows].float().numpy()
    finally:
        mfile.release(offset, nbytes)


# One thread beside the two reduction threads, and drained before the layer map's products start: more would
# only take cores from them (every product runs on one BLAS thread, so no overlap changes a bit).
TAIL_WORKERS = 1


class _Tail:
    """Per-layer tests of same-numbered layer pairs, started while the candidate still streams (fast path).

    The layer map is known only once every profile is in, but a derived model's map is mostly the
    identity: each candidate sketch is measured against the same-numbered base layer's as it arrives,
    on a background thread, and the final tests take those results wherever they ask for the very same
    arguments (the same sketches and seed); anything else is computed then, as on the plain path.
    """

    def __init__(self, pa: Profiles, base_layers: list[int], cand_layers: list[int], *, inferred: bool,
                 seed: int) -> None:
        self.pa, self.seed = pa, seed
        self.partner = dict(zip(cand_layers, base_layers))
        self.position = {b: j for j, b in enumerate(cand_layers)}
        key = "mlp.gate" if gated(pa.sketches) else "mlp.up"
        self.order_key, self.order_alts = key, ((key, "mlp.up") if inferred and key == "mlp.gate" else (key,))
        self.pool = (ThreadPoolExecutor(TAIL_WORKERS, thread_name_prefix="provenance-tail") if fastpath.enabled()
                     else None)
        self.similar: dict[tuple[int, str, int, str], Future] = {}
        self.order: dict[tuple[int, int, str, int], Future] = {}

    def sketched(self, b: int, alt: str, sketch: np.ndarray) -> None:
        """A candidate sketch was kept: start its measurements against the same-numbered base layer."""
        if self.pool is None or b not in self.partner:
            return
        a = self.partner[b]
        for key, alternatives in SKETCH_PAIRS:
            if alt in alternatives and (a, key) in self.pa.sketches:
                self.similar[(a, key, b, alt)] = self.pool.submit(sketch_similarity, self.pa.sketches[(a, key)],
                                                                  sketch, seed=self.seed)
        rows = self.pa.sketches.get((a, self.order_key))
        if alt in self.order_alts and rows is not None and rows.shape == sketch.shape and rows.shape[0] >= 16:
            s = self.seed + self.position[b]  # the layer's seed if every layer before it is tested too
            self.order[(a, b, alt, s)] = self.pool.submit(neuron_order_layer, rows, sketch, seed=s, base_layer=a,
                                                          candidate_layer=b)

    def similarity(self, a: int, key: str, b: int, alt: str, sa: np.ndarray, sb: np.ndarray) -> dict:
        f = self.similar.get((a, key, b, alt))
        return dict(f.result()) if f is not None else sketch_similarity(sa, sb, seed=self.seed)

    def layer_order(self, a: int, b: int, alt: str, seed: int, rows_a: np.ndarray, rows_b: np.ndarray) -> LayerOrder:
        f = self.order.get((a, b, alt, seed))
        if f is not None:
            return replace(f.result())  # a copy: best_of scales the p it keeps in place
        return neuron_order_layer(rows_a, rows_b, seed=seed, base_layer=a, candidate_layer=b)

    def drain(self) -> None:
        """Wait for every test started early (the layer map's products then have the cores to themselves)."""
        for f in [*self.similar.values(), *self.order.values()]:
            f.exception()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _similarities(pa: Profiles, pb: Profiles, lm: LayerMap, seed: int, tail: _Tail | None = None) -> dict:
    def measure(a: int, key: str, b: int, alt: str) -> dict | None:
        if (a, key) not in pa.sketches or (b, alt) not in pb.sketches:
            return None
        if tail is not None:
            return tail.similarity(a, key, b, alt, pa.sketches[(a, key)], pb.sketches[(b, alt)])
        return sketch_similarity(pa.sketches[(a, key)], pb.sketches[(b, alt)], seed=seed)

    return layer_similarities(lm, measure, pa.constant_norms, pb.constant_norms)


def neuron_order_test(pa: Profiles, pb: Profiles, lm: LayerMap, *, inferred: bool, seed: int,
                      tail: _Tail | None = None) -> NeuronOrder | None:
    """The exact neuron-order test on every candidate layer's best base layer, from the MLP input sketches.

    Gated MLPs use the gate rows, others the up rows. Where roles were inferred from shapes, gate and
    up may be swapped: each layer tests both and keeps the better at twice its p (Bonferroni).
    """
    key = "mlp.gate" if gated(pa.sketches) else "mlp.up"
    alternatives = (key, "mlp.up") if inferred and key == "mlp.gate" else (key,)
    named = [(a, b, pa.sketches[(a, key)], [alt for alt in alternatives if (b, alt) in pb.sketches])
             for a, b, _, _ in lm.best if (a, key) in pa.sketches]
    named = [x for x in named if x[3]]
    pairs = [(a, b, rows, [pb.sketches[(b, alt)] for alt in alts]) for a, b, rows, alts in named]
    role = key if len(alternatives) == 1 else f"{key} (or {alternatives[1]}: roles inferred)"
    if tail is None or tail.pool is None:
        return neuron_order(pairs, role=role, seed=seed)
    alts_of = {(a, b): alts for a, b, _, alts in named}

    def early(ra: np.ndarray, rb: np.ndarray, s: int, la: int, lb: int, j: int) -> LayerOrder:
        return tail.layer_order(la, lb, alts_of[(la, lb)][j], s, ra, rb)  # the tail's result where it has one

    return neuron_order(pairs, role=role, seed=seed, layer_test=early)


ORDER_DECIDES_P = 1e-6  # where the exact test is this small, the relabelled-neuron test is not run


def neuron_tests(pa: Profiles, pb: Profiles, lm: LayerMap, *, inferred: bool, seed: int,
                 tail: _Tail | None = None) -> tuple[NeuronOrder | None, NeuronAgreement | None]:
    """The exact neuron-order test, and the relabelled-neuron test only where the exact one is silent."""
    order = neuron_order_test(pa, pb, lm, inferred=inferred, seed=seed, tail=tail)
    if order is not None and order.p_value < ORDER_DECIDES_P:
        return order, None
    return order, neuron_agreement_test(pa, pb, lm, inferred=inferred, seed=seed)


def neuron_agreement_test(pa: Profiles, pb: Profiles, lm: LayerMap, *, inferred: bool,
                          seed: int) -> NeuronAgreement | None:
    """Relabelled neurons: gate and up rows (or up rows and down columns) must pick the same partner.

    Where roles were inferred, the candidate's gate and up may be swapped: both readings are tried, the
    better kept at twice its p.
    """
    gate = gated(pa.sketches)
    k1, k2 = ("mlp.gate", "mlp.up") if gate else ("mlp.up", "mlp.down")
    readings = [(k1, k2), (k2, k1)] if inferred and gate else [(k1, k2)]
    tried = []
    for c1, c2 in readings:
        pairs = [(a, b, (pa.sketches[(a, k1)], pb.sketches[(b, c1)]), (pa.sketches[(a, k2)], pb.sketches[(b, c2)]))
                 for a, b, _, _ in lm.best
                 if (a, k1) in pa.sketches and (a, k2) in pa.sketches and (b, c1) in pb.sketches
                 and (b, c2) in pb.sketches]
        r = neuron_agreement(pairs, views=f"{k1} / {k2}" + ("" if c1 == k1 else " (candidate's read swapped)"),
                             seed=seed)
        if r is not None:
            tried.append(r)
    if not tried:
        return None
    best = min(tried, key=lambda r: r.p_value)
    best.p_value = min(1.0, best.p_value * len(readings))  # every reading counts, whether it found layers or not
    return best


def layer_similarities(lm: LayerMap, measure: Callable[[int, str, int, str], dict | None],
                       base_constant_norms: float | None, candidate_constant_norms: float | None) -> dict:
    """Medians over matched layers of `measure(base layer, key, candidate layer, alternative key)`.

    `measure` returns `sketch_similarity`'s fields, or None where either side kept no sketch; an
    optional `pairing` field, when present, chooses between alternative keys instead of `matched`.
    """
    rows = []
    for a, b, _ in lm.pairs:
        for key, alternatives in SKETCH_PAIRS:
            found = [r for r in (measure(a, key, b, alt) for alt in alternatives) if r is not None]
            if found:  # gate/up may be swapped in a renamed checkpoint: take the better pairing
                rows.append({**max(found, key=lambda r: r.get("pairing", r["matched"])), "key": key})

    def med(name: str) -> float | None:
        vals = [r[name] for r in rows if r[name] is not None]
        return round(float(np.median(vals)), 6) if vals else None

    scales = [abs(np.log(r["scale"])) for r in rows if r["scale"] and r["scale"] > 0]
    in_place = [np.median([r["neurons_in_place"] for r in rows if r["key"] == key and r["neurons_in_place"] is not None])
                for key, _ in SKETCH_PAIRS if any(r["key"] == key and r["neurons_in_place"] is not None for r in rows)]
    return {"direct_cosine": med("direct"), "matched_cosine": med("matched"), "relative_change": med("rel_change"),
            "neurons_in_place": round(float(min(in_place)), 6) if in_place else None, "sketches_compared": len(rows),
            "max_abs_log_scale": round(float(max(scales)), 6) if scales else None,
            "base_constant_norms": base_constant_norms, "candidate_constant_norms": candidate_constant_norms}


def weight_evidence(base: CanonicalModel, cand: CanonicalModel, *, device: str = "cpu", seed: int = 0,
                    progress: Callable[[int], None] | None = None,
                    vocabularies: tuple[Vocabulary | None, Vocabulary | None] | None = None,
                    token_map: TokenMap | None = None) -> WeightEvidence:
    """Align, profile and test; never raises on shape mismatches — it reports what was comparable.

    Embedding rows are paired through `token_map` (or the map of `vocabularies`) when given.
    """
    with single_threaded():  # the same bits on any machine, and no BLAS workers spinning beside the stream
        return _weight_evidence(base, cand, device, seed, progress, vocabularies, token_map)


def _weight_evidence(base: CanonicalModel, cand: CanonicalModel, device: str, seed: int,
                     progress: Callable[[int], None] | None,
                     vocabularies: tuple[Vocabulary | None, Vocabulary | None] | None,
                     token_map: TokenMap | None) -> WeightEvidence:
    notes: list[str] = []
    if token_map is None and vocabularies is not None and None not in vocabularies:
        token_map = shared_tokens(*vocabularies)  # type: ignore[arg-type]
    streams = RoleStream(base, device), RoleStream(cand, device)
    tail: _Tail | None = None
    streams[0].then = lambda: streams[1].start(profile_order(cand))  # the candidate's reads follow the base's
    try:
        al = align_models(base, cand, device=device, seed=seed, notes=notes, token_map=token_map,
                          then=lambda: streams[0].start(profile_order(base)))
        heap.give_back()  # the alignment's large temporaries are freed: the peak should not keep their pages
        if al is None or not base.roles.layers or not cand.roles.layers:
            if al is not None:
                notes.append("no transformer layers in one model: nothing to compare layer by layer")
            return WeightEvidence(al, None, {}, {}, 0, notes=notes)
        norms = not (base.roles.inferred or cand.roles.inferred)  # inferred norms may be the wrong vectors
        pa = compute_profiles(base, al.dims_a, np.ones_like(al.signs), device=device, progress=progress,
                              sketch_norms=norms, stream=streams[0])
        inferred = base.roles.inferred or cand.roles.inferred
        tail = _Tail(pa, base.roles.layers, cand.roles.layers, inferred=inferred, seed=seed)
        pb = compute_profiles(cand, al.dims_b, al.signs, device=device, progress=progress,
                              projection=al.projection, sketch_norms=norms, stream=streams[1],
                              sketched=tail.sketched)
        extra = sorted(set(base.roles.roles) ^ set(cand.roles.roles))
        tail.drain()
        return evidence_from_profiles(al, pa, pb, inferred=inferred, seed=seed, notes=notes, extra_roles=extra,
                                      similarities=lambda lm: _similarities(pa, pb, lm, seed, tail),
                                      neuron_test=lambda lm: neuron_tests(pa, pb, lm, inferred=inferred,
                                                                          seed=seed, tail=tail))
    finally:
        for s in streams:
            s.close()
        if tail is not None:
            tail.close()


def evidence_from_profiles(al: ResidualAlignment, pa: Profiles, pb: Profiles, *, inferred: bool, seed: int,
                           notes: list[str], extra_roles: list[str],
                           similarities: Callable[[LayerMap], dict],
                           neuron_test: Callable[[LayerMap], tuple[NeuronOrder | None, NeuronAgreement | None]] | None
                           = None) -> WeightEvidence:
    """The layer test and magnitudes from two models' aligned profiles (checkpoints or fingerprints).

    `similarities(layer_map)` measures the matched layers' weight magnitudes from whatever sketches the
    inputs keep; `neuron_test(layer_map)` runs the neuron-order and agreement tests where full MLP sketches
    exist.
    """
    valid_a = ~np.isnan(pa.values).any(axis=-1)
    valid_b = ~np.isnan(pb.values).any(axis=-1)
    comparable = int(sum(1 for k in range(len(PROFILE_KEYS)) if valid_a[:, k].any() and valid_b[:, k].any()))
    problems = [f"base {p}" for p in pa.problems] + [f"candidate {p}" for p in pb.problems]
    only_in = {"base": [k for i, k in enumerate(PROFILE_KEYS) if valid_a[:, i].any() and not valid_b[:, i].any()],
               "candidate": [k for i, k in enumerate(PROFILE_KEYS) if valid_b[:, i].any() and not valid_a[:, i].any()]}
    if extra_roles:
        notes.append(f"{len(extra_roles)} roles exist in only one model (e.g. {', '.join(extra_roles[:4])})")
    if comparable == 0:
        notes.append("no profiled role (q/k/v/o, MLP) is present and finite in both models")
        return WeightEvidence(al, None, {}, {}, 0, problems, only_in, notes)
    with single_threaded():  # nests in weight_evidence's; fingerprints' comparisons come here directly
        lm = match_layers(pa.values, pb.values, pa.layers, pb.layers, seed=seed,
                          swappable=SWAPPABLE_INFERRED if inferred else SWAPPABLE)
        order, agreement = neuron_test(lm) if neuron_test is not None else (None, None)
        return WeightEvidence(al, lm, describe_map(lm), similarities(lm), comparable, problems, only_in, notes,
                              order, agreement)
