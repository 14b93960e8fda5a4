"""`identify(model)`: which known base, if any, was this model built from?

The query is fingerprinted once; every registry entry is screened from its small
pre-filter vectors (anchor-token structure of the embeddings, MinHash of the vocabulary);
the shortlist gets the full fingerprint comparison (layer test with its p-value,
magnitudes, tokenizer, config); candidates are ranked by what that comparison decided.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provenance.errors import InvalidParameterError

if TYPE_CHECKING:  # the analysis modules load in `identify()`: importing this module stays cheap (the CLI's help)
    from provenance.fingerprint.model import Fingerprint
    from provenance.fingerprint.registry import Entry, Screen
    from provenance.result import CompareResult

SCHEMA = "provenance.identify/1"
SHORTLIST = 8  # entries compared in full per screen (weights, tokenizer), at least
SCREEN_R = 0.5  # an embedding screen this high is always compared in full (independent models sit near 0)
SCREEN_JACCARD = 0.5


@dataclass
class Candidate:
    """One compared registry entry: the comparison's verdict and its strongest evidence."""

    rank: int
    name: str
    file: str
    kind: str  # model | tokenizer
    label: str
    relation: str | None
    p_value: float | None
    confidence: float
    decided_by: list[str]
    strongest: str
    screen: dict[str, Any]
    source: dict[str, Any]
    result: CompareResult | None = field(default=None, repr=False, compare=False)

    @property
    def is_match(self) -> bool:
        """Derived or identical, decided by a test on the model (a shared tokenizer alone is not a base)."""
        from provenance.signals.registry import model_tests

        return self.label in ("identical", "derived") and any(s in model_tests() for s in self.decided_by)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("result")
        out["match"] = self.is_match
        return out


@dataclass
class IdentifyResult:
    """Ranked candidates for one query, with what the screen and the comparisons cost."""

    query: dict[str, Any]
    registry: str
    candidates: list[Candidate]
    scanned: int
    shortlisted: int
    timings: dict[str, float]

    @property
    def match(self) -> Candidate | None:
        """The most likely base: the top candidate if its weights say derived or identical."""
        return self.candidates[0] if self.candidates and self.candidates[0].is_match else None

    @property
    def tokenizer_matches(self) -> list[Candidate]:
        """Entries whose tokenizer (alone) the query's derives from."""
        return [c for c in self.candidates if not c.is_match and c.label in ("identical", "derived")]

    def frame(self) -> Any:
        """One row per candidate (pandas DataFrame)."""
        import pandas as pd

        rows = []
        for c in self.candidates:
            d = c.to_dict()
            scr = d.pop("screen")
            d.pop("source")
            rows.append({**d, **{f"screen_{k}": v for k, v in scr.items()}})
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        m = self.match
        return {"schema": SCHEMA, "query": self.query, "registry": self.registry, "scanned": self.scanned,
                "shortlisted": self.shortlisted, "timings": self.timings,
                "match": m.name if m is not None else None, "candidates": [c.to_dict() for c in self.candidates]}

    def to_json(self) -> str:
        from provenance.result import _finite

        return json.dumps(_finite(self.to_dict()), indent=2, ensure_ascii=False) + "\n"


def _shortlist(scored: list[tuple[Entry, Screen]], n: int) -> list[tuple[Entry, Screen]]:
    """Entries worth a full comparison: top `n` by each screen, and every entry above a screen's bar."""
    by_r = sorted((x for x in scored if x[1].weights_r is not None), key=lambda x: -(x[1].weights_r or 0.0))
    by_j = sorted((x for x in scored if x[1].jaccard is not None), key=lambda x: -(x[1].jaccard or 0.0))
    keep: dict[Path, tuple[Entry, Screen]] = {}
    for e, s in by_r[:n] + by_j[:n]:
        keep[e.path] = (e, s)
    for e, s in scored:
        if (s.weights_r or 0.0) >= SCREEN_R or (s.jaccard or 0.0) >= SCREEN_JACCARD or s.same_vocabulary:
            keep[e.path] = (e, s)
    return list(keep.values())


def strongest_finding(r: CompareResult) -> str:
    """The finding that carries the verdict: the deciding signal's test, else the verdict's explanation."""
    for e in r.evidence:
        if e.signal in r.verdict.decided_by and e.p_value is not None:
            return e.finding
    return r.verdict.explanation


def _rank_key(c: Candidate) -> tuple[int, float, float]:
    kind = 0 if c.is_match else 1 if c.label in ("identical", "derived") else 2 if c.label == "inconclusive" else 3
    return kind, c.p_value if c.p_value is not None else 1.0, -(c.screen.get("weights_r") or 0.0)


def identify(spec: str | os.PathLike[str] | Fingerprint, *, registry: str | os.PathLike[str] | None = None,
             top: int = 5, shortlist: int = SHORTLIST, device: str = "auto", seed: int = 0, hashes: bool = True,
             progress: bool | None = False) -> IdentifyResult:
    """Rank registry entries as the base of `spec`: a model, tokenizer or fingerprint file, or a `Fingerprint`.

    `progress`: bars on stderr (None: when stderr is a terminal).
    """
    from provenance.comparison import CompareOptions
    from provenance.fingerprint.build import fingerprint
    from provenance.fingerprint.compare import compare_loaded
    from provenance.fingerprint.fileformat import load
    from provenance.fingerprint.model import Fingerprint
    from provenance.fingerprint.registry import default_registry, scan, screen
    from provenance.io.convert import resolve_device
    from provenance.progress import bar

    if top < 1:
        raise InvalidParameterError("top", "identify", "at least 1", top)
    if shortlist < 1:
        raise InvalidParameterError("shortlist", "identify", "at least 1", shortlist)
    reg = Path(registry) if registry is not None else default_registry()
    dev = resolve_device(device)
    t0 = time.perf_counter()
    entries = scan(reg)  # fail fast on a bad registry, before reading the model
    t1 = time.perf_counter()
    if isinstance(spec, Fingerprint):
        query, label = spec, spec.path or spec.meta.get("source", {}).get("spec") or spec.name
    else:
        with bar(None, "fingerprinting the query", "tensor", progress) as b:
            query = fingerprint(spec, device=str(dev), hashes=hashes, progress=b.update)
        label = str(spec)
    t2 = time.perf_counter()
    scored = [(e, screen(query, e)) for e in entries]
    chosen = _shortlist(scored, shortlist)
    t3 = time.perf_counter()
    opts = CompareOptions(device=str(dev), seed=seed, hashes=hashes)
    found = []
    with bar(len(chosen), "comparing with the registry", "entry", progress) as b:
        for e, s in chosen:
            r = compare_loaded(load(e.path), query, e.path, label, opts, dev)
            v = r.verdict
            found.append(Candidate(0, e.name, str(e.path), "model" if e.has_weights else "tokenizer", v.label,
                                   v.relation, v.p_value, v.confidence, list(v.decided_by), strongest_finding(r),
                                   asdict(s), dict(e.meta.get("source", {})), r))
            b.update(1)
    t4 = time.perf_counter()
    found.sort(key=_rank_key)
    for i, c in enumerate(found):
        c.rank = i + 1
    timings = {"scan": t1 - t0, "query": t2 - t1, "screen": t3 - t2, "compare": t4 - t3}
    return IdentifyResult(query.summary() | {"spec": label}, str(reg), found[:top], len(entries), len(chosen),
                          {k: round(v, 4) for k, v in timings.items()})
