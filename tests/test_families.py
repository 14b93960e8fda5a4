"""The family builders are what they claim: disguises keep the function, derivations change it a little."""

from __future__ import annotations

import math
import re

import pytest
import torch

from tests import families as fam
from tests.tiny_models import tiny_llama_state, write_hf_dir

Q = "model.layers.{}.self_attn.q_proj.weight"


def _nontrivial(state: dict[str, torch.Tensor], cfg: dict, *, tied: bool = False) -> tuple[dict, dict]:
    """Norm gains drawn around 1 and biases around 0 (HF initialises them to exactly 1 and 0, which would
    hide folding and permutation bugs)."""
    g = torch.Generator().manual_seed(99)
    state = {k: (v + 0.3 * torch.randn(v.shape, generator=g) if "norm" in k or k.endswith(".bias") else v)
             for k, v in state.items()}
    if tied:
        state = {k: v for k, v in state.items() if k != fam.LM_HEAD}
        cfg = {**cfg, "tie_word_embeddings": True}
    return state, cfg


@pytest.fixture(scope="module")
def base() -> tuple[dict, dict]:
    return _nontrivial(*tiny_llama_state(seed=0, layers=3))


@pytest.fixture(scope="module")
def base_tied() -> tuple[dict, dict]:
    return _nontrivial(*tiny_llama_state(seed=0, layers=3), tied=True)


@pytest.fixture(scope="module")
def base_biased() -> tuple[dict, dict]:
    """Linear biases everywhere (attention_bias, mlp_bias): they must move with their rows."""
    import transformers

    _, cfg = tiny_llama_state(seed=0, layers=3)
    conf = transformers.LlamaConfig.from_dict({**cfg, "attention_bias": True, "mlp_bias": True})
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = transformers.LlamaForCausalLM(conf)
    return _nontrivial({k: v.detach().clone() for k, v in model.state_dict().items()}, conf.to_dict())


def _ids(vocab: int, n: int = 12) -> torch.Tensor:
    return torch.randint(3, vocab, (2, n), generator=torch.Generator().manual_seed(5))


def _logits(state: dict, cfg: dict, ids: torch.Tensor) -> torch.Tensor:
    model = fam.build_model(state, cfg)
    with torch.no_grad(), fam.threads_for(model):
        return model(input_ids=ids).logits.double()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


PRESERVING = {
    "permute_mlp": lambda s, c: fam.permute_mlp(s, c, seed=1),
    "permute_heads": lambda s, c: fam.permute_heads(s, c, seed=2),
    "permute_kv_groups_only": lambda s, c: fam.permute_heads(s, c, seed=2, within_group=False),
    "permute_residual": lambda s, c: fam.permute_residual(s, c, seed=3),
    "rescale": lambda s, c: fam.rescale(s, c, seed=4),
    "fold_norms": lambda s, c: fam.fold_norms(s, c),
    "rotate_residual": lambda s, c: fam.rotate_residual(s, c, seed=5),
}


def test_build_model_matches_a_plainly_built_transformers_model(base):
    import transformers

    state, cfg = base
    plain = transformers.LlamaForCausalLM(transformers.LlamaConfig.from_dict(cfg))
    plain.load_state_dict(state)
    ids = _ids(cfg["vocab_size"])
    with torch.no_grad():
        assert torch.equal(plain.eval()(input_ids=ids).logits.double(), _logits(state, cfg, ids))


@pytest.mark.parametrize("kind", ["untied", "tied", "biased"])
@pytest.mark.parametrize("name", list(PRESERVING))
def test_disguise_preserves_logits_and_changes_weights(name, kind, request):
    state, cfg = request.getfixturevalue({"untied": "base", "tied": "base_tied", "biased": "base_biased"}[kind])
    before = {k: v.clone() for k, v in state.items()}
    new_state, new_cfg = PRESERVING[name](state, cfg)
    assert all(torch.equal(before[k], state[k]) for k in state), "input was modified"
    ids = _ids(cfg["vocab_size"])
    assert _rel(_logits(new_state, new_cfg, ids), _logits(state, cfg, ids)) < 1e-5
    changed = [k for k in state if not torch.equal(state[k], new_state[k])]
    assert len(changed) >= 3 * cfg["num_hidden_layers"]


def test_all_disguises_composed_still_preserve_logits(base):
    state, cfg = base
    s, c = state, cfg
    for f in PRESERVING.values():
        s, c = f(s, c)
    ids = _ids(cfg["vocab_size"])
    assert _rel(_logits(s, c, ids), _logits(state, cfg, ids)) < 1e-5
    assert _rel(s[Q.format(0)], state[Q.format(0)]) > 0.5


def test_permute_heads_moves_whole_heads_within_kv_groups(base):
    state, cfg = base
    heads, kv, hd = fam._geometry(cfg)
    new, _ = fam.permute_heads(state, cfg, seed=2)
    q_perm, kv_perm = fam.head_permutation(heads, kv, torch.Generator().manual_seed(2), True)
    q_old, q_new = state[Q.format(0)].reshape(heads, hd, -1), new[Q.format(0)].reshape(heads, hd, -1)
    assert all(torch.equal(q_new[h], q_old[q_perm[h]]) for h in range(heads))
    assert (q_perm // (heads // kv)).tolist() == kv_perm.repeat_interleave(heads // kv).tolist()


def test_fold_norms_unties_and_sets_gains_to_one(base_tied):
    state, cfg = base_tied
    new, new_cfg = fam.fold_norms(state, cfg)
    assert new_cfg["tie_word_embeddings"] is False and cfg["tie_word_embeddings"] is True
    assert torch.equal(new[fam.LM_HEAD], state[fam.EMBED] * state[fam.FINAL_NORM])
    assert torch.equal(new[fam.EMBED], state[fam.EMBED])
    assert all(torch.equal(v, torch.ones_like(v)) for k, v in new.items() if "norm" in k)


def test_rescale_factors_are_per_layer_and_bounded():
    s = fam.layer_scales(30, seed=4)
    assert s.shape == (30, 3) and 0.25 <= s.min() and s.max() <= 4.0 and s.std() > 0.3


@pytest.mark.slow
def test_smollm2_disguises_preserve_logits(smollm2_hf):
    """One composite disguise on the real model (GQA 9/3 heads, tied embeddings)."""
    state, cfg = fam.load_variant(smollm2_hf)
    s, c = fam.permute_heads(state, cfg, seed=2)
    s, c = fam.rescale(s, c, seed=4)
    s, c = fam.fold_norms(s, c)
    ids = _ids(cfg["vocab_size"], n=16)[:1]
    assert _rel(_logits(s, c, ids), _logits(state, cfg, ids)) < 1e-4


def test_add_noise_has_requested_relative_size(base):
    state, cfg = base
    noisy, _ = fam.add_noise(state, cfg, 0.05, seed=1)
    for k, v in state.items():
        expected = 0.05 * v.std() * math.sqrt(v.numel())
        assert abs(float((noisy[k] - v).norm() / expected) - 1) < (0.05 if v.numel() > 4000 else 0.25), k
    again, _ = fam.add_noise(state, cfg, 0.05, seed=1)
    other, _ = fam.add_noise(state, cfg, 0.05, seed=2)
    assert all(torch.equal(again[k], noisy[k]) for k in state)
    assert not torch.equal(other[fam.EMBED], noisy[fam.EMBED])


def test_drop_layers_keeps_listed_layers_renumbered(base):
    state, cfg = base
    new, new_cfg = fam.drop_layers(state, cfg, [0, 2])
    assert new_cfg["num_hidden_layers"] == 2 and cfg["num_hidden_layers"] == 3
    assert torch.equal(new[Q.format(1)], state[Q.format(2)])
    assert {int(m.group(1)) for k in new if (m := re.match(r"model\.layers\.(\d+)\.", k))} == {0, 1}
    assert len(new) == len(state) - 9
    assert _logits(new, new_cfg, _ids(256)).shape == (2, 12, 256)
    with pytest.raises(ValueError, match=r"'keep' parameter of drop_layers must be strictly increasing. Got \[2, 0\]"):
        fam.drop_layers(state, cfg, [2, 0])
    with pytest.raises(ValueError, match=r"within 0\.\.2; got \[0, 3\]"):
        fam.drop_layers(state, cfg, [0, 3])


def test_duplicate_layers_repeats_sources(base):
    state, cfg = base
    new, new_cfg = fam.duplicate_layers(state, cfg, [0, 1, 1, 2, 2])
    assert new_cfg["num_hidden_layers"] == 5 and len(new) == len(state) + 18
    assert torch.equal(new[Q.format(1)], state[Q.format(1)]) and torch.equal(new[Q.format(2)], state[Q.format(1)])
    assert torch.equal(new[Q.format(4)], state[Q.format(2)])
    assert new[Q.format(1)].data_ptr() != new[Q.format(2)].data_ptr()  # real copies: safetensors can save them


def test_extend_and_truncate_vocab(base, base_tied):
    state, cfg = base
    ext, ext_cfg = fam.extend_vocab(state, cfg, 10, seed=1)
    assert ext_cfg["vocab_size"] == 266
    for key in (fam.EMBED, fam.LM_HEAD):
        assert ext[key].shape == (266, 64) and torch.equal(ext[key][:256], state[key])
        assert float((ext[key][256:] - state[key].mean(0)).norm() / state[key].mean(0).norm()) < 10
    assert _logits(ext, ext_cfg, _ids(266)).shape[-1] == 266
    tied_ext, _ = fam.extend_vocab(*base_tied, 10, seed=1)
    assert fam.LM_HEAD not in tied_ext
    cut, cut_cfg = fam.truncate_vocab(state, cfg, 200)
    assert cut_cfg["vocab_size"] == 200 and torch.equal(cut[fam.LM_HEAD], state[fam.LM_HEAD][:200])
    assert fam.truncate_vocab(state, cfg, 1)[1]["pad_token_id"] == 0
    assert fam.truncate_vocab(state, cfg, 1)[1]["eos_token_id"] is None


def test_quantize_round_trips_are_close(base):
    state, _ = base
    q8, q4 = fam.quantize_q8_0(state), fam.quantize_q4_0(state)
    for k, v in state.items():
        assert q8[k].dtype == torch.float32 and q8[k].shape == v.shape
        if v.ndim == 2:
            assert 0 < _rel(q8[k], v) < 0.01, k
            assert 0.01 < _rel(q4[k], v) < 0.2, k
        else:
            assert torch.equal(q8[k], v) and torch.equal(q4[k], v)


def test_to_dtype_and_merge(base):
    state, _ = base
    assert {v.dtype for v in fam.to_dtype(state, torch.float16).values()} == {torch.float16}
    assert {v.dtype for v in fam.to_dtype(state, "bfloat16").values()} == {torch.bfloat16}
    other, _ = tiny_llama_state(seed=1, layers=3)
    m = fam.merge(state, other)
    assert all(torch.allclose(m[k], (state[k] + other[k]) / 2, atol=1e-7) for k in state)
    assert all(torch.equal(fam.merge(state, other, w=0.0)[k], state[k]) for k in state)
    with pytest.raises(ValueError, match=r"same tensor names .* differ: \['lm_head.weight'\]"):
        fam.merge(state, {k: v for k, v in other.items() if k != fam.LM_HEAD})


def test_rename_opaque_keeps_tensors_under_meaningless_names(base, tmp_path):
    state, _ = base
    names = fam.opaque_names(state, seed=3)
    renamed = fam.rename_opaque(state, seed=3)
    assert all(torch.equal(renamed[names[k]], v) for k, v in state.items()) and len(renamed) == len(state)
    assert all(re.fullmatch(r"blocks\.\d+\.p\d+\.w|entry\.w|exit\.[sw]", n) for n in renamed)
    slot_of_q = {names[Q.format(i)].split(".")[2] for i in range(3)}
    layouts = {tuple(names[f"model.layers.{i}.{s}"] for s in ("self_attn.q_proj.weight", "mlp.up_proj.weight"))
               for i in range(3)}
    assert len(slot_of_q) > 1 or len(layouts) > 1  # shuffled per layer
    from provenance.arch.view import open_model

    with open_model(write_hf_dir(tmp_path / "shell", renamed, {})) as m:
        assert m.roles.inferred and m.roles.layers == [0, 1, 2]


def test_fine_tune_lowers_loss_with_a_small_weight_change(base):
    state, cfg = base
    before = fam.lm_loss(state, cfg, fam.CORPUS)
    tuned, _ = fam.fine_tune(state, cfg, fam.CORPUS, steps=10, lr=1e-3, seed=0)
    after = fam.lm_loss(tuned, cfg, fam.CORPUS)
    change = math.sqrt(sum(float((tuned[k] - state[k]).square().sum()) for k in state)
                       / sum(float(state[k].square().sum()) for k in state))
    print(f"tiny fine_tune: loss {before:.3f} -> {after:.3f}, relative weight change {change:.4f}")
    assert after < before - 0.1
    assert 1e-3 < change < 0.2
    assert tuned.keys() == state.keys()
    again, _ = fam.fine_tune(state, cfg, fam.CORPUS, steps=10, lr=1e-3, seed=0)
    assert all(torch.equal(again[k], tuned[k]) for k in state)


def test_train_from_scratch_seeds_give_different_trained_models(base_tied):
    _, cfg = base_tied
    rng = torch.get_rng_state()
    a, _ = fam.train_from_scratch(cfg, steps=10, seed=1)
    b, _ = fam.train_from_scratch(cfg, steps=10, seed=2)
    assert torch.equal(torch.get_rng_state(), rng)
    assert fam.LM_HEAD not in a and a.keys() == b.keys()
    assert _rel(a[Q.format(0)], b[Q.format(0)]) > 1.0
    assert fam.lm_loss(a, cfg, fam.CORPUS) < math.log(256) - 0.5


@pytest.mark.slow
def test_smollm2_tokenizer_reads_real_tokens():
    from tests.real_models import SMOLLM2_GGUF, require

    require(SMOLLM2_GGUF)
    ids = fam.token_ids(fam.CORPUS[:2], 49152)
    assert 20 < len(ids) < 60
    assert fam.smollm2_tokenizer().decode(ids.tolist()).startswith("The river bends twice")
    assert fam.token_ids(["AB"], 256).tolist() == [65, 66]


def test_variants_are_built_once_per_recipe_and_written_atomically(base, tmp_path, monkeypatch):
    monkeypatch.setenv("PROVENANCE_TEST_CACHE", str(tmp_path))
    state, cfg = base
    families = tmp_path / "families"

    def built(path):
        return (path / "model.safetensors").stat().st_mtime_ns, (path / "model.safetensors").stat().st_ino

    permuted = fam.variant("tiny-permuted", lambda: fam.permute_mlp(state, cfg, seed=1))
    noised = fam.variant("tiny-noised", lambda: fam.add_noise(state, cfg, 0.01, seed=5))
    first = built(permuted), built(noised)
    assert permuted.parent == families and re.fullmatch(r"tiny-permuted-[0-9a-f]{12}", permuted.name)
    assert fam.variant_dir("tiny-permuted").resolve() == permuted  # the link the benchmarks read
    # the same recipe, spelled again: found, not rebuilt
    assert fam.variant("tiny-permuted", lambda: fam.permute_mlp(state, cfg, seed=1)) == permuted
    assert (built(permuted), built(noised)) == first
    # a changed recipe: rebuilt alone, beside the old entry; the link follows it
    reseeded = fam.variant("tiny-permuted", lambda: fam.permute_mlp(state, cfg, seed=2))
    assert reseeded != permuted and permuted.is_dir() and built(noised) == first[1]
    assert fam.variant_dir("tiny-permuted").resolve() == reseeded
    assert not [p.name for p in families.iterdir() if "partial" in p.name]
    loaded, loaded_cfg = fam.load_variant(reseeded)
    assert all(torch.equal(loaded[k], v) for k, v in fam.permute_mlp(state, cfg, seed=2)[0].items())
    assert loaded_cfg["vocab_size"] == cfg["vocab_size"] and loaded_cfg["num_hidden_layers"] == 3
    with pytest.raises(ValueError, match=r"'name' parameter must be a plain directory name\. Got '\.\./x'"):
        fam.variant_dir("../x")


def test_family_spec_lists_every_builder():
    builders = {"permute_mlp", "permute_heads", "permute_residual", "rescale", "fold_norms", "add_noise",
                "drop_layers", "duplicate_layers", "extend_vocab", "truncate_vocab", "to_dtype", "quantize_q8_0",
                "quantize_q4_0", "merge", "rename_opaque", "fine_tune", "train_from_scratch", "rotate_residual"}
    assert set(fam.FAMILY_SPEC) == builders and all(callable(getattr(fam, b)) for b in builders)
    assert {label for label, _ in fam.FAMILY_SPEC.values()} == {"identical", "derived", "independent"}
    assert all(f"| {b}" in fam.__doc__ for b in builders if not b.startswith("quantize"))
