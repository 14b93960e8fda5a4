"""Attention and MLP layout (hidden size, heads, kv heads, head dim...) from a config."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Where each layout value lives in configs of the architectures we know (first hit wins).
CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "hidden": ("hidden_size", "n_embd", "d_model", "dim", "embedding_length"),
    "layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers", "block_count"),
    "heads": ("num_attention_heads", "n_head", "num_heads", "n_heads"),
    "kv_heads": ("num_key_value_heads", "num_kv_heads", "n_head_kv", "n_kv_heads"),
    "head_dim": ("head_dim", "kv_channels", "attention_head_size"),
    "intermediate": ("intermediate_size", "n_inner", "ffn_hidden_size", "ffn_dim", "ffn_intermediate_size"),
    "vocab": ("vocab_size", "padded_vocab_size", "n_vocab"),
    "experts": ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"),
    "expert_intermediate": ("moe_intermediate_size",),
    "shared_expert_intermediate": ("shared_expert_intermediate_size",),
}


@dataclass(frozen=True)
class Layout:
    """Sizes that say how fused tensors split and how heads are laid out (None = unknown)."""

    hidden: int | None = None
    layers: int | None = None
    heads: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None
    intermediate: int | None = None
    vocab: int | None = None
    experts: int | None = None
    expert_intermediate: int | None = None
    shared_expert_intermediate: int | None = None

    @property
    def q_dim(self) -> int | None:
        return self.heads * self.head_dim if self.heads and self.head_dim else None

    @property
    def kv_dim(self) -> int | None:
        return self.kv_heads * self.head_dim if self.kv_heads and self.head_dim else None

    def value(self, expr: str | int) -> int:
        """Evaluate a size in a definition: an int, a field name, or 'N*name' / 'name/N'.

        >>> Layout(hidden=64, heads=4, kv_heads=2, head_dim=16).value("kv_dim")
        32
        >>> Layout(hidden=64).value("4*hidden")
        256
        """
        if isinstance(expr, int):
            return expr
        for op in ("*", "/"):
            if op in expr:
                a, b = (self.value(int(x) if x.strip().isdigit() else x.strip()) for x in expr.split(op, 1))
                return a * b if op == "*" else a // b
        v = getattr(self, expr)
        if v is None:
            raise KeyError(expr)
        return int(v)

    def as_dict(self) -> dict[str, int | None]:
        d = asdict(self)
        d.update(q_dim=self.q_dim, kv_dim=self.kv_dim)
        return d


def layout_from_config(config: dict[str, Any], *, keys: dict[str, list[str]] | None = None,
                       defaults: dict[str, Any] | None = None, fixed: dict[str, Any] | None = None) -> Layout:
    """Read a Layout from `config`; a definition may add keys, defaults (GPT-2's 4*hidden) and
    fixed values its modeling code uses whatever the config says (Falcon-7B's single kv head)."""
    cfg = _flatten_text_config(config)
    found: dict[str, int | None] = {}
    for field, names in CONFIG_KEYS.items():
        names = tuple((keys or {}).get(field, ())) + names
        found[field] = next((int(cfg[n]) for n in names if isinstance(cfg.get(n), (int, float))
                             and not isinstance(cfg.get(n), bool)), None)
    partial = Layout(**found)
    steps = [(f, e, False) for f, e in (defaults or {}).items()] + [(f, e, True) for f, e in (fixed or {}).items()]
    for field, expr, pinned in steps:
        if found.get(field) is None or pinned:
            try:
                found[field] = partial.value(expr)
            except KeyError:
                pass
    if found["kv_heads"] is None:
        found["kv_heads"] = found["heads"]
    if found["head_dim"] is None and found["hidden"] and found["heads"]:
        found["head_dim"] = found["hidden"] // found["heads"]
    return Layout(**found)


def _flatten_text_config(config: dict[str, Any]) -> dict[str, Any]:
    """Multimodal configs nest the language model under `text_config`; read that level too."""
    text = config.get("text_config")
    return {**config, **text} if isinstance(text, dict) else config
