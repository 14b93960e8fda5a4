"""Where an ONNX graph keeps its weights: constants and dequantization chains (names: `onnx_names`).

Exporters store Linear weights under anonymous names (`onnx::MatMul_1525`, `val_49`) in
[in, out] order, and quantizers split them into integers plus a scale (and zero point).
This module finds each float weight the graph computes from constants alone, its shape and
orientation; `onnx_names` then names it the way PyTorch would.
It reads no tensor data, only names, shapes and types. The graph comes from the accused party:
every walk is iterative, every node it folds is checked against the ONNX spec, and a folded
constant may not take more than `FOLD_FACTOR` times the bytes it is stored in.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from provenance.errors import CorruptFileError
from provenance.io.onnx_proto import (
    NP_DTYPES,
    AttributeProto,
    GraphProto,
    NodeProto,
    TensorProto,
    from_array,
)

# Ops whose output is a constant when all their inputs are (dequantization chains).
FOLDABLE = frozenset({"Cast", "Mul", "Sub", "Div", "Add", "DequantizeLinear", "Transpose", "Identity"})
# Which input of a linear op is the weight (stored [in, out] except Gemm with transB=1).
LINEAR_WEIGHT_SLOT = {"MatMul": 1, "MatMulInteger": 1, "Gemm": 1, "QLinearMatMul": 3,
                      "DynamicQuantizeMatMul": 1, "MatMulIntegerToFloat": 1}
# Inputs that hold quantization parameters (scales, zero points), never weights.
_QPARAM_SLOTS = {"DequantizeLinear": {1, 2}, "QuantizeLinear": {1, 2}, "MatMulInteger": {2, 3},
                 "ConvInteger": {2, 3}, "QLinearMatMul": {1, 2, 4, 5, 6, 7},
                 "QLinearConv": {1, 2, 4, 5, 6, 7}, "DynamicQuantizeMatMul": {2, 3},
                 "MatMulIntegerToFloat": {2, 3, 4, 5}}
MAX_FOLD_RANK = 32  # numpy broadcasts at most 32 axes; no weight folds through more
_ORT_Q, _ORT_SCALE, _ORT_ZP = "_quantized", "_scale", "_zero_point"

FLOAT_TYPES = {TensorProto.FLOAT: "F32", TensorProto.FLOAT16: "F16",
               TensorProto.BFLOAT16: "BF16", TensorProto.DOUBLE: "F64"}
DTYPE_NAMES = {**FLOAT_TYPES, TensorProto.UINT8: "U8", TensorProto.INT8: "I8",
               TensorProto.UINT16: "U16", TensorProto.INT16: "I16", TensorProto.INT32: "I32",
               TensorProto.INT64: "I64", TensorProto.BOOL: "BOOL", TensorProto.UINT32: "U32",
               TensorProto.UINT64: "U64"}  # the element types this package can decode

# Element types torch adds, subtracts, multiplies and divides (not bool, not the unsigned wide types).
ARITH_TYPES = frozenset(FLOAT_TYPES) | {TensorProto.UINT8, TensorProto.INT8, TensorProto.INT16,
                                       TensorProto.INT32, TensorProto.INT64}
_DQ_TYPES = frozenset({TensorProto.UINT8, TensorProto.INT8, TensorProto.UINT16, TensorProto.INT16,
                       TensorProto.INT32})  # what DequantizeLinear dequantizes
# A folded constant (all its intermediates together) may take this many times the bytes of the stored
# constants it is computed from, plus FOLD_SLACK: int8 -> Cast -> Sub -> Mul -> Transpose takes 16x.
FOLD_FACTOR = 16
FOLD_SLACK = 1 << 20
MAX_FOLD_NODES = 8  # a longer constant expression is no dequantization chain: left to the runtime


class _NotFoldable(Exception):
    """A valid node this module does not fold (left to the runtime); never leaves this module."""


@dataclass(frozen=True)
class WeightSpec:
    """One float weight: the constant that holds it and how to get PyTorch's view of it."""

    value: str                      # graph value holding it (initializer, folded output, X_quantized)
    base: str                       # the graph's own name for it (X for ORT's X_quantized)
    shape: tuple[int, ...]          # as stored in the graph
    dtype: str                      # storage type of its largest source: "F32", "I8", ...
    quantized: bool                 # True when reading dequantizes integers
    sources: tuple[str, ...]        # stored constants read to build it
    ort: tuple[str, str | None, int | None] | None = None  # (scale, zero point, axis)


@dataclass
class GraphIndex:
    """Constants of a graph (stored or folded), their shapes and types, and who uses them."""

    outputs: set[str]
    consts: dict[str, TensorProto] = field(default_factory=dict)
    folds: dict[str, NodeProto] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    types: dict[str, int] = field(default_factory=dict)
    consumers: dict[str, list[tuple[int, NodeProto, int]]] = field(
        default_factory=lambda: defaultdict(list))  # value -> (node index, node, input slot)
    fold_nodes: set[int] = field(default_factory=set)
    parts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # folded value -> the folded values it needs
    costs: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)  # -> (its bytes, stored inputs)
    n_nodes: int = 0
    path: Path | None = None

    @classmethod
    def build(cls, graph: GraphProto, *, path: Path | None = None) -> GraphIndex:
        """Index initializers, Constant nodes and constant-only dequantization nodes."""
        index = cls(outputs={o.name for o in graph.output}, n_nodes=len(graph.node), path=path)
        for tensor in graph.initializer:
            index._add_const(tensor.name, tensor)
        for i, node in enumerate(graph.node):
            for slot, name in enumerate(node.input):
                if name:
                    index.consumers[name].append((i, node, slot))
            if looped := next((o for o in node.output if o and o in node.input), None):
                raise index.bad_node(node, f"reads its own output {quote(looped)} (a graph has no cycles)")
            if redefined := next((o for o in node.output if o and o in index.types), None):
                raise index.bad_node(node, f"writes {quote(redefined)}, which is already an initializer or "
                                     "the output of an earlier node (ONNX assigns each value once)")
            if node.domain not in ("", "ai.onnx"):
                continue
            if node.op_type == "Constant" and len(node.output) == 1 and node.output[0]:
                tensor = constant_value(node)
                if tensor is not None:
                    index._add_const(node.output[0], tensor)
            elif node.op_type in FOLDABLE:
                index._try_fold(i, node)
        return index

    def _add_const(self, name: str, tensor: TensorProto) -> None:
        """Record a stored constant with its dims and element type."""
        self.consts[name] = tensor
        self.shapes[name] = tuple(int(d) for d in tensor.dims)
        self.types[name] = int(tensor.data_type)

    def bad_node(self, node: NodeProto, why: str) -> CorruptFileError:
        """The error for a node that breaks the ONNX spec (or our memory bound)."""
        what = f"node {quote(node.name)}" if node.name else "unnamed node"
        if not node.name and node.output:
            what += f" writing {quote(node.output[0])}"
        return CorruptFileError(f"{node.op_type} {what} {why}; the file is corrupt or built to break readers: "
                                "re-export it", path=self.path)

    def _try_fold(self, i: int, node: NodeProto) -> None:
        """Mark node `i` as folded when all its inputs are constants and its output is inferable."""
        names = [n for n in node.input if n]
        if len(node.output) != 1 or not node.output[0] or not names or not all(n in self.types for n in names):
            return
        if any(self.types[n] not in DTYPE_NAMES for n in names):
            return
        try:
            shape, etype = _infer(node, [self.shapes[n] for n in names], [self.types[n] for n in names])
        except _NotFoldable:
            return  # valid, but not ours to fold: the runtime computes it
        except ValueError as exc:
            raise self.bad_node(node, f"is not valid ONNX ({exc})") from None
        out = node.output[0]
        parts = tuple({out: None, **{p: None for n in names for p in self.parts.get(n, ())}})
        if etype not in DTYPE_NAMES or len(parts) > MAX_FOLD_NODES:
            return
        self.costs[out] = (numel(shape) * itemsize(etype), tuple(n for n in names if n not in self.folds))
        self.folds[out], self.shapes[out], self.types[out], self.parts[out] = node, shape, etype, parts
        self.fold_nodes.add(i)
        self._check_size(node, names, parts)

    def _check_size(self, node: NodeProto, names: list[str], parts: tuple[str, ...]) -> None:
        """Refuse a folded constant whose computation (every intermediate kept) would take more than
        FOLD_FACTOR times the bytes of the distinct stored constants it reads."""
        need = sum(self.costs[p][0] for p in parts)
        stored = sum(self.nbytes(leaf) for leaf in {leaf for p in parts for leaf in self.costs[p][1]})
        if need <= FOLD_FACTOR * stored + FOLD_SLACK:
            return
        out, shape = node.output[0], self.shapes[node.output[0]]
        how = " x ".join(str(list(self.shapes[n])) for n in names)
        raise self.bad_node(node, f"would take {_human(need)} to compute {quote(out)} of shape {list(shape)} "
                            f"(from {how}) out of {_human(stored)} stored in the file, more than "
                            f"{FOLD_FACTOR}x")

    def nbytes(self, name: str) -> int:
        """Bytes a constant or folded value takes in memory (0 for element types we cannot decode)."""
        return numel(self.shapes[name]) * itemsize(self.types[name])

    def live_uses(self, name: str) -> list[tuple[int, NodeProto, int]]:
        """Uses of `name` by nodes that run at inference time (not folded away)."""
        return [u for u in self.consumers.get(name, []) if u[0] not in self.fold_nodes]

    def is_terminal(self, name: str) -> bool:
        """True when the value leaves the constant world: used by a live node, output or unused."""
        return name in self.outputs or not self.consumers.get(name) or bool(self.live_uses(name))

    def qparam_only(self, name: str) -> bool:
        """True when every live use is a scale / zero-point input of a quantized op."""
        uses = self.live_uses(name)
        return bool(uses) and all(slot in _QPARAM_SLOTS.get(n.op_type, ()) for _, n, slot in uses)

    def leaves(self, name: str) -> list[str]:
        """The stored constants a (possibly folded) value is computed from, deduplicated, in input order."""
        out: list[str] = []
        seen: set[str] = set()
        stack = [name]
        while stack:
            value = stack.pop()
            if value in seen:
                continue
            seen.add(value)
            node = self.folds.get(value)
            if node is None:
                out.append(value)
            else:
                stack.extend(reversed([a for a in node.input if a]))
        return out

    def fold_order(self, name: str) -> list[str]:
        """The folded values `name` needs, each after its inputs (`name` last; empty for a stored one)."""
        order: list[str] = []
        done: set[str] = set()
        stack = [(name, False)]
        while stack:
            value, ready = stack.pop()
            if value in done or value not in self.folds:
                continue
            if ready:
                done.add(value)
                order.append(value)
                continue
            stack.append((value, True))
            stack.extend((a, False) for a in reversed(self.folds[value].input) if a and a not in done)
        return order

    def first_use(self, name: str) -> int:
        """Index of the first live node that reads `name` (graph order), for stable listings."""
        uses = self.live_uses(name)
        return min(u[0] for u in uses) if uses else self.n_nodes


def constant_value(node: NodeProto) -> TensorProto | None:
    """The tensor a Constant node produces, or None for sparse / string forms (or a mistyped attribute)."""
    forms = {"value": (AttributeProto.TENSOR, None), "value_float": (AttributeProto.FLOAT, np.float32),
             "value_floats": (AttributeProto.FLOATS, np.float32), "value_int": (AttributeProto.INT, np.int64),
             "value_ints": (AttributeProto.INTS, np.int64)}
    for attr in node.attribute:
        kind, dtype = forms.get(attr.name, (None, None))
        if kind is None or attr.type != kind:
            continue
        if dtype is None:
            return attr.t
        value = attr.f if kind == AttributeProto.FLOAT else attr.i if kind == AttributeProto.INT else \
            attr.floats if kind == AttributeProto.FLOATS else attr.ints
        return from_array(np.array(value, dtype=dtype))
    return None


def int_attr(node: NodeProto, name: str, default: int | None = None) -> int:
    """An INT attribute of `node`; ValueError when it is missing (without default) or of another type."""
    for attr in node.attribute:
        if attr.name == name:
            if attr.type != AttributeProto.INT:
                raise ValueError(f"attribute {quote(name)} is not an int")
            return int(attr.i)
    if default is None:
        raise ValueError(f"attribute {quote(name)} is missing")
    return default


def _ints_attr(node: NodeProto, name: str) -> list[int] | None:
    """An INTS attribute of `node`, or None when absent; ValueError when of another type."""
    for attr in node.attribute:
        if attr.name == name:
            if attr.type != AttributeProto.INTS:
                raise ValueError(f"attribute {quote(name)} is not a list of ints")
            return [int(i) for i in attr.ints]
    return None


def _infer(node: NodeProto, shapes: list[tuple[int, ...]],
           types: list[int]) -> tuple[tuple[int, ...], int]:
    """Static shape and element type of a foldable node's output; ValueError where the node is invalid."""
    op = node.op_type
    if any(len(s) > MAX_FOLD_RANK for s in shapes):
        raise ValueError(f"{op} reads an input of rank above {MAX_FOLD_RANK}")
    if op == "DequantizeLinear":
        return _dequantize_shape(node, shapes, types)
    if op in ("Identity", "Cast", "Transpose") and len(shapes) != 1:
        raise ValueError(f"{op} takes one input, not {len(shapes)}")
    if op == "Identity":
        return shapes[0], types[0]
    if op == "Cast":
        return shapes[0], int_attr(node, "to")
    if op == "Transpose":
        perm = _ints_attr(node, "perm")
        perm = list(range(len(shapes[0]) - 1, -1, -1)) if perm is None else perm
        if sorted(perm) != list(range(len(shapes[0]))):
            raise ValueError(f"perm {perm[:8]} is not a permutation of the {len(shapes[0])} axes")
        return tuple(shapes[0][p] for p in perm), types[0]
    if len(shapes) != 2 or types[0] != types[1]:
        raise ValueError(f"{op} needs two inputs of one type")
    if types[0] not in ARITH_TYPES:
        raise _NotFoldable(op)
    return broadcast_shape(shapes[0], shapes[1]), types[0]


def broadcast_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """numpy's broadcast of two shapes, in plain Python (np.broadcast_shapes builds arrays: 0.7 ms a call).

    >>> broadcast_shape((30522, 1), (1, 384)), broadcast_shape((384,), ())
    ((30522, 384), (384,))
    """
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b, strict=True):
        if x != y and 1 not in (x, y):
            raise ValueError(f"shapes {list(a)} and {list(b)} do not broadcast")
        out.append(int(y if x == 1 else x))
    return tuple(out)


def _dequantize_shape(node: NodeProto, shapes: list[tuple[int, ...]],
                      types: list[int]) -> tuple[tuple[int, ...], int]:
    """Output shape and type of DequantizeLinear, its scale and zero point checked against the input."""
    if len(shapes) not in (2, 3) or len(node.input) < 2 or not node.input[1]:
        raise ValueError("DequantizeLinear takes an input, a scale and an optional zero point")
    x, s = shapes[0], shapes[1]
    if types[0] not in _DQ_TYPES or types[1] not in FLOAT_TYPES:
        raise _NotFoldable("DequantizeLinear")
    if len(shapes) == 3 and (shapes[2] != s or types[2] != types[0]):
        raise ValueError(f"zero point of shape {list(shapes[2])} does not match scale shape {list(s)}")
    block, axis = int_attr(node, "block_size", 0), int_attr(node, "axis", 1)
    if block or len(s) > 1 or numel(s) != 1:
        if not -len(x) <= axis < len(x):
            raise ValueError(f"axis {axis} is out of range for an input of rank {len(x)}")
        ax = axis % len(x)
        want = [-(-x[d] // block) if d == ax else x[d] for d in range(len(x))] if block > 0 else [x[ax]]
        if block < 0 or list(s) != want:
            raise ValueError(f"scale shape {list(s)} does not fit input shape {list(x)} on axis {axis}"
                             + (f" in blocks of {block}" if block else ""))
    return x, int_attr(node, "output_dtype", 0) or types[1]


def find_weights(index: GraphIndex) -> tuple[list[WeightSpec], dict[str, str]]:
    """Every float weight with more than one element, in order of first use; and what was skipped."""
    ort_params = {f"{n[:-len(_ORT_Q)]}{s}" for n in index.consts if n.endswith(_ORT_Q)
                  for s in (_ORT_SCALE, _ORT_ZP)}
    specs: list[WeightSpec] = []
    skipped: dict[str, str] = {}
    for name in list(index.types):
        if name in ort_params or not index.is_terminal(name) or index.qparam_only(name):
            continue
        if name.endswith(_ORT_Q) and name[:-len(_ORT_Q)] + _ORT_SCALE in index.consts:
            spec = _ort_spec(index, name)
            if isinstance(spec, str):
                skipped[name] = spec
            else:
                specs.append(spec)
        elif index.types[name] in FLOAT_TYPES and _worth_exposing(name, index.shapes[name]):
            specs.append(_plain_spec(index, name))
    specs.sort(key=lambda s: index.first_use(s.value))
    return specs, skipped


def _worth_exposing(name: str, shape: tuple[int, ...]) -> bool:
    """Weights have several elements; a 1-element one counts only under a parameter name."""
    return numel(shape) > 1 or (len(shape) > 0 and numel(shape) == 1 and is_param_name(name))


def numel(shape: tuple[int, ...] | list[int]) -> int:
    """Number of elements for a shape (1 for a scalar), exact however large the dims."""
    return math.prod(int(d) for d in shape)


def itemsize(etype: int) -> int:
    """Bytes per element of an element type this package decodes (0 for the others)."""
    return NP_DTYPES[etype].itemsize if etype in DTYPE_NAMES else 0


def quote(name: str, limit: int = 80) -> str:
    """A name from the file for a message: repr'd (no raw bytes) and cut to `limit` characters."""
    return repr(name if len(name) <= limit else name[:limit] + "...")


def _human(n: int) -> str:
    """Bytes in words: '3.6 GB'."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def _plain_spec(index: GraphIndex, name: str) -> WeightSpec:
    """A stored float constant, or one computed from constants (Cast/Mul/DequantizeLinear ...)."""
    leaves = index.leaves(name)
    main = max(leaves, key=lambda n: numel(index.shapes[n]))
    quantized = name in index.folds and any(index.types[n] not in FLOAT_TYPES for n in leaves)
    return WeightSpec(value=name, base=name, shape=index.shapes[name],
                      dtype=DTYPE_NAMES.get(index.types[main], str(index.types[main])),
                      quantized=quantized, sources=tuple(leaves))


def _ort_spec(index: GraphIndex, name: str) -> WeightSpec | str:
    """onnxruntime's X_quantized + X_scale (+ X_zero_point), or why it cannot be dequantized."""
    base = name[:-len(_ORT_Q)]
    scale, zp = base + _ORT_SCALE, base + _ORT_ZP
    zp_name = zp if zp in index.consts else None
    shape, s_shape = index.shapes[name], index.shapes[scale]
    if name not in index.consts:
        return "computed by the graph, not stored: not onnxruntime's quantized weight"
    if index.types[name] not in DTYPE_NAMES or index.types[scale] not in FLOAT_TYPES:
        return f"types {index.types[name]}/{index.types[scale]} are not integer/float"
    if zp_name and (index.shapes[zp_name] != s_shape or index.types[zp_name] != index.types[name]):
        return f"zero point {list(index.shapes[zp_name])} does not match scale {list(s_shape)}"
    axis = _scale_axis(index, name, shape, s_shape)
    if axis == "bad":
        return f"scale shape {list(s_shape)} does not fit weight shape {list(shape)}"
    sources = (name, scale) + ((zp_name,) if zp_name else ())
    return WeightSpec(value=name, base=base, shape=shape, dtype=DTYPE_NAMES[index.types[name]],
                      quantized=True, sources=sources, ort=(scale, zp_name, axis))


def _scale_axis(index: GraphIndex, name: str, shape: tuple[int, ...],
                s_shape: tuple[int, ...]) -> int | None | str:
    """Axis a 1-D per-channel scale runs along (last for MatMul weights), None if it broadcasts."""
    if numel(s_shape) == 1:
        return None
    if len(s_shape) == len(shape) and len(shape) > 1:
        try:
            fits_in = np.broadcast_shapes(s_shape, shape) == tuple(shape)
        except ValueError:
            return "bad"
        return None if fits_in else "bad"  # a scale may not make the weight larger
    if len(s_shape) != 1 or not shape:
        return "bad"
    fits = [ax for ax in (len(shape) - 1, 0) if shape[ax] == s_shape[0]]
    if not fits:
        return "bad"
    gathered = any(n.op_type == "Gather" and slot == 0 for _, n, slot in index.live_uses(name))
    return fits[-1] if gathered else fits[0]


def linear_use(index: GraphIndex, name: str) -> NodeProto | None:
    """The first live MatMul-like node reading `name` as its weight input."""
    for _, node, slot in index.live_uses(name):
        if LINEAR_WEIGHT_SLOT.get(node.op_type) == slot:
            return node
    return None


def needs_transpose(index: GraphIndex, spec: WeightSpec) -> bool:
    """True for a 2-D weight a MatMul reads as [in, out]: PyTorch keeps [out, in]."""
    if len(spec.shape) != 2:
        return False
    uses = index.live_uses(spec.value)
    if any(n.op_type == "Gather" and slot == 0 for _, n, slot in uses):
        return False  # an embedding table: [vocab, dim] in both worlds
    node = linear_use(index, spec.value)
    if node is None:
        return False
    if node.op_type == "Gemm":
        try:
            return not int_attr(node, "transB", 0)
        except ValueError as exc:
            raise index.bad_node(node, f"is not valid ONNX ({exc})") from None
    return True


def is_param_name(name: str) -> bool:
    """True for a module parameter name, which exporters keep when they keep names at all.

    >>> is_param_name("encoder.layer.0.attention.self.query.bias"), is_param_name("onnx::MatMul_1525")
    (True, False)
    """
    return "." in name and "::" not in name and name.endswith((".weight", ".bias"))
