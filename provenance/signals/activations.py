"""The activation signal: both models read the same probe texts; compare what they compute.

Residual streams give a layer × layer map of debiased CKA (rotation- and width-invariant);
MLP neurons of matched layers give p-values that do not assume shared token ids, because
positions are aligned by character offsets.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from provenance.activations.base import ActivationModel, Captured
from provenance.activations.positions import aligned_positions
from provenance.activations.probes import ProbeSet
from provenance.errors import (
    IncomparableError,
    MissingFileError,
    SourceKindError,
    UnknownFormatError,
)
from provenance.evidence import Evidence, Verdict, confidence
from provenance.io.guard import member
from provenance.io.source import ModelSource, read_shard_index, resolve, safe_join
from provenance.jsonfile import read_json
from provenance.report.pvalues import p_phrase
from provenance.stats.cka import cka_matrix, gram_terms, permuted
from provenance.stats.neurons import neuron_match

MAX_POSITIONS = 1024  # bounds the Gram matrices: n² floats per layer
CKA_NULL_DRAWS = 4  # only the reported spread of CKA under shuffled samples; no verdict uses it
DERIVED_P = 1e-6
MIN_NEURON_EFFECT = 0.2  # median over matched layers of max(in place, gate/up agreement)
INDEPENDENT_P = 1e-2
IDENTICAL_CKA = 0.99
ACTIVATION_STEPS = 5  # progress steps of run_activations: open, capture base, capture candidate, CKA, neurons


@dataclass
class ActivationEvidence:
    """What the activation signal measured, as plain data."""

    probe_set: str
    probe_sha256: str
    positions: int
    tokens: tuple[int, int]
    cka: np.ndarray  # [base layers, candidate layers]
    cka_null_sd: float  # spread of CKA entries with the candidate's samples shuffled
    layer_map: list[tuple[int, int, float]]  # (base layer, candidate layer, CKA) per candidate layer
    neurons: list[dict[str, Any]]  # per matched layer pair
    p_value: float  # combined over layers and tests (Bonferroni: valid under any dependence)
    tests: int
    notes: list[str] = field(default_factory=list)
    neurons_skipped: str = ""  # why the neuron test did not run ("" when it ran)

    @property
    def statistic(self) -> float:
        """Mean CKA of the matched layer pairs."""
        return float(np.mean([c for *_, c in self.layer_map])) if self.layer_map else 0.0


def open_runner(spec: str | Path | ModelSource, *, device: str, tokenizer: Any = None) -> ActivationModel:
    """The runner for a spec, on the weights `resolve` picks for every signal: onnxruntime for ONNX,
    transformers for a GGUF file and for an HF folder (safetensors or pickles, checked to be the files
    transformers loads from it)."""
    source = resolve(spec)
    if source.kind != "checkpoint":
        where = f"{source.spec}: " if source.kind == "endpoint" else ""
        raise SourceKindError(f"{where}{source.what()}, with no weights to run; activations run the model itself",
                              path=source.path)
    if source.weights_format == "onnx":
        from provenance.activations.onnx_runner import OnnxActivationModel

        own = source.tokenizer_files.get("tokenizer.json", Path(source.folder or ".") / "tokenizer.json")
        return OnnxActivationModel(source.weights[0], tokenizer=tokenizer if tokenizer is not None else own)
    from provenance.activations.torch_runner import TorchActivationModel

    if source.weights_format == "gguf":
        return TorchActivationModel(source.weights[0], device=device, tokenizer=tokenizer)
    return TorchActivationModel(_transformers_folder(source), device=device, tokenizer=tokenizer)


def _transformers_folder(source: ModelSource) -> Path:
    """The folder transformers loads, once checked that it loads exactly the weights the weight signal reads
    (transformers picks by its own rule, which config.json's `transformers_weights` can redirect)."""
    folder = Path(source.folder or ".")
    if source.config_file is None:
        return folder  # the runner says that activations need a config
    config = read_json(source.config_file)
    loads = _transformers_weights(source, config if isinstance(config, dict) else {})
    if loads is None:
        raise UnknownFormatError("its transformers_weights names no safetensors file or index, which transformers "
                                 "refuses; activations cannot run this folder", path=source.config_file)
    if loads != {os.path.abspath(p) for p in source.weights}:
        said = ", ".join(sorted(Path(p).name for p in loads)) or "no weights file it knows"
        raise UnknownFormatError(f"transformers would run {said} from this folder, but the weight signal reads "
                                 f"{', '.join(p.name for p in source.weights)}; activations must run the same "
                                 "weights: keep one model's weights in the folder", path=folder)
    return folder


def _transformers_weights(source: ModelSource, config: dict[str, Any]) -> set[str] | None:
    """Absolute paths of the files `from_pretrained` loads from the source's folder; None for a name it refuses."""
    folder = Path(source.folder or ".")
    explicit = config.get("transformers_weights")
    if explicit is not None:
        if not isinstance(explicit, str) or not explicit.endswith((".safetensors", ".safetensors.index.json")):
            return None
        name: str | None = explicit
    else:
        name = next((n for n in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                                 "pytorch_model.bin.index.json") if (folder / n).is_file()), None)
    if name is None:
        return set()
    file = safe_join(folder, name, source.config_file or folder)
    if not name.endswith(".index.json"):
        return {os.path.abspath(file)}
    shards = read_shard_index(member(source.root or folder, file)).values()
    return {os.path.abspath(safe_join(folder, s, file)) for s in shards}


def open_pair(base: str | Path | ModelSource, candidate: str | Path | ModelSource, *, device: str,
              notes: list[str]) -> tuple[ActivationModel, ActivationModel]:
    """Both runners, each on its resolved source; a side without a tokenizer borrows the other's (and the
    notes say so)."""
    base, candidate = resolve(base), resolve(candidate)
    try:
        a = open_runner(base, device=device)
    except MissingFileError:
        b = open_runner(candidate, device=device)
        notes.append("the base ships no tokenizer: it read the candidate's")
        return open_runner(base, device=device, tokenizer=tokenizer_file_of(b)), b
    try:
        b = open_runner(candidate, device=device)
    except MissingFileError:
        notes.append("the candidate ships no tokenizer: it read the base's")
        b = open_runner(candidate, device=device, tokenizer=tokenizer_file_of(a))
    return a, b


def tokenizer_file_of(m: ActivationModel) -> Any:
    """What a runner tokenizes with, in a form the other runner accepts."""
    return getattr(m, "tokenizer_file", None) or getattr(m, "tokenizer", None)


def activation_evidence(a: ActivationModel, b: ActivationModel, probes: ProbeSet, *, seed: int = 0,
                        batch_size: int = 8, notes: list[str] | None = None,
                        max_positions: int = MAX_POSITIONS, stats_device: str = "cpu",
                        progress: Callable[[int], None] | None = None) -> ActivationEvidence:
    """Run both models on the probes at aligned positions; CKA map, neuron tests, combined p-value.

    `stats_device` runs the neuron correlations (the costly part for wide MLPs) on that device;
    `progress(1)` is called after each of the 4 steps (capture base, capture candidate, CKA, neurons).
    """
    step = progress or (lambda _n: None)
    notes = list(notes or [])
    texts = list(probes.texts)
    ea, eb = a.encode(texts), b.encode(texts)
    per_text = max(1, math.ceil(max_positions / len(texts)))
    pos_a, pos_b, where = aligned_positions(ea, eb, per_text=per_text)
    ca = a.capture(ea, pos_a, batch_size=batch_size)
    step(1)
    cb = b.capture(eb, pos_b, batch_size=batch_size)
    step(1)
    n = len(where)
    if n < 32:
        raise IncomparableError(f"only {n} token positions end at the same character in both tokenizations; "
                               "the models cannot be compared on the same text spans")
    ta, tb = gram_terms(list(ca.residual)), gram_terms(list(cb.residual))
    cka = cka_matrix(ta, tb)
    rng = np.random.default_rng(seed)
    null = np.stack([cka_matrix(ta, permuted(tb, rng.permutation(n))) for _ in range(CKA_NULL_DRAWS)])
    layer_map = [(int(np.argmax(cka[:, j])), j, float(cka[:, j].max())) for j in range(cka.shape[1])]
    step(1)
    neurons = _neuron_tests(ca, cb, layer_map, seed, stats_device)
    step(1)
    tests = sum(t["pairs_tried"] * (1 if t["p_agreement"] is None else 2) for t in neurons)
    layer_map = _refined_map(layer_map, neurons, cka, tests)
    p = min(1.0, min(_layer_p(t) for t in neurons) * tests) if neurons else 1.0
    notes += [note for note in dict.fromkeys(ca.notes + cb.notes) if note not in notes]
    skipped = "" if neurons else _why_no_neurons(ca, cb)
    if skipped:
        notes.append(f"MLP neuron test not run: {skipped}; CKA only")
    return ActivationEvidence(probes.version, probes.sha256, n, (ca.tokens, cb.tokens), cka, float(null.std()),
                              layer_map, neurons, p, tests, notes, skipped)


def _why_no_neurons(ca: Captured, cb: Captured) -> str:
    """Why no layer pair had its neurons tested, in words."""
    for side, c in (("base", ca), ("candidate", cb)):
        if not c.mlp:
            return f"the {side}'s MLP neurons were not captured ({c.missing or 'no hook point gives them'})"
    return (f"the base's MLP views ({', '.join(sorted(ca.mlp))}) and the candidate's ({', '.join(sorted(cb.mlp))}) "
            "differ (gated vs plain MLP): their neurons are not comparable")


def _candidate_pairs(layer_map: list[tuple[int, int, float]], n_a: int, n_b: int) -> dict[int, list[int]]:
    """Base layers to test each candidate layer against: the CKA match, the same index, the same depth
    fraction (first and last base layer of the span it would keep in a depth-pruned copy).

    CKA's best match drifts in fine-tuned top layers and between depths; neurons tell which one holds.
    """
    out: dict[int, list[int]] = {}
    for i, j, _ in layer_map:
        first, last = min(n_a - 1, j * n_a // n_b), min(n_a - 1, round((j + 1) * n_a / n_b) - 1)
        out[j] = sorted({i, first, last} | ({j} if j < n_a else set()))
    return out


def _neuron_tests(ca: Captured, cb: Captured, layer_map: list[tuple[int, int, float]], seed: int,
                  device: str = "cpu") -> list[dict]:
    """Per candidate layer, the most significant neuron match among its candidate base layers."""
    if set(ca.mlp) != set(cb.mlp) or not ca.mlp:
        return []
    gated = "gate" in ca.mlp
    out = []
    for j, bases in _candidate_pairs(layer_map, len(ca.residual), len(cb.residual)).items():
        best: dict | None = None
        for i in bases:
            if gated:
                r = neuron_match(ca.mlp["gate"][i], ca.mlp["up"][i], cb.mlp["gate"][j], cb.mlp["up"][j],
                                 seed=seed + j, device=device)
            else:
                r = neuron_match(ca.mlp["act"][i], None, cb.mlp["act"][j], None, seed=seed + j, device=device)
            row = {"base_layer": i, "candidate_layer": j, "in_place": round(r.in_place, 6), "p_in_place": r.p_in_place,
                   "agreement": None if r.agreement is None else round(r.agreement, 6),
                   "chance_agreement": None if r.chance_agreement is None else round(r.chance_agreement, 6),
                   "p_agreement": r.p_agreement, "pairs_tried": len(bases)}
            if best is None or _layer_p(row) < _layer_p(best):
                best = row
        out.append(best)
    return out


def _refined_map(layer_map: list[tuple[int, int, float]], neurons: list[dict], cka: np.ndarray,
                 tests: int) -> list[tuple[int, int, float]]:
    """Where a candidate layer's neurons clearly match one base layer, that layer is its match; else CKA's."""
    by_candidate = {t["candidate_layer"]: t["base_layer"] for t in neurons if _layer_p(t) * tests < DERIVED_P}
    return [(by_candidate.get(j, i), j, float(cka[by_candidate.get(j, i), j])) for i, j, _ in layer_map]


def _layer_p(row: dict) -> float:
    return min(row["p_in_place"], row["p_agreement"] if row["p_agreement"] is not None else 1.0)


def neuron_effect(ev: ActivationEvidence) -> float:
    """Median over candidate layers of the stronger neuron statistic (in place, or gate/up agreement)."""
    vals = [max(t["in_place"], t["agreement"] or 0.0) for t in ev.neurons]
    return float(np.median(vals)) if vals else 0.0


def carrying_layers(ev: ActivationEvidence) -> list[dict]:
    """Layer pairs whose own neuron test clears the derived bar after correction for every test run."""
    return [t for t in ev.neurons if _layer_p(t) * ev.tests < DERIVED_P and
            max(t["in_place"], t["agreement"] or 0.0) >= MIN_NEURON_EFFECT]


def activation_verdict(ev: ActivationEvidence) -> Verdict:
    """identical behaviour | derived | independent | inconclusive, from the activations alone."""
    same_depth = ev.cka.shape[0] == ev.cka.shape[1] and all(i == j for i, j, _ in ev.layer_map)
    min_cka = min((c for *_, c in ev.layer_map), default=0.0)
    effect = neuron_effect(ev)
    carried = carrying_layers(ev)
    if ev.p_value < DERIVED_P and len(carried) >= min(2, len(ev.neurons)):
        if same_depth and min_cka >= IDENTICAL_CKA and effect >= 0.9:
            moved = float(np.median([t["in_place"] for t in ev.neurons])) < 0.5
            return Verdict("identical", "same behaviour" + (", neurons permuted" if moved else ""),
                           confidence("identical", ev.p_value), ev.p_value,
                           f"Every layer computes the same thing (CKA ≥ {min_cka:.3f}); {effect:.0%} of MLP neurons "
                           + ("correspond under one consistent permutation (gate and up matchings agree)." if moved
                              else "match their own index."))
        return Verdict("derived", "MLP neurons inherited", confidence("derived", ev.p_value), ev.p_value,
                       f"MLP neurons of {len(carried)} of {len(ev.neurons)} candidate layers correspond to base "
                       f"neurons far beyond chance (layers {_pairs_text(carried)}; combined {p_phrase(ev.p_value)}); "
                       f"mean matched-layer CKA {ev.statistic:.3f}.")
    if ev.neurons_skipped:
        return Verdict("inconclusive", None, confidence("inconclusive", ev.p_value), ev.p_value,
                       f"The MLP neuron test was not run ({ev.neurons_skipped}); the residual streams' CKA "
                       f"(mean best-layer {ev.statistic:.3f}) cannot decide alone.")
    if ev.p_value > INDEPENDENT_P or not ev.neurons:
        label = "independent" if ev.neurons else "inconclusive"
        return Verdict(label, None, confidence(label, ev.p_value), ev.p_value,
                       f"No MLP neuron correspondence beyond chance (median {effect:.1%}); mean best-layer CKA "
                       f"{ev.statistic:.3f}, which independent models on the same text also reach.")
    return Verdict("inconclusive", None, confidence("inconclusive", ev.p_value), ev.p_value,
                   f"Some neuron correspondence (median {effect:.1%}, {p_phrase(ev.p_value)}) but below the bar.")


def activation_items(ev: ActivationEvidence) -> list[Evidence]:
    """The neuron test with its p-value (or why it did not run), then the CKA layer map."""
    carried, skipped = carrying_layers(ev), ev.neurons_skipped
    items = [Evidence("activations", None if skipped else round(neuron_effect(ev), 6), None if skipped else ev.p_value,
                      f"The MLP neuron test was not run: {skipped}." if skipped else
                      f"{len(carried)} of {len(ev.neurons)} candidate layers have MLP neurons that correspond to "
                      f"base neurons beyond chance at {ev.positions} aligned positions of {ev.probe_set}.",
                      {"test": "matched neurons: in place (exchangeable labels) and gate/up agreement "
                               "(shuffled-sample null); Bonferroni over layers", "tests": ev.tests,
                       "probe_set": ev.probe_set, "probe_sha256": ev.probe_sha256, "positions": ev.positions,
                       "tokens": list(ev.tokens), "per_layer": ev.neurons,
                       "carried_by": [[t["base_layer"], t["candidate_layer"]] for t in carried],
                       **({"not_run": skipped} if skipped else {})}, kind="neurons")]
    items.append(Evidence("activations", round(ev.statistic, 6), None,
                          f"Debiased CKA of the residual streams: mean {ev.statistic:.3f} over matched layers "
                          f"(shuffled samples: ±{ev.cka_null_sd:.3f}).",
                          {"cka": np.round(ev.cka, 6).tolist(), "null_sd": round(ev.cka_null_sd, 6),
                           "layer_map": [[i, j, round(c, 6)] for i, j, c in ev.layer_map], "notes": ev.notes},
                          kind="cka"))
    return items


def run_activations(base: str | Path, candidate: str | Path, *, device: str = "auto", seed: int = 0,
                    probe_texts: int = 64, batch_size: int = 8,
                    progress: Callable[[int], None] | None = None) -> ActivationEvidence:
    """Open both models' runners, run `probe_texts` of the shipped probes through both, close them.

    `progress(1)` is called after each of the ACTIVATION_STEPS steps.
    """
    from provenance.activations.probes import load_probes

    notes: list[str] = []
    a, b = open_pair(base, candidate, device=device, notes=notes)
    if progress:
        progress(1)
    try:
        stats_device = "cuda" if str(device).startswith("cuda") or (
            device == "auto" and torch.cuda.is_available()) else "cpu"
        return activation_evidence(a, b, load_probes().subset(probe_texts), seed=seed, batch_size=batch_size,
                                   notes=notes, stats_device=stats_device, progress=progress)
    finally:
        a.close()
        b.close()


def _pairs_text(rows: list[dict]) -> str:
    """'0->0, 2->1, ...' (base -> candidate), at most 8 shown."""
    pairs = [f"{t['base_layer']}->{t['candidate_layer']}" for t in rows]
    return ", ".join(pairs[:8]) + (f", +{len(pairs) - 8} more" if len(pairs) > 8 else "")
