"""A `Vocabulary` as bytes for a fingerprint file: every token with its kind, rules, merges digest.

Merges are kept as their count and sha256 only (the full list would double the file); the
comparison then reports whether merges are identical, not how many are shared.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np

from provenance.errors import CorruptFileError
from provenance.vocab.model import KINDS, Vocabulary

_CODE = {"": 0, **{k: i + 1 for i, k in enumerate(KINDS)}}
_KIND = {v: k for k, v in _CODE.items()}


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
    try:
        raw = zlib.decompress(blob.tobytes())
        tokens: list[bytes | None] = []
        kinds: list[str] = []
        pos = 0
        while pos < len(raw):
            code, n = struct.unpack_from("<BI", raw, pos)
            pos += 5
            tokens.append(raw[pos:pos + n] if code else None)
            kinds.append(_KIND[code])
            pos += n
    except (zlib.error, struct.error, KeyError) as exc:
        raise CorruptFileError(f"the fingerprint's token table does not parse ({exc})", path=where) from None
    if len(tokens) != fields.get("size"):
        raise CorruptFileError(f"the fingerprint's token table holds {len(tokens)} ids, its header says "
                               f"{fields.get('size')}", path=where)
    v = Vocabulary(source=str(fields["source"]), format=str(fields["format"]), model=str(fields["model"]),
                   tokens=tokens, kinds=kinds, merges=None, pretokenizer=fields.get("pretokenizer"),
                   normalizer=fields.get("normalizer"), chat_template=fields.get("chat_template"),
                   specials_recorded=bool(fields.get("specials_recorded", True)), notes=list(fields.get("notes", [])))
    if fields.get("merges_count") is not None:
        v.merges_recorded = (int(fields["merges_count"]), str(fields["merges_sha256"]))
    return v
