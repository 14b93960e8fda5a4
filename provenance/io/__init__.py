"""Model specs -> lazy checkpoints: safetensors (sharded), PyTorch pickles, GGUF, ONNX, HF cache."""

from provenance.io.base import TensorInfo
from provenance.io.checkpoint import Checkpoint
from provenance.io.resolve import open_checkpoint

__all__ = ["Checkpoint", "TensorInfo", "open_checkpoint"]
