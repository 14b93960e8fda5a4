"""Tokenizer spec -> `Vocabulary`: pick the reader by file name and content, never by trust.

A spec is a tokenizer file (tokenizer.json, tokenizer.model, *.tiktoken[.gz], vocab.txt,
vocab.json, tekken.json, quicktok *.vocab, *.gguf), a directory or cached model id holding
one, with or without weights beside it, or a resolved `ModelSource`: which file that is, is
`provenance.io.source.resolve`'s decision, the same one the weight signal uses.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from provenance import fastpath
from provenance.errors import (
    CheckpointNotFoundError,
    CorruptFileError,
    MissingFileError,
    ProvenanceError,
    SourceKindError,
    UnknownFormatError,
)
from provenance.io.guard import open_file
from provenance.io.source import (
    VOCAB_FILES,
    WEIGHT_SUFFIXES,
    ModelSource,
    is_repo_id,
    resolve,
)
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

DIRECTORY_FILES = VOCAB_FILES  # a folder's tokenizer files in the order we trust them: the fullest first


def load_vocabulary(spec: str | os.PathLike[str] | ModelSource) -> Vocabulary:
    """Read the tokenizer of a spec (file, folder, cached model id or `ModelSource`) from the file `resolve`
    picked for it; a ProvenanceError on bad input."""
    try:
        source = resolve(spec)
    except CheckpointNotFoundError:
        if isinstance(spec, ModelSource) or is_repo_id(os.fspath(spec)):
            raise
        raise CheckpointNotFoundError(f"no such tokenizer file or directory: {os.fspath(spec)}") from None
    if source.kind in ("fingerprint", "endpoint"):
        where = f"{source.spec}: " if source.kind == "endpoint" else ""
        raise SourceKindError(f"{where}{source.what()}, not a tokenizer; its vocabulary is not read from files",
                              path=source.path)
    if source.vocab_file is None:
        raise MissingFileError(f"no tokenizer found (looked for {', '.join(VOCAB_FILES)} and a GGUF's own "
                               "vocabulary)", path=source.path)
    if source.vocab_file in source.weights:  # the GGUF's own vocabulary
        return _from_gguf(source.vocab_file)
    return read_tokenizer_file(source.vocab_file)


def vocabulary_of(ckpt: Checkpoint) -> Vocabulary | None:
    """The tokenizer a checkpoint ships: files beside the weights first, then a GGUF's own vocabulary."""
    for name in DIRECTORY_FILES:
        if name in ckpt.tokenizer_files:
            return read_tokenizer_file(ckpt.tokenizer_files[name])
    if ckpt.embedded_tokenizer and ckpt.embedded_tokenizer.get("tokens"):
        from provenance.vocab.gguf_vocab import read_gguf_vocab

        return read_gguf_vocab(ckpt.embedded_tokenizer, Path(ckpt.root))
    return None


def is_tokenizer_only(spec: str | os.PathLike[str] | ModelSource) -> bool:
    """True when `resolve` finds a tokenizer without weights (a tokenizer file, a folder or cached id without
    weights, a vocab-only GGUF); False otherwise, also when the spec is bad (opening it says why)."""
    try:
        return resolve(spec).kind == "tokenizer"
    except ProvenanceError:
        return False


def read_tokenizer_file(path: Path) -> Vocabulary:
    """Read one tokenizer file, choosing the reader from its name and first bytes (once per content: `cache`)."""
    if not fastpath.enabled():
        return _read_tokenizer_file(path)
    from provenance.vocab.cache import cached_vocabulary

    return cached_vocabulary(path, _read_tokenizer_file)


def _read_tokenizer_file(path: Path) -> Vocabulary:
    name, suffix = path.name.lower(), path.suffix.lower()
    with open_file(path) as f:
        head = f.read(256)
    if _is_gguf(path) or suffix == ".gguf":
        return _from_gguf(path)
    if suffix in WEIGHT_SUFFIXES:  # the tokenizer beside the weights, as `resolve` picks it
        return load_vocabulary(path)
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


def _is_gguf(path: Path) -> bool:
    with open_file(path) as f:
        return f.read(4) == b"GGUF"
