"""Lineage: families of related models and, where the evidence says so, parent -> child.

Directions come only from evidence whose direction is known:
- a quantized or lower-precision copy is the child of the higher-precision model;
- a layer subset is the child of the fuller model; a depth up-scaled model is the child of
  the shallower one. The pair's relation tag says which (`relation.describe`: the words
  compare and identify print): the deeper model is up-scaled only when it holds exact
  duplicates (two of its layers matching one shallower layer equally, ratio ≥ 0.995),
  otherwise it is read as the fuller parent. (Adjacent layers of a real 12-layer BERT match
  a 6-layer student at ratios 0.88–0.97, so a looser bar would misread every distilled
  student; an up-scaled model trained after duplication is read wrongly.)
- a tokenizer extension is the child of the vocabulary it extends.
A weight-statistics cue (kurtosis growing with training, as in model-tree recovery work)
was checked on the known pairs of the tests and not used: Gaussian perturbation and
quantization lower kurtosis in every role (so the cue would name the copy the parent),
and real fine-tunes (bge-small -> colbert, 30 steps of AdamW on SmolLM2) move it by
under 0.01 in either direction. Each edge keeps the measured change (`kurtosis_change`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from provenance import relation
from provenance.audit.result import AuditPair, Lineage, LineageEdge

PRECISION = {"F64": 0, "F32": 1, "BF16": 2, "F16": 2, "F8_E4M3": 3, "F8_E5M2": 3}  # lower is finer


def families(names: list[str], pairs: list[AuditPair]) -> list[list[str]]:
    """Connected groups over related pairs (union-find); largest first, then by name; singletons kept."""
    parent = {n: n for n in names}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in pairs:
        if p.related and p.base in parent and p.candidate in parent:
            parent[find(p.base)] = find(p.candidate)
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(find(n), []).append(n)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: (-len(g), g[0]))


def _precision(summary: dict[str, Any]) -> int:
    return 9 if summary.get("quantized") else PRECISION.get(str(summary.get("dtype")), 5)


def _tokenizer_extension(result: dict[str, Any] | None) -> str | None:
    """'candidate extends base' / 'base extends candidate' from the pair's tokenizer evidence, if any."""
    for e in (result or {}).get("evidence", []):
        d = e.get("details") or {}
        if e.get("signal") == "tokenizer" and e.get("kind") == "vocabulary" and d.get("relation") == "extension":
            return d.get("direction")
    return None


def direction(p: AuditPair, sa: dict[str, Any], sb: dict[str, Any]) -> tuple[str, str, bool, str]:
    """(parent, child, directed, reason) for one related pair; `sa`/`sb` are the two models' summaries."""
    rel = p.relation or ""
    a, b = p.base, p.candidate
    if p.label == "identical" and ("quantized" in rel or "dtype" in rel):
        pa, pb = _precision(sa), _precision(sb)
        if pa != pb:
            parent, child = (a, b) if pa < pb else (b, a)
            what = "a quantized" if max(pa, pb) == 9 else "a lower-precision"
            return parent, child, True, f"{child} is {what} copy of {parent}"
    la, lb = sa.get("layers") or 0, sb.get("layers") or 0
    layers = _layer_direction(rel.split(", ")[0], a, b, la, lb)
    if layers is not None:
        return layers
    ext = _tokenizer_extension(p.result)
    if ext == "candidate extends base":
        return a, b, True, f"vocabulary extension: {b}'s tokenizer extends {a}'s"
    if ext == "base extends candidate":
        return b, a, True, f"vocabulary extension: {a}'s tokenizer extends {b}'s"
    if "vocabulary changed" in rel:
        return a, b, False, "vocabulary changed; without a tokenizer extension it does not say which came first"
    return a, b, False, "the evidence does not say which came first"


def _layer_direction(tag: str, a: str, b: str, la: int, lb: int) -> tuple[str, str, bool, str] | None:
    """The arrow a layer relation gives, read off its tag (`relation.describe` decided it once, for every view)."""
    if tag in (relation.UPSCALED, relation.BASE_UPSCALED):
        shallow, deep = (a, b) if tag == relation.UPSCALED else (b, a)
        return shallow, deep, True, f"depth up-scaling: {deep} repeats layers of {shallow} exactly"
    if tag in (relation.SUBSET, relation.BASE_SUBSET):
        deep, shallow = (a, b) if tag == relation.SUBSET else (b, a)
        return deep, shallow, True, (f"layer subset: {shallow} keeps {min(la, lb)} of {deep}'s {max(la, lb)} "
                                     "layers")
    return None


def kurtosis_change(stats_a: dict[str, Any], stats_b: dict[str, Any]) -> dict[str, float] | None:
    """Median change of per-role excess kurtosis from a to b and the share of roles where it grew."""
    common = [r for r in stats_a if r in stats_b]
    if not common:
        return None
    d = np.array([stats_b[r]["kurtosis"] - stats_a[r]["kurtosis"] for r in common])
    return {"median": round(float(np.median(d)), 6), "grew": round(float(np.mean(d > 0)), 4), "roles": len(common)}


def lineage(names: list[str], pairs: list[AuditPair], summaries: dict[str, dict[str, Any]],
            stats: dict[str, dict[str, Any]] | None = None) -> Lineage:
    """Families and one edge per related pair, directed where the evidence allows; `stats` (per model,
    the fingerprint's per-role statistics) adds the kurtosis change from parent to child as a cue."""
    edges = []
    for p in pairs:
        if not p.related:
            continue
        parent, child, directed, reason = direction(p, summaries.get(p.base, {}), summaries.get(p.candidate, {}))
        cues = {}
        if stats and parent in stats and child in stats:
            k = kurtosis_change(stats[parent], stats[child])
            if k is not None:
                cues["kurtosis_change"] = k
        edges.append(LineageEdge(parent, child, directed, reason, p.relation, p.p_value, cues))
    _ambiguous_quantization(edges, pairs)
    edges.sort(key=lambda e: (e.parent, e.child))
    return Lineage(families(names, pairs), edges)


QUANTIZED_REASON = " is a quantized copy of "


def _ambiguous_quantization(edges: list[LineageEdge], pairs: list[AuditPair]) -> None:
    """A quantized copy within rounding of several models that differ from each other (a base and its
    light fine-tune): which one was quantized is not known, so none of those edges keeps a direction."""
    label = {frozenset((p.base, p.candidate)): p.label for p in pairs}
    by_child: dict[str, list[LineageEdge]] = {}
    for e in edges:
        if e.directed and QUANTIZED_REASON in e.reason:
            by_child.setdefault(e.child, []).append(e)
    for child, found in by_child.items():
        parents = sorted(e.parent for e in found)
        differ = [(x, y) for i, x in enumerate(parents) for y in parents[i + 1:]
                  if label.get(frozenset((x, y))) != "identical"]
        if differ:
            x, y = differ[0]
            for e in found:
                e.directed = False
                e.reason = (f"{child} is within quantization error of {len(parents)} models that differ from each "
                            f"other (e.g. {x} and {y}): which one was quantized is not known")
