"""What a related pair is, in words: short tags for machines, sentences for people.

`describe` and `copy_relation` are the one place these words are made. `evidence.decide` calls
them for full and fingerprint comparisons alike, so compare, identify and audit name a pair the
same way, and the audit's lineage reads the same tags back for its arrows. Tags carry no
measurement (a full comparison and a fingerprint one estimate weight magnitudes differently, so
numbers in a label would make the two disagree); the sentences carry the numbers.

The first tag is the best-supported relation, said as one sentence a reader can quote; the
other tags are further observations, each with its own sentence; notes add what is seen but
changes no label (an alternative reading, a rescaled embedding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

# Tags, in the order they are listed: structure, then disguises, then how far the weights moved.
SUBSET = "layer subset"
BASE_SUBSET = "base is a layer subset"
UPSCALED = "depth up-scaled"
BASE_UPSCALED = "base is depth up-scaled"
REORDERED = "layers re-ordered"
WIDTH = "width pruned or grown"
VOCAB = "vocabulary changed"
RESIDUAL = "residual dimensions permuted"
ROTATED = "residual stream rotated"
NEURONS = "neurons/heads permuted"
RESCALED = "rescaled tensors"
FOLDED = "norm weights folded"
RENAMED = "tensors renamed"
UNSCORED = "NaN/Inf or all-zero tensors"
TRAINED = "fine-tune or perturbation"
LORA = "LoRA-merged fine-tune"  # the update (candidate − base) is low rank
HEAVY = "merged with another model or heavily modified"
DERIVED = "derived (modified weights)"  # related, and nothing more specific measured
# Copies (label `identical`): the weights differ by no more than storage explains.
BYTES = "byte-identical files"
TENSORS = "byte-identical tensors"  # found by content (per-tensor sha256), whatever the names; identical or derived
EXACT = "exact copy"
DTYPE = "dtype or format change"
QUANTIZED = "quantized copy"

SHORT = {TRAINED: "fine-tune", LORA: "LoRA fine-tune", HEAVY: "merged or modified", BASE_SUBSET: "layer subset",
         BASE_UPSCALED: "depth up-scaled", DERIVED: "derived"}  # a few words for a graph's edge
DUPLICATE_RATIO = 0.995  # a layer matched this equally by two layers of the deeper model is copied, not trained
HEAVY_EMBEDDING_R = 0.8  # aligned embeddings correlating less than this: merged or heavily modified
HEAVY_COSINE = 0.85  # the same reading from the weights' cosine, where no alignment was made
RESCALE_NOISE = 0.001  # relative change that undoing a rescaling leaves (measured: 0.03% on a rescaled SmolLM2)
ORDINALS = {2: "second", 3: "third", 4: "fourth", 5: "fifth"}


@dataclass(frozen=True)
class Relation:
    """Tags (most telling first) with one sentence each, and notes that change no label."""

    tags: list[str] = field(default_factory=list)
    sentences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The machine-readable relation: the tags, comma-separated."""
        return ", ".join(self.tags)

    @property
    def text(self) -> str:
        """What a reader gets: the relation's sentence first, then the observations, then the notes."""
        return " ".join(self.sentences + self.notes)


def short_tag(relation: str | None) -> str:
    """The first tag of a relation string, in a few words (for an edge of the lineage graph).

    >>> short_tag("layer subset, fine-tune or perturbation"), short_tag("fine-tune or perturbation")
    ('layer subset', 'fine-tune')
    """
    first = (relation or "").split(", ")[0].strip()
    return SHORT.get(first, first)


def exact_duplicates(sim: np.ndarray, base_deeper: bool) -> list[int]:
    """Positions (in the shallower model) of layers two layers of the deeper model match equally well.

    `sim` is [base layers, candidate layers]. Adjacent layers of a real 12-layer BERT match a
    6-layer student at ratios 0.88-0.97, so only near-equal matches (`DUPLICATE_RATIO`) count.

    >>> exact_duplicates(np.array([[0.9, 0.0], [0.9, 0.1], [0.1, 0.8]]), base_deeper=True)
    [0]
    """
    rows = np.asarray(sim, dtype=float)
    rows = rows.T if base_deeper else rows  # rows: the shallower model's layers
    if rows.ndim != 2 or rows.shape[1] < 2:
        return []
    top = np.sort(np.nan_to_num(rows, nan=0.0), axis=1)[:, ::-1]
    return [int(i) for i in np.flatnonzero((top[:, 0] > 0) & (top[:, 1] >= DUPLICATE_RATIO * top[:, 0]))]


def upscaled(n_dup: int, la: int, lb: int) -> bool:
    """Enough exact duplicates to call the deeper model depth up-scaled (half the extra layers)."""
    return n_dup >= max(1, abs(la - lb) // 2)


def _list(xs: list[int]) -> str:
    """Layer numbers for reading.

    >>> _list([0, 2, 4]), _list([1, 4, 7, 10, 13, 16, 19]), _list(list(range(10, 20)))
    ('0, 2, 4', '1, 4, 7, …, 19', '10–19')
    """
    xs = list(xs)
    if len(xs) > 2 and xs == list(range(xs[0], xs[-1] + 1)):
        return f"{xs[0]}–{xs[-1]}"
    return ", ".join(map(str, xs)) if len(xs) <= 6 else f"{xs[0]}, {xs[1]}, {xs[2]}, …, {xs[-1]}"


def _pct(x: float) -> str:
    """A relative change: one decimal from 1% up, two below."""
    return f"{x:.1%}" if x >= 0.01 else f"{x:.2%}"


def _step(xs: list[int]) -> int:
    """The common step of an arithmetic run of at least three layers, else 0."""
    steps = {b - a for a, b in pairwise(xs)}
    return steps.pop() if len(xs) >= 3 and len(steps) == 1 else 0


def which_layers(kept: list[int], n: int) -> str:
    """Which of `n` layers were kept, in words.

    >>> which_layers([0, 2, 4, 6, 8, 10], 12), which_layers([0, 1, 2], 6)
    ('0, 2, 4, 6, 8, 10: every second one', 'the first 3')
    >>> which_layers([i for i in range(30) if i % 3 != 1], 30)
    'layers 1, 4, 7, …, 28 dropped: every third one'
    """
    kept = sorted(kept)
    dropped = [i for i in range(n) if i not in kept]
    s, d = _step(kept), _step(dropped)
    if s > 1:
        return f"{_list(kept)}: every {ORDINALS.get(s, f'{s}th')} one"
    if kept == list(range(len(kept))):
        return f"the first {len(kept)}"
    if kept == list(range(n - len(kept), n)):
        return f"the last {len(kept)}"
    if d > 1:
        return f"layers {_list(dropped)} dropped: every {ORDINALS.get(d, f'{d}th')} one"
    return f"layers {_list(dropped)} dropped"


def _structure(w: Any, shapes: dict[str, Any]) -> list[tuple[str, str]]:
    """(tag, sentence) for layer and shape changes: subset, up-scaling, added or re-ordered layers, width."""
    f, lm, out = w.map_facts, w.layer_map, []
    la, lb = f.get("base_layers", 0), f.get("candidate_layers", 0)
    if la != lb and lm is not None and lm.pairs:
        dups = exact_duplicates(lm.similarity, base_deeper=la > lb)
        if la > lb and upscaled(len(dups), la, lb):
            layers = [lm.candidate_layers[i] for i in dups]
            out.append((BASE_UPSCALED, (f"The base is the candidate depth up-scaled from {lb} to {la} layers: "
                                        f"candidate layers {_list(layers)} appear twice in it, as exact duplicates.")))
        elif la > lb:
            kept = sorted({a for a, _, _ in lm.pairs})
            out.append((SUBSET, f"The candidate keeps {len(kept)} of the base's {la} layers ({which_layers(kept, la)})."))
        elif upscaled(len(dups), la, lb):
            layers = [lm.base_layers[i] for i in dups]
            out.append((UPSCALED, (f"The candidate is the base depth up-scaled from {la} to {lb} layers: base layers "
                                   f"{_list(layers)} appear twice in it, as exact duplicates.")))
        else:
            kept = sorted({int(np.argmax(row)) for row in np.nan_to_num(lm.similarity, nan=-1.0)})
            kept = [lm.candidate_layers[j] for j in kept]
            new = f.get("unmatched_candidate_layers") or []
            added = (f" (Or layers were added to the base: candidate layers {_list(new)} match no base layer.)"
                     if new else "")
            out.append((BASE_SUBSET, (f"The base keeps {len(kept)} of the candidate's {lb} layers "
                                      f"({which_layers(kept, lb)}): the deeper candidate reads as the fuller model, "
                                      f"and the base as cut down from it or from the model it came from.{added}")))
    if not f.get("order_preserved", True):
        out.append((REORDERED, "The candidate's layers are the base's in another order."))
    (ha, hb), (ia, ib) = shapes["hidden"], shapes["intermediate"]
    if ha != hb or ia != ib:
        out.append((WIDTH, (f"The candidate's width differs from the base's (hidden size {ha} vs {hb}, MLP size {ia} "
                            f"vs {ib}): pruned or grown.")))
    va, vb = shapes["vocab"]
    if va != vb:
        out.append((VOCAB, f"The candidate's vocabulary differs from the base's ({_n(va)} vs {_n(vb)} embedding rows)."))
    return out


def tensors_renamed(fa: dict[str, Any], fb: dict[str, Any]) -> bool:
    """Whether tensor names were changed beyond what the formats explain, from two `comparison.model_facts`.

    An ONNX file whose roles had to be inferred carries its exporter's names; another format
    names tensors its own way; a task head's wrapper adds a prefix (`bert.`, `model.`). None of
    these is a renaming. Names no definition knows, in a format that keeps names, are.

    >>> f = dict(format="safetensors", inferred=False, role_tensors={"embed": "embeddings.word_embeddings.weight"})
    >>> tensors_renamed(f, {**f, "role_tensors": {"embed": "bert.embeddings.word_embeddings.weight"}})
    False
    >>> tensors_renamed(f, {**f, "role_tensors": {"embed": "globals.g0.weight"}})
    True
    """
    if any(x["format"] == "onnx" and x["inferred"] for x in (fa, fb)):
        return False
    if fa["inferred"] or fb["inferred"]:
        return True
    ra, rb = fa["role_tensors"], fb["role_tensors"]
    return fa["format"] == fb["format"] and any(
        ra[r] != rb[r] and not ra[r].endswith("." + rb[r]) and not rb[r].endswith("." + ra[r]) for r in set(ra) & set(rb))


def _n(x: Any) -> str:
    return f"{x:,}" if isinstance(x, int) else "?"


def _disguises(w: Any, shapes: dict[str, Any], change: float | None) -> list[tuple[str, str]]:
    """(tag, phrase) for changes that hide a copy without training it: permutations, rescaling, names."""
    al, sim, out = w.alignment, w.similarity, []
    if al is not None and al.rotated:
        out.append((ROTATED, "the residual stream rotated (an orthogonal map folded into every matrix)"))
    elif al is not None and not al.is_identity:
        out.append((RESIDUAL, "residual dimensions permuted"))
    if sim.get("neurons_in_place") is not None and sim["neurons_in_place"] < 0.5:
        out.append((NEURONS, "MLP neurons or attention heads permuted"))
    small = (change or 0) < 0.05
    log_scale = max(sim.get("max_abs_log_scale") or 0, abs(math.log(max(al.scale, 1e-12))) if al is not None else 0)
    if small and ((sim.get("max_abs_log_scale") or 0) > 0.1 or (al is not None and _embedding_scaled(al.scale))):
        out.append((RESCALED, f"tensors rescaled (up to ×{math.exp(log_scale):.2f})"))
    if (sim.get("candidate_constant_norms") or 0) > 0.5 and (sim.get("base_constant_norms") or 0) < 0.5:
        out.append((FOLDED, "norm weights folded into the next matrices"))
    if shapes["renamed"]:
        out.append((RENAMED, "tensors renamed"))
    return out


def _embedding_scaled(scale: float) -> bool:
    return abs(math.log(max(scale, 1e-12))) > 0.01


def heavily_modified(w: Any) -> bool:
    """Whether the weights changed so much that a merge or long training is the better reading than a fine-tune.

    Read off the embedding alignment's held-out correlation, which a full and a fingerprint
    comparison measure alike (their weight cosines differ by up to 0.25 on one pair). Measured:
    0.66 for a 50/50 merge with an independent model, 0.73 for two separately trained MiniLM-L12
    descendants (ms-marco reranker vs bge-small), 0.87 for all-MiniLM-L6 vs the reranker, ≥ 0.999
    for short fine-tunes and quantization. Without an alignment, the weights' own cosine decides.
    """
    if w.alignment is not None:
        return w.alignment.quality < HEAVY_EMBEDDING_R
    cosine = w.similarity.get("matched_cosine")
    return cosine is not None and cosine < HEAVY_COSINE


def base_share(w: Any) -> float | None:
    """Median over layers of the merge weight the same-neuron cosine implies (None if not measured)."""
    nt = w.neuron_order
    shares = [r.base_share for r in nt.layers if r.base_share is not None] if nt is not None else []
    return float(sorted(shares)[len(shares) // 2]) if shares else None


def _moved(w: Any, shapes: dict[str, Any], change: float | None, cosine: float | None,
           rescaled: bool) -> tuple[str, str, str] | None:
    """(tag, sentence as the relation, sentence as an observation) for weights that moved beyond storage.

    Beyond storage means beyond the dtypes' rounding, and beyond what undoing a rescaling leaves
    (`RESCALE_NOISE`) where tensors were rescaled.
    """
    if heavily_modified(w):
        c = f" (weights agree at cosine {cosine:.2f})" if cosine is not None else ""
        share = base_share(w)
        s = (f" Read as a merge with a model of equal weight norm, the base's share is about {share:.0%} "
             "(median over layers, from the same-neuron cosine).") if share is not None else ""
        return (HEAVY, (f"The candidate was built from the base and then heavily changed{c}: merged with another "
                        f"model, or trained at length; the weights do not say which.{s}"),
                f"Its weights were also heavily changed{c}: merged with another model, or trained at length.{s}")
    if change is not None and change > max(shapes["tolerance"], RESCALE_NOISE if rescaled else 0.0):
        return (TRAINED, (f"The candidate is a fine-tune of the base: the same layers, with weights moved "
                          f"{_pct(change)} (continued pretraining or noise added on purpose would look the same)."),
                (f"Its weights also moved {_pct(change)} from the base's, so it was fine-tuned or distilled as well "
                 "(noise added on purpose would look the same)."))
    return None


def _moved_apart(change: float | None) -> str:
    """The observation sentence when the candidate reads as the parent: the weights' change has no direction."""
    by = f" by {_pct(change)}" if change is not None else ""
    return (f"The two models' weights also differ{by}, so training followed the cut as well (fine-tuning or "
            "distillation; noise added on purpose would look the same).")


def describe(w: Any, shapes: dict[str, Any]) -> Relation:
    """The relation of a pair whose weights are related: every tag the measurements support, in words.

    `w` is the weight evidence (`signals.weights.WeightEvidence`), `shapes` the (base, candidate)
    facts of `comparison.shape_facts`. No tags: the weights match as they are (a copy, see
    `copy_relation`).
    """
    sim = w.similarity
    change, cosine = sim.get("relative_change"), sim.get("matched_cosine")
    structure, disguises = _structure(w, shapes), _disguises(w, shapes, change)
    moved = _moved(w, shapes, change, cosine, any(t == RESCALED for t, _ in disguises))
    tags = [t for t, _ in structure] + [t for t, _ in disguises] + ([moved[0]] if moved else [])
    if w.problems:
        tags.append(UNSCORED)
    sentences = [s for _, s in structure]
    if disguises:
        phrases = _and([p for _, p in disguises])
        sentences.append(f"It is the base's weights with {phrases}." if sentences else
                         f"The candidate is the base's weights with {phrases}.")
    if moved:
        parent_first = bool(structure) and structure[0][0] in (BASE_SUBSET, BASE_UPSCALED)
        sentences.append(moved[1] if not sentences else
                         _moved_apart(change) if parent_first and moved[0] == TRAINED else moved[2])
    if w.problems:
        sentences.append(f"{len(w.problems)} of its tensors are NaN/Inf or all zeros and were not scored.")
    return Relation(tags, sentences, _notes(w, tags))


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _notes(w: Any, tags: list[str]) -> list[str]:
    """What is seen but names no relation: blurred layer correspondence, rescaled embeddings."""
    f, lm, notes = w.map_facts, w.layer_map, []
    if f.get("base_layers") == f.get("candidate_layers") and f.get("duplicated_base_layers") and lm is not None:
        for a in f["duplicated_base_layers"]:
            cands = [b for x, b, _ in lm.pairs if x == a]
            notes.append(f"Candidate layers {_and([str(b) for b in cands])} {'both' if len(cands) == 2 else 'all'} "
                         f"match base layer {a} best: with equal layer counts this is the layer correspondence "
                         "blurring under training, not a duplicated layer.")
    al = w.alignment
    if al is not None and _embedding_scaled(al.scale) and RESCALED not in tags:
        notes.append(f"Its embeddings are scaled ×{al.scale:.2f} against the base's.")
    return notes


def reuse_relation(matched: int, large: int, share: float, *, complete: bool, renamed: bool) -> Relation:
    """The relation carried by byte-identical tensors: all of them (a copy), or some (reused in part).

    >>> r = reuse_relation(9, 12, 0.6, complete=False, renamed=True)
    >>> r.label, r.text.endswith("under other names: 9 of 12 tensors byte-identical to the base (60.0% of bytes).")
    ('byte-identical tensors, tensors renamed', True)
    """
    names = ", under other names" if renamed else ""
    tags = [TENSORS] + ([RENAMED] if renamed else [])
    if complete:
        return Relation(tags, [(f"The candidate's tensors are the base's, byte for byte{names}: all {matched} "
                                f"tensors of at least 4,096 non-constant elements have their twin (same sha256), "
                                f"{share:.1%} of its weight bytes.")])
    return Relation(tags, [(f"The candidate reuses the base's weights in part{names}: {matched} of {large} tensors "
                            f"byte-identical to the base ({share:.1%} of bytes).")])


def copy_relation(kind: str, change: float | None, tolerance: float, cosine: float | None,
                  reproduced: str | None = None) -> Relation:
    """A copy's relation: `kind` is BYTES, EXACT, DTYPE or QUANTIZED.

    `reproduced` names the storage step the reproduction test redid (e.g. "GGUF Q8_0"); without it
    (fingerprints) the claim rests on the weights differing by no more than `tolerance`.
    """
    c = f"cosine {cosine:.6f}" if cosine is not None else "cosine n/a"
    moved = f"{change:.2%}" if change is not None else "n/a"
    if kind == BYTES:
        return Relation([BYTES], ["The candidate's weight files are the base's, byte for byte (same sha256)."])
    if kind == EXACT:
        return Relation([EXACT], [f"The candidate is an exact copy of the base: every layer's weights match ({c})."])
    if reproduced is not None:
        what = "stored in another precision or format" if kind == DTYPE else "a quantized copy of the base"
        return Relation([kind], [(f"The candidate is {'the base ' if kind == DTYPE else ''}{what}: redoing the "
                                  f"storage step on the base's weights ({reproduced}) gives the candidate's, value "
                                  f"for value (they differ by {moved} from the base's).")])
    if kind == DTYPE:
        return Relation([DTYPE], [(f"The candidate is the base stored in another precision or format: the weights "
                                   f"differ by {moved}, within rounding error ({c}).")])
    return Relation([QUANTIZED], [(f"The candidate is a quantized copy of the base: every layer matches, and the "
                                   f"weights differ by {moved}, within the error quantization causes (up to "
                                   f"{tolerance:.1%} here).")],
                    [f"A fine-tune that moved the weights by less than {tolerance:.1%} would look the same."])


def trained_relation(change: float | None, where: list[tuple[str, float]], lora_rank: int | None,
                     checked: bool = True) -> Relation:
    """A pair whose layers map one to one but whose weights are not the base's after any storage step.

    `where` lists the tensors that moved most with their relative change; `lora_rank` is the measured
    rank of a low-rank update (a merged LoRA), None when the update is not low rank; `checked` is False
    where no reproduction could be tried (fingerprints keep no tensors).
    """
    by = f" by {_pct(change)}" if change is not None else ""
    most = f"; most in {', '.join(f'{r} ({_pct(x)})' for r, x in where[:3])}" if where else ""
    how = ("no cast or quantization of the base's weights reproduces the candidate's" if checked else
           "the weight sketches differ by more than rounding explains (reproduction was not checked: "
           "fingerprints keep no tensors)")
    if lora_rank is not None:
        return Relation([LORA], [(f"The candidate is a fine-tune of the base with a merged low-rank adapter "
                                  f"(LoRA): its weights moved{by}, the update has rank ≈ {lora_rank}, and {how}"
                                  f"{most}.")])
    return Relation([TRAINED], [(f"The candidate is a fine-tune of the base: the same layers, with weights "
                                 f"moved{by}; {how}{most} (continued pretraining or noise added on purpose would "
                                 "look the same).")])


def unreproducible_relation(change: float | None, why: str) -> Relation:
    """A pair within a storage step's error that this tool cannot redo: a copy cannot be told from a light
    fine-tune, so the label stays `derived`."""
    by = f"{_pct(change)}" if change is not None else "n/a"
    return Relation([DERIVED], [(f"The candidate matches the base layer for layer and its weights differ by {by}, "
                                 f"but the storage step between them cannot be redone ({why}): it may be a "
                                 "quantized copy or a light fine-tune; `identical` is claimed only for a "
                                 "reproduced cast or quantization.")])
