"""Where `provenance compare` spends its time on small real pairs, stage by stage, against reading the files.

Per pair (default signals, file hashes on, as the CLI runs it):

    read cold / warm   readinto() of every file the comparison reads (page cache dropped with
                       posix_fadvise(DONTNEED) for the cold one; no root needed, other files untouched)
    CLI wall           `python -m provenance compare A B --json F` in a fresh interpreter, warm cache,
                       interpreter start and imports included (the number the issue's targets are about)
    stages             the same command run once in a fresh interpreter under `provenance.timing.stages`:
                       exclusive seconds per stage, imports included wherever they happen; the reader
                       thread's work (it overlaps the main thread) is listed apart

    python benchmarks/bench_stages.py                      # MiniLM and SmolLM2 pairs
    python benchmarks/bench_stages.py --pairs minilm --repeats 3 --json /tmp/stages.json
    python benchmarks/bench_stages.py --pairs llama --layers 32    # bench_compare.py's 7B-shaped bf16 pair
    python benchmarks/bench_stages.py --pairs minilm,smollm2,llama1b,llama7b   # all four sizes, one table

`llama1b` is the 7B-shaped pair cut to 4 layers (1.07B parameters each, built under WORKDIR/l4);
`llama7b` the full 32 layers (under WORKDIR). A summary table at the end sets every pair's CLI wall
time against its cold and warm read and against issue 17's targets.

The machine's load average is printed before and after: on a shared machine the seconds are
inflated by whatever else runs, the shares much less so.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for p in (str(HERE), str(REPO)):
    if p not in sys.path:
        sys.path.insert(0, p)

# stage -> the functions it is made of, named where their callers look them up (see provenance/timing.py)
STAGES: dict[str, list[str]] = {
    "resolve": ["provenance.comparison:resolve"],
    "open (headers, architecture map)": ["provenance.comparison:open_model"],
    "read": ["provenance.io.safetensors_reader:SafetensorsReader.read",
             "provenance.io.safetensors_reader:SafetensorsReader.read_into",
             "provenance.io.safetensors_reader:SafetensorsReader.read_mapped",  # views; on the reader thread
             "provenance.io.onnx_reader:OnnxTensorReader.read",  # includes ONNX's dequantizing arithmetic
             "provenance.io.gguf_reader:GGUFTensorReader.read",
             "provenance.io.torch_reader:TorchReader.read"],
    "convert (to float32, fused splits)": ["provenance.signals.stream:to_f32", "provenance.signals.stream:materialize"],
    "file hashes": ["provenance.io.read_hashes:ReadHashes.observe", "provenance.io.checkpoint:Checkpoint.sha256"],
    "alignment": ["provenance.signals.weights:align_models"],
    "profiles": ["provenance.signals.weights:compute_profiles"],
    "layer map": ["provenance.signals.weights:match_layers"],
    "null (permutations)": ["provenance.signals.layermap:permutation_null"],
    "neuron tests": ["provenance.signals.weights:neuron_tests"],
    "similarities": ["provenance.signals.weights:_similarities"],
    "reproduce (cast/quantization)": ["provenance.signals.reproduce:reproduce"],
    "content hashes": ["provenance.signals.content_hashes:measure"],
    "tokenizer (read, token map)": ["provenance.signals.pair:Pair.vocabularies", "provenance.signals.pair:Pair.token_map"],
    "tokenizer signal": ["provenance.signals.tokenizer_signal:TokenizerSignal.measure"],
    "config signal": ["provenance.signals.config_signal:ConfigSignal.measure"],
    "weights signal (rest)": ["provenance.signals.weights_signal:WeightSignal.measure",
                              "provenance.signals.weights:weight_evidence"],
    "report, JSON, summary": ["provenance.result:CompareResult.to_json", "provenance.cli.compare_cmd:print_summary",
                              "provenance.comparison:run_environment"],
    "compare (rest)": ["provenance.comparison:compare", "provenance.cli.compare_cmd:run"],
}


def synthetic_pair(layers: int, workdir: Path) -> tuple[Path, Path]:
    """bench_compare.py's Llama-2-7B-shaped bf16 base and derived candidate with `layers` layers (built once)."""
    proc = subprocess.run([sys.executable, str(HERE / "bench_compare.py"), "--build", "--layers", str(layers),
                           "--workdir", str(workdir)], cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"building the {layers}-layer pair failed:\n{proc.stderr}")
    built = json.loads(proc.stdout.strip().splitlines()[-1])
    return Path(built["base"]), Path(built["candidate"])


LLAMA_LAYERS = {"llama1b": 4, "llama7b": 32}  # the synthetic pair at ~1B and 7B parameters per model
TARGETS = {"minilm": 3.0, "smollm2": 5.0}  # CLI wall seconds, issue 17 (idle 2-core machine)


def llama_pair(name: str, layers: int, workdir: Path) -> tuple[Path, Path]:
    """The synthetic pair for `name` (llama: --layers under WORKDIR; llama1b/llama7b: fixed depths)."""
    depth = LLAMA_LAYERS.get(name, layers)
    return synthetic_pair(depth, workdir if depth == 32 else workdir / f"l{depth}")


def pairs() -> dict[str, tuple[Path, Path]]:
    from tests.fixture_cache import cache_dir
    from tests.real_models import MINILM_DIR, MINILM_INT8_ONNX

    smol = cache_dir()
    return {"minilm": (MINILM_DIR, MINILM_INT8_ONNX),  # all-MiniLM-L6-v2 fp32 safetensors vs its int8 ONNX
            "smollm2": (smol / "smollm2-135m-instruct-hf", smol / "families" / "smollm2-fine_tune")}


def files_of(spec: Path) -> list[Path]:
    """The files a comparison reads: the weights (safetensors, else the other formats) and the small JSON/text."""
    if spec.is_file():
        return [spec]
    for pattern in ("*.safetensors", "*.gguf", "*.onnx", "pytorch_model*.bin"):
        weights = sorted(spec.glob(pattern))
        if weights:
            break
    small = [p for p in sorted(spec.glob("*")) if p.suffix in (".json", ".txt", ".model") and p.name != "recipe.json"]
    return weights + small


def drop(files: list[Path]) -> None:
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_all(files: list[Path]) -> tuple[float, int]:
    buf = memoryview(bytearray(64 << 20))
    total, start = 0, time.perf_counter()
    for path in files:
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                total += n
    return time.perf_counter() - start, total


def cli_wall(*args: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one `python -m provenance ARGS` in a fresh interpreter (CPU: user + system, all
    threads; less sensitive than wall to what else the machine runs)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "provenance", *args], cwd=REPO, capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 3):
        raise SystemExit(f"provenance {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def child(base: str, cand: str) -> None:
    """In a fresh interpreter: the CLI under stage timers; one JSON line."""
    from provenance.timing import stages

    cpu = time.process_time()
    with tempfile.TemporaryDirectory() as tmp, stages(STAGES, imports="imports") as t:
        from provenance.cli.main import main

        with contextlib.redirect_stdout(io.StringIO()):
            rc = main(["compare", base, cand, "--json", str(Path(tmp) / "r.json")])
        verdict = json.loads((Path(tmp) / "r.json").read_text())["verdict"]
    print(json.dumps({"rc": rc, "wall": t.wall, "cpu": time.process_time() - cpu, "seconds": t.seconds, "background": t.background,
                      "calls": t.calls, "missing": t.missing, "unused": t.unused, "verdict": verdict}))


def measure_pair(name: str, base: Path, cand: Path, repeats: int) -> dict[str, Any]:
    files = files_of(base) + files_of(cand)
    drop(files)
    cold, nbytes = read_all(files)
    warm = min(read_all(files)[0] for _ in range(max(repeats, 2)))
    with tempfile.TemporaryDirectory() as tmp:
        runs = [cli_wall("compare", str(base), str(cand), "--json", str(Path(tmp) / "r.json"))
                for _ in range(repeats)]
    proc = subprocess.run([sys.executable, __file__, "--child", str(base), str(cand)], cwd=REPO,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"stage run failed:\n{proc.stderr}")
    stage = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"pair": name, "base": str(base), "candidate": str(cand), "bytes": nbytes, "read_cold": cold,
            "read_warm": warm, "cli_walls": [w for w, _ in runs], "cli_cpu": [c for _, c in runs], "stages": stage}


def format_pair(r: dict[str, Any]) -> str:
    st = r["stages"]
    wall = st["wall"]
    cli = min(r["cli_walls"])
    cpu = r["cli_cpu"][r["cli_walls"].index(cli)]
    v = st["verdict"]
    lines = [(f"## {r['pair']}: {Path(r['base']).name} vs {Path(r['candidate']).name} "
              f"({r['bytes'] / 2**20:.0f} MiB read)"),
             f"verdict {v['label']} ({v.get('relation')}), p = {v.get('p_value')}",
             (f"CLI wall (fresh process, warm cache): {cli:.2f} s (runs: {', '.join(f'{w:.2f}' for w in r['cli_walls'])})"
              f" = {cli / r['read_cold']:.1f} x cold read ({r['read_cold']:.2f} s), "
              f"{cli / r['read_warm']:.0f} x warm read ({r['read_warm']:.3f} s); that run used {cpu:.2f} CPU-s"),
             "", f"{'stage':38s} {'seconds':>8s} {'share':>6s} {'calls':>6s}"]
    for name, sec in sorted(st["seconds"].items(), key=lambda kv: -kv[1]):
        lines.append(f"{name:38s} {sec:8.3f} {sec / wall:6.1%} {st['calls'].get(name, 0):6d}")
    other = wall - sum(st["seconds"].values())
    lines.append(f"{'(not in a stage: argparse, glue)':38s} {other:8.3f} {other / wall:6.1%}")
    lines.append(f"{'total, in-process (interpreter start excluded)':38s} {wall:8.3f} {1:6.1%}  "
                 f"({st['cpu']:.2f} CPU-s)")
    for name, sec in sorted(st["background"].items(), key=lambda kv: -kv[1]):
        lines.append(f"{'  reader thread, overlapping: ' + name:38s} {sec:8.3f}")
    if st["missing"]:
        lines.append(f"(not found in this version, not timed: {', '.join(st['missing'])})")
    return "\n".join(lines)


def summary(results: list[dict[str, Any]], version: float) -> str:
    """One row per pair: CLI wall against the reads and the issue's target, and the three largest stages."""
    lines = ["| pair | MiB read | cold read s | warm read s | CLI wall s | x cold read | x warm read | CPU s | "
             "largest stages | target |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in results:
        cli = min(r["cli_walls"])
        cpu = r["cli_cpu"][r["cli_walls"].index(cli)]
        top = sorted(r["stages"]["seconds"].items(), key=lambda kv: -kv[1])[:3]
        target = TARGETS.get(r["pair"])
        met = "" if target is None else f"<= {target:g} s: {'met' if cli <= target else 'not met'}"
        lines.append(f"| {r['pair']} | {r['bytes'] / 2**20:.0f} | {r['read_cold']:.2f} | {r['read_warm']:.3f} | "
                     f"{cli:.2f} | {cli / r['read_cold']:.2f} | {cli / r['read_warm']:.1f} | {cpu:.2f} | "
                     + ", ".join(f"{n} {sec:.2f}" for n, sec in top) + f" | {met} |")
    lines.append(f"\n`provenance --version`: {version:.2f} s (target < 0.5 s: {'met' if version < 0.5 else 'not met'})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", default="minilm,smollm2", help="comma-separated: minilm, smollm2, llama (the "
                    "7B-shaped synthetic pair of bench_compare.py at --layers, built under --workdir), llama1b "
                    "(4 layers), llama7b (32 layers)")
    ap.add_argument("--layers", type=int, default=32, help="layers of the llama pair (default: %(default)s)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/provenance-bench"),
                    help="where the llama pair is built and cached (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=2, help="fresh-process CLI runs per pair (the minimum is quoted)")
    ap.add_argument("--json", metavar="F", help="also write the measurements to F")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(*args.child)
        return
    known = pairs()
    names = [p.strip() for p in args.pairs.split(",") if p.strip()]
    allowed = (*known, "llama", *LLAMA_LAYERS)
    bad = [n for n in names if n not in allowed]
    if bad:
        raise SystemExit(f"The 'pairs' parameter must name pairs from {sorted(allowed)}. Got {bad[0]!r} instead.")
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    version = cli_wall("--version")[0]
    print(f"provenance --version: {version:.2f} s (fresh process)\n")
    results = []
    for name in names:
        base, cand = known[name] if name in known else llama_pair(name, args.layers, args.workdir)
        if not (base.exists() and cand.exists()):
            print(f"## {name}: skipped, {base if not base.exists() else cand} is missing (the tests build it)\n")
            continue
        results.append(measure_pair(name, base, cand, args.repeats))
        print(format_pair(results[-1]) + "\n", flush=True)
    print(summary(results, version))
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"version_wall": version, "pairs": results}, indent=1))


if __name__ == "__main__":
    main()
