"""Shared helpers for the tokenizer tests: cached loads of the real files, vocab-only GGUF writers."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import gguf

from provenance.vocab.load import load_vocabulary
from provenance.vocab.model import BYTE, NORMAL, SPECIAL, Vocabulary
from tests.real_models import require


@lru_cache(maxsize=None)
def real(path: Path) -> Vocabulary:
    """A real tokenizer file read once per test session (skips when its package is missing)."""
    return load_vocabulary(require(path))


def write_vocab_gguf(path: Path, model: str, pieces: list[str], types: list[int],
                     merges: list[str] | None = None) -> Path:
    """A vocabulary-only GGUF, written the way llama.cpp's converters write one (no tensors)."""
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model(model)
    w.add_token_list(pieces)
    w.add_token_types(types)
    if merges is not None:
        w.add_token_merges(merges)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def sentencepiece_pieces(v: Vocabulary) -> tuple[list[str], list[int]]:
    """llama.cpp's spelling of a SentencePiece vocabulary: "▁" pieces, <0xNN> bytes, token types."""
    pieces, types = [], []
    for t, k in zip(v.tokens, v.kinds):
        assert t is not None
        if k == BYTE:
            pieces.append(f"<0x{t[0]:02X}>")
        elif k == NORMAL:
            pieces.append(t.decode("utf-8").replace(" ", "\u2581"))
        else:
            pieces.append(t.decode("utf-8"))
        types.append({NORMAL: 1, BYTE: 6, SPECIAL: 3}.get(k, 4))
    return pieces, types


def phantom_space(piece: str) -> str:
    """llama.cpp's BERT conversion: [x] kept, ##x -> x, x -> ▁x."""
    if piece.startswith("[") and piece.endswith("]"):
        return piece
    return piece[2:] if piece.startswith("##") else "\u2581" + piece
