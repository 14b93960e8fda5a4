"""provenance: was this large language model built from another one?

The public names load on first use, so `import provenance.vocab...` does not pay for torch.

>>> import provenance
>>> sorted(provenance.__all__)  # doctest: +NORMALIZE_WHITESPACE
['AuditOptions', 'AuditResult', 'CanonicalModel', 'Checkpoint', 'CompareOptions', 'CompareResult', 'Fingerprint',
 'IdentifyResult', 'InspectResult', 'TokenMap', 'VocabComparison', 'Vocabulary', 'audit', 'compare',
 'compare_vocabularies', 'inspect_model', 'load_vocabulary', 'open_checkpoint', 'open_model', 'shared_tokens']

`provenance.audit(manifest, db, ...)` runs a batch audit and returns its `AuditResult` (the
`provenance.audit` package is callable; its submodules import as usual).
Fingerprints: `from provenance.fingerprint import fingerprint, save, load`; the registry search:
`from provenance.identify import identify` (subpackage and module names, so not re-exported here).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_WHERE = {
    "AuditOptions": "provenance.audit.options", "AuditResult": "provenance.audit.result",
    "CanonicalModel": "provenance.arch.view", "open_model": "provenance.arch.view",
    "CompareOptions": "provenance.comparison", "CompareResult": "provenance.result",
    "compare": "provenance.comparison",
    "Fingerprint": "provenance.fingerprint.model",
    "IdentifyResult": "provenance.identify",
    "InspectResult": "provenance.inspect", "inspect_model": "provenance.inspect",
    "Checkpoint": "provenance.io", "open_checkpoint": "provenance.io",
    "VocabComparison": "provenance.vocab.compare", "compare_vocabularies": "provenance.vocab.compare",
    "load_vocabulary": "provenance.vocab.load", "Vocabulary": "provenance.vocab.model",
    "TokenMap": "provenance.vocab.token_map", "shared_tokens": "provenance.vocab.token_map",
}
_CALLABLE_PACKAGES = ("audit",)  # subpackages that are also functions: `provenance.audit(...)`
__all__ = sorted([*_WHERE, *_CALLABLE_PACKAGES])


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access (PEP 562)."""
    if name in _CALLABLE_PACKAGES:  # importing the subpackage binds it here
        return importlib.import_module(f"{__name__}.{name}")
    if name not in _WHERE:
        raise AttributeError(f"module 'provenance' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
