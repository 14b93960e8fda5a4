"""Streaming read throughput and peak RSS of `open_checkpoint(...).get` against a raw file read.

Builds (once, cached) a synthetic multi-GB sharded Llama checkpoint in HF layout, then runs
each measurement in a fresh subprocess so `ru_maxrss` is that measurement's own peak:

    raw          readinto() of every shard file with a 64 MiB buffer (the ceiling)
    get-bf16     open_checkpoint + get(name) for every tensor, stored dtype, discarded
    get-fp32     the same with dtype="float32"
    safe_open    safetensors.safe_open(...).get_tensor(name).clone() for every tensor (comparison;
                 get_tensor alone returns a view of the mmap and reads nothing)

The driver itself imports only the standard library (the checkpoint is built in a child
too): a child's `ru_maxrss` starts from its parent's resident size at fork, so a heavy
parent would inflate every child's peak.

    python benchmarks/bench_io.py                 # ~4 GB, page cache warm, 2 runs each
    python benchmarks/bench_io.py --cold          # drop the shards from the page cache first
    python benchmarks/bench_io.py --size-gb 1 --json /tmp/io.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MIB = 1024 * 1024
GB = 1e9
READ_CHUNK = 64 * MIB
POOL_VALUES = 16 * MIB  # 32 MiB of bf16 values, reused (rotated) for every tensor
SEED = 20240611
KINDS = ("raw", "get-bf16", "get-fp32", "safe_open")
MANIFEST = "bench-manifest.json"


# --- the synthetic checkpoint -------------------------------------------------------------

@dataclass(frozen=True)
class LlamaShape:
    """Dimensions of the synthetic model; Llama-2-7B widths with fewer layers by default."""

    hidden: int = 4096
    intermediate: int = 11008
    layers: int = 9
    vocab: int = 32000
    shards: int = 4

    def tensors(self) -> list[tuple[str, tuple[int, ...]]]:
        """HF Llama tensor names and shapes, in file order."""
        h, i = self.hidden, self.intermediate
        out: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (self.vocab, h))]
        for n in range(self.layers):
            p = f"model.layers.{n}."
            out += [(p + "input_layernorm.weight", (h,)),
                    (p + "self_attn.q_proj.weight", (h, h)), (p + "self_attn.k_proj.weight", (h, h)),
                    (p + "self_attn.v_proj.weight", (h, h)), (p + "self_attn.o_proj.weight", (h, h)),
                    (p + "post_attention_layernorm.weight", (h,)),
                    (p + "mlp.gate_proj.weight", (i, h)), (p + "mlp.up_proj.weight", (i, h)),
                    (p + "mlp.down_proj.weight", (h, i))]
        return out + [("model.norm.weight", (h,)), ("lm_head.weight", (self.vocab, h))]

    def nbytes(self) -> int:
        return sum(2 * _numel(s) for _, s in self.tensors())

    def config(self) -> dict[str, Any]:
        return {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                "hidden_size": self.hidden, "intermediate_size": self.intermediate,
                "num_hidden_layers": self.layers, "num_attention_heads": self.hidden // 128,
                "num_key_value_heads": self.hidden // 128, "vocab_size": self.vocab,
                "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
                "hidden_act": "silu", "tie_word_embeddings": False, "torch_dtype": "bfloat16"}


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def shape_for_size(size_gb: float, shards: int) -> LlamaShape:
    """Llama-2-7B widths with as many layers as fit `size_gb`; halve widths below 2 layers."""
    if size_gb <= 0:
        raise SystemExit(f"The 'size_gb' parameter must be > 0. Got {size_gb} instead.")
    hidden, inter = 4096, 11008
    while True:
        base = LlamaShape(hidden, inter, 0, 32000, shards)
        per_layer = LlamaShape(hidden, inter, 1, 32000, shards).nbytes() - base.nbytes()
        layers = round((size_gb * GB - base.nbytes()) / per_layer)
        if layers >= 2 or hidden <= 256:
            return LlamaShape(hidden, inter, max(1, layers), 32000, shards)
        hidden, inter = hidden // 2, inter // 2


def build_checkpoint(workdir: Path, shape: LlamaShape, *, suffix: str = "",
                     pool: Callable[[], memoryview] | None = None, recipe: dict | None = None) -> Path:
    """Write the checkpoint under `workdir` unless an identical one is already there.

    `suffix`, `pool` and `recipe` let another benchmark build a variant (e.g. a noised copy)
    with the same writer and cache logic; `recipe` goes into the manifest that keys the cache.
    """
    folder = workdir / f"llama-h{shape.hidden}-i{shape.intermediate}-l{shape.layers}-s{shape.shards}{suffix}"
    want = {"shape": asdict(shape), "seed": SEED, "format": 1, **(recipe or {})}
    manifest = folder / MANIFEST
    if manifest.is_file() and json.loads(manifest.read_text()) == want:
        print(f"reusing {folder}", flush=True)
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.safetensors"):
        old.unlink()
    manifest.unlink(missing_ok=True)
    t0 = time.perf_counter()
    values = (pool or _value_pool)()
    groups = _split_shards(shape.tensors(), shape.shards)
    weight_map: dict[str, str] = {}
    for k, group in enumerate(groups, 1):
        fname = f"model-{k:05d}-of-{len(groups):05d}.safetensors"
        _write_shard(folder / fname, group, values)
        weight_map.update({name: fname for name, _ in group})
    index = {"metadata": {"total_size": shape.nbytes()}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (folder / "config.json").write_text(json.dumps(shape.config(), indent=2))
    manifest.write_text(json.dumps(want))
    print(f"built {folder} ({shape.nbytes() / GB:.2f} GB) in {time.perf_counter() - t0:.1f} s", flush=True)
    return folder


def _value_pool() -> memoryview:
    """Deterministic bf16 bit patterns (N(0, 0.02) truncated), doubled so any window is contiguous."""
    import numpy as np
    rng = np.random.default_rng(SEED)
    f32 = rng.standard_normal(POOL_VALUES, dtype=np.float32) * np.float32(0.02)
    bf16 = (f32.view(np.uint32) >> 16).astype(np.uint16)
    return memoryview(np.concatenate([bf16, bf16]).tobytes())


def _split_shards(tensors: list[tuple[str, tuple[int, ...]]], shards: int) -> list[list[tuple[str, tuple[int, ...]]]]:
    """Consecutive groups of roughly equal byte size."""
    total = sum(2 * _numel(s) for _, s in tensors)
    groups: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    done = 0
    for name, s in tensors:
        if groups[-1] and done >= total * len(groups) / shards and len(groups) < shards:
            groups.append([])
        groups[-1].append((name, s))
        done += 2 * _numel(s)
    return groups


def _write_shard(path: Path, group: list[tuple[str, tuple[int, ...]]], pool: memoryview) -> None:
    """safetensors by hand: u64 header length, JSON header padded to 8 bytes, raw bytes."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, s in group:
        header[name] = {"dtype": "BF16", "shape": list(s), "data_offsets": [offset, offset + 2 * _numel(s)]}
        offset += 2 * _numel(s)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    half = len(pool) // 2
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, struct.pack("<Q", len(raw)) + raw)
        for name, s in group:
            start, left = (hash_name(name) * 4096) % half, 2 * _numel(s)
            while left:
                chunk = min(left, half)
                _write_all(fd, pool[start:start + chunk])
                left -= chunk
        os.fsync(fd)  # dirty pages can't be dropped by --cold, and writeback must not overlap runs
    finally:
        os.close(fd)


def hash_name(name: str) -> int:
    """A stable (not PYTHONHASHSEED-dependent) small hash, so every tensor starts elsewhere in the pool."""
    h = 2166136261
    for b in name.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# --- one measurement, run in a child process ------------------------------------------------

def shard_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


def _status_mib(key: str) -> float:
    """A /proc/self/status field (VmRSS, VmHWM) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _measure_raw(folder: Path) -> int:
    buf = bytearray(READ_CHUNK)
    view, total = memoryview(buf), 0
    for path in shard_files(folder):
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(view):
                total += n
    return total


def _measure_get(folder: Path, dtype: str | None) -> int:
    from provenance.io import open_checkpoint
    total = 0
    with open_checkpoint(folder) as ckpt:
        for name, info in ckpt.tensors.items():
            t = ckpt.get(name, dtype=dtype)
            total += info.nbytes
            del t
    return total


def _measure_safe_open(folder: Path) -> int:
    """safetensors maps the file; `clone` copies the bytes out, as `get` does with pread."""
    from safetensors import safe_open
    total = 0
    for path in shard_files(folder):
        with safe_open(str(path), framework="pt") as f:
            for name in f.keys():
                t = f.get_tensor(name).clone()
                total += t.numel() * t.element_size()
                del t
    return total


def child_main(kind: str, folder: Path) -> None:
    """Import what the measurement needs, then time it; print one JSON line."""
    runners: dict[str, Callable[[], int]] = {
        "raw": lambda: _measure_raw(folder),
        "get-bf16": lambda: _measure_get(folder, None),
        "get-fp32": lambda: _measure_get(folder, "float32"),
        "safe_open": lambda: _measure_safe_open(folder),
    }
    if kind != "raw":
        import numpy  # noqa: F401  (import cost is not part of the measurement)
        import torch  # noqa: F401
        import provenance.io  # noqa: F401
        import safetensors  # noqa: F401
    base = _status_mib("VmRSS")
    r0, c0 = time.perf_counter(), time.process_time()
    nbytes = runners[kind]()
    seconds, cpu = time.perf_counter() - r0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"kind": kind, "bytes": nbytes, "seconds": seconds, "cpu_seconds": cpu,
                      "base_rss_mib": base, "peak_rss_mib": peak, "vm_hwm_mib": _status_mib("VmHWM")}))


# --- the driver ---------------------------------------------------------------------------

def drop_from_page_cache(folder: Path) -> str:
    """posix_fadvise(DONTNEED) every shard (no root needed); report how much `Cached` fell."""
    if not hasattr(os, "posix_fadvise"):
        return "NOT COLD: os.posix_fadvise is unavailable on this platform; the page cache was not dropped"
    before = _meminfo_mib("Cached")
    for path in shard_files(folder):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    after = _meminfo_mib("Cached")
    return f"page cache: Cached {before:.0f} -> {after:.0f} MiB after posix_fadvise(DONTNEED)"


def _meminfo_mib(key: str) -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_child(*args: str) -> dict[str, Any]:
    """Run this script with hidden arguments in a fresh interpreter; its last stdout line is JSON."""
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    sys.stdout.write("".join(ln + "\n" for ln in proc.stdout.splitlines()[:-1]))
    if proc.returncode != 0:
        raise SystemExit(f"child {' '.join(args[:2])!r} failed (exit {proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def stored_tensors(folder: Path) -> dict[str, int]:
    """Tensor name -> stored bytes, from the shard headers (standard library only)."""
    out: dict[str, int] = {}
    for path in shard_files(folder):
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        header.pop("__metadata__", None)
        out.update({name: e["data_offsets"][1] - e["data_offsets"][0] for name, e in header.items()})
    return out


def run_all(folder: Path, kinds: list[str], repeats: int, cold: bool) -> dict[str, list[dict[str, Any]]]:
    """Each kind `repeats` times, each in a fresh process; cold drops the cache before each run."""
    if not cold:
        warm = run_child("--measure", "raw", str(folder))
        print(f"warm-up read (fills the page cache, not counted): {warm['seconds']:.1f} s", flush=True)
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    for rep in range(repeats):
        for kind in kinds:
            note = drop_from_page_cache(folder) if cold else ""
            r = run_child("--measure", kind, str(folder))
            r["cache_note"] = note
            results[kind].append(r)
            print(f"  run {rep + 1} {kind:<10} {r['seconds']:7.2f} s  peak RSS {r['peak_rss_mib']:7.0f} MiB"
                  + (f"  ({note})" if note else ""), flush=True)
    return results


def format_table(results: dict[str, list[dict[str, Any]]], stored: int) -> str:
    """Markdown table: best-of-N seconds, throughput on stored bytes, peak RSS, time relative to raw."""
    raw_best = min(r["seconds"] for r in results["raw"]) if results.get("raw") else None
    lines = ["| measurement | runs (s) | best s | GB/s (stored) | x raw time | CPU s | "
             "RSS before MiB | peak RSS MiB | peak - before MiB |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for kind, runs in results.items():
        best = min(runs, key=lambda r: r["seconds"])
        ratio = f"{best['seconds'] / raw_best:.2f}" if raw_best else "n/a"
        each = " / ".join(f"{r['seconds']:.2f}" for r in runs)
        lines.append(f"| {kind} | {each} | {best['seconds']:.2f} | "
                     f"{stored / best['seconds'] / GB:.2f} | {ratio} | {best['cpu_seconds']:.2f} | "
                     f"{max(r['base_rss_mib'] for r in runs):.0f} | {max(r['peak_rss_mib'] for r in runs):.0f} | "
                     f"{max(r['peak_rss_mib'] - r['base_rss_mib'] for r in runs):.0f} |")
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    """Versions, git hash, date and machine, recorded with the numbers."""
    from importlib.metadata import version
    try:
        git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    except OSError:
        git = ""
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "git": git, "python": platform.python_version(),
            **{pkg: version(pkg) for pkg in ("torch", "numpy", "safetensors", "provenance")},
            "cpus": os.cpu_count(), "mem_total_mib": round(_meminfo_mib("MemTotal")),
            "platform": platform.platform()}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/provenance-bench"),
                   help="where the synthetic checkpoint is built and cached (default: %(default)s)")
    p.add_argument("--size-gb", type=float, default=4.0, help="checkpoint size in GB (default: %(default)s)")
    p.add_argument("--shards", type=int, default=4, help="number of shard files (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=2, help="runs per measurement (default: %(default)s)")
    p.add_argument("--cold", action="store_true",
                   help="drop the shards from the page cache (posix_fadvise DONTNEED) before every run")
    p.add_argument("--only", nargs="+", choices=KINDS, default=list(KINDS), help="measurements to run")
    p.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    p.add_argument("--measure", nargs=2, metavar=("KIND", "DIR"), help=argparse.SUPPRESS)
    p.add_argument("--build", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.measure:
        child_main(args.measure[0], Path(args.measure[1]))
        return
    if args.build:
        folder = build_checkpoint(args.workdir, shape_for_size(args.size_gb, args.shards))
        print(json.dumps({"folder": str(folder)}))
        return
    folder = Path(run_child("--build", "--workdir", str(args.workdir), "--size-gb", str(args.size_gb),
                            "--shards", str(args.shards))["folder"])
    sizes = stored_tensors(folder)
    stored = sum(sizes.values())
    largest_name = max(sizes, key=lambda k: sizes[k])
    largest = sizes[largest_name]
    kinds = ["raw"] + [k for k in args.only if k != "raw"]  # raw is the reference for the ratio
    mode = "cold (posix_fadvise DONTNEED before each run)" if args.cold else "warm page cache"
    print(f"{len(sizes)} tensors in {len(shard_files(folder))} shards, {stored / GB:.2f} GB stored (bf16); "
          f"largest tensor {largest_name} {largest / MIB:.0f} MiB; mode: {mode}", flush=True)
    results = run_all(folder, kinds, args.repeats, args.cold)
    print()
    print(format_table(results, stored))
    print(f"\nlargest tensor: {largest / MIB:.0f} MiB bf16 ({2 * largest / MIB:.0f} MiB as fp32); "
          f"model: {stored / MIB:.0f} MiB. 'x raw time' = seconds / raw read seconds (1.00 = raw speed);\n"
          "'RSS before' is after imports, before the timed loop; peak RSS is the child's ru_maxrss.")
    if args.json:
        out = {"environment": environment(), "mode": mode, "repeats": args.repeats,
               "checkpoint": {"dir": str(folder), "stored_bytes": stored, "tensors": len(sizes),
                              "shards": len(shard_files(folder)), "largest_tensor": largest_name,
                              "largest_tensor_bytes": largest},
               "runs": results}
        args.json.write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
