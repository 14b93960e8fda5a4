"""Infer canonical roles from structure when tensor names are unknown (the renamed-shell case).

Layers are found from the numeric component of the names that repeats with the same
suffixes; inside a layer, roles follow from shapes relative to the hidden size (readers
[x, h], writers [h, x], vectors [h]); name hints ('q', 'ln1', 'w2', ...) and then file order
break ties between same-shaped tensors (q/o, k/v, gate/up, norm1/norm2). Every role found
this way is marked `inferred`, and ties settled by order alone are reported in `notes`.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import replace
from itertools import permutations

from provenance.arch.layer_order import (
    hidden_size,
    layers_from_order,
    vocabulary_tables,
)
from provenance.arch.layout import Layout
from provenance.arch.rolemap import RoleMap, RoleSource
from provenance.arch.roles import layer_role
from provenance.io.base import TensorInfo, is_buffer

HINTS: dict[str, tuple[str, ...]] = {
    "attn.q": ("q", "query", "wq", "q_proj", "attn_q"), "attn.k": ("k", "key", "wk", "k_proj", "attn_k"),
    "attn.v": ("v", "value", "wv", "v_proj", "attn_v"),
    "attn.o": ("o", "out", "wo", "o_proj", "out_proj", "dense", "attn_output", "c_proj", "proj"),
    "mlp.gate": ("gate", "w1", "gate_proj", "ffn_gate", "wi_0"), "mlp.up": ("up", "w3", "up_proj", "fc1", "c_fc",
                                                                          "ffn_up", "wi_1", "intermediate"),
    "mlp.down": ("down", "w2", "down_proj", "fc2", "ffn_down", "wo", "output"),
    "norm1": ("input_layernorm", "ln1", "ln_1", "attention_norm", "attn_norm", "norm1", "input", "pre"),
    "norm2": ("post_attention_layernorm", "ln2", "ln_2", "ffn_norm", "norm2", "post", "mlp_norm"),
    "attn.q_norm": ("q_norm", "q_layernorm", "query_norm"), "attn.k_norm": ("k_norm", "k_layernorm", "key_norm"),
    "embed": ("embed", "embed_tokens", "wte", "tok", "token", "word", "word_embeddings", "token_embd"),
    "lm_head": ("lm_head", "head", "output", "unembed", "logits"),
    "pos_embed": ("pos", "wpe", "position", "position_embeddings", "position_embd"),
    "final_norm": ("final", "norm", "ln_f", "output_norm", "final_layernorm", "norm_f"),
}


def _tokens(name: str) -> set[str]:
    low = name.lower()
    parts = re.split(r"[._/]", low)
    return set(parts) | {"_".join(parts[i:i + 2]) for i in range(len(parts) - 1)}


def hint_score(name: str, key: str) -> int:
    toks = _tokens(name)
    return sum(1 for h in HINTS.get(key, ()) if h in toks)


def _assign(names: list[str], keys: list[str], notes: list[str], where: str) -> dict[str, str]:
    """Give each of `keys` one of `names` (same shape): best hint agreement, then file order."""
    keys = keys[:len(names)]
    best = max(permutations(names, len(keys)),
               key=lambda perm: (sum(hint_score(n, k) for n, k in zip(perm, keys)),
                                 -sum(abs(names.index(n) - j) for j, n in enumerate(perm))))
    if len(keys) > 1 and sum(hint_score(n, k) for n, k in zip(best, keys)) == 0:
        notes.append(f"{where}: {'/'.join(keys)} have the same shape and uninformative names; told apart by "
                     "file order only")
    return dict(zip(keys, best))


def find_layers(names: list[str]) -> tuple[str, dict[int, dict[str, str]]]:
    """(prefix, {layer index: {suffix: name}}) for the numeric name component that repeats most."""
    groups: dict[str, dict[int, dict[str, str]]] = defaultdict(lambda: defaultdict(dict))
    for name in names:
        parts = name.split(".")
        for k, part in enumerate(parts):
            if part.isdigit():
                groups[".".join(parts[:k])][int(part)][".".join(parts[k + 1:])] = name
                break
    if not groups:
        return "", {}
    prefix = max(groups, key=lambda p: (sum(len(v) for v in groups[p].values()), len(groups[p])))
    layers = groups[prefix]
    return (prefix, dict(sorted(layers.items()))) if len(layers) >= 2 else ("", {})


def layout_from_shapes(infos: dict[str, TensorInfo], base: Layout) -> Layout:
    """Fill hidden size (most common vector length in the layers) and layer count from shapes."""
    names = [n for n, i in infos.items() if not is_buffer(i)]
    layers = _layers(names, infos, [])
    vec = Counter(infos[n].shape[0] for layer in layers.values() for n in layer.values() if len(infos[n].shape) == 1)
    hidden = base.hidden or (vec.most_common(1)[0][0] if vec else hidden_size(names, infos))
    return replace(base, hidden=hidden, layers=base.layers or (len(layers) or None))


def _layers(names: list[str], infos: dict[str, TensorInfo], notes: list[str]) -> dict[int, dict[str, str]]:
    """Layers by the numbered name component; where no name has one, by runs in file order."""
    _, layers = find_layers(names)
    return layers or layers_from_order(names, infos, notes)


def _layer_roles(layer: dict[str, str], infos: dict[str, TensorInfo], h: int, notes: list[str],
                 where: str) -> dict[str, str]:
    """Roles of one layer's tensors (suffix -> name given), from shapes, hints and order."""
    mats = [n for n in layer.values() if len(infos[n].shape) == 2]
    readers = [n for n in mats if infos[n].shape[1] == h]
    writers = [n for n in mats if infos[n].shape[0] == h and infos[n].shape[1] != h]
    out: dict[str, str] = {}
    ffn = Counter(infos[n].shape[1] for n in writers)
    f = ffn.most_common(1)[0][0] if ffn else None
    mlp_in = [n for n in readers if f is not None and infos[n].shape[0] == f and infos[n].shape[0] != h]
    out.update(_assign(mlp_in, ["mlp.gate", "mlp.up"] if len(mlp_in) >= 2 else ["mlp.up"], notes, where))
    down = [n for n in writers if infos[n].shape[1] == f]
    out.update(_assign(down, ["mlp.down"], notes, where))
    square = [n for n in readers if infos[n].shape[0] == h]
    narrow = [n for n in readers if infos[n].shape[0] < h and n not in mlp_in]
    wide_o = [n for n in writers if n not in down]
    if len(narrow) >= 2:
        out.update(_assign(narrow, ["attn.k", "attn.v"], notes, where))
        attn_keys = ["attn.q", "attn.o"] if not wide_o else ["attn.q"]
    else:
        attn_keys = ["attn.q", "attn.k", "attn.v", "attn.o"] if not wide_o else ["attn.q", "attn.k", "attn.v"]
    out.update(_assign(square, attn_keys, notes, where))
    out.update(_assign(wide_o, ["attn.o"], notes, where))
    out.update(_vector_roles(layer, infos, h, out, notes, where))
    return out


def _vector_roles(layer: dict[str, str], infos: dict[str, TensorInfo], h: int, mats: dict[str, str],
                  notes: list[str], where: str) -> dict[str, str]:
    """Biases by shared name stem with a matrix; the remaining [h] vectors are norms in order."""
    stem_role = {n.rsplit(".", 1)[0]: k for k, n in mats.items()}
    out: dict[str, str] = {}
    norms_w, norms_b = [], []
    for n in layer.values():
        if len(infos[n].shape) != 1:
            continue
        stem, last = (n.rsplit(".", 1) + [""])[:2]
        if last == "bias" and stem in stem_role:
            out[stem_role[stem] + ".bias"] = n
        elif infos[n].shape[0] == h:
            (norms_b if last == "bias" else norms_w).append(n)
    keys = ["norm1", "norm2", "attn.post_norm", "mlp.post_norm"]
    out.update(_assign(norms_w, keys, notes, where))
    by_stem = {n.rsplit(".", 1)[0]: k for k, n in out.items() if k in keys}
    for n in norms_b:
        if n.rsplit(".", 1)[0] in by_stem:
            out[by_stem[n.rsplit(".", 1)[0]] + ".bias"] = n
    return out


def _global_roles(names: list[str], infos: dict[str, TensorInfo], h: int, notes: list[str]) -> dict[str, str]:
    """Embedding, LM head, position embedding and final norm among the non-layer tensors."""
    tables = [n for n in names if len(infos[n].shape) == 2 and infos[n].shape[1] == h]
    big = max((infos[n].shape[0] for n in tables), default=0)
    vocab = [n for n in tables if infos[n].shape[0] == big]
    out = _assign(vocab, ["embed", "lm_head"], notes, "vocabulary tables")
    small = [n for n in tables if n not in vocab]
    out.update(_assign([n for n in small if infos[n].shape[0] > 16], ["pos_embed"], notes, "position table"))
    out.update(_assign([n for n in small if infos[n].shape[0] <= 16], ["type_embed"], notes, "type table"))
    vectors = [n for n in names if infos[n].shape == (h,)]
    weights = [n for n in vectors if not n.endswith("bias")]
    out.update(_assign(weights, ["final_norm"] if len(weights) < 2 else ["embed_norm", "final_norm"], notes,
                       "global norms"))
    return out


def infer_roles(infos: dict[str, TensorInfo], layout: Layout) -> RoleMap:
    """A RoleMap from structure alone (no definition)."""
    layout = layout_from_shapes(infos, layout)
    names = [n for n, i in infos.items() if not is_buffer(i)]
    roles: dict[str, RoleSource] = {}
    notes: list[str] = []
    layers = _layers(names, infos, notes)
    h = layout.hidden or 0
    for i, layer in layers.items():
        for key, name in _layer_roles(layer, infos, h, notes, f"layer {i}").items():
            roles[layer_role(i, key)] = _source(layer_role(i, key), infos[name])
    in_layers = {n for layer in layers.values() for n in layer.values()}
    if layers:
        glob = _global_roles([n for n in names if n not in in_layers], infos, h, notes)
    else:  # no layer structure: the rest cannot be told from layer tensors, so only the vocabulary tables
        glob = _assign(vocabulary_tables(names, infos, h), ["embed", "lm_head"], notes, "vocabulary tables")
    norm = "pre"
    if "type_embed" in glob:  # token-type embeddings: a BERT-family encoder, and those are post-norm
        norm = "post"
        if "final_norm" in glob and "embed_norm" not in glob:  # its one global norm follows the embeddings
            glob["embed_norm"] = glob.pop("final_norm")
        notes.append("post-norm (BERT-style) inferred from the token-type embedding table")
    for key, name in glob.items():
        roles[key] = _source(key, infos[name])
    _global_biases(roles, infos, names)
    used = {s.tensor for s in roles.values()}
    return RoleMap(roles=roles, definition=None, how="", layout=layout, layers=sorted(layers),
                   unmapped=[n for n in names if n not in used],
                   ignored=[n for n in infos if is_buffer(infos[n])], notes=_dedupe(notes), norm=norm)


def _global_biases(roles: dict[str, RoleSource], infos: dict[str, TensorInfo], names: list[str]) -> None:
    """A global norm's bias: the [h] vector that shares its name stem."""
    for key in ("embed_norm", "final_norm"):
        if key in roles and roles[key].tensor.endswith("weight"):
            bias = roles[key].tensor[: -len("weight")] + "bias"
            if bias in infos and bias in names and f"{key}.bias" not in roles:
                roles[f"{key}.bias"] = _source(f"{key}.bias", infos[bias])


def complete_roles(rm: RoleMap, infos: dict[str, TensorInfo]) -> RoleMap:
    """Fill roles a definition missed (Yi's ln1/ln2) from structure, using unmapped tensors only."""
    if not rm.unmapped:
        return rm
    guess = infer_roles(infos, rm.layout)
    free = set(rm.unmapped)
    adopted = {k: replace(s) for k, s in guess.roles.items() if s.tensor in free and k not in rm.roles}
    if not adopted:
        return rm
    rm.roles.update(adopted)
    rm.sort_roles()
    claimed = {s.tensor for s in adopted.values()}
    rm.unmapped = [n for n in rm.unmapped if n not in claimed]
    rm.missing = [k for k in rm.missing if k not in adopted]
    rm.notes.append(f"{len(adopted)} roles inferred from structure for tensors the definition does not name "
                    f"(e.g. {next(iter(adopted.values())).tensor} -> {next(iter(adopted))})")
    return rm


def _source(role: str, info: TensorInfo) -> RoleSource:
    return RoleSource(role, info.name, info.shape, info.dtype, inferred=True)


def _dedupe(notes: list[str]) -> list[str]:
    """Collapse per-layer repeats of the same note into one line."""
    seen: dict[str, int] = {}
    for n in notes:
        key = re.sub(r"^layer \d+", "layer *", n)
        seen[key] = seen.get(key, 0) + 1
    return [k.replace("layer *", f"{c} layers") if c > 1 else k for k, c in seen.items()]
