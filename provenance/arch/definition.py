"""Architecture definitions: canonical role <- checkpoint tensor-name template, and the activation
hook points of transformers' implementation, as data.

One JSON file per architecture in `definitions/` (see definitions/README.md for the format).
Files are parsed on first use, not at import, and checked so that a typo fails loudly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from provenance.arch.hooks import Hooks, parse_hooks
from provenance.errors import DefinitionError

SPLIT_LAYOUTS = ("concat", "heads_interleaved", "kv_groups")
TRANSFORMS = ("transpose", "rope_unpermute:heads", "rope_unpermute:kv_heads")
_MATCH_KEYS = ("model_type", "architectures", "format", "gguf_architecture", "config")


@dataclass(frozen=True)
class Split:
    """How a fused tensor divides into roles along `dim`."""

    dim: int
    layout: str  # concat | heads_interleaved (GPT-NeoX) | kv_groups (Falcon new decoder)
    parts: tuple[tuple[str, str | int], ...]  # (role key, size expression)


@dataclass(frozen=True)
class Entry:
    """One tensor template and the role(s) it holds."""

    key: str
    name: str  # template: ${i} layer index, ${e} expert index
    optional: bool = False
    tied: str | None = None  # role this one may share storage with (lm_head -> embed)
    split: Split | None = None
    transforms: tuple[str, ...] = ()
    experts: bool = False  # 3-D tensor [n_experts, ...]; key is per expert ("gate" -> experts.{e}.gate)


@dataclass(frozen=True)
class Definition:
    """A parsed definition file."""

    name: str
    match: dict[str, Any]
    globals: tuple[Entry, ...]
    layer: tuple[Entry, ...]
    expert: tuple[Entry, ...]
    config_keys: dict[str, list[str]] = field(default_factory=dict)
    layout_defaults: dict[str, Any] = field(default_factory=dict)
    layout_fixed: dict[str, Any] = field(default_factory=dict)
    norm: str = "pre"
    hooks: Hooks | None = None  # activation hook points in transformers' implementation (arch/hooks.py)
    extends: str | None = None
    description: str = ""
    file: Path | None = None

    def all_entries(self) -> tuple[Entry, ...]:
        return self.globals + self.layer + self.expert


def _entry(key: str, raw: Any, where: str) -> Entry:
    if isinstance(raw, str):
        return Entry(key=key, name=raw)
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise DefinitionError(f"{where}: entry {key!r} must be a name template or an object with 'name'")
    unknown = set(raw) - {"name", "optional", "tied", "split", "transforms", "experts"}
    if unknown:
        raise DefinitionError(f"{where}: entry {key!r} has unknown fields {sorted(unknown)}")
    split = None
    if "split" in raw:
        s = raw["split"]
        if s.get("layout", "concat") not in SPLIT_LAYOUTS or not isinstance(s.get("parts"), dict):
            raise DefinitionError(f"{where}: entry {key!r}: split needs 'parts' and a layout in {SPLIT_LAYOUTS}")
        split = Split(dim=int(s.get("dim", 0)), layout=s.get("layout", "concat"), parts=tuple(s["parts"].items()))
    transforms = tuple(raw.get("transforms", ()))
    bad = [t for t in transforms if t not in TRANSFORMS]
    if bad:
        raise DefinitionError(f"{where}: entry {key!r}: unknown transforms {bad}; known: {TRANSFORMS}")
    return Entry(key=key, name=raw["name"], optional=bool(raw.get("optional", False)), tied=raw.get("tied"),
                 split=split, transforms=transforms, experts=bool(raw.get("experts", False)))


def parse_definition(data: dict[str, Any], *, where: str, base: Definition | None = None) -> Definition:
    """Build a Definition from its JSON object; `base` is the definition it `extends`."""
    for required in ("name", "match"):
        if required not in data and base is None:
            raise DefinitionError(f"{where}: missing {required!r}")
    unknown_match = set(data.get("match", {})) - set(_MATCH_KEYS)
    if unknown_match:
        raise DefinitionError(f"{where}: unknown match keys {sorted(unknown_match)}; known: {_MATCH_KEYS}")

    def section(name: str, inherited: tuple[Entry, ...]) -> tuple[Entry, ...]:
        entries = {e.key: e for e in inherited}
        for key, raw in data.get(name, {}).items():
            if raw is None:
                entries.pop(key, None)  # an extending definition may drop an entry
            else:
                entries[key] = _entry(key, raw, where)
        return tuple(entries.values())

    return Definition(
        name=data["name"], match=data.get("match", {}),
        globals=section("tensors", base.globals if base else ()),
        layer=section("layer_tensors", base.layer if base else ()),
        expert=section("expert_tensors", base.expert if base else ()),
        config_keys={**(base.config_keys if base else {}), **data.get("config_keys", {})},
        layout_defaults={**(base.layout_defaults if base else {}), **data.get("layout_defaults", {})},
        layout_fixed=dict(data.get("layout_fixed", {})),  # a variant's own fact: not inherited
        extends=data.get("extends"),
        norm=data.get("norm", base.norm if base else "pre"),
        hooks=parse_hooks(data["hooks"], where=where, base=base.hooks if base else None) if "hooks" in data
        else (base.hooks if base else None),
        description=data.get("description", ""), file=None,
    )


def _definitions_dir() -> Path:
    return Path(str(resources.files("provenance.arch") / "definitions"))


@lru_cache(maxsize=1)
def load_definitions() -> dict[str, Definition]:
    """Every definition shipped with the package, by name (parsed once, on first use)."""
    raw: dict[str, tuple[dict[str, Any], Path]] = {}
    for path in sorted(_definitions_dir().glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DefinitionError(f"not valid JSON ({exc})", path=path) from None
        raw[data.get("name", path.stem)] = (data, path)
    parsed: dict[str, Definition] = {}

    def build(name: str, chain: tuple[str, ...] = ()) -> Definition:
        if name in parsed:
            return parsed[name]
        data, path = raw[name]
        parent = data.get("extends")
        if parent is not None and (parent not in raw or parent in chain):
            raise DefinitionError(f"extends unknown or circular definition {parent!r}", path=path)
        base = build(parent, chain + (name,)) if parent else None
        d = parse_definition(data, where=path.name, base=base)
        parsed[name] = Definition(**{**d.__dict__, "file": path})
        return parsed[name]

    for name in raw:
        build(name)
    return parsed

