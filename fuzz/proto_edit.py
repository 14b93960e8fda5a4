"""Protobuf-aware mutators: a field tree edited and re-serialised with correct lengths (SentencePiece,
ONNX), and ONNX edits through the onnx API (dims, data types, external data, rewired or cyclic nodes)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from fuzz.mutate import BYTE_MUTATORS, MAX_SIZE
from fuzz.wire import FIXED32, FIXED64, LEN, VARINT, encode_varint, fields, key, len_field

_VARINTS = (0, 1, 2, 3, 6, 7, 127, 128, 2**31 - 1, 2**31, 2**32, 2**62, 2**63, 2**64 - 1, 1 << 24)


@dataclass
class Node:
    """One field; LEN payloads that parse whole are kept as child fields."""

    number: int
    wire: int
    value: int = 0
    payload: bytes = b""
    children: list[Node] | None = field(default=None)


def parse(buf: bytes, depth: int = 0, budget: list[int] | None = None) -> list[Node] | None:
    """The fields of `buf` as a tree, or None if `buf` is not a whole message."""
    budget = [5000] if budget is None else budget
    spans = fields(buf)
    if not spans or spans[-1].end != len(buf):
        return None
    out = []
    for s in spans:
        budget[0] -= 1
        payload = buf[s.start:s.end] if s.wire != VARINT else b""
        children = parse(payload, depth + 1, budget) if (s.wire == LEN and payload and depth < 10
                                                          and budget[0] > 0) else None
        out.append(Node(s.number, s.wire, s.value if s.wire == VARINT else 0, payload, children))
    return out


def serialize(nodes: list[Node]) -> bytes:
    """The bytes of a field tree, lengths recomputed."""
    out = bytearray()
    for n in nodes:
        out += key(n.number, n.wire)
        if n.wire == VARINT:
            out += encode_varint(n.value)
        elif n.wire == LEN:
            payload = serialize(n.children) if n.children is not None else n.payload
            out += encode_varint(len(payload)) + payload
        else:
            out += n.payload
    return bytes(out)


def _flatten(nodes: list[Node], out: list[tuple[list[Node], int]]) -> None:
    for i, n in enumerate(nodes):
        out.append((nodes, i))
        if n.children is not None:
            _flatten(n.children, out)


def proto_fields(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """Edit one field inside one top-level field: a varint, a leaf payload, its wire type or number;
    duplicate or drop it. Only that top-level field is parsed and re-serialised (lengths fixed up)."""
    top = fields(data)
    if not top or top[-1].end != len(data):
        return data
    span = rng.choice(top)
    payload = data[span.start:span.end] if span.wire != VARINT else b""
    children = parse(payload) if span.wire == LEN and payload else None
    node = Node(span.number, span.wire, span.value if span.wire == VARINT else 0, payload, children)
    tree = [node]
    spots: list[tuple[list[Node], int]] = []
    _flatten(tree, spots)
    siblings, i = rng.choice(spots)
    _edit_node(siblings, i, rng)
    try:
        return data[:span.key_start] + serialize(tree) + data[span.end:]
    except RecursionError:
        return data


def _edit_node(siblings: list[Node], i: int, rng: random.Random) -> None:
    n = siblings[i]
    op = rng.randrange(6)
    if op <= 1 and n.wire == VARINT:
        n.value = rng.choice(_VARINTS) if rng.random() < 0.7 else n.value + rng.choice((-1, 1, 1000))
    elif op <= 1 and n.wire == LEN and n.children is None:
        n.payload = rng.choice(BYTE_MUTATORS)(n.payload, rng, [])
    elif op <= 1 and n.wire in (FIXED32, FIXED64):
        n.payload = (rng.choice((b"\xff", b"\x00", b"\x7f\x7f\x80")) * 8)[:4 if n.wire == FIXED32 else 8]
    elif op == 2:
        size = len(serialize([n]))
        siblings[i:i + 1] = [n] * max(1, min(rng.choice((2, 3, 50, 1000)), MAX_SIZE // (size + 1)))
    elif op == 3:
        del siblings[i]
    elif op == 4:
        n.number = rng.choice((n.number + 1, max(1, n.number - 1), rng.randrange(1, 30), 2**29 - 1))
    elif n.wire == VARINT:  # reinterpret: a varint as bytes, a message or bytes as a varint
        n.wire, n.payload, n.children = LEN, encode_varint(n.value), None
    else:
        n.wire, n.value = VARINT, len(n.payload)


_OPS = ("DequantizeLinear", "MatMulInteger", "MatMul", "Gemm", "Cast", "Mul", "Add", "Transpose", "Gather",
        "Constant", "Identity", "Sub", "Div", "Reshape", "DynamicQuantizeLinear", "QLinearMatMul", "If", "")
_DIMS = (0, 1, -1, 2**31, 2**32 + 1, 2**62, 2**63 - 1, -(2**63), 3, 16, 17)


def _tensor_edit(t, rng: random.Random) -> None:  # onnx.TensorProto
    op = rng.randrange(7)
    if op == 0 and len(t.dims):
        t.dims[rng.randrange(len(t.dims))] = rng.choice(_DIMS)
    elif op == 1:
        del t.dims[:]
        t.dims.extend(rng.choice(([], [0], [2] * 64, [16, 16, 16], [2**31, 2**31], [1] * 40)))
    elif op == 2:
        t.data_type = rng.randrange(0, 27)
    elif op == 3:
        t.raw_data = rng.choice((b"", t.raw_data[:len(t.raw_data) // 2], t.raw_data * 2, t.raw_data[:-1]))
    elif op == 4:  # values moved from raw_data to a typed field
        t.raw_data = b""
        t.float_data.extend([1.0, float("nan")] * rng.choice((1, 8, 128)))
        t.int32_data.extend([-1, 2**31 - 1] * rng.choice((0, 8)))
    elif op == 5:
        from onnx import TensorProto

        t.data_location = TensorProto.EXTERNAL
        for k, v in rng.choice(((("location", "weights.bin"),), (("location", "../../etc/passwd"),),
                                (("location", "w.bin"), ("offset", "-1"), ("length", "99999999999")),
                                (("location", "/dev/zero"), ("length", str(2**40))), (("location", ""),),
                                (("location", "x"), ("offset", "abc")))):
            entry = t.external_data.add()
            entry.key, entry.value = k, v
    else:
        t.name = rng.choice(("", "x" * 1000, "onnx::MatMul_1", "embeddings.word_embeddings.weight_quantized"))


def _node_edit(g, rng: random.Random) -> None:  # onnx.GraphProto
    from onnx import helper

    nodes = list(g.node)
    if not nodes:
        return
    n = rng.choice(nodes)
    names = [o for m in nodes for o in m.output] + [t.name for t in g.initializer] + [""]
    op = rng.randrange(6)
    if op == 0:
        n.op_type = rng.choice(_OPS)
    elif op == 1 and len(n.input):
        n.input[rng.randrange(len(n.input))] = rng.choice(names + list(n.output))  # own output: a cycle
    elif op == 2:
        n.attribute.append(rng.choice((helper.make_attribute("axis", rng.choice(_DIMS)),
                                       helper.make_attribute("to", rng.randrange(0, 27)),
                                       helper.make_attribute("transB", rng.choice((0, 1, 2, -1))),
                                       helper.make_attribute("perm", rng.choice(([1, 0], [0], [5, 9], [0, 0]))),
                                       helper.make_attribute("axes", [rng.choice(_DIMS)]))))
    elif op == 3:
        g.node.extend([n] * rng.choice((1, 2, 100)))  # outputs produced twice
    elif op == 4:
        g.node.remove(n)
    else:
        del n.input[:]
        n.input.extend(rng.choice((names[:1] * 300, [], n.output, [rng.choice(names)] * 5)))


def deep_graph(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """Append an If node whose then-branch nests graphs 50 .. 1000 deep (written as bytes: the protobuf
    library itself refuses to build past depth 100)."""
    node = len_field(4, b"If") + len_field(1, b"cond") + len_field(2, b"out")
    for _ in range(rng.choice((50, 99, 101, 200, 1000))):
        attribute = len_field(1, b"then_branch") + key(20, VARINT) + encode_varint(5) + len_field(6, len_field(1, node))
        node = len_field(4, b"If") + len_field(1, b"cond") + len_field(2, b"out") + len_field(5, attribute)
    return data + len_field(7, len_field(1, node))  # a second graph field merges into the first


def onnx_model(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """Edit the parsed model: an initializer's dims/type/data/external data, a node's op/inputs/attributes,
    duplicate or deleted nodes, opset or IR version."""
    import onnx
    from google.protobuf.message import DecodeError

    m = onnx.ModelProto()
    try:
        m.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError):
        return data
    g = m.graph
    op = rng.randrange(9)
    if op <= 3 and len(g.initializer):
        _tensor_edit(rng.choice(list(g.initializer)), rng)
    elif op <= 6:
        _node_edit(g, rng)
    elif op == 7 and len(g.initializer):
        g.initializer.extend([rng.choice(list(g.initializer))] * rng.choice((1, 2, 50)))
    elif op == 8:
        if len(m.opset_import):
            m.opset_import[0].version = rng.choice((0, 1, 7, 10, 13, 21, 2**31, -1))
        m.ir_version = rng.choice((0, 3, 10, 11, 2**40))
    try:
        return m.SerializeToString()
    except (RecursionError, ValueError, RuntimeError):
        return data
