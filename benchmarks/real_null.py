"""Every signal's p-value on real pairs with known lineage: independently trained models, and derived ones.

The null a signal's p-value claims (independent training) is measured here on real trained checkpoints,
not only on scratch-trained toys: multilingual-e5-small (a distillation separate from the English
MiniLM line), Qwen2.5-Coder-0.5B against SmolLM2-135M, and SmolLM2-shaped models trained from scratch
(reused from the test cache when the tests built them; never trained here). The derived pairs (the
MiniLM line, e5 and its vocabulary-pruned copy) show the other side. Real models come from the
packages of tests/requirements-models.txt (REAL_MODELS.md); a missing one drops its pairs.

    python benchmarks/real_null.py [--pairs SUBSTRING ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from provenance.comparison import CompareOptions, compare
from tests import e5s1
from tests import families as fam
from tests import real_models as rm

OPTS = CompareOptions(hashes=False, device="cpu")
MINILM_LINE = ["minilm-l6", "minilm-l6-int8", "bge-small", "colbert-small", "msmarco-l12"]
RELATED = ("identical", "derived")


@dataclass(frozen=True)
class Pair:
    """Two named models and what is known about their lineage."""

    base: str
    candidate: str
    truth: str  # independent | derived
    why: str

    @property
    def name(self) -> str:
        return f"{self.base} vs {self.candidate}"


def _file(path: Path) -> Callable[[], Path | None]:
    return lambda: path if path.exists() else None


def _e5(path: Path) -> Callable[[], Path | None]:
    return lambda: e5s1.unpacked(path) if path.exists() else None


def _qwen() -> Path | None:
    return rm.qwen_gguf() if all(p.exists() for p in rm.QWEN_GGUF_PARTS) else None


def _scratch(seed: int) -> Callable[[], Path | None]:
    def find() -> Path | None:
        folder = fam.variant_dir(f"smollm2-scratch-seed{seed}")
        return folder if (folder / "model.safetensors").is_file() else None
    return find


MODELS: dict[str, Callable[[], Path | None]] = {
    "minilm-l6": _file(rm.MINILM_DIR), "minilm-l6-int8": _file(rm.MINILM_INT8_ONNX), "bge-small": _file(rm.BGE_ONNX),
    "colbert-small": _file(rm.COLBERT_ONNX), "msmarco-l12": _file(rm.RERANKER_ONNX),
    "e5": _e5(rm.E5_Q4_BIN), "e5-enpt": _e5(rm.E5_ENPT_Q4_BIN),
    "smollm2": _file(rm.SMOLLM2_GGUF), "qwen-coder": _qwen,
    "scratch-seed1": _scratch(1), "scratch-seed2": _scratch(2),
}
"""Name -> a function giving the model's path (unpacking or assembling it once), or None when it is missing."""


def pairs() -> list[Pair]:
    """Every pair measured, in a fixed order, with its ground truth."""
    out: list[Pair] = []
    for i, a in enumerate(MINILM_LINE):
        for b in MINILM_LINE[i + 1:]:
            why = "same model, quantized" if {a, b} == {"minilm-l6", "minilm-l6-int8"} else "shared MiniLM ancestry"
            out.append(Pair(a, b, "derived", why))
    out.append(Pair("e5", "e5-enpt", "derived", "vocabulary pruned"))
    for e5 in ("e5", "e5-enpt"):
        out += [Pair(m, e5, "independent", "e5: separate multilingual distillation") for m in MINILM_LINE]
    out += [Pair("smollm2", "qwen-coder", "independent", "separately trained lines"),
            Pair("scratch-seed1", "scratch-seed2", "independent", "own random inits"),
            Pair("smollm2", "scratch-seed1", "independent", "scratch-trained"),
            Pair("smollm2", "scratch-seed2", "independent", "scratch-trained"),
            Pair("minilm-l6", "smollm2", "independent", "encoder vs decoder, different shapes"),
            Pair("e5", "qwen-coder", "independent", "encoder vs decoder, different shapes")]
    return out


def measure(pair: Pair, paths: dict[str, Path]) -> dict[str, Any]:
    """One comparison: the verdict and each signal's own label and p-value."""
    v = compare(paths[pair.base], paths[pair.candidate], OPTS).verdict
    return {"pair": pair.name, "base": pair.base, "candidate": pair.candidate, "truth": pair.truth, "why": pair.why,
            "label": v.label, "relation": v.relation, "p_value": v.p_value,
            "signals": {s["signal"]: {"label": s["label"], "p_value": s["p_value"], "role": s["role"]}
                        for s in v.signals}}


def _p(p: float | None) -> str:
    return "—" if p is None else f"{p:.2g}"


def _cell(s: dict[str, Any] | None) -> str:
    """A signal's own label and p-value, or its role where it has no label (context, not run)."""
    if s is None:
        return "—"
    return f"{s['label']} {_p(s['p_value'])}" if s["label"] else s["role"]


def table(rows: list[dict[str, Any]]) -> list[str]:
    """The Markdown table: one row per pair, one column per signal, then the verdict."""
    signals = [s for s in dict.fromkeys(s for r in rows for s in r["signals"])
               if any(r["signals"].get(s, {}).get("role") not in (None, "not run") for r in rows)]
    head = ["pair", "truth"] + signals + ["verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [r["pair"], f"{r['truth']} ({r['why']})"]
        cells += [_cell(r["signals"].get(s)) for s in signals]
        cells.append(f"{r['label']}" + (f" ({r['relation']})" if r["relation"] else "") + f", p {_p(r['p_value'])}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """Per signal: the smallest p over independent pairs and the largest over derived ones."""
    out = []
    for s in dict.fromkeys(s for r in rows for s in r["signals"]):
        for truth, pick, word in (("independent", min, "smallest"), ("derived", max, "largest")):
            ps = [(r["signals"][s]["p_value"], r["pair"]) for r in rows
                  if r["truth"] == truth and s in r["signals"] and r["signals"][s]["p_value"] is not None]
            if ps:
                p, name = pick(ps)
                out.append(f"{s}: {word} p over {len(ps)} {truth} pairs = {_p(p)} ({name})")
    wrong = [r["pair"] for r in rows if (r["label"] in RELATED) != (r["truth"] == "derived")]
    out.append(f"overall verdicts against ground truth: {len(rows) - len(wrong)}/{len(rows)} right"
               + (f"; wrong: {', '.join(wrong)}" if wrong else ""))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", nargs="*", default=[], help="keep pairs whose name contains one of these")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)
    chosen = [p for p in pairs() if not args.pairs or any(s in p.name for s in args.pairs)]
    paths: dict[str, Path] = {}
    for name in dict.fromkeys(m for p in chosen for m in (p.base, p.candidate)):
        path = MODELS[name]()
        if path is None:
            print(f"skipping {name}: not installed or not built (tests/requirements-models.txt)", file=sys.stderr)
        else:
            paths[name] = path
    rows = []
    for pair in chosen:
        if pair.base in paths and pair.candidate in paths:
            start = time.perf_counter()
            rows.append(measure(pair, paths))
            print(f"{pair.name}: {rows[-1]['label']} p={_p(rows[-1]['p_value'])} "
                  f"({time.perf_counter() - start:.0f} s)",
                  file=sys.stderr, flush=True)
    print("\n".join(table(rows)))
    print()
    print("\n".join(summary(rows)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, allow_nan=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
