"""Batch audits: many models fingerprinted once, every pair screened, a lineage map, resumable.

The package is also the function: `provenance.audit(manifest, db, options=None, html=None, **fields)`
runs (or resumes) the audit of a manifest (YAML or CSV) into the SQLite store `db` and returns the
`AuditResult` (plain data: models, pairs, lineage, stage costs), as `provenance audit` does.
Options are an `AuditOptions` or its fields by keyword (`workers=2, hashes=False`).

>>> import provenance
>>> callable(provenance.audit), provenance.audit.__name__
(True, 'provenance.audit')
"""

from __future__ import annotations

import os
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provenance.audit.options import AuditOptions
    from provenance.audit.result import AuditResult


class _AuditPackage(types.ModuleType):
    """This package, callable: `provenance.audit(...)` runs `provenance.audit.runner.audit(...)`."""

    def __call__(self, manifest: str | os.PathLike[str], db: str | os.PathLike[str],
                 options: AuditOptions | None = None, html: str | os.PathLike[str] | None = None,
                 **overrides: Any) -> AuditResult:
        from provenance.audit.runner import audit

        return audit(manifest, db, options, html, **overrides)


sys.modules[__name__].__class__ = _AuditPackage
