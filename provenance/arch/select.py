"""Choose the definition for a checkpoint, or fall back to structural inference."""

from __future__ import annotations

from typing import Any

from provenance.arch.definition import Definition, load_definitions
from provenance.arch.infer import complete_roles, infer_roles, layout_from_shapes
from provenance.arch.layout import Layout, layout_from_config
from provenance.arch.mapping import apply_definition
from provenance.arch.rolemap import RoleMap
from provenance.io.base import TensorInfo, is_buffer

# A definition chosen by tensor names alone must claim at least this share of the weights.
MIN_NAME_COVERAGE = 0.5


def matches(defn: Definition, config: dict[str, Any], fmt: str) -> int:
    """Specificity of `defn`'s match clause for this checkpoint (0 = no match)."""
    m = defn.match
    if "format" in m and m["format"] != fmt:
        return 0
    score = 1 if "format" in m else 0
    if "gguf_architecture" in m:
        if config.get("gguf_architecture") not in m["gguf_architecture"]:
            return 0
        score += 2
    named = "model_type" in m or "architectures" in m
    if named:
        archs = config.get("architectures") or []
        if config.get("model_type") in m.get("model_type", ()) or any(a in m.get("architectures", ()) for a in archs):
            score += 2
        else:
            return 0
    for key, value in m.get("config", {}).items():
        if config.get(key, False if isinstance(value, bool) else None) != value:
            return 0
        score += 1
    return score


def definition_for(config: dict[str, Any], fmt: str) -> Definition | None:
    """The most specific definition whose match clause holds for this config and format, or None."""
    scored = [(matches(d, config, fmt), d) for d in load_definitions().values()]
    best = max((s for s, _ in scored), default=0)
    return next((d for s, d in scored if s == best), None) if best > 0 else None


def map_roles(infos: dict[str, TensorInfo], config: dict[str, Any], fmt: str) -> RoleMap:
    """Canonical roles of a checkpoint: by config, else by tensor names, else by structure."""
    n_float = sum(1 for i in infos.values() if not is_buffer(i))
    defs = load_definitions()
    ranked = sorted((d for d in defs.values() if matches(d, config, fmt)),
                    key=lambda d: -matches(d, config, fmt))
    what = _arch_words(config, fmt)
    for defn in ranked:
        rm = apply_definition(defn, infos, _layout(defn, config, infos), tie=_tied(config))
        if rm.roles and rm.coverage(n_float) >= MIN_NAME_COVERAGE:
            rm.how = f"definition {defn.name!r} selected by {what}"
            rm.norm = defn.norm
            return complete_roles(rm, infos)
    tried = [apply_definition(d, infos, _layout(d, config, infos), tie=_tied(config))
             for d in defs.values() if d.match.get("format") in (None, fmt)]
    # most weights claimed, then fewest roles missing, then the most general definition, then by name
    best = min(tried, key=lambda rm: (-rm.coverage(n_float), len(rm.missing), _depth(defs, rm.definition),
                                      rm.definition or ""), default=None)
    if best is not None and best.coverage(n_float) >= MIN_NAME_COVERAGE:
        best.norm = defs[best.definition].norm if best.definition else "pre"
        best.how = (f"definition {best.definition!r} matched by tensor names "
                    f"({best.coverage(n_float):.0%} of weights); {what} names no known definition")
        return complete_roles(best, infos)
    rm = infer_roles(infos, layout_from_config(config))
    rm.how = f"inferred from tensor shapes and layer structure: {what}, and no definition matches its names"
    return rm


def _layout(defn: Definition, config: dict[str, Any], infos: dict[str, TensorInfo]) -> Layout:
    layout = layout_from_config(config, keys=defn.config_keys, defaults=defn.layout_defaults,
                                fixed=defn.layout_fixed)
    return layout if layout.hidden else layout_from_shapes(infos, layout)


def _tied(config: dict[str, Any]) -> bool:
    """Whether an absent lm_head means 'shares the embedding' (HF's default unless the config says no)."""
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    return bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", True)))


def _depth(defs: dict[str, Definition], name: str | None) -> int:
    """How many `extends` links lead from this definition to a root (0 for llama, 1 for mistral)."""
    depth = 0
    while name is not None and defs[name].extends is not None and depth < 16:
        name, depth = defs[name].extends, depth + 1
    return depth


def _arch_words(config: dict[str, Any], fmt: str) -> str:
    arch = config.get("model_type") or (config.get("architectures") or [None])[0]
    return f"architecture {arch!r} ({fmt})" if arch else f"a {fmt} checkpoint whose config names no architecture"
