"""What to call each ONNX weight: the PyTorch parameter name, recovered from what the exporter left.

Exporters store Linear weights under anonymous names (`onnx::MatMul_1525`, `val_49`). In order of trust,
a weight's name is the one it kept, the name of the bias added after it, or its exporter's node scope;
colliding guesses fall back to the graph's own names, numbered apart where the graph defeats even those.
Like `onnx_graph`, this reads names and graph structure only, never tensor data.
"""

from __future__ import annotations

from collections import Counter

from provenance.io.onnx_graph import (
    GraphIndex,
    WeightSpec,
    is_param_name,
    linear_use,
    needs_transpose,
    numel,
)
from provenance.io.onnx_proto import NodeProto

RECOVERY_METHODS = ("kept", "bias", "scope", "original", "collision")
_WALK_OPS = frozenset({"Cast", "Mul", "DequantizeLinear"})  # between a MatMul and its bias Add
_MAX_WALK = 4
_ALIAS_SUFFIXES = ("_DequantizeLinear_Output", "_dequantized", "_quantized", "_q")


def _aliases(index: GraphIndex, spec: WeightSpec) -> list[str]:
    """Names that may already be a parameter name: the value's, minus quantizer suffixes."""
    names = [spec.base]
    if len(spec.sources) == 1 and spec.sources[0] != spec.base:
        names.append(spec.sources[0])  # a pure layout/cast chain: Transpose(W), Cast(W)
    for candidate in (spec.base, spec.sources[0]):
        for suffix in _ALIAS_SUFFIXES:
            if candidate.endswith(suffix):
                names.append(candidate[:-len(suffix)])
    return names


def _bias_after(index: GraphIndex, node: NodeProto, n_out: int) -> str | None:
    """The `<module>.bias` constant added to a linear node's output within a few Cast/Mul hops."""
    if node.op_type == "Gemm" and len(node.input) > 2 and is_param_name(node.input[2]):
        return node.input[2] if node.input[2].endswith(".bias") else None
    frontier = list(node.output[:1])
    for _ in range(_MAX_WALK + 1):
        nxt: dict[str, None] = {}  # each value once, however many paths reach it
        for value in frontier:
            for _, user, slot in index.live_uses(value):
                if user.op_type == "Add" and len(user.input) == 2:
                    other = user.input[1 - slot]
                    if (other in index.types and other.endswith(".bias") and is_param_name(other)
                            and numel(index.shapes[other]) == n_out):
                        return other
                elif user.op_type in _WALK_OPS:
                    nxt.update(dict.fromkeys(user.output[:1]))
        frontier = list(nxt)
    return None


def scope_module(node_name: str) -> str | None:
    """The module path torch.onnx writes into node names, or None when the name has no scope.

    >>> scope_module("/encoder/layer.0/attention/self/query/MatMul")
    'encoder.layer.0.attention.self.query'
    >>> scope_module("node_MatMul_48") is None
    True
    """
    if not node_name.startswith("/"):
        return None
    parts = node_name.strip("/").split("/")[:-1]
    if not parts or any(not p or " " in p for p in parts):
        return None
    return ".".join(parts)


def _recover(index: GraphIndex, spec: WeightSpec) -> tuple[str, str]:
    """(exposed name, method) for one weight, before collisions are resolved."""
    for alias in _aliases(index, spec):
        if is_param_name(alias):
            return alias, "kept"
    node = linear_use(index, spec.value)
    if node is not None:
        n_out = spec.shape[0] if not needs_transpose(index, spec) else spec.shape[-1]
        bias = _bias_after(index, node, n_out)
        if bias is not None:
            return bias[:-len(".bias")] + ".weight", "bias"
    for _, user, slot in index.live_uses(spec.value):
        if user is node or (user.op_type == "Gather" and slot == 0):
            module = scope_module(user.name)
            if module is not None:
                return module + ".weight", "scope"
    return spec.base, "original"


def recover_names(index: GraphIndex, specs: list[WeightSpec]) -> tuple[list[str], list[str]]:
    """Unique PyTorch-style names and how each was found; colliding guesses fall back."""
    picks = [_recover(index, s) for s in specs]
    names, methods = [p[0] for p in picks], [p[1] for p in picks]
    fallbacks = [[s.base, s.value, f"{s.value}#{i}"] for i, s in enumerate(specs)]
    for _ in range(3):
        counts = Counter(names)
        clash = [i for i, n in enumerate(names) if counts[n] > 1 and methods[i] != "kept"]
        if not clash and all(c == 1 for c in counts.values()):
            break
        if not clash:  # two weights both named so by the file: fall back on all of them
            clash = [i for i, n in enumerate(names) if counts[n] > 1]
        for i in clash:
            names[i] = next((f for f in fallbacks[i] if f != names[i]), names[i])
            if names[i] in fallbacks[i]:
                fallbacks[i].remove(names[i])
            methods[i] = "collision"
    _number_apart(names, methods)
    return names, methods


def _number_apart(names: list[str], methods: list[str]) -> None:
    """Suffix '#i' to any name still taken (a graph can name its values to defeat the fallbacks)."""
    taken, seen = set(names), set()
    for i, name in enumerate(names):
        if name in seen:
            while name in taken:
                name = f"{name}#{i}"
            names[i], methods[i] = name, "collision"
            taken.add(name)
        seen.add(name)


def recovery_counts(methods: list[str]) -> dict[str, int]:
    """How many exposed names each method produced (all methods listed, zeros included)."""
    counts = Counter(methods)
    return {m: counts.get(m, 0) for m in RECOVERY_METHODS}
