"""Seed ONNX graphs cut from the real int8 exports: node patterns kept, every tensor sliced small."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from fuzz import real_files

_SIDE = 16  # every initializer dimension is cut to at most this


def _sliced(tensor, side: int):  # onnx.TensorProto -> onnx.TensorProto
    from onnx import numpy_helper

    arr = numpy_helper.to_array(tensor)
    arr = np.ascontiguousarray(arr[tuple(slice(0, side) for _ in arr.shape)])
    return numpy_helper.from_array(arr, name=tensor.name)


def subgraph(model, chosen: Iterable[int], side: int = _SIDE) -> bytes:
    """The nodes `chosen` (indices) of `model` as a model of their own, initializers sliced to `side`.

    Inputs no chosen node produces come from initializers, the graph's Constant nodes, or become graph
    inputs; outputs nothing chosen consumes become graph outputs.
    """
    import onnx
    from onnx import TensorProto, helper

    g = model.graph
    nodes = [g.node[i] for i in sorted(set(chosen))]
    inits = {t.name: t for t in g.initializer}
    constants = {n.output[0]: n for n in g.node if n.op_type == "Constant" and n.output}
    declared = {v.name: v for v in g.input}
    produced = {o for n in nodes for o in n.output}
    used_inits, extra_nodes, inputs = {}, [], []
    for n in nodes:
        for name in n.input:
            if not name or name in produced or name in used_inits:
                continue
            if name in inits:
                used_inits[name] = _sliced(inits[name], side)
            elif name in constants:
                c = onnx.NodeProto()
                c.CopyFrom(constants[name])
                for a in c.attribute:
                    if a.name == "value":
                        a.t.CopyFrom(_sliced(a.t, side))
                extra_nodes.append(c)
                produced.add(name)
            else:
                elem = declared[name].type.tensor_type.elem_type if name in declared else TensorProto.FLOAT
                inputs.append(helper.make_tensor_value_info(name, elem, None))
                produced.add(name)
    consumed = {i for n in nodes for i in n.input}
    outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None)
               for n in nodes for o in n.output if o and o not in consumed]
    graph = helper.make_graph(extra_nodes + nodes, g.name or "seed", inputs, outputs,
                              initializer=list(used_inits.values()))
    out = helper.make_model(graph, producer_name=model.producer_name, producer_version=model.producer_version,
                            opset_imports=list(model.opset_import))
    out.ir_version = model.ir_version
    return out.SerializeToString()


def _consumers(model, names: set[str]) -> list[int]:
    return [i for i, n in enumerate(model.graph.node) if names & set(n.input)]


def onnx_seeds() -> dict[str, bytes]:
    """BGE's Gather -> DequantizeLinear embeddings and DynamicQuantizeLinear -> MatMulInteger q/k/v;
    MiniLM int8's Cast -> Mul weights and the Gather/MatMul nodes using them."""
    import onnx

    bge = onnx.load(str(real_files.BGE_ONNX), load_external_data=False)
    first = next(i for i, n in enumerate(bge.graph.node) if n.op_type == "Gather" and
                 n.input[0].endswith("word_embeddings.weight_quantized"))
    qkv_adds = [i for i, n in enumerate(bge.graph.node) if n.op_type == "Add" and
                any(x.startswith("encoder.layer.0.attention.self.") for x in n.input)]
    bge_nodes = [i for i in range(first, max(qkv_adds) + 1) if bge.graph.node[i].op_type != "Constant"]
    minilm = onnx.load(str(real_files.MINILM_INT8_ONNX), load_external_data=False)
    dequant = [i for i, n in enumerate(minilm.graph.node[:16]) if n.op_type in ("Cast", "Mul")]
    made = {o for i in dequant for o in minilm.graph.node[i].output}
    users = [i for i in _consumers(minilm, made) if minilm.graph.node[i].op_type in ("Gather", "MatMul", "Gemm")]
    return {"bge-matmulinteger": subgraph(bge, bge_nodes),
            "minilm-int8-castmul": subgraph(minilm, dequant + users),
            "bge-small-side": subgraph(bge, bge_nodes[:12], side=4)}
