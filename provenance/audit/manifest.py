"""The audit manifest: which models to audit (YAML or CSV), with optional roles and known facts.

YAML: a list of entries, or `{models: [...]}`; each entry has `name`, `spec`, optional
`role` (base | candidate) and `facts` (a mapping). CSV: columns `name`, `spec`, optional
`role`; every other column is a fact. Relative specs are relative to the manifest's folder.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance.errors import CorruptFileError, ProvenanceError

ROLES = ("base", "candidate")


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
    names = [e.name for e in entries]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CorruptFileError(f"model name {dup[0]!r} appears more than once", path=p)
    if len(entries) < 2:
        raise CorruptFileError(f"an audit needs at least 2 models, the manifest lists {len(entries)}", path=p)
    return entries


def _yaml_rows(p: Path) -> list[Any]:
    import yaml

    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
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
        raise CorruptFileError(f"model {name!r} has no spec", path=p)
    if role is not None and role not in ROLES:
        raise CorruptFileError(f"model {name!r}: role must be one of {ROLES}, not {role!r}", path=p)
    if not isinstance(facts, dict):
        raise CorruptFileError(f"model {name!r}: facts must be a mapping", path=p)
    unknown = sorted(set(row) - {"name", "spec", "role", "facts"})
    if unknown:
        raise CorruptFileError(f"model {name!r}: unknown key {unknown[0]!r} (known: name, spec, role, facts)", path=p)
    local = (p.parent / spec).expanduser()
    return ManifestEntry(name.strip(), str(local) if local.exists() else spec, role, dict(facts))
