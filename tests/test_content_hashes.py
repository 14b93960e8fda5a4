"""Per-tensor content hashes from the file hashes' own reads, and exact reuse found by content whatever the names:
an opaque single-file copy with no config is `identical`, a partial copy `derived` with its share, and tensors
independent models share anyway (small, constant) decide nothing."""

from __future__ import annotations

import hashlib
import json
import random
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from provenance.arch.layer_order import layers_from_order
from provenance.comparison import compare
from provenance.evidence import Verdict
from provenance.io import open_checkpoint
from provenance.io.base import TensorInfo, TensorSpan
from provenance.io.read_hashes import ReadHashes, digest_tensor
from provenance.options import CompareOptions
from provenance.result import CompareResult
from provenance.signals import content_hashes as ch
from tests.real_models import MINILM_DIR, SMOLLM2_GGUF, require
from tests.tiny_models import tiny_llama_state

ON, OFF = CompareOptions(hashes=True, device="cpu"), CompareOptions(hashes=False, device="cpu")
# Llama's per-layer tensors in the order its state dict lists them
LAYER_ORDER = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
               "mlp.up_proj", "mlp.down_proj", "input_layernorm", "post_attention_layernorm")


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _model_order(name: str) -> tuple[int, int, int]:
    parts = name.split(".")
    if "layers" in parts:
        i = int(parts[parts.index("layers") + 1])
        return 1, i, next(k for k, r in enumerate(LAYER_ORDER) if r in name)
    return (0 if "embed" in name else 2), 0, 0


def _random_names(state: dict[str, torch.Tensor], seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    return {k: "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(12)) for k in state}


def _write_in_order(path: Path, items: list[tuple[str, torch.Tensor]]) -> Path:
    """A valid .safetensors file with the tensors in the order given (the library's writer sorts by name)."""
    header, blobs, off = {}, [], 0
    for name, t in items:
        b = t.contiguous().view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    return path


def _opaque_file(folder: Path, state: dict[str, torch.Tensor], seed: int = 0) -> Path:
    """`state` under random names in one model.safetensors, alone in `folder` (no config, no tokenizer)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = _random_names(state, seed)
    save_file({names[k]: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    return folder / "model.safetensors"


def _item(result, kind: str = ch.KIND):
    return next(e for e in result.evidence if e.signal == "weights" and e.kind == kind)


def _tiny_dir(tmp_path: Path, name: str, state: dict[str, torch.Tensor], config: dict) -> Path:
    d = tmp_path / name
    d.mkdir()
    save_file(state, str(d / "model.safetensors"))
    (d / "config.json").write_text(json.dumps(config))
    return d


# ---------------------------------------------------------------------------- digests of the reads

def test_span_digests_are_exact_whatever_the_read_pieces_and_order(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {"rand": rng.standard_normal(3000).astype(np.float32).tobytes(),
               "ones": np.ones(700, np.float32).tobytes(), "zeros": bytes(4 * 500),
               "pattern": np.tile(np.array([1, 2], np.float32), 300).tobytes(),
               "late_diff": np.concatenate([np.ones(999), [2.0]]).astype(np.float32).tobytes()}
    blob, spans, off = b"HEADER--", [], 8
    for name, b in tensors.items():
        spans.append(TensorSpan(name, off, len(b), 4))
        blob += b
        off += len(b)
    path = tmp_path / "t.bin"
    path.write_bytes(blob + b"TAIL")
    h = ReadHashes([path], spans={path: spans})
    pieces = [(o, blob[o:o + 7]) for o in range(8, len(blob), 7)]  # odd-sized pieces cross every tensor boundary
    random.Random(1).shuffle(pieces)
    for o, piece in pieces:
        h.observe(path, o, piece)
    assert h.finish() == {path: _sha(blob + b"TAIL")}
    got = h.tensor_digests()
    assert {n: d.sha256 for n, d in got.items()} == {n: _sha(b) for n, b in tensors.items()}
    assert {n: d.constant for n, d in got.items()} == {"rand": False, "ones": True, "zeros": True,
                                                       "pattern": False, "late_diff": False}


def test_digest_tensor_reads_stored_bytes():
    t = torch.arange(10, dtype=torch.bfloat16).reshape(2, 5)
    assert digest_tensor(t).sha256 == _sha(t.view(torch.uint8).numpy().tobytes())
    assert digest_tensor(torch.ones(4096)).constant and not digest_tensor(t).constant


def test_safetensors_digests_from_the_reads_equal_hashlib_of_each_tensor():
    path = require(MINILM_DIR) / "model.safetensors"
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    expected = {k: _sha(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
                for k, v in header.items() if k != "__metadata__"}
    with open_checkpoint(MINILM_DIR) as ck:
        assert ck.hash_reads()
        for name in list(ck.tensors)[::-3]:  # some tensors read, backwards; the rest only for hashing
            ck.get(name)
        got = ck.tensor_digests()
        files = ck.sha256()
    assert {k: d.sha256 for k, d in got.items()} == expected
    assert files["model.safetensors"] == _sha(raw)


def test_gguf_digests_from_the_reads_equal_hashlib_of_each_tensor():
    import gguf

    path = require(SMOLLM2_GGUF)
    raw = path.read_bytes()
    expected = {t.name: _sha(raw[t.data_offset:t.data_offset + t.n_bytes]) for t in gguf.GGUFReader(path).tensors}
    with open_checkpoint(path) as ck:
        assert ck.hash_reads()
        ck.get(next(iter(ck.tensors)))
        got = ck.tensor_digests()
    assert {k: d.sha256 for k, d in got.items()} == expected


def test_torch_digests_equal_the_same_tensors_in_safetensors(tmp_path):
    state = load_file(str(require(MINILM_DIR) / "model.safetensors"))
    torch.save(state, tmp_path / "pytorch_model.bin")
    with open_checkpoint(tmp_path / "pytorch_model.bin") as ck:
        got = ck.tensor_digests()
    with open_checkpoint(MINILM_DIR) as ck:
        ck.hash_reads()
        want = ck.tensor_digests()
    assert got == want
    assert got["embeddings.word_embeddings.weight"].sha256 == _sha(
        state["embeddings.word_embeddings.weight"].numpy().tobytes())


# ---------------------------------------------------------------------------- exact reuse, tiny models

@pytest.fixture(scope="module")
def tiny() -> tuple[dict[str, torch.Tensor], dict]:
    return tiny_llama_state(seed=0)


def test_opaque_single_file_copy_is_identical_with_every_pair_listed(tiny, tmp_path):
    state, cfg = tiny
    cand = _opaque_file(tmp_path / "copy", state)
    r = compare(_tiny_dir(tmp_path, "base", state, cfg), cand, ON)
    assert (r.verdict.label, r.verdict.relation, r.verdict.p_value) == (
        "identical", "byte-identical tensors, tensors renamed", 1e-300)
    d = _item(r).details
    names = _random_names(state, 0)
    large = [k for k, v in state.items() if v.numel() >= 4096]  # q, o, gate, up, down x 3 layers, embed, head
    assert (d["matched"], d["candidate_large_tensors"], d["base_large_tensors"]) == (17, 17, 17)
    assert sorted((p["base"], p["candidate"]) for p in d["pairs"]) == sorted((k, names[k]) for k in large)
    assert d["small_or_constant_identical"] == 3 * 4 + 1  # k, v (2,048 elements), two norms (all ones), final norm
    assert "17 of 17 candidate tensors" in _item(r).finding
    again = CompareResult.from_dict(json.loads(r.to_json()))  # the JSON schema takes the item; reports show it
    assert _item(again).details == d
    assert "## Weights\n\n17 of 17 candidate tensors of ≥ 4,096 non-constant elements" in again.to_markdown()


def test_a_third_replaced_is_derived_with_the_share(tiny, tmp_path):
    state, cfg = tiny
    g = torch.Generator().manual_seed(5)
    mlp = [k for k in state if "mlp" in k]  # 9 tensors of 10,240 elements; 5 replaced
    changed = {k: (torch.randn(v.shape, generator=g) * v.std() if k in mlp[:5] else v) for k, v in state.items()}
    r = compare(_tiny_dir(tmp_path, "base", state, cfg), _opaque_file(tmp_path / "part", changed), ON)
    d = _item(r).details
    total = sum(v.numel() * 4 for v in state.values())
    assert (d["matched"], d["candidate_large_tensors"], d["candidate_bytes"]) == (12, 17, total)
    assert d["matched_bytes"] == total - 5 * 10240 * 4 - 6 * 2048 * 4 - 7 * 64 * 4
    assert r.verdict.label == "derived" and r.verdict.p_value == 1e-300
    assert "byte-identical tensors" in r.verdict.relation.split(", ")
    assert f"12 of 17 tensors byte-identical to the base ({d['share_of_bytes']:.1%} of bytes)" in r.verdict.explanation


def test_sharing_only_small_or_constant_tensors_decides_nothing(tiny, tmp_path):
    state, cfg = tiny
    other, _ = tiny_llama_state(seed=1)
    # the base's own k/v projections (2,048 elements) and norms (all ones at init), all else independent
    shared = {k: (state[k] if v.numel() < 4096 else v) for k, v in other.items()}
    r = compare(_tiny_dir(tmp_path, "base", state, cfg), _tiny_dir(tmp_path, "other", shared, cfg), ON)
    d = _item(r).details
    assert (d["matched"], d["small_or_constant_identical"], d["decisive"]) == (0, 13, False)
    assert _item(r).p_value is None
    assert r.verdict.label != "derived"


def test_hashes_off_says_not_checked(tiny, tmp_path):
    state, cfg = tiny
    r = compare(_tiny_dir(tmp_path, "base", state, cfg), _opaque_file(tmp_path / "copy", state), OFF)
    e = _item(r)
    assert (e.statistic, e.p_value, e.details) == (None, None, {"checked": False, "why_not": (
        "per-tensor hashes are off (--no-hash / hashes=False)")})
    assert e.finding == "Byte-identical tensors were not looked for: per-tensor hashes are off (--no-hash / " \
                        "hashes=False)."


def test_a_few_identical_tensors_forbid_independent():
    v = Verdict("independent", None, 0.0, 0.4, "No layer matches.")
    r = ch.Reuse(True, pairs=[("a", "b")], candidate_large=20, base_large=20, base_matched=1,
                 candidate_bytes=100, matched_bytes=5)
    out = ch.overrule(v, r)
    assert (out.label, out.p_value) == ("inconclusive", 0.4)
    assert "1 large tensors are byte-identical" in out.explanation


# ---------------------------------------------------------------------------- layers without names

def _infos(shapes: list[tuple[str, tuple[int, ...]]]) -> dict[str, TensorInfo]:
    return {n: TensorInfo(n, s, "F32", Path("m"), 4) for n, s in shapes}


def test_layers_from_file_order_and_their_refusal_when_shuffled():
    layer = [(4, 4), (2, 4), (2, 4), (4, 4), (8, 4), (8, 4), (4, 8), (4,), (4,)]
    ordered = [("e", (50, 4))] + [(f"t{i}{j}", s) for i in range(3) for j, s in enumerate(layer)] + [("f", (4,))]
    notes: list[str] = []
    infos = _infos(ordered)
    layers = layers_from_order(list(infos), infos, notes)
    assert layers == {i: {f"t{i}{j}": f"t{i}{j}" for j in range(9)} for i in range(3)}
    assert notes == [("no tensor name carries a layer number: 3 layers taken as runs of 9 tensors in file order, "
                      "each with the same shapes")]
    shuffled = ordered[:]
    random.Random(0).shuffle(shuffled)
    infos = _infos(shuffled)
    notes = []
    assert layers_from_order(list(infos), infos, notes) == {}
    assert notes == [("no tensor name carries a layer number and the file order does not repeat per layer (names "
                      "randomized and sorted?): the 3 layers cannot be told apart")]


# ---------------------------------------------------------------------------- SmolLM2 (slow)

@pytest.fixture(scope="module")
def smol() -> tuple[Path, dict[str, torch.Tensor]]:
    from tests import smollm2_family as sf

    hf = sf.dequantized()
    return hf, load_file(str(hf / "model.safetensors"))


@pytest.mark.slow
def test_smollm2_opaque_single_file_copy_is_identical(smol, tmp_path):
    hf, state = smol
    cand = _opaque_file(tmp_path / "opaque", state, seed=3)
    r = compare(hf, cand, ON)
    assert (r.verdict.label, r.verdict.relation) == ("identical", "byte-identical tensors, tensors renamed")
    d = _item(r).details
    assert (d["matched"], d["candidate_large_tensors"], d["base_large_tensors"]) == (211, 211, 211)
    names = _random_names(state, 3)
    assert all(names[p["base"]] == p["candidate"] for p in d["pairs"])
    # random names sorted by the writer: no layer order to recover; the embedding is still found (largest table)
    assert "no transformer layers in one model" in _item(r, "coverage").finding
    assert "identity map" in _item(r, "alignment").finding


@pytest.mark.slow
def test_smollm2_opaque_copy_in_model_order_is_found_by_the_profiles_too(smol, tmp_path):
    hf, state = smol
    names = _random_names(state, 4)
    cand = _write_in_order(tmp_path / "ordered" / "model.safetensors",
                           [(names[k], state[k]) for k in sorted(state, key=_model_order)])
    off = compare(hf, cand, OFF)
    assert (off.verdict.label, off.verdict.relation) == ("derived", "tensors renamed")
    on = compare(hf, cand, ON)
    assert (on.verdict.label, on.verdict.relation) == ("identical", "byte-identical tensors, tensors renamed")
    assert "30 of 30 candidate layers match" in on.verdict.explanation


@pytest.mark.slow
def test_smollm2_a_third_replaced_is_derived_with_the_share(smol, tmp_path):
    hf, state = smol
    g = torch.Generator().manual_seed(0)
    layer_large = [k for k in sorted(state, key=_model_order) if "layers." in k and state[k].numel() >= 4096]
    noised = set(layer_large[::3])
    changed = {k: (torch.randn(v.shape, generator=g) * v.std() if k in noised else v) for k, v in state.items()}
    r = compare(hf, _opaque_file(tmp_path / "third", changed), ON)
    d = _item(r).details
    assert (d["matched"], d["candidate_large_tensors"]) == (211 - len(noised), 211)
    assert r.verdict.label == "derived" and r.verdict.p_value == 1e-300
    assert (f"{211 - len(noised)} of 211 tensors byte-identical to the base ({d['share_of_bytes']:.1%} of bytes)"
            in r.verdict.explanation)


def test_only_tensors_whose_sampled_bytes_match_are_hashed_and_the_result_is_the_plain_paths(tiny, tmp_path):
    """The fast path hashes a tensor whole only where a tensor of the other side has the same sampled bytes
    (`tensors_to_hash`); what it finds is what hashing everything finds."""
    from provenance import fastpath

    state, cfg = tiny
    g = torch.Generator().manual_seed(5)
    mlp = [k for k in state if "mlp" in k]
    changed = {k: (torch.randn(v.shape, generator=g) * v.std() if k in mlp[:5] else v) for k, v in state.items()}
    base, cand = _tiny_dir(tmp_path, "base", state, cfg), _opaque_file(tmp_path / "part", changed)
    with open_checkpoint(base) as a, open_checkpoint(cand) as b:
        wanted_a, wanted_b = ch.tensors_to_hash(a, b)
        names = _random_names(state, 0)
        assert wanted_a == {k for k in state if k not in mlp[:5]}
        assert wanted_b == {names[k] for k in state if k not in mlp[:5]}
    fast = _item(compare(base, cand, ON)).details
    with fastpath.plain():
        plain = _item(compare(base, cand, ON)).details
        assert ch.tensors_to_hash(a, b) == (None, None)
    assert fast == plain


def test_probe_keys_are_equal_for_equal_bytes_and_differ_where_the_samples_do(tmp_path):
    from provenance.io.read_hashes import PROBE_BYTES, probe_keys

    data = np.random.default_rng(0).integers(0, 256, 10_000, dtype=np.uint8).tobytes()
    path = tmp_path / "f.bin"
    edited = bytearray(data)
    edited[10_000 // 3] ^= 1  # inside the first third's sample
    path.write_bytes(data + data + bytes(edited) + data[:PROBE_BYTES // 2])
    spans = {path: [TensorSpan("a", 0, 10_000, 1), TensorSpan("b", 10_000, 10_000, 1),
                    TensorSpan("c", 20_000, 10_000, 1), TensorSpan("short", 30_000, PROBE_BYTES // 2, 1)]}
    keys = probe_keys(spans)
    assert keys["a"] == keys["b"] != keys["c"]
    assert keys["short"] == (PROBE_BYTES // 2).to_bytes(8, "little") + data[:PROBE_BYTES // 2] * 1
