"""Canonical role names: one vocabulary for every architecture.

Global roles: `embed`, `pos_embed`, `type_embed`, `embed_norm`, `final_norm`, `lm_head`,
`pooler`. Per layer `i`: `layers.{i}.attn.q|k|v|o`, `layers.{i}.attn.q_norm|k_norm`,
`layers.{i}.mlp.gate|up|down`, `layers.{i}.norm1|norm2` (the layer's first and second norm in
data-flow order: before attention/MLP in pre-norm models, after them in post-norm BERT),
`layers.{i}.attn.post_norm|mlp.post_norm` (Gemma-2/3 extra norms), `layers.{i}.router`, and
per expert `layers.{i}.experts.{e}.gate|up|down`, `layers.{i}.shared_expert.gate|up|down`,
`layers.{i}.shared_expert_router`. A bias is the weight's role plus `.bias`.
Matrices are [d_out, d_in] (the `nn.Linear` convention), whatever the file stores.
"""

from __future__ import annotations

import re

LAYER_ROLE = re.compile(r"^layers\.(\d+)\.(.+)$")
EXPERT_ROLE = re.compile(r"^layers\.(\d+)\.experts\.(\d+)\.(.+)$")

# Order within a layer, used for display and for order-based inference of unknown names.
LAYER_ORDER = (
    "norm1", "norm1.bias", "attn.q", "attn.q.bias", "attn.k", "attn.k.bias", "attn.v", "attn.v.bias",
    "attn.q_norm", "attn.k_norm", "attn.o", "attn.o.bias", "attn.post_norm", "norm2", "norm2.bias",
    "router", "mlp.gate", "mlp.gate.bias", "mlp.up", "mlp.up.bias", "mlp.down", "mlp.down.bias",
    "mlp.post_norm", "shared_expert_router", "shared_expert.gate", "shared_expert.up", "shared_expert.down",
)
GLOBAL_ORDER = ("embed", "type_embed", "pos_embed", "embed_norm", "embed_norm.bias", "final_norm",
                "final_norm.bias", "lm_head", "lm_head.bias", "pooler", "pooler.bias")


def layer_role(i: int, key: str) -> str:
    """'layers.{i}.{key}'.

    >>> layer_role(3, "attn.q")
    'layers.3.attn.q'
    """
    return f"layers.{i}.{key}"


def expert_role(i: int, e: int, key: str) -> str:
    """'layers.{i}.experts.{e}.{key}'."""
    return f"layers.{i}.experts.{e}.{key}"


def role_sort_key(role: str) -> tuple:
    """Sort roles as a reader expects: globals before layers, layers by index, then data flow.

    >>> sorted(["final_norm", "layers.10.attn.q", "layers.2.mlp.up", "embed"], key=role_sort_key)
    ['embed', 'layers.2.mlp.up', 'layers.10.attn.q', 'final_norm']
    """
    m = EXPERT_ROLE.match(role)
    if m:
        return (1, int(m.group(1)), len(LAYER_ORDER), int(m.group(2)), m.group(3))
    m = LAYER_ROLE.match(role)
    if m:
        key = m.group(2)
        pos = LAYER_ORDER.index(key) if key in LAYER_ORDER else len(LAYER_ORDER) + 1
        return (1, int(m.group(1)), pos, 0, key)
    pos = GLOBAL_ORDER.index(role) if role in GLOBAL_ORDER else len(GLOBAL_ORDER)
    late = role.startswith(("final_norm", "lm_head", "pooler"))
    return (2 if late else 0, 0, pos, 0, role)

