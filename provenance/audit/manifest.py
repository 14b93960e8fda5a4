"""The audit manifest: which models to audit (YAML or CSV), with optional roles and known facts.

YAML: a list of entries, or `{models: [...]}`; each entry has `name`, `spec`, optional
`role` (base | candidate) and `facts` (a mapping). CSV: columns `name`, `spec`, optional
`role`; every other column is a fact. Relative specs are relative to the manifest's folder.
"""

from __future__ import annotations

import csv
import os
import reprlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance.errors import CorruptFileError, ProvenanceError

ROLES = ("base", "candidate")
KEYS = ("name", "spec", "role", "facts")
_QUOTE = reprlib.Repr()  # Python 3.10 takes no keyword arguments here
_QUOTE.maxstring = _QUOTE.maxother = 80
_QUOTE.maxlevel, _QUOTE.maxlist, _QUOTE.maxdict, _QUOTE.maxtuple, _QUOTE.maxset = 2, 4, 4, 4, 4


def _quote(value: Any) -> str:
    """A short repr for a message: YAML aliases can make a value's full repr exponentially long."""
    return _QUOTE.repr(value)


@dataclass
class ManifestEntry:
    name: str
    spec: str  # resolved: an existing path, or as written (a cached model id)
    role: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)


def read_manifest(path: str | os.PathLike[str]) -> list[ManifestEntry]:
    """Parse and check a manifest; any problem is one `ProvenanceError` naming the entry."""
    p = Path(path)
    if not p.is_file():
        raise ProvenanceError(f"no such manifest: {p}")
    rows = _csv_rows(p) if p.suffix.lower() == ".csv" else _yaml_rows(p)
    entries = [_entry(row, i, p) for i, row in enumerate(rows)]
    dup = sorted(n for n, k in Counter(e.name for e in entries).items() if k > 1)
    if dup:
        raise CorruptFileError(f"model name {_quote(dup[0])} appears more than once", path=p)
    if len(entries) < 2:
        raise CorruptFileError(f"an audit needs at least 2 models, the manifest lists {len(entries)}", path=p)
    return entries


def _yaml_rows(p: Path) -> list[Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser: ~7x faster on a long manifest
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=loader)  # a safe loader
    except RecursionError:  # pyyaml's composer recurses once per nesting level
        raise CorruptFileError("not valid YAML (nested too deeply)", path=p) from None
    except Exception as exc:  # YAMLError, and pyyaml's slips on tags (`!!int x`: ValueError; `!!timestamp x`:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__  # AttributeError)
        raise CorruptFileError(f"not valid YAML ({first})", path=p) from None
    if isinstance(data, dict) and isinstance(data.get("models"), list):
        data = data["models"]
    if not isinstance(data, list):
        raise CorruptFileError("a manifest is a list of models (or a mapping with a 'models' list)", path=p)
    return data


def _csv_rows(p: Path) -> list[Any]:
    try:
        with open(p, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (csv.Error, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"not valid CSV ({exc})", path=p) from None
    out = []
    for row in rows:
        facts = {k: v for k, v in row.items() if k not in ("name", "spec", "role") and k is not None and v not in ("",
                                                                                                                  None)}
        out.append({"name": row.get("name"), "spec": row.get("spec"), "role": row.get("role") or None,
                    "facts": facts})
    return out


def _entry(row: Any, i: int, p: Path) -> ManifestEntry:
    if not isinstance(row, dict):
        raise CorruptFileError(f"entry {i + 1} is not a mapping with name and spec", path=p)
    name, spec, role, facts = row.get("name"), row.get("spec"), row.get("role"), row.get("facts") or {}
    if not isinstance(name, str) or not name.strip():
        raise CorruptFileError(f"entry {i + 1} has no name", path=p)
    if not isinstance(spec, str) or not spec.strip():
        raise CorruptFileError(f"model {_quote(name)} has no spec", path=p)
    if role is not None and (not isinstance(role, str) or role not in ROLES):
        raise CorruptFileError(f"model {_quote(name)}: role must be one of {ROLES}, not {_quote(role)}", path=p)
    if not isinstance(facts, dict):
        raise CorruptFileError(f"model {_quote(name)}: facts must be a mapping", path=p)
    unknown = sorted((k for k in row if k not in KEYS), key=repr)  # keys may mix types: 1, 'z', a date
    if unknown:
        raise CorruptFileError(f"model {_quote(name)}: unknown key {_quote(unknown[0])} (known: {', '.join(KEYS)})",
                               path=p)
    return ManifestEntry(name.strip(), _resolve(spec, p), role, dict(facts))


def _resolve(spec: str, manifest: Path) -> str:
    """The spec as a path beside the manifest when one exists there, else as written (a cached model id).

    `~user/...` of an unknown user, a name too long for the file system or a folder we may not enter stay as
    written: `expanduser` and `exists` raise on those instead of answering.
    """
    try:
        local = (manifest.parent / spec).expanduser()
        return str(local) if local.exists() else spec
    except (RuntimeError, OSError):
        return spec
