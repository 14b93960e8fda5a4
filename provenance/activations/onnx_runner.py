"""Run a BERT-style encoder ONNX export with onnxruntime, capturing activations per layer.

Every op must be one onnxruntime ships (no custom domains: no custom-op code runs). In memory
only, each layer's final LayerNorm output (HF's hidden_states[i+1]) and GELU output become graph
outputs, found by parameter names / node scopes when the exporter kept them, else by order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state
from tokenizers import Tokenizer

from provenance.activations.base import Captured, Encoded
from provenance.errors import (
    CorruptFileError,
    InvalidParameterError,
    MissingFileError,
    ProvenanceError,
    UnknownFormatError,
)
from provenance.io.onnx_graph import GraphIndex, is_param_name
from provenance.io.onnx_names import scope_module
from provenance.io.onnx_reader import check_external_tensors, load_model_proto

_LN_OPS = frozenset({"LayerNormalization", "SkipLayerNormalization"})  # output 0: the normed value
_GELU_OPS = frozenset({"Gelu", "FastGelu", "BiasGelu"})
_GELU_TAIL = frozenset({"Add", "Mul", "Div"})  # erf(x/√2) → +1 → ·x → ·½
_AFFINE = frozenset({"Mul", "Add"})  # normalized · γ + β
_OUTPUT_LN = re.compile(r"(?:^|\.)layer\.(\d+)\.output\.LayerNorm$")
_INTERMEDIATE = re.compile(r"(?:^|\.)layer\.(\d+)\.intermediate(?:\.|$)")
_ORT_ERRORS = (ort_state.Fail, ort_state.InvalidGraph, ort_state.InvalidArgument, ort_state.InvalidProtobuf,
               ort_state.NotImplemented, ort_state.RuntimeException)  # their only common base is Exception
_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


@dataclass(frozen=True)
class Site:
    """A graph value we expose: its name, the index of the node producing it, its module label."""

    value: str
    at: int
    label: str | None


@dataclass(frozen=True)
class Layout:
    """The values holding each layer's residual stream and GELU output; "names" or "order" found them."""

    residual: tuple[str, ...]
    act: tuple[str, ...]
    residual_by: str
    act_by: str


class OnnxActivationModel:
    """A BERT-style encoder ONNX export run by onnxruntime, with per-layer outputs exposed.

    `tokenizer`: a tokenizer.json for when none lies beside the model; `max_length`: truncation
    (default: the position-embedding rows). Graphs that quantize activations per tensor
    (DynamicQuantizeLinear) depend on which texts share a batch: compare at equal `batch_size`.
    """

    def __init__(self, path: Path, *, tokenizer: Path | Tokenizer | None = None, max_length: int | None = None,
                 threads: int | None = None) -> None:
        self.path = Path(path)
        self.name = f"{self.path.parent.name}/{self.path.name}"
        model = load_model_proto(self.path)
        check_ops(model, self.path)
        index = GraphIndex.build(model.graph, path=self.path)
        external = check_external_tensors(self.path, index.consts)  # unsafe / missing / short external data
        self.max_length = max_length or position_rows(model.graph, index) or 512
        source = tokenizer if tokenizer is not None else self.path.parent / "tokenizer.json"
        self.tokenizer_file = source if isinstance(source, Path) else None
        self.tokenizer, self.pad_id = load_tokenizer(source, self.max_length)
        self.layout_ = find_layout(model.graph, index, self.path)
        self._inputs = graph_inputs(model.graph, self.path)
        self._fetch = [*self.layout_.residual, *self.layout_.act]
        present = {o.name for o in model.graph.output}
        model.graph.output.extend(onnx.ValueInfoProto(name=v) for v in self._fetch if v not in present)
        self._session: ort.InferenceSession | None = open_session(model, self.path, threads, bool(external))

    def encode(self, texts: list[str]) -> Encoded:
        """Token ids (truncated to `max_length`) and character offsets; specials get (0, 0)."""
        encs = self.tokenizer.encode_batch(texts)
        offsets = [[(0, 0) if special else (int(a), int(b))
                    for (a, b), special in zip(e.offsets, e.special_tokens_mask)] for e in encs]
        return Encoded([list(e.ids) for e in encs], offsets)

    def capture(self, enc: Encoded, positions: list[list[int]], *, batch_size: int = 8) -> Captured:
        """Run the texts in batches; keep each layer's residual and GELU output at `positions` only."""
        check_positions(enc, positions, batch_size)
        if self._session is None:
            raise ProvenanceError("this model is closed; open it again with OnnxActivationModel(path)",
                                  path=self.path)
        parts: list[list[np.ndarray]] = [[] for _ in self._fetch]
        tokens = 0
        for start in range(0, len(enc.input_ids), batch_size):
            ids, pos = enc.input_ids[start:start + batch_size], positions[start:start + batch_size]
            if not any(pos):
                continue
            rows = np.repeat(np.arange(len(pos)), [len(p) for p in pos])
            cols = np.concatenate([np.asarray(p, dtype=np.int64) for p in pos])
            for part, out in zip(parts, self._session.run(self._fetch, self.feeds(ids))):
                out = out.reshape(len(ids), -1, out.shape[-1])  # [B, T, d], also from [B*T, d] graphs
                part.append(np.asarray(out[rows, cols], dtype=np.float32))  # [k, d]: the batch goes
            tokens += sum(len(x) for x in ids)
        cat = [np.concatenate(p) if p else np.zeros((0, 0), np.float32) for p in parts]
        n_layers = len(self.layout_.residual)
        return Captured(np.stack(cat[:n_layers]), {"act": np.stack(cat[n_layers:])}, tokens)

    def feeds(self, ids: list[list[int]]) -> dict[str, np.ndarray]:
        """The graph's inputs for one batch: right-padded ids, mask, zero token types, positions."""
        width = max(len(x) for x in ids)
        mask = (np.arange(width) < np.array([len(x) for x in ids])[:, None]).astype(np.int64)
        input_ids = np.full(mask.shape, self.pad_id, dtype=np.int64)
        input_ids[mask == 1] = np.concatenate(ids)
        values = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(mask),
                  "position_ids": np.broadcast_to(np.arange(width), mask.shape)}
        return {name: values[name].astype(dtype) for name, dtype in self._inputs.items()}

    def close(self) -> None:
        """Release the onnxruntime session; `capture` fails afterwards."""
        self._session = None


def check_ops(model: onnx.ModelProto, path: Path) -> None:
    """Refuse any node whose op onnxruntime does not ship (custom domains, unknown ops)."""
    known = {("" if s.domain == "ai.onnx" else s.domain, s.name) for s in ort_state.get_all_operator_schema()}
    known |= {(f.domain, f.name) for f in model.functions}  # model-local functions: their bodies are checked
    for node in (n for g in [model.graph, *model.functions] for n in all_nodes(g.node)):
        domain = "" if node.domain == "ai.onnx" else node.domain
        if (domain, node.op_type) not in known:
            what = ("an op onnxruntime does not know" if domain in ("", "ai.onnx.ml", "com.microsoft")
                    else f"custom domain {domain!r}")
            raise UnknownFormatError(f"node {node.name!r} runs {domain or 'ai.onnx'}::{node.op_type}, {what}; "
                                     "provenance never runs custom ops: export with standard ONNX ops", path=path)


def all_nodes(nodes: Iterable[onnx.NodeProto]) -> Iterator[onnx.NodeProto]:
    """Nodes with those of their If/Loop/Scan subgraphs (depth first, without recursion)."""
    stack: list[Iterator[onnx.NodeProto]] = [iter(nodes)]
    while stack:
        node = next(stack[-1], None)
        if node is None:
            stack.pop()
            continue
        yield node
        subgraphs = [g for attr in node.attribute for g in ([attr.g] if attr.HasField("g") else attr.graphs)]
        stack.extend(iter(g.node) for g in reversed(subgraphs))


def position_rows(graph: onnx.GraphProto, index: GraphIndex) -> int | None:
    """Rows of the position-embedding table a Gather reads (the model's maximum length)."""
    tables = (n.input[0] for n in graph.node
              if n.op_type == "Gather" and "position" in f"{n.input[0]} {scope_module(n.name)}")
    return next((int(index.shapes[t][0]) for t in tables if len(index.shapes.get(t, ())) == 2), None)


def load_tokenizer(path: Path | Tokenizer, max_length: int) -> tuple[Tokenizer, int]:
    """The `tokenizers` tokenizer (from a tokenizer.json, or borrowed), unpadded, truncating at `max_length`;
    and its pad id."""
    if isinstance(path, Tokenizer):
        return _prepared(Tokenizer.from_str(path.to_str()), max_length)
    if not path.is_file():
        raise MissingFileError(f"no tokenizer.json in {path.parent}; pass tokenizer= a tokenizer.json "
                               "with the same vocabulary", path=path.parent)
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception on bad JSON
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CorruptFileError(f"not a tokenizers JSON file ({first})", path=path) from None
    return _prepared(tok, max_length)


def _prepared(tok: Tokenizer, max_length: int) -> tuple[Tokenizer, int]:
    pad_id = int(tok.padding["pad_id"]) if tok.padding else (tok.token_to_id("[PAD]") or 0)
    tok.no_padding()
    tok.enable_truncation(max_length)
    return tok, pad_id


def find_layout(graph: onnx.GraphProto, index: GraphIndex, path: Path) -> Layout:
    """Each layer's residual (final LayerNorm) and GELU values, by names when kept, else by order."""
    lns, gelus = layer_norms(graph, index), gelu_outputs(graph, index)
    residual, residual_by = by_layer(lns, _OUTPUT_LN), "names"
    if residual is None:  # embedding LN, then attention-output and output LN per layer
        if not gelus or len(lns) != 2 * len(gelus) + 1:
            raise UnknownFormatError(f"found {len(lns)} LayerNorms and {len(gelus)} GELUs, not the 2L+1 "
                                     "and L of a BERT-style encoder; only BERT-style exports are supported",
                                     path=path)
        residual, residual_by = [lns[2 * i + 2] for i in range(len(gelus))], "order"
    act, act_by = by_layer(gelus, _INTERMEDIATE), "names"
    if act is None or len(act) != len(residual):  # the one GELU between consecutive final LayerNorms
        bounds = [-1, *(s.at for s in residual)]
        found = [[g for g in gelus if lo < g.at < hi] for lo, hi in zip(bounds, bounds[1:])]
        if any(len(f) != 1 for f in found):
            raise UnknownFormatError(f"found {[len(f) for f in found]} GELUs per layer, not one each; "
                                     "only BERT-style exports are supported", path=path)
        act, act_by = [f[0] for f in found], "order"
    return Layout(tuple(s.value for s in residual), tuple(s.value for s in act), residual_by, act_by)


def by_layer(sites: list[Site], pattern: re.Pattern[str]) -> list[Site] | None:
    """Sites whose labels name layers 0..L-1 exactly once each, in layer order; else None."""
    found = sorted((int(m.group(1)), s.at, s) for s in sites if (m := pattern.search(s.label or "")))
    ok = found and [f[0] for f in found] == list(range(len(found)))
    return [f[2] for f in found] if ok else None


def layer_norms(graph: onnx.GraphProto, index: GraphIndex) -> list[Site]:
    """Every LayerNorm output in graph order: fused ops, or ReduceMean/Sub/…/Div(·γ+β) chains."""
    sites: list[Site] = []
    for i, node in enumerate(graph.node):
        if not node.output or not node.input:
            continue  # no value to expose (the runtime refuses such a node anyway)
        if node.op_type in _LN_OPS:
            slot = 2 if node.op_type == "SkipLayerNormalization" else 1
            gamma = node.input[slot] if len(node.input) > slot else None
            sites.append(Site(node.output[0], i, _label(gamma, node)))
        elif node.op_type == "ReduceMean" and (site := _decomposed_ln(node, index)) is not None:
            sites.append(site)
    return sites


def _decomposed_ln(mean: onnx.NodeProto, index: GraphIndex) -> Site | None:
    """Follow x - mean(x) → ÷ std → · γ → + β from the mean; None if it is not a LayerNorm."""
    x, m = mean.input[0], mean.output[0]
    sub = _only_use(index, m, lambda n: n.op_type == "Sub" and list(n.input) == [x, m])
    uses = index.live_uses(sub[1].output[0]) if sub else []
    div = next(((i, n) for i, n, slot in uses if n.op_type == "Div" and slot == 0 and n.output), None)
    if div is None:
        return None
    (at, node), gamma = div, None
    for _ in range(2):
        if (step := _only_use(index, node.output[0], lambda n: n.op_type in _AFFINE and
                              any(a in index.types for a in n.input))) is None:
            break
        (at, node), gamma = step, gamma or next(a for a in step[1].input if a in index.types)
    return Site(node.output[0], at, _label(gamma, node))


def gelu_outputs(graph: onnx.GraphProto, index: GraphIndex) -> list[Site]:
    """Every GELU output in graph order: fused ops, or the Add/Mul tail after an Erf."""
    sites: list[Site] = []
    for i, node in enumerate(graph.node):
        if not node.output:
            continue
        if node.op_type in _GELU_OPS:
            sites.append(Site(node.output[0], i, scope_module(node.name)))
        elif node.op_type == "Erf":
            at, cur = i, node
            for _ in range(3):  # + 1, · x, · ½ in any order
                if (step := _only_use(index, cur.output[0], lambda n: n.op_type in _GELU_TAIL)) is None:
                    break
                at, cur = step
            sites.append(Site(cur.output[0], at, scope_module(node.name)))
    return sites


def _only_use(index: GraphIndex, value: str,
              ok: Callable[[onnx.NodeProto], bool]) -> tuple[int, onnx.NodeProto] | None:
    """The single live consumer of `value` when there is exactly one and `ok` accepts it."""
    uses = index.live_uses(value)
    return (uses[0][0], uses[0][1]) if len(uses) == 1 and uses[0][1].output and ok(uses[0][1]) else None


def _label(param: str | None, node: onnx.NodeProto) -> str | None:
    """Module path from a γ parameter name (`….LayerNorm.weight`), else from the node scope."""
    return param.rsplit(".", 1)[0] if param and is_param_name(param) else scope_module(node.name)


def graph_inputs(graph: onnx.GraphProto, path: Path) -> dict[str, np.dtype]:
    """Runtime inputs and their numpy dtypes; refuse inputs a BERT encoder does not take."""
    inits = {t.name for t in graph.initializer}
    inputs = {i.name: helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)
              for i in graph.input if i.name not in inits}
    if set(inputs) - set(_INPUTS) or "input_ids" not in inputs:
        raise UnknownFormatError(f"graph inputs {sorted(inputs)} are not a BERT encoder's "
                                 f"(expected input_ids and some of {list(_INPUTS[1:])})", path=path)
    return inputs


def open_session(model: onnx.ModelProto, path: Path, threads: int | None, external: bool) -> ort.InferenceSession:
    """An onnxruntime CPU session on the edited model, from bytes; nothing is written to disk."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or 0  # 0: onnxruntime's default, one per physical core
    opts.use_deterministic_compute = True
    opts.log_severity_level = 3
    if external:  # external data stays where it is, found relative to the model's folder
        opts.add_session_config_entry("session.model_external_initializers_file_folder_path",
                                      str(path.parent.resolve()))
    try:
        return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except _ORT_ERRORS as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UnknownFormatError(f"onnxruntime cannot load the graph ({first})", path=path) from None


def check_positions(enc: Encoded, positions: list[list[int]], batch_size: int) -> None:
    """Parameter errors for capture: one position list per text, each index within its text."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidParameterError("batch_size", "capture", "a positive int", batch_size)
    if len(positions) != len(enc.input_ids):
        raise InvalidParameterError("positions", "capture", f"{len(enc.input_ids)} lists, one per text",
                                    f"{len(positions)} lists")
    for t, (ids, pos) in enumerate(zip(enc.input_ids, positions)):
        if bad := [p for p in pos if not 0 <= p < len(ids)]:
            raise InvalidParameterError("positions", "capture", f"indices in [0, {len(ids)}) for text {t}", bad)
