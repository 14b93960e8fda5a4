"""Batch audit cost against the number of models N: time and bytes read per stage, for N = 2, 4, 8, 16.

`audit(manifest, db, AuditOptions(workers=1, device="cpu"))` fingerprints each model once (stage
"fingerprint", the only stage that reads checkpoints; the files' sha256 come from the same reads),
screens every pair from the fingerprints ("screen", N(N-1)/2 pairs) and compares the pairs the
screen flags ("compare", also from fingerprints). So bytes read should grow as N, and only cheap
fingerprint work as N^2.

The models are 16 Llama-shaped bf16 checkpoints (hidden 1024, intermediate 2816, vocab 32000,
untied lm_head, 2 shards), written by bench_io's shard writer and cached under --workdir. They
form four families a-d, each with:

- an independent base (8 layers, from its own seeded value pool);
- a noised copy (8 layers, base + 10% noise);
- the first 4 layers of each of those two (exact layer subsets).

The manifest alternates 8- and 4-layer models, so every even N has the same mix and the same
mean model size. Pairs within a family should be flagged by the screen, the others not.

Each audit runs in a fresh interpreter on a fresh db, after posix_fadvise(DONTNEED) dropped
every checkpoint from the page cache. The driver imports only the standard library. The
largest N is then audited again on the same db, which should compute nothing.

    python benchmarks/bench_audit.py                        # N = 2 4 8 16, 2 runs each: ~4.6 GB of checkpoints
    python benchmarks/bench_audit.py --repeats 3 --json /tmp/audit.json
    python benchmarks/bench_audit.py --sizes 2 4 --warm     # no page-cache drop
    python benchmarks/bench_audit.py --no-hash              # AuditOptions(hashes=False)
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench_compare  # standard library only at import time, like bench_io
import bench_io
from bench_compare import _proc_io, tree_state
from bench_io import GB, MIB, LlamaShape, environment

HIDDEN, INTERMEDIATE, VOCAB, SHARDS = 1024, 2816, 32000, 2
NOISE = 0.1  # a noised copy = base + N(0, (NOISE * 0.02)^2), as bench_compare's candidate
FAMILY_SEED = 1000  # family k's base pool is drawn with seed FAMILY_SEED + k, its noise with FAMILY_SEED + 100 + k
ORDER = ("a-base", "a-first4", "b-base", "b-noise-first4", "a-noise", "c-first4", "c-base", "d-first4",
         "b-noise", "a-noise-first4", "d-base", "b-first4", "c-noise", "d-noise-first4", "d-noise", "c-noise-first4")
DEFAULT_SIZES = (2, 4, 8, 16)


# --- the models ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Model:
    """One synthetic checkpoint: its family (value pool), whether it is the noised copy, and its depth."""

    name: str
    family: int
    noised: bool
    layers: int

    @classmethod
    def parse(cls, name: str) -> Model:
        """`b-noise-first4` -> family 1, noised, 4 layers."""
        return cls(name, "abcd".index(name[0]), "-noise" in name, 4 if name.endswith("-first4") else 8)

    def shape(self) -> LlamaShape:
        """bench_io's LlamaShape at this benchmark's widths and the model's depth."""
        return LlamaShape(HIDDEN, INTERMEDIATE, self.layers, VOCAB, SHARDS)


@functools.cache
def family_pool(family: int, noised: bool) -> memoryview:
    """bench_io's pool layout (N(0, 0.02) as bf16, doubled) from the family's seed, plus noise for the copy."""
    import numpy as np
    rng = np.random.default_rng(FAMILY_SEED + family)
    f32 = rng.standard_normal(bench_io.POOL_VALUES, dtype=np.float32) * np.float32(0.02)
    if noised:  # its own seed per family, so two noised copies share no noise
        noise = np.random.default_rng(FAMILY_SEED + 100 + family).standard_normal(f32.size, dtype=np.float32)
        f32 = (((f32.view(np.uint32) >> 16) << 16).view(np.float32) + noise * np.float32(NOISE * 0.02))
    bf16 = (f32.view(np.uint32) >> 16).astype(np.uint16)
    return memoryview(np.concatenate([bf16, bf16]).tobytes())


def build_model(workdir: Path, m: Model) -> Path:
    """Write (or reuse) one checkpoint; a 4-layer model shares names and pool offsets with its 8-layer one."""
    recipe = {"family": m.family, "family_seed": FAMILY_SEED, "noise": NOISE if m.noised else 0.0, "audit_format": 1}
    return bench_io.build_checkpoint(workdir, m.shape(), suffix=f"-{m.name}", recipe=recipe,
                                     pool=functools.partial(family_pool, m.family, m.noised))


def related(a: str, b: str) -> bool:
    """Whether the screen should flag the pair: same family."""
    return a[0] == b[0]


# --- one audit, run in a child process ------------------------------------------------------

def child_audit(manifest: Path, db: Path) -> None:
    """Import what the audit needs, then run it once; print one JSON line."""
    import collections

    import torch  # noqa: F401  (import cost is not part of the measurement)

    import provenance.comparison  # noqa: F401
    import provenance.fingerprint  # noqa: F401
    from provenance.audit.runner import AuditOptions, audit
    rss0, disk0 = bench_io._status_mib("VmRSS"), _proc_io("read_bytes")
    t0, c0 = time.perf_counter(), time.process_time()
    hashes = os.environ.get("BENCH_AUDIT_NO_HASH") != "1"
    r = audit(manifest, db, AuditOptions(workers=1, hashes=hashes, device="cpu"))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    compared = [p for p in r.pairs if p.compared]
    print(json.dumps({
        "stages": r.stages, "wall_s": wall, "cpu_s": cpu, "models": len(r.models),
        "errors": {m.name: m.error for m in r.models if m.error}, "pairs": len(r.pairs), "compared": len(compared),
        "compared_related": sum(related(p.base, p.candidate) for p in compared),
        "labels": dict(collections.Counter(p.label for p in compared)),
        "families": [f for f in r.lineage.families if len(f) > 1], "edges": len(r.lineage.edges),
        "per_model": {m.name: {"seconds": m.seconds, "bytes_read": m.bytes_read} for m in r.models},
        "process_read_bytes": _proc_io("read_bytes") - disk0 if disk0 >= 0 else -1,
        "base_rss_mib": rss0, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


# --- the driver ---------------------------------------------------------------------------

def run_child(*args: str) -> dict[str, Any]:
    """This script with hidden arguments in a fresh interpreter (bench_compare's runner); its JSON line."""
    return bench_compare.run_child(*args, script=__file__)


def write_manifest(workdir: Path, names: list[str], dirs: list[Path]) -> Path:
    """A manifest of the first N models; JSON is valid YAML, so the driver needs no yaml import."""
    path = workdir / f"manifest-n{len(names)}.yaml"
    path.write_text(json.dumps({"models": [{"name": n, "spec": str(d)} for n, d in zip(names, dirs)]}, indent=1))
    return path


def run_size(workdir: Path, names: list[str], dirs: list[Path], n: int, repeats: int,
             warm: bool) -> list[dict[str, Any]]:
    """`repeats` audits of the first n models, each on a fresh db (the last one's db stays for the re-run)."""
    manifest = write_manifest(workdir, names[:n], dirs[:n])
    size = sum(f.stat().st_size for d in dirs[:n] for f in d.iterdir() if f.is_file())
    return [run_audit(manifest, fresh_db(workdir, n), dirs, warm) | {"files_bytes": size} for _ in range(repeats)]


def fresh_db(workdir: Path, n: int) -> Path:
    """An empty place for the N-model results store (an old one and its journals removed)."""
    db = workdir / "db" / f"audit-n{n}.sqlite"
    db.parent.mkdir(parents=True, exist_ok=True)
    for p in (db, Path(f"{db}-journal"), Path(f"{db}-wal"), Path(f"{db}-shm")):
        p.unlink(missing_ok=True)
    return db


def drop_all(dirs: list[Path], warm: bool) -> dict[str, Any]:
    """posix_fadvise(DONTNEED) every shard of every model (unless warm); how far `Cached` fell."""
    before = bench_io._meminfo_mib("Cached")
    notes = [] if warm else [bench_io.drop_from_page_cache(d) for d in dirs]
    cold = not warm and all(not n.startswith("NOT COLD") for n in notes)
    return {"cold": cold, "cached_before_mib": before, "cached_after_mib": bench_io._meminfo_mib("Cached")}


def _cpu_stall_us() -> int:
    """/proc/pressure/cpu `some` total: microseconds in which some task waited for a CPU (-1 if absent)."""
    try:
        with open("/proc/pressure/cpu") as f:
            return int(f.readline().rsplit("total=", 1)[1])
    except (OSError, IndexError, ValueError):
        return -1


def run_audit(manifest: Path, db: Path, dirs: list[Path], warm: bool) -> dict[str, Any]:
    """One audit in a fresh interpreter, after the drop; with the load average around it."""
    cache = drop_all(dirs, warm)
    load0, stall0, t0 = os.getloadavg()[0], _cpu_stall_us(), time.perf_counter()
    r = run_child("--audit", str(manifest), str(db))
    stall = (_cpu_stall_us() - stall0) / 1e6 / (time.perf_counter() - t0) if stall0 >= 0 else float("nan")
    r |= {"cache": cache, "loadavg_1min": [load0, os.getloadavg()[0]], "cpu_stall": stall}
    st = r["stages"]
    print(f"  N={r['models']:<3} {r['wall_s']:7.1f} s  fingerprint {st['fingerprint']['seconds']:6.1f} s "
          f"({st['fingerprint']['computed']} computed, {st['fingerprint']['bytes_read'] / GB:.2f} GB from disk)  "
          f"screen {st['screen']['seconds']:.2f} s  compare {st['compare']['seconds']:6.1f} s "
          f"({st['compare']['computed']} computed)  peak RSS {r['peak_rss_mib']:.0f} MiB  "
          f"load {load0:.1f}->{r['loadavg_1min'][1]:.1f}  CPU stall {100 * stall:.0f}%  "
          f"Cached {cache['cached_before_mib']:.0f}->{cache['cached_after_mib']:.0f} MiB", flush=True)
    if r["errors"]:
        print(f"  errors: {r['errors']}", flush=True)
    return r


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of one N's audits (by wall time): the others lost more to the machine's other load."""
    return min(runs, key=lambda r: r["wall_s"])


def format_table(runs: list[list[dict[str, Any]]]) -> str:
    """Per N (fastest run): pairs, what ran, seconds and bytes per stage, peak RSS; every run's wall time."""
    lines = ["| N | pairs | compared (same family) | fingerprint s | screen s | compare s | audit wall s | "
             "all runs wall s | inputs GB | from disk GB | computed fp / screen / compare | peak RSS MiB | load | "
             "CPU stall % |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: | --- | ---: |"]
    for rs in runs:
        r, walls = best(rs), " / ".join(f"{x['wall_s']:.1f}" for x in rs)
        fp, sc, co = (r["stages"][k] for k in ("fingerprint", "screen", "compare"))
        lines.append(f"| {r['models']} | {r['pairs']} | {r['compared']} ({r['compared_related']}) | "
                     f"{fp['seconds']:.1f} | {sc['seconds']:.3f} | {co['seconds']:.1f} | {r['wall_s']:.1f} | "
                     f"{walls} | "
                     f"{fp['bytes_of_inputs'] / GB:.2f} | {fp['bytes_read'] / GB:.2f} | "
                     f"{fp['computed']} / {sc['computed']} / {co['computed']} | {r['peak_rss_mib']:.0f} | "
                     f"{r['loadavg_1min'][0]:.1f}->{r['loadavg_1min'][1]:.1f} | {100 * r['cpu_stall']:.0f} |")
    return "\n".join(lines)


def ratios(r: dict[str, Any]) -> dict[str, Any]:
    """What should stay constant as N grows: per model, per pair, per compared pair."""
    fp, sc, co = (r["stages"][k] for k in ("fingerprint", "screen", "compare"))
    n = r["models"]
    return {"inputs_mb_per_model": fp["bytes_of_inputs"] / n / 1e6, "disk_mb_per_model": fp["bytes_read"] / n / 1e6,
            "disk_per_input": fp["bytes_read"] / max(fp["bytes_of_inputs"], 1),
            "fingerprint_s_per_model": fp["seconds"] / n, "screen_ms_per_pair": 1e3 * sc["seconds"] / r["pairs"],
            "compare_s_per_compared": co["seconds"] / r["compared"] if r["compared"] else float("nan"),
            "wall_s_per_model": r["wall_s"] / n,
            "task_s": sorted(m["seconds"] for m in r["per_model"].values())}


def format_ratios(runs: list[dict[str, Any]]) -> str:
    lines = ["| N | inputs MB / model | from disk MB / model | disk / inputs | fingerprint s / model | "
             "one fingerprint s, median (min-max) | screen ms / pair | compare s / compared pair | wall s / model |",
             "| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
    for r in runs:
        q = ratios(r)
        lines.append(f"| {r['models']} | {q['inputs_mb_per_model']:.1f} | {q['disk_mb_per_model']:.1f} | "
                     f"{q['disk_per_input']:.3f} | {q['fingerprint_s_per_model']:.2f} | "
                     f"{statistics.median(q['task_s']):.2f} ({q['task_s'][0]:.2f}-{q['task_s'][-1]:.2f}) | "
                     f"{q['screen_ms_per_pair']:.2f} | {q['compare_s_per_compared']:.2f} | "
                     f"{q['wall_s_per_model']:.2f} |")
    return "\n".join(lines)


def linearity(runs: list[dict[str, Any]]) -> str:
    """Whether bytes per model stay within 5% across N: of the inputs, and of what came from disk.

    Each N's bytes per model are divided by the mean size of its N models (as listed by the driver),
    so an odd N, whose mix of 8- and 4-layer models differs, is judged fairly too.
    """
    out = []
    for key, what in (("bytes_of_inputs", "inputs (bytes_of_inputs)"), ("bytes_read", "from disk (bytes_read)")):
        vals = [r["stages"]["fingerprint"][key] / r["files_bytes"] for r in runs]
        if min(vals) <= 0:
            out.append(f"{what}: some runs read 0 bytes from disk (page cache), no check")
            continue
        spread = max(vals) / min(vals)
        out.append(f"{what}: max/min over N of bytes per model (per mean model size) = {spread:.3f} -> "
                   f"{'linear in N' if spread <= 1.05 else 'NOT linear in N'} (bar 1.05)")
    return "reads: " + "; ".join(out)


def format_rerun(r: dict[str, Any]) -> str:
    """The second audit of the largest N on the same db: what it computed, reused and read."""
    st = r["stages"]
    computed = " / ".join(str(st[k]["computed"]) for k in ("fingerprint", "screen", "compare"))
    reused = " / ".join(str(st[k]["reused"]) for k in ("fingerprint", "screen", "compare"))
    ok = all(st[k]["computed"] == 0 for k in ("fingerprint", "screen", "compare"))
    return (f"re-run of N={r['models']} on the same db: {r['wall_s']:.2f} s wall (fingerprint "
            f"{st['fingerprint']['seconds']:.2f} s, screen {st['screen']['seconds']:.2f} s, compare "
            f"{st['compare']['seconds']:.2f} s); computed fp / screen / compare = {computed} "
            f"({'nothing, as it should' if ok else 'NOT nothing'}); reused {reused}; "
            f"{st['fingerprint']['bytes_read'] / MIB:.1f} MiB from disk by fingerprinting, "
            f"{r['process_read_bytes'] / MIB:.1f} MiB by the whole process; peak RSS {r['peak_rss_mib']:.0f} MiB")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/provenance-bench-audit"),
                   help="where the checkpoints, manifests and dbs go (default: %(default)s)")
    p.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES),
                   help=f"numbers of models to audit, each 2-{len(ORDER)} (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=2, help="audits per N, each on a fresh db; the tables show "
                   "the fastest (default: %(default)s)")
    p.add_argument("--warm", action="store_true", help="do not drop the checkpoints from the page cache")
    p.add_argument("--no-hash", dest="hashes", action="store_false",
                   help="audit with hashes=False (the files' sha256 are not taken)")
    p.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    p.add_argument("--audit", nargs=2, metavar=("MANIFEST", "DB"), help=argparse.SUPPRESS)
    p.add_argument("--build", type=int, metavar="N", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def check_sizes(sizes: list[int]) -> None:
    bad = [n for n in sizes if not 2 <= n <= len(ORDER)]
    if bad:
        raise SystemExit(f"The 'sizes' parameter must hold numbers from 2 to {len(ORDER)} (the models this "
                         f"benchmark builds). Got {bad} instead.")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.audit:
        child_audit(Path(args.audit[0]), Path(args.audit[1]))
        return
    if args.build:
        print(json.dumps({"dirs": [str(build_model(args.workdir, Model.parse(n))) for n in ORDER[:args.build]]}))
        return
    check_sizes(args.sizes)
    if not args.hashes:
        os.environ["BENCH_AUDIT_NO_HASH"] = "1"  # the audit children inherit it
    if args.repeats < 1:
        raise SystemExit(f"The 'repeats' parameter must be >= 1. Got {args.repeats} instead.")
    sizes, names = sorted(set(args.sizes)), list(ORDER[:max(args.sizes)])
    args.workdir.mkdir(parents=True, exist_ok=True)
    total = sum(Model.parse(n).shape().nbytes() for n in names)
    free = os.statvfs(args.workdir)
    print(f"{len(names)} checkpoints, {total / GB:.2f} GB in all, under {args.workdir} "
          f"({free.f_bavail * free.f_frsize / GB:.0f} GB free there before building)", flush=True)
    dirs = [Path(d) for d in run_child("--build", str(len(names)), "--workdir", str(args.workdir))["dirs"]]
    state = tree_state()
    changes = f" plus uncommitted changes {state['changes_sha256']} ({', '.join(state['changed'])})"
    print(f"library: {state['git'][:12]}" + (changes if state["changed"] else ""), flush=True)
    runs = [run_size(args.workdir, names, dirs, n, args.repeats, args.warm) for n in sizes]
    fastest = [best(rs) for rs in runs]
    print("re-run of the largest N on its db:", flush=True)
    rerun = run_audit(args.workdir / f"manifest-n{sizes[-1]}.yaml", args.workdir / "db" / f"audit-n{sizes[-1]}.sqlite",
                      dirs, args.warm)
    if tree_state() != state:
        print("WARNING: the library source under provenance/ changed during the run; rows may mix versions")
    cold = all(r["cache"]["cold"] for rs in runs for r in rs)
    mode = "warm page cache" if args.warm else ("cold: every checkpoint dropped from the page cache before each "
                                                "audit" if cold else "NOT COLD")
    print(f"\n{mode}; AuditOptions(workers=1, hashes={args.hashes}, device=\"cpu\"); fastest of {args.repeats} "
          f"run(s) per N\n")
    print(format_table(runs))
    print()
    print(format_ratios(fastest))
    print(f"\n{linearity(fastest)}")
    print(format_rerun(rerun))
    print("\n'inputs' is the fingerprint stage's bytes_of_inputs (the size of every file of the fingerprinted "
          "models); 'from disk' is its bytes_read (/proc/self/io read_bytes of the worker: 0 when cached). "
          "'compared (same family)': pairs the screen flagged, and how many of them are within a family. "
          "'CPU stall': share of the audit's wall time in which some task on the machine waited for a CPU "
          "(/proc/pressure/cpu), i.e. how busy the other tenants kept the cores.")
    if args.json:
        out = {"environment": environment(), "library_state": {"start": state, "end": tree_state()}, "mode": mode,
               "models": [asdict(Model.parse(n)) | {"dir": str(d)} for n, d in zip(names, dirs)],
               "shape": {"hidden": HIDDEN, "intermediate": INTERMEDIATE, "vocab": VOCAB, "shards": SHARDS},
               "repeats": args.repeats, "runs": runs, "rerun": rerun}
        args.json.write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
