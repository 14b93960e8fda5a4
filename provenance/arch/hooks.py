"""Activation hook points of an architecture, as data: where transformers' implementation keeps
the decoder blocks and, per block, which module's output (or input) holds the MLP neurons.

Read from a definition's `hooks` section (definitions/README.md). Module paths are relative to
transformers' base model (`model.base_model`, what `AutoModel` builds: `layers.0.mlp` for
Llama, `h.0.mlp` for GPT-2, `encoder.layer.0` for BERT); `${i}` is the layer index. Unlike the
tensor templates these name the module tree transformers builds, not a checkpoint's tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from provenance.errors import DefinitionError

TAKES = ("output", "input")
GATED_VIEWS = ("gate", "up")  # the gate and up projections (their product feeds the down projection)
PLAIN_VIEWS = ("act",)  # the hidden activation after the nonlinearity (the down projection's input)


@dataclass(frozen=True)
class Tap:
    """One MLP view of one layer: a module's output or input, or one of `n` equal chunks of its last dim."""

    module: str  # template with ${i}
    take: str = "output"  # output | input
    chunk: tuple[int, int] | None = None  # (k, n): the k-th of n equal parts (a fused gate_up projection)


@dataclass(frozen=True)
class ExpertTap:
    """Routed experts stored fused, as transformers 5 keeps them: every expert reads `input`'s first
    input; `gate_up` is a parameter [experts, 2 * intermediate, hidden], gate rows first.

    The runner recomputes each expert's gate and up projections at every captured position (not only
    where the router sent the token), so both models' neurons are read on the same samples.
    """

    input: str  # module template whose first input is what every expert reads
    gate_up: str  # parameter template


@dataclass(frozen=True)
class Hooks:
    """Where to capture activations in transformers' implementation of one architecture."""

    layers: str  # the ModuleList of decoder (or encoder) blocks; the residual stream is each block's output
    mlp: dict[str, Tap] = field(default_factory=dict)  # view -> tap: gate and up, or act; {} for MoE only
    experts: ExpertTap | None = None  # routed experts: their neurons follow `mlp`'s (a shared expert)

    @property
    def views(self) -> tuple[str, ...]:
        """The MLP views captured: ('gate', 'up') for gated MLPs and experts, ('act',) for plain ones."""
        return GATED_VIEWS if self.experts is not None or set(self.mlp) == set(GATED_VIEWS) else tuple(self.mlp)


def _tap(view: str, raw: Any, where: str) -> Tap:
    if isinstance(raw, str):
        return Tap(raw)
    if not isinstance(raw, dict) or not isinstance(raw.get("module"), str):
        raise DefinitionError(f"{where}: hooks.mlp.{view} must be a module path or an object with 'module'")
    unknown = set(raw) - {"module", "take", "chunk"}
    if unknown:
        raise DefinitionError(f"{where}: hooks.mlp.{view} has unknown fields {sorted(unknown)}")
    take = raw.get("take", "output")
    if take not in TAKES:
        raise DefinitionError(f"{where}: hooks.mlp.{view}: take must be one of {TAKES}, not {take!r}")
    chunk = raw.get("chunk")
    if chunk is not None:
        ok = isinstance(chunk, list) and len(chunk) == 2 and all(isinstance(c, int) for c in chunk)
        if not ok or not 0 <= chunk[0] < chunk[1]:
            raise DefinitionError(f"{where}: hooks.mlp.{view}: chunk must be [k, n] with 0 <= k < n")
        chunk = (chunk[0], chunk[1])
    return Tap(raw["module"], take, chunk)


def _experts(raw: Any, where: str) -> ExpertTap | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"input", "gate_up"} or not all(isinstance(v, str)
                                                                               for v in raw.values()):
        raise DefinitionError(f"{where}: hooks.experts must be an object with exactly 'input' and 'gate_up' paths")
    return ExpertTap(raw["input"], raw["gate_up"])


def parse_hooks(raw: Any, *, where: str, base: Hooks | None = None) -> Hooks | None:
    """A definition's `hooks` object; the fields it gives replace those of `base` (what it `extends`)."""
    if raw is None:
        return None  # "hooks": null — transformers cannot run this architecture (remote code only)
    if not isinstance(raw, dict):
        raise DefinitionError(f"{where}: hooks must be an object")
    unknown = set(raw) - {"layers", "mlp", "experts"}
    if unknown:
        raise DefinitionError(f"{where}: hooks has unknown fields {sorted(unknown)}")
    hooks = base or Hooks(layers="")
    if "layers" in raw:
        if not isinstance(raw["layers"], str) or "${" in raw["layers"]:
            raise DefinitionError(f"{where}: hooks.layers must be one module path (no ${{i}})")
        hooks = replace(hooks, layers=raw["layers"])
    if "mlp" in raw:
        if not isinstance(raw["mlp"], dict):
            raise DefinitionError(f"{where}: hooks.mlp must be an object (view -> tap)")
        hooks = replace(hooks, mlp={view: _tap(view, tap, where) for view, tap in raw["mlp"].items()})
    if "experts" in raw:
        hooks = replace(hooks, experts=_experts(raw["experts"], where))
    if not hooks.layers:
        raise DefinitionError(f"{where}: hooks needs 'layers'")
    views = set(hooks.mlp)
    allowed = [set(), set(GATED_VIEWS)] if hooks.experts is not None else [set(), set(GATED_VIEWS), set(PLAIN_VIEWS)]
    if views not in allowed:
        raise DefinitionError(f"{where}: hooks.mlp names views {sorted(views)}; expected "
                              + (f"{list(GATED_VIEWS)} (a shared expert) or none beside experts"
                                 if hooks.experts is not None else f"{list(GATED_VIEWS)} or {list(PLAIN_VIEWS)}"))
    return hooks
