"""Piece spellings -> canonical bytes: GPT-2's byte table, SentencePiece's "▁", ``<0xNN>``, ``##``.

>>> byte_level_bytes("Ġthe"), metaspace_bytes("▁the"), byte_fallback_value("<0x0A>")
(b' the', b' the', b'\\n')
>>> wordpiece_bytes("##ing"), wordpiece_bytes("play"), wordpiece_bytes("[unused0]")
(b'ing', b' play', b'[unused0]')
"""

from __future__ import annotations

import re
from functools import lru_cache

METASPACE = "\u2581"
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's reversible byte <-> printable character table, character -> byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars, n = list(printable), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def byte_level_bytes(piece: str) -> bytes | None:
    """A byte-level BPE piece ("Ġthe") as bytes; None if it has a character outside the table."""
    table = _byte_decoder()
    try:
        return bytes(table[c] for c in piece)
    except KeyError:
        return None


def metaspace_bytes(piece: str) -> bytes:
    """A SentencePiece piece ("▁the") as bytes, "▁" standing for a space."""
    return piece.replace(METASPACE, " ").encode("utf-8")


def byte_fallback_value(piece: str) -> bytes | None:
    """The byte a ``<0xNN>`` piece stands for, or None for any other piece."""
    m = _BYTE_PIECE.fullmatch(piece)
    return bytes([int(m.group(1), 16)]) if m else None


def wordpiece_bytes(piece: str, prefix: str = "##") -> bytes:
    """A WordPiece piece: a continuation loses its prefix, a word start gains a leading space.

    Bracketed pieces ("[unused0]") stay as written: llama.cpp's GGUF conversion does the
    same, so a BERT vocabulary reads alike from vocab.txt, tokenizer.json and GGUF.
    """
    if prefix and piece.startswith(prefix) and len(piece) > len(prefix):
        return piece[len(prefix):].encode("utf-8")
    if piece.startswith("[") and piece.endswith("]"):
        return piece.encode("utf-8")
    return b" " + piece.encode("utf-8")
