"""What an audit found, as plain data: models, pairs, lineage and what each stage cost."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class AuditModel:
    """One manifest entry and what fingerprinting it read."""

    name: str
    spec: str
    role: str | None  # base | candidate | None
    facts: dict[str, Any]  # known facts from the manifest (e.g. {"parent": "x", "license": "..."})
    summary: dict[str, Any]  # Fingerprint.summary() (architecture, layers, parameters, tokenizer, ...)
    fingerprint_sha256: str | None
    bytes_read: int
    seconds: float
    error: str | None = None  # a model that could not be read (the audit goes on without it)


@dataclass
class AuditPair:
    """One unordered pair of models: its screen and, when compared, the fingerprint comparison's verdict."""

    base: str
    candidate: str
    screen: dict[str, Any]  # weights_r, anchors, paired_by, jaccard, same_vocabulary
    compared: bool  # False: the screen found nothing worth comparing
    label: str | None = None  # identical | derived | independent | inconclusive
    relation: str | None = None
    p_value: float | None = None
    decided_by: list[str] = field(default_factory=list)
    strongest: str | None = None
    report: str | None = None  # the pair's HTML report, relative to the audit's HTML directory
    result: dict[str, Any] | None = field(default=None, repr=False)  # the CompareResult as JSON data

    @property
    def related(self) -> bool:
        """Derived or identical by a test on the models (a shared tokenizer alone is not): a lineage edge."""
        from provenance.signals.registry import model_tests

        return self.label in ("identical", "derived") and any(s in model_tests() for s in self.decided_by)


@dataclass
class LineageEdge:
    """Two related models and, where the evidence allows, which one came from the other."""

    parent: str  # the older model when `directed`; else simply the pair's base
    child: str
    directed: bool
    reason: str  # why this direction (or why none could be given)
    relation: str | None
    p_value: float | None
    cues: dict[str, Any] = field(default_factory=dict)  # measured but not used for direction (e.g. kurtosis)


@dataclass
class Lineage:
    """Families (connected groups of related models) and the edges within them."""

    families: list[list[str]]  # each sorted; largest first; singletons included
    edges: list[LineageEdge]

    def frame(self) -> Any:
        """One row per edge (pandas DataFrame), with the family index."""
        import pandas as pd

        family_of = {m: i for i, fam in enumerate(self.families) for m in fam}
        return pd.DataFrame([{**asdict(e), "family": family_of.get(e.parent)} for e in self.edges])

    def to_dict(self) -> dict[str, Any]:
        return {"families": self.families, "edges": [asdict(e) for e in self.edges]}


@dataclass
class AuditResult:
    """Everything one audit run produced (also what `provenance audit --db` keeps in SQLite)."""

    manifest: str
    db: str
    models: list[AuditModel]
    pairs: list[AuditPair]
    lineage: Lineage
    stages: dict[str, dict[str, Any]]  # stage -> {"seconds", "bytes_read", "computed", "reused"}
    run_id: int

    def models_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame([{k: v for k, v in asdict(m).items() if k != "summary"} for m in self.models])

    def pairs_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame([{k: v for k, v in asdict(p).items() if k not in ("result", "screen")}
                             | {f"screen_{k}": v for k, v in p.screen.items()} for p in self.pairs])

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "provenance.audit/1", "manifest": self.manifest, "db": self.db, "run_id": self.run_id,
                "stages": self.stages, "models": [asdict(m) for m in self.models],
                "pairs": [{k: v for k, v in asdict(p).items() if k != "result"} for p in self.pairs],
                "lineage": self.lineage.to_dict()}

    def to_json(self) -> str:
        from provenance.result import _finite

        return json.dumps(_finite(self.to_dict()), indent=2, ensure_ascii=False) + "\n"
