"""The activation signal: both models run on shipped probe texts; MLP neurons matched and tested."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from provenance.report.blocks import Facts, P, Plot, Section, Table, Text
from provenance.signals.base import CHECKPOINTS, MODEL_TEST, Reading

if TYPE_CHECKING:
    from provenance.signals.pair import Pair

NAME = "activations"


class ActivationSignal:
    """Neuron correspondence (in place, or under one permutation) and the CKA layer map."""

    name = NAME
    order = 30
    role = MODEL_TEST
    default = False  # runs both models: asked for explicitly
    reads = frozenset({CHECKPOINTS})
    refusal = "activations run the models themselves"
    kinds = ("neurons", "cka")
    details = {"neurons": {"required": ["probe_set", "probe_sha256", "positions", "per_layer", "tests"]},
               "cka": {"required": ["cka", "layer_map", "null_sd"], "properties": {"cka": {"$ref": "#/$defs/matrix"}}}}
    title = "Activations"

    def measure(self, pair: Pair) -> Reading:
        from provenance.signals.activations import (
            ACTIVATION_STEPS,
            activation_items,
            activation_verdict,
            run_activations,
        )

        opts = pair.opts
        with pair.bar(ACTIVATION_STEPS, "comparing activations", "step") as steps:
            base, candidate = pair.sources or (pair.base, pair.candidate)
            act = run_activations(base, candidate, device=str(pair.device), seed=opts.seed,
                                  probe_texts=opts.probe_texts, batch_size=opts.batch_size, progress=steps.update)
        layer_map = [[x, y, round(s, 6)] for x, y, s in act.layer_map] or None
        return Reading(NAME, activation_items(act), activation_verdict(act), raw=act, layer_map=layer_map)

    def section(self, result: dict[str, Any]) -> Section | None:
        from provenance.report import sections as S

        neurons, cka = S.item(result, NAME, "neurons"), S.item(result, NAME, "cka")
        if neurons is None and cka is None:
            return None
        blocks: list[Any] = []
        if neurons is not None:
            d = neurons["details"]
            positions = d.get("positions")
            blocks += [Text(neurons["finding"]),
                       Text(f"Probe set {d.get('probe_set')} (sha256 {d.get('probe_sha256')}), "
                            f"{positions:,} aligned positions." if isinstance(positions, int) else
                            f"Probe set {d.get('probe_set')} (sha256 {d.get('probe_sha256')})."),
                       Facts([("tests (Bonferroni)", d.get("tests")), ("combined p-value", P(neurons["p_value"]))])]
        if cka is not None:
            blocks += [Text(cka["finding"]),
                       Plot("cka-heatmap", "Debiased linear CKA of the residual streams, base layers (rows) by "
                            "candidate layers (columns); the layer map outlined. CKA alone is not evidence: "
                            "independent models on the same text reach 0.5.", cka_heatmap, S.cka_matrix(result))]
            blocks += [Text(note, muted=True) for note in cka["details"].get("notes") or []]
        rows = [[t.get("candidate_layer"), t.get("base_layer"), t.get("in_place"), P(t.get("p_in_place")),
                 t.get("agreement"), t.get("chance_agreement"), P(t.get("p_agreement"))] for t in S.neuron_layers(result)]
        if rows:
            blocks.append(Table(["candidate layer", "base layer", "neurons in place", "p", "gate/up agreement",
                                 "chance", "p"], rows, folded="per-layer neuron tests"))
        return Section(NAME, self.title, blocks)


def cka_heatmap(result: dict[str, Any]) -> Any:
    """The CKA heatmap (matplotlib only when an HTML report draws it)."""
    from provenance.report.figures import cka_heatmap as draw

    return draw(result)


SIGNAL = ActivationSignal()
