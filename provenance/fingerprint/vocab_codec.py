"""A `Vocabulary` as bytes for a fingerprint file: every token with its kind, rules, merges digest.

Merges are kept as their count and sha256 only (the full list would double the file); the
comparison then reports whether merges are identical, not how many are shared. Decoding is
bounded: a table may expand to `RATIO` times its compressed size plus 5 bytes per id (real
tables expand 2-3x), so a zlib bomb is refused after that many bytes, not after gigabytes.
A table decoded before (the same compressed bytes: a registry's models often share a tokenizer) is
not parsed again, and the new vocabulary starts with the token indexes the first one built; every
decoded table carries a content key, so `provenance.vocab.cache` pairs two tables' tokens once.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from typing import Any

import numpy as np

from provenance import fastpath
from provenance.errors import CorruptFileError
from provenance.vocab.cache import LRU, set_content_key
from provenance.vocab.model import KINDS, Vocabulary

RATIO = 16  # most a token table may expand (real ones: 2.1-2.7x)
MAX_IDS = 1 << 22  # most ids a vocabulary may have (the largest real ones: ~262k)
_HEAD = struct.Struct("<BI")  # kind code and length before each token's bytes
_ENTRY = _HEAD.size
_CODE = {"": 0, **{k: i + 1 for i, k in enumerate(KINDS)}}
_KIND = {v: k for k, v in _CODE.items()}
_KIND_BY_CODE = [_KIND.get(code) for code in range(256)]  # None: not a kind code


def encode(v: Vocabulary) -> tuple[np.ndarray, dict[str, Any]]:
    """(zlib-compressed token table as uint8, JSON fields) of a vocabulary."""
    parts = []
    for t, k in zip(v.tokens, v.kinds):
        body = t if t is not None else b""
        parts.append(struct.pack("<BI", _CODE[k] if t is not None else 0, len(body)) + body)
    blob = zlib.compress(b"".join(parts), 9)
    fields = {"source": v.source, "format": v.format, "model": v.model, "size": len(v),
              "pretokenizer": v.pretokenizer, "normalizer": v.normalizer, "chat_template": v.chat_template,
              "specials_recorded": v.specials_recorded, "notes": list(v.notes),
              "merges_count": None if v.merges is None else len(v.merges),
              "merges_sha256": v.merges_digest(), "digest": v.digest(), "summary": v.summary()}
    return np.frombuffer(blob, dtype=np.uint8).copy(), fields


def decode(blob: np.ndarray, fields: dict[str, Any], where: str) -> Vocabulary:
    """The vocabulary back from `encode`'s output; a table that does not parse is a corrupt file."""
    if not isinstance(fields, dict) or type(fields.get("size")) is not int or not 0 <= fields["size"] <= MAX_IDS:
        size = fields.get("size") if isinstance(fields, dict) else None
        raise CorruptFileError(f"the fingerprint's tokenizer metadata gives no vocabulary size in [0, {MAX_IDS:,}] "
                               f"(got {str(size)[:40]!r})", path=where)
    key = _table_key(blob, fields["size"]) if fastpath.enabled() else None
    twin = _TABLES.get(key) if key is not None else None
    if twin is not None:
        tokens, kinds = twin.tokens, twin.kinds
    else:
        tokens, kinds = _parse(_inflate(blob, RATIO * blob.size + _ENTRY * fields["size"], where), fields["size"],
                               where)
    if len(tokens) != fields["size"]:
        raise CorruptFileError(f"the fingerprint's token table holds {len(tokens)} ids, its header says "
                               f"{fields['size']}", path=where)
    v = Vocabulary(source=str(fields["source"]), format=str(fields["format"]), model=str(fields["model"]),
                   tokens=tokens, kinds=kinds, merges=None, pretokenizer=fields.get("pretokenizer"),
                   normalizer=fields.get("normalizer"), chat_template=fields.get("chat_template"),
                   specials_recorded=bool(fields.get("specials_recorded", True)), notes=list(fields.get("notes", [])))
    if fields.get("merges_count") is not None:
        v.merges_recorded = (int(fields["merges_count"]), str(fields["merges_sha256"]))
    if twin is not None:
        _share_token_indexes(twin, v)
    elif key is not None:
        _TABLES.put(key, v)
    if key is not None:  # `vocab.cache.cached_map` then pairs the tokens of two tables once
        set_content_key(v, f"fingerprint token table {key[0].hex()} {key[1]}")
    return v


TOKEN_MEMOS = ("digest", "class_counts", "byte_sorted", "specials")  # `Vocabulary.memo` keys computed from tokens and kinds only


def _share_token_indexes(twin: Vocabulary, v: Vocabulary) -> None:
    """Give `v` what `twin` (the same token table) computes from its tokens and kinds alone: its token indexes,
    digest and class counts (built on `twin` first, so a registry of models sharing a tokenizer builds them
    once), and whatever else of TOKEN_MEMOS `twin` holds. Both are read-only once built."""
    from provenance.vocab.classes import vocabulary_classes

    twin.digest()
    vocabulary_classes(twin)
    v.share_indexes(twin, TOKEN_MEMOS)


def _table_key(blob: np.ndarray, size: int) -> tuple[bytes, int]:
    """A decoded token table's cache key: (sha256 of the compressed table, size)."""
    return hashlib.sha256(np.ascontiguousarray(blob).data).digest(), size


# Decoded token tables: a few, at most 2^20 tokens in all, least recently used first out.
_TABLES = LRU(8, weight=lambda v: len(v.tokens), most_weight=1 << 20)


def _inflate(blob: np.ndarray, limit: int, where: str) -> bytes:
    """The zlib stream decompressed, refused once it passes `limit` bytes (a zlib bomb) or is cut short."""
    d = zlib.decompressobj()
    try:
        raw = d.decompress(blob.tobytes(), limit + 1)
    except zlib.error as exc:
        raise CorruptFileError(f"the fingerprint's token table does not parse ({exc})", path=where) from None
    if len(raw) > limit or d.unconsumed_tail:
        raise CorruptFileError(f"the fingerprint's token table expands past {limit:,} bytes ({RATIO}x its "
                               f"{blob.size:,} compressed bytes plus {_ENTRY} per id): refused as a zlib bomb",
                               path=where)
    if not d.eof or d.unused_data:
        raise CorruptFileError("the fingerprint's token table is cut short or followed by other bytes", path=where)
    return raw


def _parse(raw: bytes, size: int, where: str) -> tuple[list[bytes | None], list[str]]:
    """(tokens, kinds) from the decompressed table; at most `size` + 1 entries are read."""
    unpack, kind_of = _HEAD.unpack_from, _KIND_BY_CODE
    tokens: list[bytes | None] = []
    kinds: list[str] = []
    add_token, add_kind = tokens.append, kinds.append  # one loop step per token: 200k-token tables
    pos, end = 0, len(raw)
    for i in range(size + 1):
        if pos >= end:
            break
        if pos + _ENTRY > end:
            raise CorruptFileError("the fingerprint's token table ends inside an entry", path=where)
        code, n = unpack(raw, pos)
        pos += _ENTRY
        stop, kind = pos + n, kind_of[code]
        if kind is None or stop > end:
            raise CorruptFileError(f"the fingerprint's token table has a bad entry at id {i} (kind code "
                                   f"{code}, {n} bytes, {end - pos} left)", path=where)
        add_token(raw[pos:stop] if code else None)
        add_kind(kind)
        pos = stop
    return tokens, kinds
