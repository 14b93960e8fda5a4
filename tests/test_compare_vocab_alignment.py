"""The shared-token map aligns embedding rows when a copy re-numbers its vocabulary.

A SmolLM2 copy whose ordinary token ids are shuffled (embedding rows and tokenizer.json
permuted together, so the model computes the same thing) must still be found derived by the
weights — through the token map — and the tokenizer signal must see the same token set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from provenance import CompareOptions, compare
from tests.fixture_cache import cached, recipe_key
from tests.real_models import SMOLLM2_GGUF, require
from tests.tiny_models import link_files

pytestmark = pytest.mark.slow  # compares SmolLM2 (135M parameters) twice

OPTS = CompareOptions(device="cpu", hashes=False)
SPECIALS = 17  # SmolLM2's ids 0..16 are special tokens; they keep their ids


def _write_renumbered(original: Path, folder: Path) -> None:
    """`original` with its ordinary token ids shuffled: tokenizer.json and embedding rows permuted together."""
    data = json.loads((original / "tokenizer.json").read_text(encoding="utf-8"))
    n = len(data["model"]["vocab"])
    perm = np.arange(n)
    perm[SPECIALS:] = SPECIALS + np.random.default_rng(0).permutation(n - SPECIALS)  # old id -> new id
    data["model"]["vocab"] = {p: int(perm[i]) for p, i in data["model"]["vocab"].items()}
    link_files([f for f in original.iterdir() if f.name not in ("tokenizer.json", "model.safetensors", "recipe.json")],
               folder)
    (folder / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    state = load_file(str(original / "model.safetensors"))
    embed = state["model.embed_tokens.weight"]
    moved = embed.clone()
    moved[perm] = embed  # row of old id i now sits at perm[i]
    state["model.embed_tokens.weight"] = moved
    save_file(state, str(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def renumbered(smollm2_hf_tok: Path) -> tuple[Path, Path]:
    """(directory of the shuffled copy, directory of the original with its tokenizer.json), cached between runs."""
    key = recipe_key(_write_renumbered, smollm2_hf_tok.name)
    return cached("smollm2-renumbered-vocab", key, lambda folder: _write_renumbered(smollm2_hf_tok, folder)), \
        smollm2_hf_tok


def test_renumbered_vocabulary_is_aligned_through_the_token_map(renumbered):
    shuffled, original = renumbered
    r = compare(original, shuffled, OPTS)
    assert r.verdict.label in ("identical", "derived"), r.verdict.explanation
    assert r.weights.alignment.paired_by == "token strings" and r.weights.alignment.is_identity
    assert r.layer_map == [[i, i, pytest.approx(1.0, abs=1e-6)] for i in range(30)]
    assert (r.tokenizer.relation, r.tokenizer.jaccard) == ("derived", 1.0)
    assert "same token set" in r.tokenizer.explanation


def test_gguf_base_against_the_renumbered_copy(renumbered):
    """Across formats: the GGUF's own vocabulary pairs with the copy's tokenizer.json."""
    r = compare(require(SMOLLM2_GGUF), renumbered[0], OPTS)
    assert r.verdict.label in ("identical", "derived") and r.weights.alignment.paired_by == "token strings"
    assert r.weights.alignment.is_identity and len(r.layer_map) == 30
