"""The published JSON Schemas (`provenance.compare/1`, `provenance.identify/1`) and validation against them."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from provenance.errors import ProvenanceError

SCHEMA_ID = "provenance.compare/1"


@lru_cache(maxsize=1)
def compare_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a result: `report/schemas/compare-1.json` with the signal names, their
    item kinds and each kind's `details` rules filled in from the registered signals."""
    from provenance.signals import registry

    schema = json.loads(resources.files("provenance.report").joinpath("schemas/compare-1.json").read_text("utf-8"))
    defs = schema["$defs"]
    defs["signal"]["enum"] = list(registry.names())
    evidence = defs["evidence"]
    kinds = registry.evidence_kinds()
    evidence["properties"]["kind"]["enum"] = sorted({k for ks in kinds.values() for k in ks})
    evidence["allOf"] = [{"if": {"properties": {"signal": {"const": s.name}}, "required": ["signal"]},
                          "then": {"properties": {"kind": {"enum": list(s.kinds)}}}} for s in registry.signals()]
    evidence["allOf"] += [{"if": {"properties": {"signal": {"const": s.name}, "kind": {"const": kind}},
                                  "required": ["signal", "kind"]},
                           "then": {"properties": {"details": rules}}}
                          for s in registry.signals() for kind, rules in s.details.items()]
    return schema


@lru_cache(maxsize=1)
def identify_schema() -> dict[str, Any]:
    """The JSON Schema of `provenance identify --json` output (`report/schemas/identify-1.json`)."""
    return json.loads(resources.files("provenance.report").joinpath("schemas/identify-1.json").read_text("utf-8"))


def validate_identify(data: Any) -> None:
    """Raise ProvenanceError naming the first violation when `data` is not a valid identify result."""
    import jsonschema

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(identify_schema()).iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ProvenanceError(f"identify result does not match provenance.identify/1 at {where}: "
                              f"{_short(error.message)}")


def validate_result(data: Any, source: str = "result") -> None:
    """Raise ProvenanceError naming the first violation (path and reason) when `data` is not a valid result."""
    import jsonschema

    if not isinstance(data, dict):
        raise ProvenanceError(f"{source}: not a provenance result (a JSON object is expected)")
    if data.get("schema") != SCHEMA_ID:
        raise ProvenanceError(f"{source}: schema {str(data.get('schema'))[:60]!r} is not {SCHEMA_ID!r}")
    validator = jsonschema.Draft202012Validator(compare_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ProvenanceError(f"{source}: does not match {SCHEMA_ID} at {where}: {_short(error.message)}")


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
