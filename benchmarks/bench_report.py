"""Report rendering: time and size of the JSON, HTML and Markdown of results of growing depth.

Starts from a real result in reports/ (bge-small vs colbert-small, every signal) and scales
its layer-wise parts (weight similarity matrix, per-layer rows, CKA matrix, neuron rows) to
L layers with seeded values, so the figures grow the way they would for deeper models.

    python benchmarks/bench_report.py
    python benchmarks/bench_report.py --layers 12 80 --repeats 3
    python benchmarks/bench_report.py --pages 40 --workers 2    # an audit's pair pages: one by one vs workers

`--pages N` then times `provenance.audit.html.write_reports` on N pair pages (the source result at 30
layers), one by one in this process and in `--workers` spawned processes (as `provenance audit` renders
them), and checks that both wrote the same bytes.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from provenance.result import CompareResult

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "reports" / "bge-small-vs-colbert-small.json"


def scaled(data: dict[str, Any], layers: int, seed: int = 0) -> dict[str, Any]:
    """`data` with every layer-wise part resized to `layers` x `layers` (diagonal match plus noise)."""
    rng = np.random.default_rng(seed)
    d = copy.deepcopy(data)
    sim = np.clip(0.3 * rng.random((layers, layers)) + 0.7 * np.eye(layers), -1, 1).round(4)
    for e in d["evidence"]:
        if e["kind"] == "layer test":
            e["details"]["similarity_matrix"] = {"base_layers": list(range(layers)),
                                                 "candidate_layers": list(range(layers)), "values": sim.tolist()}
            e["details"]["per_layer"] = [{"base": i, "candidate": i, "similarity": float(sim[i, i]),
                                          "p_value": 1e-300} for i in range(layers)]
        if e["kind"] == "cka":
            e["details"]["cka"] = sim.tolist()
            e["details"]["layer_map"] = [[i, i, float(sim[i, i])] for i in range(layers)]
        if e["kind"] == "neurons":
            row = e["details"]["per_layer"][0]
            e["details"]["per_layer"] = [{**row, "base_layer": i, "candidate_layer": i} for i in range(layers)]
    d["layer_map"] = [[i, i, float(sim[i, i])] for i in range(layers)]
    return d


def best_of(fn: Any, repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def audit_pages(base: dict[str, Any], pages: int, workers: int) -> None:
    """Seconds to write `pages` pair reports one by one and in `workers` processes, and whether the bytes agree."""
    import tempfile

    from provenance.audit.executors import LocalExecutor
    from provenance.audit.html import write_reports
    from provenance.audit.result import AuditModel, AuditPair, AuditResult, Lineage

    n = next(n for n in range(2, pages + 3) if n * (n - 1) // 2 >= pages)  # models enough for `pages` pairs
    models = [AuditModel(f"m{i}", f"/models/m{i}", None, {}, {}, None, 0, 0.0, None) for i in range(n)]
    pairs = [AuditPair(f"m{a}", f"m{b}", {}, True, "derived", None, 1e-300, ["weights"], result=scaled(base, 30, seed=k))
             for k, (a, b) in enumerate((a, b) for a in range(n) for b in range(a + 1, n))][:pages]
    audit = AuditResult("bench", "bench.sqlite", models, pairs, Lineage([[m.name for m in models]], []), {}, 1)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        alone = write_reports(audit, Path(tmp) / "alone")
        t_alone = time.perf_counter() - t
        t = time.perf_counter()
        spread = write_reports(audit, Path(tmp) / "workers", run=LocalExecutor(workers).run)
        t_workers = time.perf_counter() - t
        same = [p.read_bytes() for p in alone] == [p.read_bytes() for p in spread]
    print(f"\n{pages} pair pages (30 layers): {t_alone:.1f} s one by one, {t_workers:.1f} s in {workers} worker "
          f"processes (spawn included) = {t_workers / t_alone:.2f}x; same bytes: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="*", default=[12, 32, 80, 126])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pages", type=int, default=0, help="also time an audit's N pair pages (default: 0, none)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for --pages (default: 2)")
    args = parser.parse_args()
    base = json.loads(SOURCE.read_text())
    CompareResult.from_dict(base).to_html()  # warm: imports, fonts
    print(f"{'layers':>6} {'load+validate s':>15} {'json s':>7} {'html s':>7} {'md s':>6} "
          f"{'json KiB':>9} {'html KiB':>9} {'md KiB':>7}")
    for layers in args.layers:
        data = scaled(base, layers)
        t_load, r = best_of(lambda: CompareResult.from_dict(data), args.repeats)
        t_json, js = best_of(r.to_json, args.repeats)
        t_html, html = best_of(r.to_html, args.repeats)
        t_md, md = best_of(r.to_markdown, args.repeats)
        print(f"{layers:>6} {t_load:>15.3f} {t_json:>7.3f} {t_html:>7.2f} {t_md:>6.3f} "
              f"{len(js.encode()) / 1024:>9.0f} {len(html.encode()) / 1024:>9.0f} {len(md.encode()) / 1024:>7.0f}")
    if args.pages:
        audit_pages(base, args.pages, args.workers)


if __name__ == "__main__":
    main()
