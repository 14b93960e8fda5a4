"""`audit(manifest, db)`: fingerprint every model once, screen every pair, compare what the screen
flags, and derive the lineage; every finished step is stored at once, so a killed run resumes.

Cost: reads grow with the number of models (one fingerprint pass each, skipped when the
model's files are unchanged); pairs cost only fingerprint work (screen: microseconds,
comparison: about a second), never another read of a checkpoint.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, fields, replace
from itertools import combinations
from pathlib import Path
from typing import Any

from provenance import __version__
from provenance.audit.executors import make_executor
from provenance.audit.lineage import lineage
from provenance.audit.manifest import ManifestEntry, read_manifest
from provenance.audit.options import COMPARE, AuditOptions
from provenance.audit.result import AuditModel, AuditPair, AuditResult
from provenance.audit.store import Store
from provenance.audit.tasks import compare_task, fingerprint_task, input_key, input_size
from provenance.errors import InvalidParameterError
from provenance.fingerprint.fileformat import from_bytes
from provenance.fingerprint.model import Fingerprint
from provenance.fingerprint.registry import Screen, screen_vectors
from provenance.progress import bar as progress_bar

__all__ = ["COMPARE", "AuditOptions", "audit"]
UNFLAGGED_BATCH = 1000  # screened-out pairs written per transaction


def _bar(total: int, desc: str, show: bool | None) -> Any:
    return progress_bar(total, desc, "task", show if total else False)


def _oriented(entries: list[ManifestEntry]) -> list[tuple[str, str]]:
    """Every unordered pair once, as (base, candidate): a base-role model is the base; else manifest order."""
    out = []
    for x, y in combinations(entries, 2):
        flip = y.role == "base" and x.role != "base"
        out.append((y.name, x.name) if flip else (x.name, y.name))
    return out


def _fingerprint_stage(entries: list[ManifestEntry], store: Store, ex: Any, opts: AuditOptions,
                       threads: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    todo, reused = [], 0
    keys = {e.name: input_key(e.spec) for e in entries}
    for e in entries:
        row = store.model(e.name)
        key = keys[e.name]
        if row is not None and row["input_key"] == key and row["spec"] == e.spec:
            reused += 1
        else:
            todo.append((fingerprint_task, (e.name, e.spec, opts.hashes, threads, opts.device)))
    read, scanned, bar = 0, 0, _bar(len(todo), "fingerprinting", opts.progress)
    specs = {e.name: e.spec for e in entries}
    for out in ex.run(todo):
        store.put_model(out["name"], specs[out["name"]], keys[out["name"]], out["files"], out["fingerprint"],
                        out["sha256"], out["summary"], out["bytes_read"], out["seconds"], out["error"])
        read += max(out["bytes_read"], 0)
        scanned += input_size(specs[out["name"]])
        bar.update(1)
    bar.close()
    return {"seconds": round(time.perf_counter() - t0, 3), "bytes_read": read, "bytes_of_inputs": scanned,
            "computed": len(todo), "reused": reused}


def _pair_key(sha_a: str, sha_b: str, opts: AuditOptions, compare: bool) -> str:
    return hashlib.sha256(f"{sha_a}|{sha_b}|{opts.seed}|{compare}|{__version__}".encode()).hexdigest()


def _flagged(s: Screen, opts: AuditOptions) -> bool:
    return (opts.compare == "all" or (s.weights_r or 0.0) >= opts.screen_r
            or (s.jaccard or 0.0) >= opts.screen_jaccard or s.same_vocabulary)


def _pair_stages(pairs: list[tuple[str, str]], rows: dict[str, dict[str, Any]], fps: dict[str, Fingerprint],
                 store: Store, ex: Any, opts: AuditOptions, threads: int) -> tuple[dict[str, Any], dict[str, Any]]:
    t0 = time.perf_counter()
    digest = {n: fp.vocabulary.digest() if fp.vocabulary is not None else None for n, fp in fps.items()}
    todo, screened, reused, reused_compared = [], 0, 0, 0  # screened: pairs whose row was missing or stale
    unflagged: list[tuple[str, str, str, dict[str, Any]]] = []
    for a, b in pairs:
        if a not in fps or b not in fps:
            continue
        s = screen_vectors(fps[a].screens, fps[b].screens, digest[a], digest[b])
        flagged = _flagged(s, opts)
        key = _pair_key(rows[a]["fingerprint_sha256"], rows[b]["fingerprint_sha256"], opts, flagged)
        old = store.pair_state(a, b)
        if old is not None and old[0] == key:
            reused += 1
            reused_compared += old[1]
            continue
        screened += 1
        if flagged:
            todo.append(((a, b, key, asdict(s)), (compare_task, (a, b, rows[a]["fingerprint"],
                                                                   rows[b]["fingerprint"], opts.seed, threads,
                                                                   (rows[a]["spec"], rows[b]["spec"])))))
        else:
            unflagged.append((a, b, key, asdict(s)))
            if len(unflagged) >= UNFLAGGED_BATCH:
                store.put_unflagged(unflagged)
                unflagged = []
    store.put_unflagged(unflagged)
    screen_stage = {"seconds": round(time.perf_counter() - t0, 3), "bytes_read": 0, "computed": screened,
                    "reused": reused}
    t1 = time.perf_counter()
    meta = {(a, b): (key, s) for (a, b, key, s), _ in todo}
    bar = _bar(len(todo), "comparing", opts.progress)
    for out in ex.run([task for _, task in todo]):
        key, s = meta[(out["base"], out["candidate"])]
        store.put_pair(out["base"], out["candidate"], key, s, True, out["label"], out["relation"], out["p_value"],
                       out["decided_by"], out["strongest"], out["result"], out["seconds"])
        bar.update(1)
    bar.close()
    compare_stage = {"seconds": round(time.perf_counter() - t1, 3), "bytes_read": 0, "computed": len(todo),
                     "reused": reused_compared}
    return screen_stage, compare_stage


def audit(manifest: str | os.PathLike[str], db: str | os.PathLike[str], options: AuditOptions | None = None,
          html: str | os.PathLike[str] | None = None, **overrides: Any) -> AuditResult:
    """Run (or resume) the audit of `manifest` into the store `db`; returns what the store now holds.

    Options come as an `AuditOptions`, or as its fields by keyword: `audit(m, db, workers=2, hashes=False)`.
    `html`: a directory for index.html (the lineage graph) and one report per compared pair.
    """
    known = [f.name for f in fields(AuditOptions)]
    for key in overrides:
        if key not in known:
            raise InvalidParameterError("options", "audit", f"fields of AuditOptions ({', '.join(known)})", key)
    opts = replace(options or AuditOptions(), **overrides)
    entries = read_manifest(manifest)
    if html is not None and Path(html).exists() and not Path(html).is_dir():
        raise InvalidParameterError("html", "audit", "a directory", str(html))
    ex = make_executor(opts.executor, opts.workers, opts.address)
    threads = 1 if opts.workers > 1 else max(1, os.cpu_count() or 1)
    store = Store(db)
    try:
        run_id = store.start_run(str(manifest), {k: v for k, v in asdict(opts).items() if k != "progress"})
        stages = {"fingerprint": _fingerprint_stage(entries, store, ex, opts, threads)}
        rows = {e.name: store.model(e.name) for e in entries}
        fps = {n: from_bytes(r["fingerprint"], n) for n, r in rows.items() if r["fingerprint"] is not None}
        pairs = _oriented(entries)
        stages["screen"], stages["compare"] = _pair_stages(pairs, rows, fps, store, ex, opts, threads)
        result = _result(str(manifest), str(db), entries, rows, fps, pairs, store, stages, run_id)
        if html is not None:
            from provenance.audit.html import write_reports

            t0 = time.perf_counter()
            Path(html).mkdir(exist_ok=True)  # its parent was checked before any work
            written = write_reports(result, Path(html), run=ex.run if opts.workers > 1 else None)
            stages["reports"] = {"seconds": round(time.perf_counter() - t0, 3), "bytes_read": 0,
                                 "computed": len(written), "reused": 0}
        store.finish_run(run_id, stages)
        return result
    finally:
        ex.close()
        store.close()


def _result(manifest: str, db: str, entries: list[ManifestEntry], rows: dict[str, dict[str, Any]],
            fps: dict[str, Fingerprint], pairs: list[tuple[str, str]], store: Store, stages: dict[str, Any],
            run_id: int) -> AuditResult:
    models = [AuditModel(e.name, e.spec, e.role, e.facts, rows[e.name]["summary"], rows[e.name]["fingerprint_sha256"],
                         rows[e.name]["bytes_read"], rows[e.name]["seconds"], rows[e.name]["error"]) for e in entries]
    found = []
    for a, b in pairs:
        r = store.pair(a, b)
        if r is not None:
            found.append(AuditPair(a, b, r["screen"], r["compared"], r["label"], r["relation"], r["p_value"],
                                   r["decided_by"], r["strongest"], None, r["result"]))
    summaries = {e.name: rows[e.name]["summary"] for e in entries}
    stats = {n: fp.meta.get("weights", {}).get("stats", {}) for n, fp in fps.items()}
    readable = [e.name for e in entries if rows[e.name]["error"] is None]  # a model never read has no family
    return AuditResult(manifest, db, models, found, lineage(readable, found, summaries, stats), stages, run_id)
