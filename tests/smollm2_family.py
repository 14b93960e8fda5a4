"""Real SmolLM2-135M-Instruct as an HF checkpoint, and its family with known ground truth (tests/families.py).

The dequantized checkpoint, its disguised and derived copies and two independently trained models of
the same shape are built once and cached between runs (tests/fixture_cache.py); the fixtures of
tests/conftest.py hand them to the weight, fingerprint, audit and identify tests.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from provenance.comparison import CompareOptions, compare
from provenance.result import CompareResult
from tests import families as fam
from tests.fixture_cache import cached, recipe_key
from tests.real_models import SMOLLM2_GGUF, require
from tests.tiny_models import link_files, write_hf_dir

Base = tuple[Path, dict[str, torch.Tensor], dict]
"""(directory, state dict, config) of the dequantized SmolLM2."""

OPTS = CompareOptions(hashes=False, device="cpu")

# (variant, expected label, words every relation must contain)
CASES = [
    ("copy", "identical", ["exact copy"]),
    ("fp16", "identical", ["dtype"]),
    ("bf16", "identical", ["dtype"]),
    ("renamed", "derived", ["tensors renamed"]),
    ("permute_mlp", "derived", ["neurons/heads permuted"]),
    ("permute_heads", "derived", ["neurons/heads permuted"]),
    ("permute_residual", "derived", ["residual dimensions permuted"]),
    ("rescale", "derived", ["rescaled tensors"]),
    ("fold_norms", "derived", ["norm weights folded"]),
    ("noise_1", "derived", ["perturbation"]),
    ("noise_5", "derived", ["perturbation"]),
    ("noise_20", "derived", ["perturbation"]),
    ("fine_tune", "derived", ["fine-tune"]),
    ("q8_0", "identical", ["quantized copy"]),  # a reproduced quantization round trip (issue 14)
    ("q4_0", "identical", ["quantized copy"]),
    ("drop_third", "derived", ["layer subset"]),
    ("duplicate", "derived", ["depth up-scaled"]),
    ("vocab_extended", "derived", ["vocabulary changed"]),
    ("vocab_truncated", "derived", ["vocabulary changed"]),
    ("combo", "derived", ["layer subset", "residual dimensions permuted", "neurons/heads permuted", "renamed"]),
]


# ----------------------------------------------------------------------------- the real checkpoint

def dequantized() -> Path:
    """SmolLM2-135M-Instruct dequantized from its GGUF by *transformers* (an independent reader), as an HF
    directory (fp32 safetensors + config); keyed by the GGUF, transformers' version and this recipe."""
    import transformers

    gguf = require(SMOLLM2_GGUF)
    key = recipe_key(_write_dequantized, gguf.name, gguf.stat().st_size, transformers.__version__)
    return cached("smollm2-135m-instruct-hf", key, lambda folder: _write_dequantized(gguf, folder))


def _write_dequantized(gguf: Path, folder: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    write_hf_dir(folder, state, config)


def with_tokenizer(hf: Path) -> Path:
    """`hf` (from `dequantized`) plus the tokenizer.json transformers converts from the GGUF; the weights
    are hard-linked, not copied."""
    import transformers

    key = recipe_key(_write_with_tokenizer, hf.name, transformers.__version__)
    return cached("smollm2-135m-instruct-hf-tok", key, lambda folder: _write_with_tokenizer(hf, folder))


def _write_with_tokenizer(hf: Path, folder: Path) -> None:
    link_files([hf / "model.safetensors", hf / "config.json"], folder)  # not hf's own cache stamp
    fam.smollm2_tokenizer().save_pretrained(folder)


def load_base(hf: Path) -> Base:
    """(directory, state, config) of an HF directory, as `build` takes it."""
    return hf, load_file(str(hf / "model.safetensors")), json.loads((hf / "config.json").read_text())


# ----------------------------------------------------------------------------- the family

def build(name: str, base: Base) -> Path:
    """The cached HF dir of the family member `name` (one of CASES) of `base`."""
    _, state, cfg = base
    L = cfg["num_hidden_layers"]
    recipes = {
        "copy": lambda: (fam.to_dtype(state, torch.float32), cfg),
        "renamed": lambda: (fam.rename_opaque(state, seed=3), {}),
        "permute_mlp": lambda: fam.permute_mlp(state, cfg, seed=1),
        "permute_heads": lambda: fam.permute_heads(state, cfg, seed=2),
        "permute_residual": lambda: fam.permute_residual(state, cfg, seed=3),
        "rescale": lambda: fam.rescale(state, cfg, seed=4),
        "fold_norms": lambda: fam.fold_norms(state, cfg),
        "noise_1": lambda: fam.add_noise(state, cfg, 0.01, seed=5),
        "noise_5": lambda: fam.add_noise(state, cfg, 0.05, seed=6),
        "noise_20": lambda: fam.add_noise(state, cfg, 0.20, seed=7),
        "fine_tune": lambda: fam.fine_tune(state, cfg, steps=30, seed=0),
        "drop_third": lambda: fam.drop_layers(state, cfg, [i for i in range(L) if i % 3 != 1]),
        "duplicate": lambda: fam.duplicate_layers(state, cfg, sorted(list(range(L)) + list(range(10, 20)))),
        "vocab_extended": lambda: fam.extend_vocab(state, cfg, 4000, seed=8),
        "vocab_truncated": lambda: fam.truncate_vocab(state, cfg, 40000),
        "fp16": lambda: (fam.to_dtype(state, torch.float16), cfg),
        "bf16": lambda: (fam.to_dtype(state, torch.bfloat16), cfg),
        "q8_0": lambda: (fam.quantize_q8_0(state), cfg),
        "q4_0": lambda: (fam.quantize_q4_0(state), cfg),
        "combo": lambda: combo(state, cfg),
    }
    return fam.variant(f"smollm2-{name}", recipes[name])


def combo(state: dict, cfg: dict) -> tuple[dict, dict]:
    """Residual + neuron permutation, rescaling, noise, a third of the layers dropped, renamed."""
    s, c = fam.permute_residual(state, cfg, seed=11)
    s, c = fam.permute_mlp(s, c, seed=12)
    s, c = fam.rescale(s, c, seed=13)
    s, c = fam.add_noise(s, c, 0.02, seed=14)
    s, c = fam.drop_layers(s, c, [i for i in range(c["num_hidden_layers"]) if i % 3 != 2])
    return fam.rename_opaque(s, seed=15), {}


def independent_models(base: Base) -> list[Path]:
    """Two SmolLM2-shaped models trained briefly from their own random inits (seeds 1 and 2)."""
    cfg = base[2]
    # spelled as tests/test_identify.py's `smol_scratch` spells seed 1, so that both share one cached entry
    return [fam.variant("smollm2-scratch-seed1", lambda: fam.train_from_scratch(cfg, steps=30, seed=1)),
            fam.variant("smollm2-scratch-seed2", lambda: fam.train_from_scratch(cfg, steps=30, seed=2))]


def merged_variant(base: Base, independent: list[Path]) -> Path:
    """50/50 with an independent model of the same weight scale (a briefly trained model's weights are
    ~5x smaller than SmolLM2's, which would make the merge read as a 22% perturbation)."""
    _, state, cfg = base
    other = load_file(str(independent[0] / "model.safetensors"))
    matched = {k: v * (state[k].norm() / v.norm()) if v.norm() > 0 else v for k, v in other.items()}
    return fam.variant("smollm2-merge-scratch1-scaled", lambda: (fam.merge(state, matched, 0.5), cfg))


@functools.cache
def full_result(base: Path, candidate: Path) -> CompareResult:
    """The full-checkpoint comparison, computed once per session (the fingerprint and audit tests reuse it)."""
    return compare(base, candidate, OPTS)
