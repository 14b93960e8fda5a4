"""A GGUF file's own vocabulary (``tokenizer.ggml.*``) -> `Vocabulary`.

llama.cpp stores pieces in the source tokenizer's spelling: "gpt2" models byte-level BPE
pieces, "llama" SentencePiece pieces with ``<0xNN>`` bytes, "bert" pieces with a "▁" word
start and no ``##``. Token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
6 byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from provenance.errors import CorruptFileError
from provenance.vocab.model import ADDED, BYTE, NORMAL, SPECIAL, Vocabulary, from_pairs
from provenance.vocab.pieces import (
    byte_fallback_value,
    byte_level_bytes,
    metaspace_bytes,
)

_KIND_BY_TYPE = {1: NORMAL, 2: SPECIAL, 3: SPECIAL, 4: ADDED, 5: SPECIAL, 6: BYTE}


def read_gguf_vocab(tok: dict[str, Any], path: Path) -> Vocabulary:
    """Canonical form of the dict `GGUFTensorReader.tokenizer()` returns."""
    tokens, types = tok.get("tokens") or [], tok.get("token_types")
    model = str(tok.get("model") or "")
    if types is not None and len(types) != len(tokens):
        raise CorruptFileError(f"tokenizer.ggml.token_type has {len(types)} entries for {len(tokens)} tokens",
                               path=path)
    spell = byte_level_bytes if model == "gpt2" else metaspace_bytes
    pairs, unspellable = [], 0
    for i, piece in enumerate(tokens):
        piece = piece if isinstance(piece, str) else bytes(piece).decode("utf-8", "replace")
        kind = _KIND_BY_TYPE.get(int(types[i]), NORMAL) if types is not None else NORMAL
        if kind == BYTE:
            value = byte_fallback_value(piece)
            if value is None:
                raise CorruptFileError(f"token {i} has the byte type but reads {piece[:20]!r}", path=path)
            pairs.append((i, value, BYTE))
        elif kind == NORMAL:
            spelled = spell(piece)
            unspellable += spelled is None
            pairs.append((i, spelled if spelled is not None else piece.encode("utf-8"), NORMAL))
        else:
            pairs.append((i, piece.encode("utf-8"), kind))
    merges = None
    if tok.get("merges") is not None:
        merges = []
        for m in tok["merges"]:
            a, _, b = str(m).partition(" ")
            merges.append((spell(a) or a.encode(), spell(b) or b.encode()))
    vocab = from_pairs(pairs, source=str(path), format="gguf", model=_MODELS.get(model, model or "unknown"),
                       merges=merges, pretokenizer=f"gguf pre-tokenizer {tok['pre']!r}" if tok.get("pre") else None,
                       chat_template=tok.get("chat_template"))
    if unspellable:
        vocab.notes.append(f"{unspellable} pieces are not valid byte-level spellings; kept as UTF-8 text")
    return vocab


_MODELS = {"gpt2": "bpe", "llama": "sentencepiece", "bert": "wordpiece", "t5": "unigram"}
