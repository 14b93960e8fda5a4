"""Model spec -> `Checkpoint`: find the weights, config and tokenizer files of what the user named.

Accepted specs: a Hugging Face-layout directory, a single weights file (.safetensors, .gguf,
.onnx, .bin/.pt/.pth), or a model id resolved offline in the local HF cache.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from provenance.errors import (
    CheckpointNotFoundError,
    CorruptFileError,
    MissingFileError,
    UnknownFormatError,
    UnsafePathError,
)
from provenance.io.base import TensorReader
from provenance.io.checkpoint import Checkpoint
from provenance.io.guard import member, open_file
from provenance.io.hf_cache import looks_like_repo_id, resolve_repo_id
from provenance.io.safetensors_reader import SafetensorsReader
from provenance.io.torch_reader import TorchReader
from provenance.jsonfile import read_json

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
    "vocab.txt", "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja",
    "chat_template.json", "tekken.json", "tokenizer.tiktoken", "qwen.tiktoken",
)
_TORCH_SUFFIXES = (".bin", ".pt", ".pth")


def open_checkpoint(spec: str | os.PathLike[str]) -> Checkpoint:
    """Open a model spec lazily; raises a `ProvenanceError` naming the file on bad input."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return _open_directory(str(spec), path)
    if path.is_file():
        return _open_file(str(spec), path)
    if not os.path.isabs(str(spec)) and looks_like_repo_id(str(spec)):
        snapshot = resolve_repo_id(str(spec))  # files link to ../../blobs: the repository folder bounds them
        return _open_directory(str(spec), snapshot, boundary=snapshot.parent.parent)
    raise CheckpointNotFoundError(f"no such file or directory: {spec}")


def _open_directory(spec: str, root: Path, boundary: Path | None = None) -> Checkpoint:
    """Every file read from `root` must be a regular file inside `boundary` (default: `root`)."""
    reader, extra = _directory_reader(root, boundary or root)
    return _assemble(spec, root, root, reader, extra, boundary or root)


def _open_file(spec: str, path: Path) -> Checkpoint:
    reader = reader_for_file(path)
    return _assemble(spec, path, path.parent, reader, [], path.parent)


def _assemble(spec: str, root: Path, folder: Path, reader: TensorReader, extra: list[Path],
              boundary: Path) -> Checkpoint:
    """Attach config and tokenizer files found beside the weights (or inside a GGUF)."""
    config_file = member(boundary, folder / "config.json") if (folder / "config.json").is_file() else None
    config: dict[str, Any] = read_json(config_file) if config_file else {}
    embedded = None
    if hasattr(reader, "config") and not config:
        config = reader.config()
    if hasattr(reader, "tokenizer"):
        embedded = reader.tokenizer()
    tokenizer_files = {n: member(boundary, folder / n) for n in TOKENIZER_FILES if (folder / n).is_file()}
    return Checkpoint(spec=spec, root=root, reader=reader, config=config, config_file=config_file,
                      tokenizer_files=tokenizer_files, embedded_tokenizer=embedded, extra_files=extra)


def _directory_reader(root: Path, boundary: Path) -> tuple[TensorReader, list[Path]]:
    """Pick the weights in an HF directory: safetensors first, then pickles, GGUF, ONNX (each a regular
    file inside `boundary`: a FIFO would block, a symlink could reach outside)."""
    for index_name, cls in (("model.safetensors.index.json", SafetensorsReader),
                            ("pytorch_model.bin.index.json", TorchReader)):
        index = root / index_name
        if index.is_file():
            weight_map = read_shard_index(member(boundary, index))
            shards = [member(boundary, safe_join(root, s, index)) for s in dict.fromkeys(weight_map.values())]
            for shard in shards:
                if not shard.is_file():
                    raise MissingFileError(f"shard {shard.name} listed in {index_name} is missing; "
                                           "download every shard", path=shard)
            return cls(shards, expected=weight_map), [index]
    found = sorted(root.glob("*.safetensors"))
    if found:
        return SafetensorsReader([member(boundary, p) for p in found]), []
    found = sorted(p for p in root.iterdir() if p.suffix in _TORCH_SUFFIXES and p.is_file())
    if found:
        return TorchReader([member(boundary, p) for p in found]), []
    for pattern in ("*.gguf", "*.onnx", "onnx/model.onnx"):
        found = sorted(root.glob(pattern))
        if len(found) == 1:
            return reader_for_file(member(boundary, found[0])), []
        if len(found) > 1:
            raise UnknownFormatError(f"{len(found)} {pattern} files ({', '.join(p.name for p in found[:4])}); "
                                     "pass the one you mean as the model spec", path=root)
    raise MissingFileError("no weights found (looked for *.safetensors, a shard index, pytorch_model*.bin, "
                           "*.gguf, *.onnx)", path=root)


def reader_for_file(path: Path) -> TensorReader:
    """Choose a reader by the file's magic bytes first, its suffix second."""
    with open_file(path) as f:
        head = f.read(8)
    suffix = path.suffix.lower()
    if head[:4] == b"GGUF" or suffix == ".gguf":
        from provenance.io.gguf_reader import GGUFTensorReader
        return GGUFTensorReader(path)
    if suffix == ".safetensors":
        return SafetensorsReader([path])
    if suffix in _TORCH_SUFFIXES or head[:2] == b"PK" or head[:1] == b"\x80":
        return TorchReader([path])
    if suffix == ".onnx":
        from provenance.io.onnx_reader import OnnxTensorReader
        return OnnxTensorReader(path)
    raise UnknownFormatError(f"unknown weights format (suffix {suffix or 'none'!r}); provenance reads "
                             ".safetensors, .gguf, .onnx, .bin/.pt/.pth and HF directories", path=path)


def read_shard_index(index: Path) -> dict[str, str]:
    """The `weight_map` of a shard index, checked to be tensor name -> relative file name."""
    data = read_json(index)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CorruptFileError("shard index has no 'weight_map' object of tensor -> file name", path=index)
    return weight_map


def safe_join(root: Path, relative: str, source: Path) -> Path:
    """`root / relative`, refusing absolute paths and `..` escapes (a shard index is untrusted)."""
    normalized = os.path.normpath(relative.replace("\\", "/"))
    if (os.path.isabs(relative) or relative.startswith(("/", "\\")) or (len(relative) > 1 and relative[1] == ":")
            or normalized == ".." or normalized.startswith("../") or "\x00" in relative):
        raise UnsafePathError(f"refers to {relative!r}, outside the model directory; refusing to read it",
                              path=source)
    return root / normalized

