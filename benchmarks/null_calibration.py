"""Observed false-positive rate of the weight signal's p-value on independent models, with its binomial interval.

Two kinds of null pairs, both independent by construction:

- **model pairs**: tiny Llamas trained from their own seeds (the tests' recipe, cached), the
  SmolLM2-shaped scratch models against SmolLM2 and each other, and the real independent pairs
  (multilingual-e5-small, full and vocabulary-pruned, against the five MiniLM-line encoders).
  Each is a full `compare(..., signals=("weights",))`; its printed p is what is counted.
- **layer pairs inside real models**: layer i against layer j != i of the same real checkpoint
  (SmolLM2, all-MiniLM-L6, e5, bge-small). Each layer's MLP neurons are relabelled
  independently by the symmetry the exact test rests on, so these pairs share everything real
  models share — the very same residual basis, its outlier dimensions, the same data — and the
  neuron-order test must still be uniform on them.

At alpha the count of p < alpha is compared with Binomial(n, alpha): the table prints the
observed rate and the two-sided 95% Clopper-Pearson interval of a rate.

    python benchmarks/null_calibration.py [--tiny-seeds 21] [--json FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import beta

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provenance.arch.view import open_model  # noqa: E402
from provenance.comparison import CompareOptions, compare  # noqa: E402
from provenance.signals.profiles import compute_profiles  # noqa: E402
from provenance.stats.neuron_order import neuron_order_layer  # noqa: E402
from tests import families as fam  # noqa: E402
from tests.conftest import cache_dir  # noqa: E402
from tests.test_compare_null import TINY  # noqa: E402

OPTS = CompareOptions(hashes=False, device="cpu", signals=("weights",))
ALPHAS = (0.01, 0.001)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided exact interval for a binomial rate."""
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def model_pairs(tiny_seeds: int) -> list[tuple[str, Path, Path]]:
    """(kind, base, candidate) for every independent model pair available here."""
    tiny = [fam.variant(f"tiny-scratch-{s}", lambda s=s: fam.train_from_scratch(dict(TINY), steps=20, seed=s))
            for s in range(100, 100 + tiny_seeds)]
    out = [("tiny scratch", a, b) for a, b in itertools.combinations(tiny, 2)]
    smol = cache_dir() / "smollm2-135m-instruct-hf"
    scratch = [fam.variant_dir(f"smollm2-scratch-seed{s}") for s in (1, 2)]
    if smol.is_dir() and all(p.is_dir() for p in scratch):
        out += [("SmolLM2 shape", a, b) for a, b in [(smol, scratch[0]), (smol, scratch[1]), (scratch[0], scratch[1])]]
    out += [("real encoders", a, b) for a, b in real_encoder_pairs()]
    return out


def real_encoder_pairs() -> list[tuple[Path, Path]]:
    from tests import real_models as rm

    e5 = [cache_dir() / n for n in ("e5s1-e5-small-q4", "e5s1-e5-small-enpt-q4")]
    minilm = [rm.MINILM_DIR, rm.MINILM_INT8_ONNX, rm.BGE_ONNX, rm.COLBERT_ONNX, rm.RERANKER_ONNX]
    return [(m, e) for e in e5 if e.is_dir() for m in minilm if m.exists()]


def layer_pairs() -> list[tuple[str, float]]:
    """(model, p) of the neuron-order test for every ordered layer pair i != j inside each real model."""
    from tests import real_models as rm

    out = []
    for name, path in [("SmolLM2-135M", cache_dir() / "smollm2-135m-instruct-hf"), ("all-MiniLM-L6", rm.MINILM_DIR),
                       ("multilingual-e5-small", cache_dir() / "e5s1-e5-small-q4"), ("bge-small", rm.BGE_ONNX)]:
        if not path.exists():
            continue
        with open_model(path) as m:
            h = m.roles.roles["embed"].shape[1]
            prof = compute_profiles(m, np.arange(h), np.ones(h))
        key = "mlp.gate" if any(k == "mlp.gate" for _, k in prof.sketches) else "mlp.up"
        layers = [layer for layer, k in prof.sketches if k == key]
        for i, j in itertools.permutations(layers, 2):
            r = neuron_order_layer(prof.sketches[(i, key)], prof.sketches[(j, key)], seed=i * 1000 + j)
            out.append((name, r.p_value))
    return out


def table(rows: list[tuple[str, float]], title: str) -> list[str]:
    lines = [f"{title}", "| pairs | kind | " + " | ".join(f"p < {a:g} (95% CI of the rate)" for a in ALPHAS)
             + " | min p | median p |", "| ---: | --- | " + " | ".join("---" for _ in ALPHAS) + " | ---: | ---: |"]
    kinds = sorted({k for k, _ in rows}) + ["all"]
    for kind in kinds:
        p = np.array([v for k, v in rows if kind in (k, "all")])
        cells = []
        for a in ALPHAS:
            k = int(np.sum(p < a))
            lo, hi = clopper_pearson(k, len(p))
            cells.append(f"{k} = {k / len(p):.4f} [{lo:.4f}, {hi:.4f}]")
        lines.append(f"| {len(p)} | {kind} | " + " | ".join(cells) + f" | {p.min():.3g} | {np.median(p):.3g} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny-seeds", type=int, default=21, help="tiny scratch models (pairs: n(n-1)/2)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    models = [(kind, compare(a, b, OPTS).verdict, a.name, b.name) for kind, a, b in model_pairs(args.tiny_seeds)]
    model_rows = [(kind, float(v.p_value if v.p_value is not None else 1.0)) for kind, v, *_ in models]
    layers = layer_pairs()
    print("\n".join(table(model_rows, "Model pairs: the weight signal's p (compare, signals=weights)")))
    called = [(k, a, b, v.label) for k, v, a, b in models if v.label in ("derived", "identical")]
    print(f"\nderived/identical verdicts on independent model pairs: {len(called)} {called if called else ''}")
    print()
    print("\n".join(table(layers, "Layer pairs i != j inside real models: the exact neuron-order test's p")))
    if args.json:
        args.json.write_text(json.dumps({"models": [{"kind": k, "base": a, "candidate": b, "label": v.label,
                                                     "p_value": v.p_value} for k, v, a, b in models],
                                         "layers": [{"model": m, "p_value": p} for m, p in layers]}, indent=1))


if __name__ == "__main__":
    main()
