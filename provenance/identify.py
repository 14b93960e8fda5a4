"""`identify(model)`: which known base, if any, was this model built from?

The query is fingerprinted once; every registry entry is screened from its small
pre-filter vectors (anchor-token structure of the embeddings, MinHash of the vocabulary),
all at once from the registry index (`provenance.fingerprint.index`); the shortlist gets the
full fingerprint comparison (layer test with its p-value, magnitudes, tokenizer, config);
candidates are ranked by what that comparison decided.

The index path and the per-file path (`index=False`: every file opened, as before the index)
give the same shortlist, ranking and numbers: the batch screen agrees with the one-entry screen
to SCORES_EPS, the entries within 2 x SCORES_EPS of a cut are scored again one by one, and every
shortlisted entry is read back from its file, checked against the index and screened from it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provenance import fastpath
from provenance.errors import InvalidParameterError

if TYPE_CHECKING:  # the analysis modules load in `identify()`: importing this module stays cheap (the CLI's help)
    import numpy as np

    from provenance.fingerprint.index import RegistryIndex
    from provenance.fingerprint.model import Fingerprint
    from provenance.fingerprint.registry import Entry, Screen
    from provenance.options import CompareOptions
    from provenance.result import CompareResult

log = logging.getLogger(__name__)
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


def _shortlist(weights_r: np.ndarray, jaccard: np.ndarray, same: np.ndarray, n: int) -> list[int]:
    """Entries worth a full comparison (NaN: no score), in the order they are compared: the top `n` by each
    screen (ties in registry order), then every entry above a screen's bar, in registry order."""
    import numpy as np

    keep: dict[int, None] = {}
    for v in (weights_r, jaccard):
        ok = np.flatnonzero(~np.isnan(v))
        keep.update(dict.fromkeys(ok[np.argsort(-v[ok], kind="stable")][:n].tolist()))
    bar = (np.nan_to_num(weights_r, nan=0.0) >= SCREEN_R) | (np.nan_to_num(jaccard, nan=0.0) >= SCREEN_JACCARD) | same
    keep.update(dict.fromkeys(np.flatnonzero(bar).tolist()))
    return list(keep)


def _near_a_cut(weights_r: np.ndarray, n: int, eps: float) -> np.ndarray:
    """Entries whose batch score could fall on the other side of a cut than their exact one: within 2 eps of
    the n-th best score or of SCREEN_R (all scored entries when n or fewer are: their order counts)."""
    import numpy as np

    ok = np.flatnonzero(~np.isnan(weights_r))
    r = weights_r[ok]
    near = np.abs(r - SCREEN_R) <= 2 * eps
    if len(ok) <= n:
        near[:] = True
    elif n > 0:
        near |= r >= np.partition(r, len(r) - n)[len(r) - n] - 2 * eps
    return ok[near]


def _screen_with_index(query: Fingerprint, digest: Any, index: RegistryIndex,
                       n: int) -> list[tuple[Entry, Screen]]:
    """The shortlist from the index, each entry read back from its file and screened from it (the index must
    agree with the file, else `Damaged`)."""
    import numpy as np

    from provenance.fingerprint.fileformat import load_screens
    from provenance.fingerprint.index import Damaged
    from provenance.fingerprint.registry import Entry, _slim, screen, screen_index, screen_vectors
    from provenance.fingerprint.screen import SCORES_EPS

    table = screen_index(query.screens, digest, index)
    for i in _near_a_cut(table.weights_r, n, SCORES_EPS):
        table.set(int(i), screen_vectors(query.screens, index.screens(int(i)), digest, index.digest(int(i))))
    chosen = []
    for i in _shortlist(table.weights_r, table.jaccard, table.same_vocabulary, n):
        meta, screens = load_screens(index.path(i))
        held = index.screens(i)
        if _slim(meta) != index.meta(i) or held.keys() != screens.keys() or not all(
                np.array_equal(held[k], screens[k]) for k in held):
            raise Damaged(f"{index.names[i]} changed since the index was built")
        e = Entry(index.path(i), _slim(meta), screens)
        chosen.append((e, screen(query, e)))
    return chosen


def _screen_per_file(query: Fingerprint, entries: list[Entry], n: int) -> list[tuple[Entry, Screen]]:
    """The shortlist from entries read one file at a time (`scan`), each screened alone."""
    import numpy as np

    from provenance.fingerprint.registry import screen

    scored = [(e, screen(query, e)) for e in entries]
    r = np.array([np.nan if s.weights_r is None else s.weights_r for _, s in scored], dtype=np.float64)
    j = np.array([np.nan if s.jaccard is None else s.jaccard for _, s in scored], dtype=np.float64)
    same = np.array([s.same_vocabulary for _, s in scored], dtype=bool)
    return [scored[i] for i in _shortlist(r, j, same, n)]


def shortlist_registry(query: Fingerprint, registry: Path, n: int, index: RegistryIndex | None,
                       entries: list[Entry]) -> tuple[list[tuple[Entry, Screen]], int, float]:
    """(entries to compare in full with their screens, entries screened, seconds spent rebuilding the index):
    from `index` (rebuilt once when a row fails its checksum or a shortlisted file disagrees with it; read per
    file when the rebuilt one fails too), else from `entries`."""
    from provenance.fingerprint.index import Damaged
    from provenance.fingerprint.registry import open_index, scan

    digest = query.meta.get("tokenizer", {}).get("digest") if query.vocabulary is None else query.vocabulary.digest()
    rebuilt = 0.0
    for attempt in range(2):
        if index is None:
            break
        try:
            return _screen_with_index(query, digest, index, n), len(index), rebuilt
        except Damaged as exc:
            log.warning("registry index of %s is out of date or damaged (%s): rebuilding it", registry, exc)
            t = time.perf_counter()
            index = open_index(registry, rebuild=True) if attempt == 0 else None
            entries = scan(registry) if index is None else entries
            rebuilt += time.perf_counter() - t
    return _screen_per_file(query, entries, n), len(entries), rebuilt


def _compare_shortlist(chosen: list[tuple[Entry, Screen]], query: Fingerprint, label: str, opts: CompareOptions,
                       dev: Any, progress: bool | None) -> list[Candidate]:
    """Each shortlisted entry compared with the query in full, unranked. (BLAS keeps its threads: one thread
    changes float32 products of 7B-sized rows in their last bits, and the plain path must agree.)"""
    from provenance.fingerprint.compare import compare_loaded
    from provenance.fingerprint.fileformat import load
    from provenance.progress import bar

    found = []
    with bar(len(chosen), "comparing with the registry", "entry", progress) as b:
        for e, s in chosen:
            r = compare_loaded(load(e.path), query, e.path, label, opts, dev)
            v = r.verdict
            found.append(Candidate(0, e.name, str(e.path), "model" if e.has_weights else "tokenizer", v.label,
                                   v.relation, v.p_value, v.confidence, list(v.decided_by), strongest_finding(r),
                                   asdict(s), dict(e.meta.get("source", {})), r))
            b.update(1)
    return found


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
             progress: bool | None = False, index: bool = True) -> IdentifyResult:
    """Rank registry entries as the base of `spec`: a model, tokenizer or fingerprint file, or a `Fingerprint`.

    `progress`: bars on stderr (None: when stderr is a terminal). `index`: screen from the registry index
    (kept up to date from the files' stats); False, or the plain path (`fastpath.plain()`), opens every file
    instead (same result, slower).
    timings: `scan` reads the registry (of which `index` loads or rebuilds the index), `query` fingerprints
    the query, `screen` scores and shortlists, `compare` compares the shortlist in full.
    """
    from provenance.comparison import CompareOptions
    from provenance.fingerprint.build import fingerprint
    from provenance.fingerprint.model import Fingerprint
    from provenance.fingerprint.registry import default_registry, open_index, scan
    from provenance.io.convert import resolve_device
    from provenance.progress import bar

    if top < 1:
        raise InvalidParameterError("top", "identify", "at least 1", top)
    if shortlist < 1:
        raise InvalidParameterError("shortlist", "identify", "at least 1", shortlist)
    reg = Path(registry) if registry is not None else default_registry()
    dev = resolve_device(device)
    t0 = time.perf_counter()
    idx = open_index(reg) if index and fastpath.enabled() else None  # fail fast on a bad registry, before the model
    entries = scan(reg) if idx is None else []
    t1 = time.perf_counter()
    index_s = idx.seconds if idx is not None else 0.0
    if isinstance(spec, Fingerprint):
        query, label = spec, spec.path or spec.meta.get("source", {}).get("spec") or spec.name
    else:
        with bar(None, "fingerprinting the query", "tensor", progress) as b:
            query = fingerprint(spec, device=str(dev), hashes=hashes, progress=b.update)
        label = str(spec)
    t2 = time.perf_counter()
    chosen, scanned, rebuilt = shortlist_registry(query, reg, shortlist, idx, entries)
    t3 = time.perf_counter()
    found = _compare_shortlist(chosen, query, label, CompareOptions(device=str(dev), seed=seed, hashes=hashes), dev,
                               progress)
    t4 = time.perf_counter()
    found.sort(key=_rank_key)
    for i, c in enumerate(found):
        c.rank = i + 1
    timings = {"scan": t1 - t0 + rebuilt, "index": index_s + rebuilt, "query": t2 - t1, "screen": t3 - t2 - rebuilt,
               "compare": t4 - t3}
    return IdentifyResult(query.summary() | {"spec": label}, str(reg), found[:top], scanned, len(chosen),
                          {k: round(v, 4) for k, v in timings.items()})
