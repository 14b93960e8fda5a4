"""Time and peak RSS of a full weight comparison of a 7B-shaped pair against reading both checkpoints.

Builds (once, cached) two synthetic Llama-2-7B-shaped bf16 checkpoints in HF layout with
`bench_io.py`'s writer: the base, and a derived candidate (every tensor = base + small
deterministic noise). Each measurement runs in a fresh subprocess so `ru_maxrss` is its own:

    raw-cold             readinto() of every shard of both checkpoints, page cache dropped first
    raw-direct-cold      the same with O_DIRECT into one reused page-aligned buffer, past the page cache:
                         the disk's own pace, without the kernel's cost of caching what is read
    raw-warm             the same as raw-cold, right after another full pass (no drop)
    compare-cold         compare(base, cand, CompareOptions(hashes=False, device="cpu")), dropped first
    compare-warm         the same, right after a full readinto() pass (no drop; compare's own cold
                         reads go past the page cache, so they leave nothing warm behind)
    compare-hashes-cold  compare(..., hashes=True): also sha256 of every file, from the same reads
    profile              one warm compare under cProfile: the top functions by own time

The driver imports only the standard library (and bench_io, which does too), so the
children's peak RSS does not start from a heavy parent's resident size.

    python benchmarks/bench_compare.py                 # 32 layers: ~13.5 GB per checkpoint
    python benchmarks/bench_compare.py --layers 4      # a quick run: ~2.4 GB per checkpoint
    python benchmarks/bench_compare.py --json /tmp/compare.json
    python benchmarks/bench_compare.py --device cuda   # compare on a GPU (benchmarks/gpu_check.sh)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench_io  # standard library only at import time
from bench_io import (
    GB,
    MIB,
    REPO,
    LlamaShape,
    drop_from_page_cache,
    environment,
    shard_files,
)

KINDS = ("raw-cold", "raw-direct-cold", "raw-warm", "compare-cold", "compare-warm", "compare-hashes-cold", "profile")
NOISE = 0.1  # candidate = base + N(0, (NOISE * 0.02)^2): a light "fine-tune" of every tensor
NOISE_SEED = 7
DERIVED_FORMAT = 1


# --- the pair of checkpoints --------------------------------------------------------------

def build_pair(workdir: Path, shape: LlamaShape) -> tuple[Path, Path]:
    """The base (bench_io's checkpoint, shared with bench_io.py at equal shape) and its derived copy."""
    base = bench_io.build_checkpoint(workdir, shape)
    return base, build_derived(workdir, shape)


def build_derived(workdir: Path, shape: LlamaShape) -> Path:
    """Same shards, names and pool offsets as the base, from a pool with noise added; cached by manifest."""
    recipe = {"noise": NOISE, "noise_seed": NOISE_SEED, "derived_format": DERIVED_FORMAT}
    return bench_io.build_checkpoint(workdir, shape, suffix="-derived", recipe=recipe,
                                     pool=lambda: derived_pool(bench_io._value_pool()))


def derived_pool(base_pool: memoryview) -> memoryview:
    """bf16 pool + N(0, (NOISE * 0.02)^2), truncated to bf16 again; doubled like the base pool."""
    import numpy as np
    bf16 = np.frombuffer(base_pool, dtype=np.uint16)[: len(base_pool) // 4]
    f32 = (bf16.astype(np.uint32) << 16).view(np.float32)
    noise = np.random.default_rng(NOISE_SEED).standard_normal(f32.size, dtype=np.float32)
    out = ((f32 + noise * np.float32(NOISE * 0.02)).view(np.uint32) >> 16).astype(np.uint16)
    return memoryview(np.concatenate([out, out]).tobytes())


# --- one measurement, run in a child process ------------------------------------------------

def _read_all(folders: list[Path]) -> int:
    """readinto() of every shard with one reused 64 MiB buffer (bench_io's `raw`)."""
    return sum(bench_io._measure_raw(f) for f in folders)


def _read_direct(folders: list[Path]) -> int:
    """O_DIRECT reads of every shard into one reused, page-aligned 64 MiB buffer; the bytes read."""
    import mmap
    buf = mmap.mmap(-1, 64 << 20)
    view, total = memoryview(buf), 0
    for folder in folders:
        for path in shard_files(folder):
            fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
            try:
                offset = 0
                while True:
                    n = os.preadv(fd, [view], offset)
                    offset += n
                    if n < len(view):
                        break
                total += offset
            finally:
                os.close(fd)
    view.release()
    buf.close()
    return total


def _compare(base: Path, cand: Path, hashes: bool, device: str = "cpu") -> dict[str, Any]:
    from provenance.comparison import CompareOptions, compare
    r = compare(base, cand, CompareOptions(hashes=hashes, device=device))
    return {"label": r.verdict.label, "relation": r.verdict.relation, "p_value": r.verdict.p_value,
            "matched_cosine": r.weights.similarity.get("matched_cosine") if r.weights else None,
            "hashed_files": len(r.base["sha256"]) + len(r.candidate["sha256"])}


def _profile(base: Path, cand: Path, top: int, device: str = "cpu") -> dict[str, Any]:
    """compare() under cProfile; the `top` functions by own (tottime) seconds."""
    import cProfile
    import pstats
    prof = cProfile.Profile()
    prof.enable()
    verdict = _compare(base, cand, hashes=False, device=device)
    prof.disable()
    stats = pstats.Stats(prof)
    rows = [{"function": _func_name(f), "calls": nc, "tottime": tt, "cumtime": ct}
            for f, (_, nc, tt, ct, _) in stats.stats.items()]  # type: ignore[attr-defined]
    rows.sort(key=lambda r: -r["tottime"])
    return {"verdict": verdict, "total_tottime": stats.total_tt, "top": rows[:top]}  # type: ignore[attr-defined]


def _func_name(f: tuple[str, int, str]) -> str:
    """`provenance/signals/profiles.py:63(compute_profiles)`, or the builtin's own name."""
    path, line, name = f
    if path == "~":
        return name
    for marker in ("site-packages/", str(REPO) + "/", "/lib/python"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{line}({name})"


def _proc_io(key: str) -> int:
    """A /proc/self/io counter; read_bytes counts what had to come from storage, not the page cache."""
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def child_main(kind: str, base: Path, cand: Path, top: int, device: str = "cpu", tuned: bool = True) -> None:
    """Import what the measurement needs, then time it; print one JSON line."""
    runners: dict[str, Callable[[], Any]] = {
        "raw": lambda: _read_all([base, cand]),
        "raw-direct": lambda: _read_direct([base, cand]),
        "compare": lambda: _compare(base, cand, hashes=False, device=device),
        "compare-hashes": lambda: _compare(base, cand, hashes=True, device=device),
        "profile": lambda: _profile(base, cand, top, device),
    }
    if not kind.startswith("raw"):
        if tuned:  # as the CLI runs: OpenMP threads wait passively, glibc keeps large freed blocks for reuse
            from provenance.cli.tuning import tune_process

            tune_process()
        import numpy  # noqa: F401  (import cost is not part of the measurement)
        import scipy.optimize  # noqa: F401
        import torch

        import provenance.comparison  # noqa: F401
        if device.startswith("cuda"):  # CUDA's start-up is not part of the measurement either
            torch.zeros(1, device=device)
    print_measured(kind, runners[kind])


def print_measured(kind: str, run: Callable[[], Any]) -> None:
    """Run `run()` once in this (child) process; print one JSON line with its result, wall and CPU
    seconds, bytes from disk and memory (the line `run_child` reads)."""
    rss0, disk0 = bench_io._status_mib("VmRSS"), _proc_io("read_bytes")
    r0, c0 = time.perf_counter(), time.process_time()
    out = run()
    seconds, cpu = time.perf_counter() - r0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    disk = _proc_io("read_bytes") - disk0 if disk0 >= 0 else -1
    print(json.dumps({"kind": kind, "result": out, "seconds": seconds, "cpu_seconds": cpu,
                      "disk_read_bytes": disk, "base_rss_mib": rss0, "peak_rss_mib": peak,
                      "vm_hwm_mib": bench_io._status_mib("VmHWM")}))


# --- the driver ---------------------------------------------------------------------------

def run_child(*args: str, script: str | Path = __file__) -> dict[str, Any]:
    """Run `script` (this one by default) with hidden arguments in a fresh interpreter; its last stdout line
    is JSON."""
    cmd = [sys.executable, str(Path(script).resolve()), *args]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=REPO)
    sys.stdout.write("".join(ln + "\n" for ln in proc.stdout.splitlines()[:-1]))
    if proc.returncode != 0:
        raise SystemExit(f"child {' '.join(args[:3])!r} failed (exit {proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _drop(folders: list[Path]) -> str:
    return "; ".join(drop_from_page_cache(f) for f in folders)


def run_all(base: Path, cand: Path, kinds: list[str], repeats: int, top: int,
            device: str = "cpu", untuned: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Each kind `repeats` times in a fresh process, in KINDS order; '-cold' kinds drop both first.

    A warm run follows another full readinto() pass over both checkpoints (the previous measurement, or
    an uncounted warm-up read where the previous one read past the page cache or there was none).
    """
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    warmed = False
    for rep in range(repeats):
        for kind in kinds:
            cold = kind.endswith("-cold")
            if not cold and not warmed:
                warm = run_child("--measure", "raw", str(base), str(cand))
                print(f"warm-up read (not counted): {warm['seconds']:.1f} s", flush=True)
            note = _drop([base, cand]) if cold else ""
            what = {"raw-cold": "raw", "raw-direct-cold": "raw-direct", "raw-warm": "raw", "compare-cold": "compare",
                    "compare-warm": "compare", "compare-hashes-cold": "compare-hashes", "profile": "profile"}[kind]
            warmed = kind in ("raw-cold", "raw-warm")  # a buffered full pass; compare and raw-direct leave none
            load0 = os.getloadavg()[0]
            r = run_child("--measure", what, str(base), str(cand), "--top", str(top), "--device", device,
                          *(["--untuned"] if untuned else []))
            r["cache_note"] = note
            r["loadavg_1min"] = [load0, os.getloadavg()[0]]  # other processes on the machine share the CPUs
            results[kind].append(r)
            label = "" if what.startswith("raw") else f"  -> {_label(r['result'])}"
            print(f"  run {rep + 1} {kind:<20} {r['seconds']:8.2f} s  from disk {r['disk_read_bytes'] / GB:6.2f} GB  "
                  f"peak RSS {r['peak_rss_mib']:7.0f} MiB  load {load0:.1f}->{r['loadavg_1min'][1]:.1f}{label}" + (f"  ({note})" if note else ""), flush=True)
    return results


def _label(result: dict[str, Any]) -> str:
    """The verdict label of a compare or profile child."""
    return str(result.get("verdict", result)["label"])


def format_table(results: dict[str, list[dict[str, Any]]], stored: int) -> str:
    """Markdown table: best-of-N seconds, GB/s over both checkpoints' stored bytes, x cold raw, RSS."""
    raw = min((r["seconds"] for r in results.get("raw-cold", [])), default=None)
    lines = [("| measurement | runs (s) | best s | GB/s (stored) | x cold raw | CPU s | from disk GB | "
              "RSS before MiB | peak RSS MiB | peak - before MiB | load | verdict |"),
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for kind, runs in results.items():
        if kind == "profile" or not runs:
            continue
        best = min(runs, key=lambda r: r["seconds"])
        ratio = f"{best['seconds'] / raw:.2f}" if raw else "n/a"
        verdict = _label(best["result"]) if isinstance(best["result"], dict) else ""
        each = " / ".join(f"{r['seconds']:.2f}" for r in runs)
        lines.append(f"| {kind} | {each} | {best['seconds']:.2f} | "
                     f"{stored / best['seconds'] / GB:.2f} | {ratio} | {best['cpu_seconds']:.2f} | "
                     f"{best['disk_read_bytes'] / GB:.2f} | {max(r['base_rss_mib'] for r in runs):.0f} | "
                     f"{max(r['peak_rss_mib'] for r in runs):.0f} | "
                     f"{max(r['peak_rss_mib'] - r['base_rss_mib'] for r in runs):.0f} | "
                     f"{best['loadavg_1min'][0]:.1f}->{best['loadavg_1min'][1]:.1f} | {verdict} |")
    return "\n".join(lines)


def format_profile(run: dict[str, Any]) -> str:
    """The (fastest) cProfile run's top functions by own time, with their share of its wall time."""
    p = run["result"]
    wall = run["seconds"]
    lines = [(f"profiled compare (warm, cProfile on): {wall:.2f} s wall, {run['cpu_seconds']:.2f} s CPU, "
              f"{run['disk_read_bytes'] / GB:.2f} GB from disk; verdict {p['verdict']['label']!r} "
              f"({p['verdict']['relation']}), matched cosine {p['verdict']['matched_cosine']}"), "",
             "| # | function | calls | own s | % of wall | cumulative s |",
             "| ---: | --- | ---: | ---: | ---: | ---: |"]
    for i, row in enumerate(p["top"], 1):
        name = row["function"].replace("|", "\\|")
        lines.append(f"| {i} | `{name}` | {row['calls']} | {row['tottime']:.2f} | "
                     f"{100 * row['tottime'] / wall:.1f} | {row['cumtime']:.2f} |")
    shown = sum(r["tottime"] for r in p["top"])
    lines.append(f"\nthe {len(p['top'])} rows hold {shown:.2f} s of {p['total_tottime']:.2f} s profiled "
                 f"({100 * shown / max(p['total_tottime'], 1e-9):.0f}%)")
    return "\n".join(lines)


def tree_state() -> dict[str, Any]:
    """Which library source was measured: HEAD, the changed files under provenance/, a hash of the changes."""
    import hashlib
    git = ["git", "-C", str(REPO)]
    try:
        head = subprocess.run([*git, "rev-parse", "HEAD"], check=False, capture_output=True, text=True).stdout.strip()
        status = subprocess.run([*git, "status", "--porcelain", "--", "provenance"], check=False,
                                capture_output=True, text=True).stdout.splitlines()
        diff = subprocess.run([*git, "diff", "HEAD", "--", "provenance"], check=False, capture_output=True).stdout
    except OSError:
        return {"git": "", "changed": [], "changes_sha256": ""}
    h = hashlib.sha256(diff)
    for line in status:
        if line.startswith("??") and (REPO / line[3:]).is_file():
            h.update((REPO / line[3:]).read_bytes())
    return {"git": head, "changed": status, "changes_sha256": h.hexdigest()[:16] if status else ""}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/provenance-bench"),
                   help="where the two checkpoints are built and cached (default: %(default)s)")
    p.add_argument("--layers", type=int, default=32, help="transformer layers (default: %(default)s, as Llama-2-7B)")
    p.add_argument("--shards", type=int, default=4, help="shard files per checkpoint (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=1, help="runs per measurement (default: %(default)s)")
    p.add_argument("--only", nargs="+", choices=KINDS, default=list(KINDS), help="measurements to run")
    p.add_argument("--top", type=int, default=15, help="profile rows to show (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="where compare runs: cpu (default) or cuda[:N]")
    p.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    p.add_argument("--stages", nargs="?", const="minilm,smollm2,llama1b,llama7b", metavar="PAIRS",
                   help="first print bench_stages.py's per-stage tables and summary for these pairs (default: "
                        "%(const)s: MiniLM, SmolLM2, the ~1B- and the 7B-shaped pair), then this table")
    p.add_argument("--untuned", action="store_true",
                   help="run compare without the CLI's process tuning (provenance/cli/tuning.py)")
    p.add_argument("--measure", nargs=3, metavar=("KIND", "BASE", "CAND"), help=argparse.SUPPRESS)
    p.add_argument("--build", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.measure:
        child_main(args.measure[0], Path(args.measure[1]), Path(args.measure[2]), args.top, args.device,
                   tuned=not args.untuned)
        return
    if args.stages:
        import bench_stages

        bench_stages.main(["--pairs", args.stages, "--repeats", str(args.repeats), "--workdir", str(args.workdir)])
        print(flush=True)
    if args.layers < 1 or args.shards < 1:
        raise SystemExit(f"The 'layers' and 'shards' parameters must be >= 1. Got {args.layers} and "
                         f"{args.shards} instead.")
    shape = LlamaShape(layers=args.layers, shards=args.shards)
    if args.build:
        base, cand = build_pair(args.workdir, shape)
        print(json.dumps({"base": str(base), "candidate": str(cand)}))
        return
    free = os.statvfs(args.workdir if args.workdir.exists() else args.workdir.parent)
    print(f"two checkpoints of {shape.nbytes() / GB:.2f} GB each under {args.workdir} "
          f"({free.f_bavail * free.f_frsize / GB:.0f} GB free there before building)", flush=True)
    built = run_child("--build", "--workdir", str(args.workdir), "--layers", str(args.layers),
                      "--shards", str(args.shards))
    base, cand = Path(built["base"]), Path(built["candidate"])
    stored = sum(sum(bench_io.stored_tensors(f).values()) for f in (base, cand))
    kinds = [k for k in KINDS if k in args.only]
    if any(k != "raw-cold" for k in kinds) and "raw-cold" not in kinds:
        kinds.insert(0, "raw-cold")  # the reference for the ratio
    mem = bench_io._meminfo_mib("MemTotal")
    print(f"{shape.layers} layers, {len(shard_files(base))} shards each, {stored / GB:.2f} GB stored (bf16) "
          f"in both; RAM {mem / 1024:.1f} GiB" + ("  -- the pair is larger than RAM, so 'warm' runs are "
                                                    "only partly cached" if stored > mem * MIB else ""), flush=True)
    state = tree_state()
    print(f"library: {state['git'][:12]}" + (f" plus uncommitted changes {state['changes_sha256']} "
                                             f"({', '.join(state['changed'])})" if state["changed"] else ""), flush=True)
    print(f"compare runs on device {args.device}", flush=True)
    print(f"process tuning (provenance/cli/tuning.py): {'off' if args.untuned else 'on, as the CLI runs'}", flush=True)
    results = run_all(base, cand, kinds, args.repeats, args.top, args.device, untuned=args.untuned)
    if tree_state() != state:
        print("WARNING: the library source under provenance/ changed during the run; rows may mix versions")
    print()
    print(format_table(results, stored))
    raw = min(r["seconds"] for r in results["raw-cold"])
    if results.get("compare-cold"):
        best = min(r["seconds"] for r in results["compare-cold"])
        ratio = best / raw
        print(f"\ncompare-cold / raw-cold = {ratio:.2f} (target <= 1.25: {'met' if ratio <= 1.25 else 'NOT met'}).")
        if results.get("raw-direct-cold"):
            direct = min(r["seconds"] for r in results["raw-direct-cold"])
            print(f"compare-cold / raw-direct-cold = {best / direct:.2f} (the same compare against the disk's own "
                  "pace, read past the page cache).")
        if results.get("compare-warm") and results.get("raw-warm"):
            warm = min(r["seconds"] for r in results["compare-warm"]) / min(r["seconds"] for r in results["raw-warm"])
            print(f"compare-warm / raw-warm = {warm:.2f} (target <= 1.5: {'met' if warm <= 1.5 else 'NOT met'}).")
        print("GB/s is both checkpoints' stored bytes / seconds for every row; compare does not read lm_head, "
              "and with hashes it reads the bytes it skips once more, to hash them. 'from disk' is the child's "
              "/proc/self/io read_bytes (0 = all from the page cache).")
    if results.get("profile"):
        print()
        print(format_profile(min(results["profile"], key=lambda r: r["seconds"])))
    if args.json:
        env = environment()
        from importlib.metadata import version
        env["scipy"] = version("scipy")
        env["device"] = args.device
        out = {"environment": env, "library_state": {"start": state, "end": tree_state()}, "repeats": args.repeats, "shape": asdict(shape), "noise": NOISE,
               "checkpoints": {"base": str(base), "candidate": str(cand), "stored_bytes_both": stored},
               "runs": results}
        args.json.write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
