"""Report rendering: time and size of the JSON, HTML and Markdown of results of growing depth.

Starts from a real result in reports/ (bge-small vs colbert-small, every signal) and scales
its layer-wise parts (weight similarity matrix, per-layer rows, CKA matrix, neuron rows) to
L layers with seeded values, so the figures grow the way they would for deeper models.

    python benchmarks/bench_report.py
    python benchmarks/bench_report.py --layers 12 80 --repeats 3
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="*", default=[12, 32, 80, 126])
    parser.add_argument("--repeats", type=int, default=3)
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


if __name__ == "__main__":
    main()
