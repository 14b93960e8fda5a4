"""Fingerprints reach the verdicts full checkpoints reach: every case of the weight and tokenizer tests.

Each model is fingerprinted once into a file, the two files are compared, and the verdict
label must equal the one the full-checkpoint comparison gives (computed once per session by
tests/smollm2_family.py and shared with tests/test_compare_families.py); derived and identical
pairs keep p < 1e-6 and the relation words the weight tests require.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from provenance.comparison import CompareOptions, compare
from provenance.fingerprint import fingerprint, save
from tests.families import rename_bert_opaque
from tests.real_models import (
    BERT_VOCAB_TXT,
    BGE_ONNX,
    CL100K_TIKTOKEN,
    COLBERT_ONNX,
    DEEPSEEK_JSON,
    LLAMA3_JSON,
    MINILM_DIR,
    MINILM_INT8_ONNX,
    MISTRAL_V1,
    MISTRAL_V2,
    MISTRAL_V3,
    MISTRAL_V7,
    O200K_GZ,
    QUICKTOK,
    QWEN36_TIKTOKEN,
    QWEN_TIKTOKEN,
    RERANKER_ONNX,
    SMOLLM2_GGUF,
    TEKKEN,
    require,
)
from tests.smollm2_family import CASES, build, full_result, merged_variant

pytestmark = pytest.mark.slow  # fingerprints and compares every SmolLM2 family member and real pair

OPTS = CompareOptions(hashes=False, device="cpu")


@pytest.fixture(scope="module")
def fingerprints(tmp_path_factory):
    """spec -> fingerprint file, built once per module."""
    root = tmp_path_factory.mktemp("fingerprints")
    made: dict[str, Path] = {}

    def get(spec: Path) -> Path:
        key = str(spec)
        if key not in made:
            made[key] = root / f"{len(made)}.fingerprint"
            save(fingerprint(spec, device="cpu", hashes=False), made[key])
        return made[key]

    return get


def _agree(full, fp, words=()) -> None:
    fv, pv = full.verdict, fp.verdict
    if fv.label == "identical" and fv.relation == "quantized copy" and pv.label == "derived":
        # a fingerprint keeps no tensors, so it cannot redo the quantization `identical` rests on: it says
        # derived and that a copy cannot be told from a light fine-tune
        assert "fingerprints keep no tensors" in pv.explanation, pv.explanation
        assert pv.p_value is not None and pv.p_value < 1e-6
        return
    assert pv.label == fv.label, (fv.label, fv.relation, pv.label, pv.relation, pv.explanation)
    if fv.label in ("identical", "derived"):
        assert pv.p_value is not None and pv.p_value < 1e-6
    for w in words:
        assert w in (pv.relation or ""), (w, pv.relation)


@pytest.mark.parametrize("name,label,words", CASES, ids=[c[0] for c in CASES])
def test_smollm2_family_from_fingerprints(base, fingerprints, name, label, words):
    variant = build(name, base)
    full = full_result(base[0], variant)
    fp = compare(fingerprints(base[0]), fingerprints(variant), OPTS)
    assert full.verdict.label == label
    _agree(full, fp, words)
    if name in ("drop_third", "duplicate"):
        assert [row[:2] for row in fp.layer_map] == [row[:2] for row in full.layer_map]


def test_merge_and_independent_models_from_fingerprints(base, independent, fingerprints):
    merged = merged_variant(base, independent)
    _agree(full_result(base[0], merged), compare(fingerprints(base[0]), fingerprints(merged), OPTS),
           ["merged with another model"])
    for a, b in [(base[0], independent[0]), (base[0], independent[1]), (independent[0], independent[1])]:
        fp = compare(fingerprints(a), fingerprints(b), OPTS)
        _agree(full_result(a, b), fp)
        assert fp.verdict.p_value > 0.01


REAL_PAIRS = [
    (MINILM_DIR, MINILM_INT8_ONNX, "identical", ["quantized copy"]),
    (BGE_ONNX, COLBERT_ONNX, "derived", ["fine-tune"]),
    (RERANKER_ONNX, MINILM_DIR, "derived", ["layer subset"]),
    (SMOLLM2_GGUF, MINILM_DIR, "independent", []),
]


@pytest.mark.parametrize("a,b,label,words", REAL_PAIRS, ids=["minilm-int8", "bge-colbert", "reranker-minilm",
                                                             "smollm2-minilm"])
def test_real_checkpoints_from_fingerprints(fingerprints, a, b, label, words):
    full = compare(require(a), require(b), OPTS)
    fp = compare(fingerprints(a), fingerprints(b), OPTS)
    assert full.verdict.label == label
    _agree(full, fp, words)
    if label == "derived":
        assert [row[:2] for row in fp.layer_map] == [row[:2] for row in full.layer_map]


def test_gguf_against_its_dequantized_copy_from_fingerprints(smollm2_hf, fingerprints):
    full = compare(require(SMOLLM2_GGUF), smollm2_hf, OPTS)
    _agree(full, compare(fingerprints(SMOLLM2_GGUF), fingerprints(smollm2_hf), OPTS))


def test_renamed_bert_from_fingerprints(tmp_path, fingerprints):
    """The opaque renaming of tests/test_compare_real.py: post-norm inferred, only renamed."""
    renamed = rename_bert_opaque(load_file(str(require(MINILM_DIR) / "model.safetensors")))
    folder = tmp_path / "renamed"
    folder.mkdir()
    save_file(renamed, str(folder / "model.safetensors"))
    shutil.copy(MINILM_DIR / "tokenizer.json", folder / "tokenizer.json")
    full = compare(MINILM_DIR, folder, OPTS)
    fp = compare(fingerprints(MINILM_DIR), fingerprints(folder), OPTS)
    _agree(full, fp, ["tensors renamed"])
    assert fp.verdict.relation == full.verdict.relation == "tensors renamed"


TOKENIZER_PAIRS = [
    (CL100K_TIKTOKEN, LLAMA3_JSON), (CL100K_TIKTOKEN, QWEN_TIKTOKEN), (MISTRAL_V1, MISTRAL_V2),
    (MISTRAL_V3, MISTRAL_V7),
    (LLAMA3_JSON, QWEN_TIKTOKEN), (QUICKTOK / "qwen3.vocab", QWEN36_TIKTOKEN),
    (O200K_GZ, TEKKEN), (SMOLLM2_GGUF, BERT_VOCAB_TXT), (LLAMA3_JSON, DEEPSEEK_JSON), (CL100K_TIKTOKEN, O200K_GZ),
    (MISTRAL_V1, TEKKEN), (DEEPSEEK_JSON, QWEN_TIKTOKEN), (SMOLLM2_GGUF, CL100K_TIKTOKEN),
    (QWEN36_TIKTOKEN, O200K_GZ), (MISTRAL_V1, LLAMA3_JSON),
]


@pytest.mark.parametrize("a,b", TOKENIZER_PAIRS, ids=[f"{a.name}-{b.name}" for a, b in TOKENIZER_PAIRS])
def test_tokenizers_from_fingerprints(fingerprints, a, b):
    """The real tokenizer pairs of tests/test_vocab_compare.py: the same relation and numbers from fingerprints."""
    tok = CompareOptions(hashes=False, device="cpu", signals=("tokenizer",))
    full = compare(require(a), require(b), tok)
    fp = compare(fingerprints(a), fingerprints(b), tok)
    _agree(full, fp)
    ft, pt = full.tokenizer, fp.tokenizer
    assert (pt.relation, pt.direction, pt.shared, pt.shared_same_id, pt.id_offset) == \
        (ft.relation, ft.direction, ft.shared, ft.shared_same_id, ft.id_offset)
    assert pt.p_value == ft.p_value and pt.missing_from_candidate == ft.missing_from_candidate
