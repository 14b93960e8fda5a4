"""The weight signal: residual profiles matched layer by layer, aligned, and tested against re-pairing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from provenance.report.blocks import Facts, P, Plot, Section, Table, Text
from provenance.signals.base import CHECKPOINTS, FINGERPRINTS, MODEL_TEST, Reading

if TYPE_CHECKING:
    from provenance.signals.pair import Pair

NAME = "weights"


class WeightSignal:
    """Profile correlation of every candidate layer with every base layer; p-values from re-paired dimensions."""

    name = NAME
    order = 10
    role = MODEL_TEST
    default = True
    reads = frozenset({CHECKPOINTS, FINGERPRINTS})
    refusal = "the weights need weights on both sides"
    kinds = ("layer test", "neuron order", "neuron agreement", "alignment", "magnitudes", "bad tensor", "coverage",
             "exact reuse", "reproduction")
    details = {"layer test": {  # JSON Schema of these items' details
        "required": ["test", "z", "per_layer", "similarity_matrix"],
        "properties": {
            "per_layer": {"type": "array", "items": {
                "type": "object", "required": ["base", "candidate", "similarity", "p_value"],
                "properties": {"base": {"type": "integer"}, "candidate": {"type": "integer"},
                               "similarity": {"type": "number"}, "p_value": {"$ref": "#/$defs/probability"}}}},
            "similarity_matrix": {
                "type": "object", "required": ["base_layers", "candidate_layers", "values"],
                "properties": {"base_layers": {"type": "array", "items": {"type": "integer"}},
                               "candidate_layers": {"type": "array", "items": {"type": "integer"}},
                               "values": {"$ref": "#/$defs/matrix"}}}}},
               "neuron order": {"required": ["test", "role", "p_value", "effect", "per_layer"],
                                "properties": {"p_value": {"$ref": "#/$defs/probability"},
                                               "per_layer": {"type": "array", "minItems": 1}}},
               "neuron agreement": {"required": ["test", "views", "p_value", "effect", "per_layer"],
                                    "properties": {"p_value": {"$ref": "#/$defs/probability"},
                                                   "per_layer": {"type": "array", "minItems": 1}}}}
    title = "Weights"

    def measure(self, pair: Pair) -> Reading:
        from provenance.signals.copy_check import reproduction_item
        from provenance.signals.weight_verdict import decide, weight_items

        if pair.fingerprints is not None:
            from provenance.fingerprint.weights import fingerprint_weight_evidence

            w = fingerprint_weight_evidence(*pair.fingerprints, seed=pair.opts.seed)
        else:
            from provenance.signals.profiles import PROFILE_KEYS
            from provenance.signals.weights import weight_evidence

            a, b = pair.models or ()
            total = sum(1 for m in (a, b) for i in m.roles.layers for k in PROFILE_KEYS
                        if f"layers.{i}.{k}" in m.roles.roles)
            with pair.bar(total, "comparing weights", "tensor") as tensors:
                w = weight_evidence(a, b, device=str(pair.device), seed=pair.opts.seed, token_map=pair.token_map(),
                                    progress=tensors.update)
        layer_map = [[x, y, round(s, 6)] for x, y, s in w.layer_map.pairs] if w.layer_map else None
        check = _Reproduction(pair)
        fa, fb = pair.facts()
        verdict = decide(w, {**pair.shapes(), "dtypes": (fa.get("dtype"), fb.get("dtype")), "reproduce": check})
        items = weight_items(w) + ([reproduction_item(check())] if check.asked else [])
        if pair.fingerprints is None:  # byte-identical tensors, by content (the digests of the same reads)
            from provenance.signals import content_hashes

            reuse = content_hashes.measure(pair)
            items.append(content_hashes.item(reuse))
            verdict = content_hashes.overrule(verdict, reuse)
        return Reading(NAME, items, verdict, raw=w, layer_map=layer_map)

    def section(self, result: dict[str, Any]) -> Section | None:
        from provenance.report.sections import item, weight_layers, weight_matrix
        from provenance.report.words import words

        layer, reuse = item(result, NAME, "layer test"), item(result, NAME, "exact reuse")
        if layer is None:
            return None if reuse is None else Section(NAME, self.title, [Text(reuse["finding"])])

        d = layer["details"]
        blocks: list[Any] = [
            Text(layer["finding"]),
            Facts([("test", d.get("test")), ("statistic (mean best-layer profile correlation)", layer["statistic"]),
                   ("null mean ± sd", f"{_n(d.get('null_mean'))} ± {_n(d.get('null_sd'))}"), ("z", d.get("z")),
                   ("re-pairing p (maps layers; too narrow a null on real models to decide)", P(layer["p_value"])),
                   ("exact permutation bound", P(d.get("p_exact_bound"))),
                   ("comparable roles", d.get("comparable_roles"))]),
            Plot("weight-heatmap", "Profile correlation of every base layer (rows) with every candidate layer "
                 "(columns); matched layers outlined in red. Independent models sit near 0.", weight_heatmap,
                 weight_matrix(result)),
            Plot("layer-plot", "Per candidate layer: best-match similarity, and its p-value against re-paired "
                 "dimensions (dashed: 1e-6).", layer_plot)]
        for kind in ("neuron order", "neuron agreement"):
            e = item(result, NAME, kind)
            if e is not None:
                nd = e["details"]
                blocks += [Text(e["finding"]),
                           Facts([("test", nd.get("test")), ("rows compared", nd.get("role", nd.get("views"))),
                                  ("p-value", P(e["p_value"])), ("effect", e["statistic"])], title=kind),
                           Table(["candidate layer", "base layer", "neurons", *[words(k) for k in nd["per_layer"][0]
                                                                                if k not in ("base", "candidate",
                                                                                             "neurons")]],
                                 [[r["candidate"], r["base"], r["neurons"],
                                   *[P(v) if k == "p_value" else v for k, v in r.items()
                                     if k not in ("base", "candidate", "neurons")]] for r in nd["per_layer"]],
                                 folded=f"per-layer {kind}")]
        if reuse is not None:
            blocks.append(Text(reuse["finding"]))
        for kind in ("alignment", "magnitudes"):
            e = item(result, NAME, kind)
            if e is not None:
                blocks += [Text(e["finding"]), Facts([(words(k), v) for k, v in e["details"].items()], title=kind)]
        rep = item(result, NAME, "reproduction")
        if rep is not None:
            checked = [[t["role"], t["scheme"], t["reproduced"], t["relative_change"], t["delta_rank"]]
                       for t in rep["details"].get("tensors", [])]
            blocks += [Text(rep["finding"])] + ([Table(["tensor", "storage step redone", "values reproduced",
                                                        "relative change", "delta rank"], checked,
                                                       folded="reproduction per tensor")] if checked else [])
        rows = [[x["candidate"], x["base"], x["similarity"], P(x["p_value"])] for x in weight_layers(result)]
        if rows:
            blocks.append(Table(["candidate layer", "best base layer", "similarity", "p-value"], rows,
                                folded="per-layer table"))
        return Section(NAME, self.title, blocks)


class _Reproduction:
    """The reproduction test of a checkpoint pair (`signals.reproduce`), run at most once and only when the
    verdict asks for it (`copy_check.settle`); None for fingerprints, which keep no tensors."""

    def __init__(self, pair: Pair) -> None:
        self.pair, self.asked, self.result = pair, False, None

    def __call__(self) -> Any:
        if not self.asked:
            self.asked = True
            if self.pair.fingerprints is None and self.pair.models is not None:
                from provenance.signals.reproduce import reproduce

                self.result = reproduce(*self.pair.models, seed=self.pair.opts.seed, device=str(self.pair.device))
        return self.result


def weight_heatmap(result: dict[str, Any]) -> Any:
    """The profile-correlation heatmap (matplotlib only when an HTML report draws it)."""
    from provenance.report.figures import weight_heatmap as draw

    return draw(result)


def layer_plot(result: dict[str, Any]) -> Any:
    from provenance.report.figures import layer_plot as draw

    return draw(result)


def _n(x: Any) -> str:
    """A mean or sd to four digits ('—' when missing)."""
    return "—" if x is None else f"{x:.4g}"


SIGNAL = WeightSignal()
