"""How long each checkpoint of the 7B-shaped pair takes to read, cold and warm, without provenance.

`bench_compare.py`'s cold read reads the base, then the candidate, with `readinto` after dropping
both from the page cache. On this project's VM the two halves do not cost the same: once the
base is in, the candidate's read costs several times the CPU. That happens in the plain read
as well as in a comparison. This script prints the halves separately (wall and CPU seconds), so
the comparison's own per-model stages (`compute_profiles` for the base, then for the candidate)
can be set against the read of the same bytes:

    python benchmarks/bench_cold_halves.py            # cold, then warm, then cold again
    python benchmarks/bench_cold_halves.py --repeats 2

Standard library only (plus bench_io, which is too); each pass runs in this process.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bench_compare import build_pair  # noqa: E402  (standard library at import time)
from bench_io import LlamaShape, drop_from_page_cache, shard_files  # noqa: E402

CHUNK = 64 << 20


def read_folder(folder: Path, buf: memoryview) -> tuple[float, float]:
    """(wall s, CPU s) to `readinto` every shard of `folder` through one reused buffer."""
    t, c = time.perf_counter(), time.process_time()
    for path in shard_files(folder):
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass
    return time.perf_counter() - t, time.process_time() - c


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/provenance-bench"))
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=1, help="cold-warm rounds (default 1, then one more cold)")
    args = ap.parse_args(argv)
    base, cand = build_pair(args.workdir, LlamaShape(layers=args.layers))
    buf = memoryview(bytearray(CHUNK))
    print("| pass | base wall s | base CPU s | candidate wall s | candidate CPU s | total wall s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    passes = ["cold", "warm"] * args.repeats + ["cold"]
    for kind in passes:
        if kind == "cold":
            for folder in (base, cand):
                drop_from_page_cache(folder)
        (bw, bc), (cw, cc) = read_folder(base, buf), read_folder(cand, buf)
        print(f"| {kind} | {bw:.2f} | {bc:.2f} | {cw:.2f} | {cc:.2f} | {bw + cw:.2f} |", flush=True)


if __name__ == "__main__":
    main()
