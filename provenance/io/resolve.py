"""Model spec -> `Checkpoint`: open the weights, config and tokenizer files that `resolve` picked.

What a spec names (an HF-layout folder, a single weights file, a model id in the local HF cache,
...) and which files make it up is decided in `provenance.io.source`, once, for every signal;
this module only builds the tensor reader for those files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from provenance.errors import MissingFileError, SourceKindError, UnknownFormatError
from provenance.io.base import TensorReader
from provenance.io.checkpoint import Checkpoint
from provenance.io.safetensors_reader import SafetensorsReader
from provenance.io.source import (
    NO_WEIGHTS,
    TOKENIZER_FILES,
    ModelSource,
    file_format,
    read_shard_index,
    resolve,
    safe_join,
)
from provenance.io.torch_reader import TorchReader
from provenance.jsonfile import read_json

__all__ = ["TOKENIZER_FILES", "open_checkpoint", "read_shard_index", "reader_for_file", "safe_join"]
NEEDS_WEIGHTS = ("inspect, fingerprint and the weight and activation signals need a checkpoint: a model folder, "
                 "a weights file or a cached model id")


def open_checkpoint(spec: str | os.PathLike[str] | ModelSource) -> Checkpoint:
    """Open a model spec (or a resolved `ModelSource`) lazily; a `ProvenanceError` naming the file on bad input."""
    source = resolve(spec)
    reader = _reader(source)
    try:
        return _assemble(source, reader)
    except BaseException:
        reader.close()
        raise


def _reader(source: ModelSource) -> TensorReader:
    """The tensor reader of the source's weights (a tokenizer-only spec keeps today's refusals)."""
    if source.kind == "checkpoint":
        weights = list(source.weights)
        if source.weights_format in ("safetensors", "torch"):
            cls = SafetensorsReader if source.weights_format == "safetensors" else TorchReader
            expected = read_shard_index(source.index_file) if source.index_file is not None else None
            return cls(weights, expected=expected)
        return reader_for_file(weights[0])
    if source.kind == "tokenizer" and source.path is not None:
        if source.path.is_file():  # a vocab-only GGUF opens (no tensors); other files: "unknown weights format"
            return reader_for_file(source.path)
        if source.vocab_file is not None and file_format(source.vocab_file) == "gguf":
            return reader_for_file(source.vocab_file)
        raise MissingFileError(NO_WEIGHTS, path=source.path)
    where = f"{source.spec}: " if source.kind == "endpoint" else ""
    raise SourceKindError(f"{where}{source.what()}, with no weights to read; {NEEDS_WEIGHTS}",
                          path=source.path if source.kind != "endpoint" else None)


def _assemble(source: ModelSource, reader: TensorReader) -> Checkpoint:
    """Attach the config and tokenizer files found beside the weights (or inside a GGUF)."""
    config: dict[str, Any] = read_json(source.config_file) if source.config_file else {}
    embedded = None
    if hasattr(reader, "config") and not config:
        config = reader.config()
    if hasattr(reader, "tokenizer"):
        embedded = reader.tokenizer()
    return Checkpoint(spec=source.spec, root=source.path or Path(source.spec), reader=reader, config=config,
                      config_file=source.config_file, tokenizer_files=dict(source.tokenizer_files),
                      embedded_tokenizer=embedded,
                      extra_files=[source.index_file] if source.index_file is not None else [])


def reader_for_file(path: Path) -> TensorReader:
    """The reader for one file, by `file_format` (magic bytes first, suffix second)."""
    fmt = file_format(path)
    if fmt == "gguf":
        from provenance.io.gguf_reader import GGUFTensorReader
        return GGUFTensorReader(path)
    if fmt == "safetensors":
        return SafetensorsReader([path])
    if fmt == "torch":
        return TorchReader([path])
    if fmt == "onnx":
        from provenance.io.onnx_reader import OnnxTensorReader
        return OnnxTensorReader(path)
    raise UnknownFormatError(f"unknown weights format (suffix {path.suffix.lower() or 'none'!r}); provenance reads "
                             ".safetensors, .gguf, .onnx, .bin/.pt/.pth and HF directories", path=path)
