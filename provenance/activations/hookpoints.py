"""Which modules of a transformers model the torch runner hooks, and what each hook reads.

The hook points come from the architecture definition's `hooks` (provenance/arch/hooks.py). A
model no definition covers, or whose modules a definition's paths miss, falls back to module-name
heuristics, and the plan's notes say so; when no MLP view can be captured, `missing` says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from provenance.arch.hooks import Hooks
from provenance.arch.select import definition_for
from provenance.errors import UnknownFormatError

# Routed experts' neurons are concatenated per layer; the neuron test correlates f_a x f_b of them at
# once, so wider MoE layers (Mixtral-8x7B: 8 x 14336) are not captured (matching experts first is not
# implemented). As wide as the widest dense MLPs the test meets (Llama-3-70B: 28672).
MAX_EXPERT_NEURONS = 32768
_GATED = (("gate_proj", "up_proj"), ("w1", "w3"), ("gate", "up"))  # fallback only
_PLAIN_ACT = ("intermediate", "mlp.act", "mlp.act_fn")  # fallback only


@dataclass(frozen=True)
class Piece:
    """One MLP view's neurons that a hooked module yields: the `slot`-th block of the layer's view."""

    view: str
    slot: int
    chunk: tuple[int, int] | None = None  # (k, n): the k-th of n equal parts of the last dim


@dataclass
class Part:
    """One hooked module of one layer and the view pieces it yields."""

    module: torch.nn.Module
    name: str
    take: str  # output | input
    pieces: list[Piece]
    gate_up: torch.Tensor | None = None  # fused experts [E, 2I, H]: gate and up recomputed from the input

    def read(self, inputs: tuple[Any, ...], output: Any, rows: torch.Tensor, cols: torch.Tensor,
             shape: tuple[int, int]) -> list[tuple[str, int, np.ndarray]]:
        """(view, slot, float32 [picked positions, neurons]) for each piece, from one forward hook call."""
        t = inputs[0] if self.take == "input" else output[0] if isinstance(output, tuple) else output
        x = _pick(t, rows, cols, shape, self.name)
        if self.gate_up is None:
            return [(p.view, p.slot, _chunk(x, p.chunk).float().cpu().numpy()) for p in self.pieces]
        y = torch.einsum("mh,efh->mef", x.to(self.gate_up.dtype), self.gate_up)  # [positions, experts, 2I]
        inter = y.shape[-1] // 2
        by_view = {"gate": y[..., :inter].reshape(len(x), -1), "up": y[..., inter:].reshape(len(x), -1)}
        return [(p.view, p.slot, by_view[p.view].float().cpu().numpy()) for p in self.pieces]


@dataclass
class HookPlan:
    """The blocks whose outputs are the residual stream, and per layer the parts that give MLP neurons."""

    layers: list[torch.nn.Module]
    parts: list[list[Part]]  # per layer; a view's neurons are its pieces concatenated in slot order
    views: tuple[str, ...]  # ('gate', 'up'), ('act',) or () when no MLP neuron is captured
    slots: int
    source: str  # where the hook points came from, in words
    notes: list[str] = field(default_factory=list)  # what a report should say about the capture
    missing: str = ""  # why no MLP neuron is captured ("" when they are)


class _Unresolved(Exception):
    """A definition's hook point that this model lacks."""


def plan_hooks(model: torch.nn.Module) -> HookPlan:
    """Hook points of a transformers model: its definition's, else the module-name fallback (noted)."""
    config = model.config.to_dict()
    defn = definition_for(config, "transformers")
    if defn is None or defn.hooks is None:
        why = (f"no architecture definition names activation hook points for model type "
               f"{str(config.get('model_type'))[:60]!r}")
        return fallback_plan(model, why)
    try:
        return from_hooks(model.base_model, defn.hooks, defn.name)
    except _Unresolved as exc:
        return fallback_plan(model, f"definition {defn.name!r} names a hook point {type(model).__name__} lacks ({exc})")


def from_hooks(root: torch.nn.Module, hooks: Hooks, name: str) -> HookPlan:
    """The plan `hooks` (a definition's) gives on `root`, transformers' base model."""
    blocks = _module(root, hooks.layers)
    if not isinstance(blocks, torch.nn.ModuleList) or not len(blocks):
        raise _Unresolved(f"{hooks.layers!r} is not a list of blocks")
    layers = list(blocks)
    source = f"definition {name!r}"
    dense = 1 if hooks.mlp else 0
    plan = HookPlan(layers, [[] for _ in layers], hooks.views, dense + (hooks.experts is not None), source)
    for i, layer_parts in enumerate(plan.parts):
        grouped: dict[tuple[str, str], Part] = {}
        for view, tap in hooks.mlp.items():
            path = _at(tap.module, i)
            part = grouped.setdefault((path, tap.take), Part(_module(root, path), path, tap.take, []))
            part.pieces.append(Piece(view, 0, tap.chunk))
        layer_parts += grouped.values()
        if hooks.experts is not None:
            gate_up = _parameter(root, _at(hooks.experts.gate_up, i))
            path = _at(hooks.experts.input, i)
            layer_parts.append(Part(_module(root, path), path, "input", [Piece("gate", dense), Piece("up", dense)],
                                    gate_up=gate_up))
    if hooks.experts is not None:
        _bound_experts(plan, name)
    if not plan.views and not plan.missing:
        plan.missing = f"definition {name!r} names no MLP hook point"
    return plan


def _bound_experts(plan: HookPlan, name: str) -> None:
    """Note how MoE neurons are read; drop them (saying why) when one layer holds too many to correlate."""
    gate_up = next(p.gate_up for p in plan.parts[0] if p.gate_up is not None)
    experts, inter = int(gate_up.shape[0]), int(gate_up.shape[1]) // 2
    if experts * inter > MAX_EXPERT_NEURONS:
        plan.parts, plan.views, plan.slots = [[] for _ in plan.layers], (), 0
        plan.missing = (f"its {experts} routed experts hold {experts} x {inter} = {experts * inter} MLP neurons per "
                        f"layer, more than the {MAX_EXPERT_NEURONS} the matched-neuron test correlates at once "
                        "(matching experts before their neurons is not implemented)")
        return
    shared = " after the shared expert's" if plan.slots > 1 else ""
    plan.notes.append(f"MoE ({name}): MLP neurons are the {experts} routed experts' gate and up projections "
                      f"({inter} per expert, concatenated{shared}), each expert evaluated at every captured "
                      "position, not only where the router sent the token")


def fallback_plan(model: torch.nn.Module, why: str) -> HookPlan:
    """The blocks and MLP views found by module names, for architectures no definition covers (noted)."""
    layers = _layer_modules(model)
    views = _mlp_views(layers[0])
    lacking = sorted(set(views.values()) - {n for n, _ in layers[-1].named_modules()})
    if lacking:  # blocks of different kinds (dense and MoE layers mixed)
        views = {}
    parts = [[Part(layer.get_submodule(n), n, "output", [Piece(v, 0)]) for v, n in views.items()] for layer in layers]
    plan = HookPlan(layers, parts, tuple(views), 1 if views else 0, f"module-name fallback ({why})")
    named = ", ".join(f"{v} = {n}" for v, n in views.items()) or "none"
    plan.notes.append(f"{why}: blocks and MLP views found by module names (MLP views: {named})")
    if lacking:
        plan.missing = f"{why}, and its blocks differ (the last lacks {lacking[0]!r}, which the first has)"
    elif not views:
        plan.missing = f"{why}, and no module of its blocks looks like a dense MLP projection"
    return plan


def _at(template: str, i: int) -> str:
    return template.replace("${i}", str(i))


def _module(root: torch.nn.Module, path: str) -> torch.nn.Module:
    try:
        return root.get_submodule(path)
    except AttributeError:
        raise _Unresolved(f"no module {path!r}") from None


def _parameter(root: torch.nn.Module, path: str) -> torch.Tensor:
    try:
        p = root.get_parameter(path)
    except AttributeError:
        raise _Unresolved(f"no parameter {path!r}") from None
    if p.dim() != 3 or p.shape[1] % 2:
        raise _Unresolved(f"{path!r} is {tuple(p.shape)}, not [experts, 2 * intermediate, hidden]")
    return p


def _pick(t: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, shape: tuple[int, int], name: str) -> torch.Tensor:
    """The picked positions of a [batch, seq, ...] tensor, or of one flattened to [batch * seq, ...]."""
    if t.dim() >= 3 and tuple(t.shape[:2]) == shape:
        return t[rows, cols]
    if t.dim() == 2 and t.shape[0] == shape[0] * shape[1]:
        return t[rows * shape[1] + cols]
    raise UnknownFormatError(f"the hooked {name!r} gave a {tuple(t.shape)} tensor for a {shape} batch; "
                             "the architecture definition's hook points do not fit this model")


def _chunk(x: torch.Tensor, chunk: tuple[int, int] | None) -> torch.Tensor:
    if chunk is None:
        return x
    k, n = chunk
    size = x.shape[-1] // n
    return x[..., k * size:(k + 1) * size]


def _layer_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Fallback: the transformer blocks are the ModuleList with num_hidden_layers entries."""
    n = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    for _name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n and n > 0:
            return list(module)
    raise UnknownFormatError(f"cannot find the {n} transformer blocks of {type(model).__name__}")


def _mlp_views(layer: torch.nn.Module) -> dict[str, str]:
    """Fallback: gate and up projections for gated MLPs, else the activation output; never routed experts
    (each runs on the tokens routed to it only)."""
    names = {n for n, _ in layer.named_modules() if "expert" not in n}
    for gate, up in _GATED:
        g = next((n for n in sorted(names) if n.split(".")[-1] == gate), None)
        u = next((n for n in sorted(names) if n.split(".")[-1] == up), None)
        if g and u:
            return {"gate": g, "up": u}
    for name in _PLAIN_ACT:
        if name in names:
            return {"act": name}
    return {}
