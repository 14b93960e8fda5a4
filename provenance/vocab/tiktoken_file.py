"""tiktoken rank files (``.tiktoken``, also gzipped) -> `Vocabulary`: one ``base64(bytes) rank`` per line.

The rank is the id and the merge priority; the file carries no special tokens and no
split pattern (tiktoken keeps those in code), so both are reported as not recorded.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import zlib
from pathlib import Path

from provenance.errors import CorruptFileError
from provenance.io import guard
from provenance.vocab.model import NORMAL, Vocabulary, from_pairs

MAX_DECOMPRESSED = 256 << 20  # a 250K-token rank file is ~4 MB; refuse gzip bombs


def read_tiktoken(path: Path) -> Vocabulary:
    """Read a tiktoken rank file; ranks must be unique non-negative integers."""
    raw = _read_bytes(path)
    pairs, seen = [], set()
    for n, line in enumerate(raw.split(b"\n"), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise CorruptFileError(f"line {n} is not 'base64-token rank': {line[:60].decode('latin-1')!r}",
                                   path=path)
        try:
            token = base64.b64decode(parts[0], validate=True)
        except (binascii.Error, ValueError):
            raise CorruptFileError(f"line {n}: {parts[0][:40].decode('latin-1')!r} is not base64",
                                   path=path) from None
        rank = int(parts[1])
        if rank in seen or rank >= 1 << 24:
            raise CorruptFileError(f"line {n}: rank {rank} is repeated or out of range", path=path)
        seen.add(rank)
        pairs.append((rank, token, NORMAL))
    if not pairs:
        raise CorruptFileError("no tokens in the tiktoken file", path=path)
    return from_pairs(pairs, source=str(path), format="tiktoken", model="bpe", specials_recorded=False,
                      notes=["tiktoken files record no special tokens or split pattern"])


def looks_like_tiktoken(head: bytes) -> bool:
    """True when the first line of a file reads ``base64 rank``."""
    first = head.split(b"\n", 1)[0].split()
    if len(first) != 2 or not first[1].isdigit():
        return False
    try:
        base64.b64decode(first[0], validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is a gzip stream (inflating at most `inflate_limit`)."""
    with guard.open_file(path) as f:
        head = f.read(2)
        f.seek(0)
        if head != b"\x1f\x8b":
            return f.read()
        limit = inflate_limit(f.seek(0, 2))
        f.seek(0)
        try:
            with gzip.GzipFile(fileobj=f) as g:
                data = g.read(limit + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise CorruptFileError(f"broken gzip stream ({exc})", path=path) from None
    if len(data) > limit:
        raise CorruptFileError(f"decompresses to more than {limit >> 20} MiB; not a tiktoken file", path=path)
    return data


def inflate_limit(compressed: int) -> int:
    """How far a gzipped rank file of `compressed` bytes may inflate: 8 MiB plus 4x its size, at most
    MAX_DECOMPRESSED. Real ones inflate about 2x (o200k: 1.7 -> 3.6 MB); parsing costs ~15 bytes per byte
    inflated, so a small bomb must not be let through to 256 MiB."""
    return min(MAX_DECOMPRESSED, (8 << 20) + 4 * compressed)
