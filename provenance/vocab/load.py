"""Tokenizer spec -> `Vocabulary`: pick the reader by file name and content, never by trust.

A spec is a tokenizer file (tokenizer.json, tokenizer.model, *.tiktoken[.gz], vocab.txt,
vocab.json, tekken.json, quicktok *.vocab, *.gguf) or a directory holding one, with or
without weights beside it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from provenance.errors import (
    CheckpointNotFoundError,
    CorruptFileError,
    MissingFileError,
    UnknownFormatError,
)
from provenance.io.guard import member, open_file
from provenance.jsonfile import read_json
from provenance.vocab.hf_json import (
    is_tokenizer_json,
    not_a_tokenizer,
    read_tokenizer_json,
    read_vocab_json,
    read_vocab_txt,
)
from provenance.vocab.model import Vocabulary
from provenance.vocab.tiktoken_file import looks_like_tiktoken, read_tiktoken

if TYPE_CHECKING:
    from provenance.io.checkpoint import Checkpoint

# Directory contents in the order we trust them: the fullest description first.
DIRECTORY_FILES = ("tokenizer.json", "tekken.json", "tokenizer.model", "tokenizer.tiktoken", "qwen.tiktoken",
                   "vocab.json", "vocab.txt")
TOKENIZER_SUFFIXES = (".tiktoken", ".model", ".vocab", ".txt", ".json", ".gz")
WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".onnx", ".bin", ".pt", ".pth")


def load_vocabulary(spec: str | os.PathLike[str]) -> Vocabulary:
    """Read the tokenizer a spec names (file or directory); a ProvenanceError on bad input."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return _from_directory(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"no such tokenizer file or directory: {spec}")
    return read_tokenizer_file(path)


def vocabulary_of(ckpt: Checkpoint) -> Vocabulary | None:
    """The tokenizer a checkpoint ships: files beside the weights first, then a GGUF's own vocabulary."""
    for name in DIRECTORY_FILES:
        if name in ckpt.tokenizer_files:
            return read_tokenizer_file(ckpt.tokenizer_files[name])
    if ckpt.embedded_tokenizer and ckpt.embedded_tokenizer.get("tokens"):
        from provenance.vocab.gguf_vocab import read_gguf_vocab

        return read_gguf_vocab(ckpt.embedded_tokenizer, Path(ckpt.root))
    return None


def is_tokenizer_only(spec: str | os.PathLike[str]) -> bool:
    """True when a spec names a tokenizer without weights: a tokenizer file, or a directory with no weights."""
    path = Path(spec).expanduser()
    if path.is_file():
        if _is_gguf(path):
            return _gguf_tensor_count(path) == 0  # llama.cpp's vocab-only files (ggml-vocab-*.gguf)
        return path.suffix.lower() not in WEIGHT_SUFFIXES
    if path.is_dir():
        has_weights = any(p.suffix.lower() in WEIGHT_SUFFIXES for p in path.iterdir()) or \
            (path / "onnx" / "model.onnx").is_file()
        return not has_weights and any((path / n).is_file() for n in DIRECTORY_FILES)
    return False


def read_tokenizer_file(path: Path) -> Vocabulary:
    """Read one tokenizer file, choosing the reader from its name and first bytes."""
    name, suffix = path.name.lower(), path.suffix.lower()
    with open_file(path) as f:
        head = f.read(256)
    if _is_gguf(path):
        return _from_gguf(path)
    if suffix in WEIGHT_SUFFIXES:
        return _from_directory(path.parent)
    if suffix == ".json":
        return _from_json(path)
    if name.endswith((".tiktoken", ".tiktoken.gz")) or head[:2] == b"\x1f\x8b" or looks_like_tiktoken(head):
        return read_tiktoken(path)
    if suffix == ".txt":
        return read_vocab_txt(path)
    if suffix == ".vocab":
        from provenance.vocab.quicktok import read_quicktok

        return read_quicktok(path)
    if suffix == ".model" or ".model." in name or head[:1] == b"\x0a":  # SentencePiece: protobuf field 1
        from provenance.vocab.sentencepiece import read_sentencepiece

        return read_sentencepiece(path)
    raise UnknownFormatError("not a tokenizer file provenance reads (tokenizer.json, tokenizer.model, "
                             "*.tiktoken[.gz], vocab.txt, vocab.json, tekken.json, *.vocab, *.gguf)", path=path)


def _from_json(path: Path) -> Vocabulary:
    try:
        return _json_tokenizer(path)
    except UnicodeEncodeError as exc:  # JSON may escape a lone surrogate ("\\ud800"), which no text encodes
        bad = exc.object[exc.start:exc.end]
        raise CorruptFileError(f"holds {bad!r}, a lone surrogate: not valid Unicode, so not a tokenizer's text",
                               path=path) from None
    except RecursionError:  # parsed just below the recursion limit, then walked a few frames deeper
        raise CorruptFileError("JSON nested too deeply for a tokenizer", path=path) from None


def _json_tokenizer(path: Path) -> Vocabulary:
    data = read_json(path)
    if is_tokenizer_json(data):
        return read_tokenizer_json(path, data)
    if isinstance(data, dict) and isinstance(data.get("config"), dict) and isinstance(data.get("vocab"), list):
        from provenance.vocab.tekken import read_tekken

        return read_tekken(path, data)
    if isinstance(data, dict) and data and all(isinstance(v, int) for v in data.values()):
        return read_vocab_json(path)
    raise not_a_tokenizer(path)


def _from_directory(folder: Path) -> Vocabulary:
    """The folder's tokenizer file (a regular file inside the folder: no link out of it is followed)."""
    for name in DIRECTORY_FILES:
        if (folder / name).is_file():
            return read_tokenizer_file(member(folder, folder / name))
    ggufs = sorted(folder.glob("*.gguf"))
    if len(ggufs) == 1:
        return _from_gguf(member(folder, ggufs[0]))
    raise MissingFileError(f"no tokenizer found (looked for {', '.join(DIRECTORY_FILES)} and a GGUF's own "
                           "vocabulary)", path=folder)


def _from_gguf(path: Path) -> Vocabulary:
    from provenance.io.gguf_reader import GGUFTensorReader
    from provenance.vocab.gguf_vocab import read_gguf_vocab

    reader = GGUFTensorReader(path)
    try:
        tok = reader.tokenizer()
    finally:
        reader.close()
    if not tok:
        raise MissingFileError("the GGUF file has no tokenizer.ggml.tokens vocabulary", path=path)
    return read_gguf_vocab(tok, path)


def _gguf_tensor_count(path: Path) -> int:
    """The tensor count in a GGUF header (magic, u32 version, u64 tensors; little-endian)."""
    with open_file(path) as f:
        head = f.read(16)
    return int.from_bytes(head[8:16], "little") if len(head) == 16 else -1


def _is_gguf(path: Path) -> bool:
    with open_file(path) as f:
        return f.read(4) == b"GGUF"
