"""Observed false-positive rate of the weight test on independent same-shape models.

Uses the families the tests build and cache (tests/families.py): ten tiny Llamas trained
from their own seeds (45 pairs) and two SmolLM2-shaped models trained from scratch (3 pairs
with real SmolLM2). Prints the p-values' distribution and the share below each alpha.

    python benchmarks/null_calibration.py
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provenance.comparison import CompareOptions, compare  # noqa: E402
from tests import families as fam  # noqa: E402
from tests.conftest import cache_dir  # noqa: E402
from tests.test_compare_null import SEEDS, TINY  # noqa: E402

OPTS = CompareOptions(hashes=False, device="cpu")


def main() -> None:
    tiny = [fam.variant(f"tiny-scratch-{s}", lambda s=s: fam.train_from_scratch(dict(TINY), steps=20, seed=s))
            for s in SEEDS]
    rows = [("tiny", a.name, b.name, compare(a, b, OPTS).verdict) for a, b in itertools.combinations(tiny, 2)]
    smol = cache_dir() / "smollm2-135m-instruct-hf"
    scratch = [fam.variant_dir(f"smollm2-scratch-seed{s}") for s in (1, 2)]
    if smol.is_dir() and all(p.is_dir() for p in scratch):
        for a, b in [(smol, scratch[0]), (smol, scratch[1]), (scratch[0], scratch[1])]:
            rows.append(("smollm2-shape", a.name, b.name, compare(a, b, OPTS).verdict))
    p = np.array([v.p_value for *_, v in rows])
    print("| pairs | derived/identical verdicts | p<0.001 | p<0.01 | p<0.05 | p<0.1 | min p | median p |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    bad = sum(1 for *_, v in rows if v.label in ("derived", "identical"))
    shares = " | ".join(f"{np.mean(p < a):.3f}" for a in (0.001, 0.01, 0.05, 0.1))
    print(f"| {len(rows)} | {bad} | {shares} | {p.min():.3g} | {np.median(p):.3g} |")
    print()
    for kind, a, b, v in rows:
        if kind != "tiny":
            print(f"{kind}: {a} vs {b}: {v.label}, p = {v.p_value:.3g}")


if __name__ == "__main__":
    main()
