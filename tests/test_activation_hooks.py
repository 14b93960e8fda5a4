"""Activation hook points come from the architecture definitions (provenance/arch/definitions/*.json, `hooks`).

Every definition's hook points exist and run on a tiny transformers instance of its architecture; a
tiny random Mixtral (fused experts in transformers 5) gets its MLP neuron test, against itself, a
permuted and perturbed copy, and an independent model; what cannot be captured is said, never dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import load_file

from provenance.activations import hookpoints
from provenance.activations.base import Encoded
from provenance.activations.hookpoints import plan_hooks
from provenance.activations.probes import load_probes
from provenance.arch.definition import load_definitions
from provenance.arch.hooks import parse_hooks
from provenance.errors import DefinitionError
from provenance.signals.activations import (
    activation_evidence,
    activation_verdict,
    open_runner,
)
from tests.fixture_cache import cached, recipe_key
from tests.tiny_models import HF_CONFIGS, HIDDEN, INTER, LAYERS, build_hf, write_hf_dir

# definition -> the tiny transformers build (tests/tiny_models.py HF_CONFIGS; "bert" is built here)
TINY = {"llama": "llama", "mistral": "mistral", "mixtral": "mixtral", "qwen2": "qwen2", "qwen2_moe": "qwen2_moe",
        "qwen3": "qwen3", "gemma": "gemma", "gemma2": "gemma2", "gemma3": "gemma3", "phi3": "phi3", "gpt2": "gpt2",
        "gpt_neox": "gpt_neox", "falcon": "falcon_7b", "falcon_rw": "falcon_rw", "falcon_new_decoder": "falcon_40b",
        "falcon2": "falcon2_11b", "bert": "bert"}
# definitions with no hook points, and why
NO_HOOKS = {"baichuan": "remote code only", "chatglm": "remote code only",
            "gguf": "llama.cpp tensor names: a GGUF runs as the architecture its metadata names",
            "gguf_llama": "llama.cpp tensor names"}
GATED, PLAIN = ("gate", "up"), ("act",)
# tiny build -> (views, neurons per layer)
WIDTH = {**{n: (GATED, INTER) for n in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3")},
         "mixtral": (GATED, 4 * INTER), "qwen2_moe": (GATED, 48 + 4 * 32), "gpt2": (PLAIN, 4 * HIDDEN),
         "gpt_neox": (PLAIN, INTER), "bert": (PLAIN, INTER),
         **{n: (PLAIN, 4 * HIDDEN) for n in ("falcon_7b", "falcon_rw", "falcon_40b", "falcon2_11b")}}
BERT = {"hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": 4, "intermediate_size": INTER,
        "vocab_size": 128, "max_position_embeddings": 512}
PROBES = 8


def write_char_tokenizer(folder: Path) -> None:
    """tokenizer.json: one token per printable ASCII character (id 1..95), anything else [UNK] (id 0)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, **{chr(c): i + 1 for i, c in enumerate(range(32, 127))}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), "isolated")
    tok.save(str(folder / "tokenizer.json"))


def _write_tiny(name: str, folder: Path) -> None:
    if name == "bert":
        torch.manual_seed(0)
        model = transformers.BertModel(transformers.BertConfig(**BERT))
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
        model.save_pretrained(folder / name)
    else:
        build_hf(name, folder)
    write_char_tokenizer(folder / name)


def tiny_dir(name: str) -> Path:
    """The tiny checkpoint `name` (HF dir with a character tokenizer), cached between runs."""
    key = recipe_key(_write_tiny, name, HF_CONFIGS.get(name, BERT), transformers.__version__)
    return cached(f"hooks/{name}", key, lambda folder: _write_tiny(name, folder)) / name


def _capture(runner, texts: list[str]):
    enc = runner.encode(texts)
    positions = [list(range(0, len(ids), 3)) for ids in enc.input_ids]
    return runner.capture(enc, positions), sum(len(p) for p in positions)


# ---- every definition: hook points exist, are the definition's, and run ------------------------------

def test_every_definition_names_hook_points_or_is_known_not_to() -> None:
    defs = load_definitions()
    assert {n for n, d in defs.items() if d.hooks is None} == set(NO_HOOKS)
    assert {n for n, d in defs.items() if d.hooks is not None} == set(TINY)


@pytest.mark.parametrize("definition", sorted(TINY))
def test_hook_points_exist_on_a_tiny_instance(definition: str) -> None:
    """The runner's plan is the definition's (no fallback), every MLP view has the architecture's width."""
    name = TINY[definition]
    runner = open_runner(tiny_dir(name), device="cpu")
    plan = runner.hooks
    assert (plan.source, plan.missing) == (f"definition {definition!r}", "")
    assert len(plan.layers) == LAYERS and all(plan.parts)
    views, width = WIDTH[name]
    captured, n = _capture(runner, ["The quick brown fox jumps over the lazy dog.", "Hook points, by definition."])
    assert captured.residual.shape == (LAYERS, n, HIDDEN)
    assert {v: a.shape for v, a in captured.mlp.items()} == {v: (LAYERS, n, width) for v in views}
    for a in captured.mlp.values():
        assert np.isfinite(a).all() and (a.std(axis=1) > 0).mean() > 0.9  # real activations, not constants
    runner.close()


def test_phi3_fused_gate_up_halves_are_gate_then_up() -> None:
    """Phi-3's gate_up_proj output is split [gate | up]: up * act(gate) must give the down projection's input."""
    runner = open_runner(tiny_dir("phi3"), device="cpu")
    seen: list[torch.Tensor] = []
    mlp = runner.model.base_model.layers[0].mlp
    handle = mlp.down_proj.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    try:
        captured, _ = _capture(runner, ["Phi three fuses its gate and up projections."])
    finally:
        handle.remove()
    gate, up = (torch.from_numpy(captured.mlp[v][0]) for v in GATED)
    enc = runner.encode(["Phi three fuses its gate and up projections."])
    want = seen[0][0, torch.arange(0, len(enc.input_ids[0]), 3)]
    torch.testing.assert_close(up * mlp.activation_fn(gate), want, atol=1e-5, rtol=1e-4)


def test_mixtral_expert_neurons_reproduce_the_moe_block() -> None:
    """Captured expert neurons, recombined by the router's top-k weights through each expert's down projection,
    give the sparse MoE block's own output: right input, gate rows first, experts in order."""
    runner = open_runner(tiny_dir("mixtral"), device="cpu")
    text = "Mixture of experts: every expert is read at every position."
    block = runner.model.base_model.layers[1].mlp
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    handle = block.register_forward_hook(lambda _m, inputs, output: seen.append((inputs[0], output)))
    try:
        captured, _ = _capture(runner, [text])
    finally:
        handle.remove()
    (x, out), = seen
    picked = torch.arange(0, x.shape[1], 3)
    x, out = x[0, picked], out[0, picked]
    experts = block.experts
    n_exp, inter = experts.gate_up_proj.shape[0], experts.gate_up_proj.shape[1] // 2
    gate = torch.from_numpy(captured.mlp["gate"][1]).reshape(len(x), n_exp, inter)
    up = torch.from_numpy(captured.mlp["up"][1]).reshape(len(x), n_exp, inter)
    _, weights, chosen = block.gate(x)
    hidden = experts.act_fn(gate) * up  # [positions, experts, inter]
    per_expert = torch.einsum("pei,ehi->peh", hidden, experts.down_proj)
    mixed = (per_expert.gather(1, chosen[..., None].expand(-1, -1, HIDDEN)) * weights[..., None]).sum(1)
    torch.testing.assert_close(mixed, out, atol=1e-4, rtol=1e-4)


# ---- Mixtral through `compare --signals activations` ---------------------------------------------------

def _permuted_perturbed(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Experts reordered (router rows with them), each expert's neurons permuted, every weight moved 5%."""
    gen = torch.Generator().manual_seed(seed)
    out = {k: v.clone() for k, v in state.items()}
    n_exp = HF_CONFIGS["mixtral"][1]["num_local_experts"]
    for i in range(LAYERS):
        pre = f"model.layers.{i}.block_sparse_moe."
        order = torch.randperm(n_exp, generator=gen)
        out[pre + "gate.weight"] = state[pre + "gate.weight"][order]
        for new, old in enumerate(order.tolist()):
            perm = torch.randperm(INTER, generator=gen)
            src, dst = f"{pre}experts.{old}.", f"{pre}experts.{new}."
            out[dst + "w1.weight"] = state[src + "w1.weight"][perm]
            out[dst + "w3.weight"] = state[src + "w3.weight"][perm]
            out[dst + "w2.weight"] = state[src + "w2.weight"][:, perm]
    return {k: (v + 0.05 * v.std() * torch.randn(v.shape, generator=gen)).contiguous() for k, v in out.items()}


def _independent(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Every tensor redrawn from N(0, 0.2^2) as the base was, with another seed."""
    gen = torch.Generator().manual_seed(seed)
    return {k: (torch.randn(v.shape, generator=gen) * 0.2).contiguous() for k, v in sorted(state.items())}


def _mixtral_variant(kind: str, make: Callable[[dict[str, torch.Tensor], int], dict[str, torch.Tensor]]) -> Path:
    base = tiny_dir("mixtral")

    def write(folder: Path) -> None:
        state = load_file(str(base / "model.safetensors"))
        write_hf_dir(folder, make(state, 1), json.loads((base / "config.json").read_text()))
        write_char_tokenizer(folder)

    return cached(f"hooks/mixtral-{kind}", recipe_key(_mixtral_variant, make, base.parent.name), write)


@pytest.fixture(scope="module")
def mixtral_results(tmp_path_factory: pytest.TempPathFactory, provenance_cli_module) -> dict[str, dict]:
    """`compare --signals activations` JSON of the tiny Mixtral against itself, its permuted and perturbed copy,
    and an independent one."""
    base = tiny_dir("mixtral")
    candidates = {"self": base, "perturbed": _mixtral_variant("perturbed", _permuted_perturbed),
                  "independent": _mixtral_variant("independent", _independent)}
    out = {}
    for kind, cand in candidates.items():
        path = tmp_path_factory.mktemp("mixtral") / f"{kind}.json"
        rc, _stdout, stderr = provenance_cli_module("compare", base, cand, "--signals", "activations", "--probes",
                                                    str(PROBES), "--no-hash", "--json", path)
        assert rc == 0, stderr
        out[kind] = json.loads(path.read_text())
    return out


@pytest.fixture(scope="module")
def provenance_cli_module() -> Callable[..., tuple[int, str, str]]:
    """`provenance ARGS...` in this process, for a module-scoped fixture (stdout/stderr not captured)."""
    from provenance.cli.main import main

    def run(*args: object) -> tuple[int, str, str]:
        try:
            return main([str(a) for a in args]), "", ""
        except SystemExit as exc:
            return (exc.code if isinstance(exc.code, int) else 1), "", ""

    return run


def _neurons(result: dict) -> dict:
    neurons = next(e for e in result["evidence"] if e["signal"] == "activations" and e["kind"] == "neurons")
    assert "not_run" not in neurons["details"], neurons["finding"]
    return neurons


def test_mixtral_neuron_test_runs_against_itself(mixtral_results: dict) -> None:
    neurons = _neurons(mixtral_results["self"])
    assert len(neurons["details"]["per_layer"]) == LAYERS and neurons["p_value"] < 1e-100
    assert all(t["in_place"] == 1.0 for t in neurons["details"]["per_layer"])
    assert mixtral_results["self"]["verdict"]["label"] == "identical"
    notes = next(e for e in mixtral_results["self"]["evidence"] if e["kind"] == "cka")["details"]["notes"]
    assert any(n.startswith("MoE (mixtral): MLP neurons are the 4 routed experts'") for n in notes)


def test_mixtral_permuted_perturbed_copy_is_found_through_its_expert_neurons(mixtral_results: dict) -> None:
    """Experts and neurons permuted: no neuron keeps its index, the gate/up matchings still agree."""
    neurons = _neurons(mixtral_results["perturbed"])
    rows = neurons["details"]["per_layer"]
    assert len(rows) == LAYERS and neurons["p_value"] < 1e-20
    assert max(t["in_place"] for t in rows) < 0.05 and min(t["agreement"] for t in rows) > 0.8
    assert mixtral_results["perturbed"]["verdict"]["label"] in ("derived", "identical")


def test_mixtral_independent_model_is_not_matched(mixtral_results: dict) -> None:
    neurons = _neurons(mixtral_results["independent"])
    assert len(neurons["details"]["per_layer"]) == LAYERS and neurons["p_value"] > 0.01
    assert mixtral_results["independent"]["verdict"]["label"] in ("independent", "inconclusive")


# ---- what cannot be captured is said ----------------------------------------------------------------

def test_moe_too_wide_to_correlate_says_the_neuron_test_did_not_run(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path, provenance_cli) -> None:
    """Past the width bound no MoE neuron is captured: the neurons item, the notes, the verdict and the report
    say that the test did not run and why (the JSON still validates: `provenance report` reads it back)."""
    monkeypatch.setattr(hookpoints, "MAX_EXPERT_NEURONS", 256)  # the tiny Mixtral holds 4 x 128 per layer
    runner = open_runner(tiny_dir("mixtral"), device="cpu")
    assert runner.hooks.views == () and "4 x 128 = 512 MLP neurons per layer" in runner.hooks.missing
    ev = activation_evidence(runner, runner, load_probes().subset(PROBES), max_positions=256)
    assert ev.neurons == [] and ev.neurons_skipped.startswith("the base's MLP neurons were not captured (its 4 routed")
    assert any(n.startswith("MLP neuron test not run: the base's MLP") for n in ev.notes)
    assert activation_verdict(ev).explanation.startswith("The MLP neuron test was not run (the base's MLP neurons")
    out = tmp_path / "r.json"
    rc, _, stderr = provenance_cli("compare", tiny_dir("mixtral"), tiny_dir("mixtral"), "--signals", "activations",
                                   "--probes", str(PROBES), "--no-hash", "--json", out)
    assert rc == 0, stderr
    neurons = next(e for e in json.loads(out.read_text())["evidence"] if e["kind"] == "neurons")
    assert neurons["finding"].startswith("The MLP neuron test was not run: the base's MLP neurons were not captured")
    assert (neurons["p_value"], neurons["statistic"]) == (None, None) and "512 MLP neurons" in neurons["details"]["not_run"]
    rc, stdout, stderr = provenance_cli("report", out, "--md", "-")
    assert rc == 0, stderr
    assert "The MLP neuron test was not run: the base" in stdout


def test_an_architecture_without_a_definition_falls_back_and_says_so() -> None:
    """OLMo has no definition: the module-name fallback finds its gated MLP, and the notes say how."""
    config = transformers.OlmoConfig(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=4,
                                     intermediate_size=INTER, vocab_size=128)
    plan = plan_hooks(transformers.AutoModel.from_config(config))
    assert plan.source.startswith("module-name fallback (no architecture definition names activation hook points "
                                  "for model type 'olmo')")
    assert plan.views == GATED and plan.notes == [
        ("no architecture definition names activation hook points for model type 'olmo': blocks and MLP views found "
         "by module names (MLP views: gate = mlp.gate_proj, up = mlp.up_proj)")]


def test_a_definition_path_the_model_lacks_falls_back_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from provenance.arch import hooks as arch_hooks

    llama = load_definitions()["llama"]
    broken = arch_hooks.Hooks("layers", {"gate": arch_hooks.Tap("layers.${i}.mlp.w1"),
                                         "up": arch_hooks.Tap("layers.${i}.mlp.up_proj")})
    monkeypatch.setattr(hookpoints, "definition_for", lambda *_: type(llama)(**{**llama.__dict__, "hooks": broken}))
    plan = plan_hooks(transformers.AutoModel.from_config(transformers.LlamaConfig(**HF_CONFIGS["llama"][1])))
    assert plan.source.startswith("module-name fallback (definition 'llama' names a hook point LlamaModel lacks "
                                  "(no module 'layers.0.mlp.w1'))")
    assert plan.views == GATED


def test_mixed_dense_and_moe_blocks_capture_no_neurons_and_say_why() -> None:
    """Qwen2-MoE with a dense first layer (mlp_only_layers): the definition's shared-expert path and the
    fallback's first-block names both miss some blocks; no neuron is captured, and `missing` says why."""
    config = transformers.Qwen2MoeConfig(**{**HF_CONFIGS["qwen2_moe"][1], "mlp_only_layers": [0]})
    plan = plan_hooks(transformers.AutoModel.from_config(config))
    assert plan.views == () and all(not parts for parts in plan.parts)
    assert plan.missing.endswith("and its blocks differ (the last lacks 'mlp.gate_proj', which the first has)")


@pytest.mark.parametrize(("raw", "message"), [
    ({"layers": "layers", "mlp": {"gate": "a"}}, "hooks.mlp names views ['gate']"),
    ({"layers": "layers.${i}"}, "hooks.layers must be one module path"),
    ({"layers": "h", "mlp": {"act": {"module": "m", "take": "both"}}}, "take must be one of"),
    ({"layers": "h", "mlp": {"act": {"module": "m", "chunk": [2, 2]}}}, "chunk must be [k, n]"),
    ({"layers": "h", "experts": {"input": "m"}}, "hooks.experts must be an object with exactly"),
    ({"layers": "h", "moe": {}}, "hooks has unknown fields ['moe']"),
    ({"mlp": {}}, "hooks needs 'layers'"),
])
def test_malformed_hooks_fail_loudly(raw: dict, message: str) -> None:
    with pytest.raises(DefinitionError) as info:
        parse_hooks(raw, where="x.json")
    assert message in str(info.value)


def test_capture_serves_positions_in_request_order() -> None:
    """Texts of different lengths in one batch: the flattened-input hooks (Qwen2-MoE's shared expert) still
    read the positions asked for."""
    runner = open_runner(tiny_dir("qwen2_moe"), device="cpu")
    texts = ["short", "a somewhat longer text than the first"]
    enc = runner.encode(texts)
    together = runner.capture(enc, [[0, 4], [1, 20]], batch_size=2)
    alone = [runner.capture(Encoded([ids], [offs]), [pos], batch_size=1)
             for ids, offs, pos in zip(enc.input_ids, enc.offsets, [[0, 4], [1, 20]])]
    for view in GATED:
        np.testing.assert_allclose(together.mlp[view], np.concatenate([a.mlp[view] for a in alone], axis=1),
                                   atol=1e-5)
