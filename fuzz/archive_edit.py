"""Mutators for containers: torch zip archives and pickles, gzip streams (edited inside, or bombs)."""

from __future__ import annotations

import functools
import gzip
import io
import pickletools
import random
import warnings
import zipfile
import zlib
from collections.abc import Sequence

from fuzz.mutate import BYTE_MUTATORS, MAX_SIZE

_INT_OPS = {"BININT", "BININT1", "BININT2", "LONG1", "INT", "LONG"}
_STR_OPS = {"BINUNICODE", "SHORT_BINUNICODE", "UNICODE", "BINSTRING", "SHORT_BINSTRING"}
_INTS = (0, 1, -1, 2**31 - 1, 2**31, -(2**31), 2**32, 2**62, 2**63 - 1, 2**63, -(2**63), 2**64, 10**30, 1 << 40)
_STRINGS = ("FloatStorage", "HalfStorage", "DoubleStorage", "LongStorage", "BoolStorage", "QInt8Storage",
            "UntypedStorage", "cpu", "cuda", "meta", "0", "99", "../data/0", "storage", "", "x" * 1000,
            "_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_qtensor", "OrderedDict")


def _long1(value: int) -> bytes:
    """A pickle LONG1 opcode for `value` (any size: pickle protocol 2 has no frames to fix up)."""
    n = (value.bit_length() + 8) // 8 if value else 0
    return b"\x8a" + bytes([n]) + value.to_bytes(n, "little", signed=True)


def _unicode(text: str) -> bytes:
    raw = text.encode("utf-8")
    return b"X" + len(raw).to_bytes(4, "little") + raw


def _ops(data: bytes) -> list[tuple[str, int, int]]:
    """(opcode name, start, end) of every opcode in the pickles at the head of `data`, as far as they parse."""
    out: list[tuple[str, int, int]] = []
    stream = io.BytesIO(data)
    try:
        while stream.tell() < len(data) and len(out) < 20000:
            ops = list(pickletools.genops(stream))
            for (op, _arg, pos), nxt in zip(ops, ops[1:] + [(None, None, stream.tell())]):
                out.append((op.name, pos, nxt[2]))
    except Exception:  # noqa: BLE001 - a damaged pickle simply ends the walk
        pass
    return out


def pickle_values(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """Replace an integer (a size, stride, offset, numel) or a string (a storage type, key, device) in a pickle."""
    ops = [o for o in _ops(data) if o[0] in _INT_OPS | _STR_OPS]
    if not ops:
        return data
    name, start, end = rng.choice(ops)
    new = _long1(rng.choice(_INTS)) if name in _INT_OPS else _unicode(rng.choice(_STRINGS))
    return data[:start] + new + data[end:]


def _zip_members(data: bytes) -> list[tuple[str, bytes]] | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return [(i.filename, z.read(i)) for i in z.infolist()[:64]]
    except Exception:  # noqa: BLE001 - not a readable zip: leave it to the byte mutators
        return None


def zip_member(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """Edit inside a torch zip archive: a member's bytes or pickle values, or drop/duplicate/rename a member."""
    members = _zip_members(data)
    if not members:
        return data
    i = rng.randrange(len(members))
    name, body = members[i]
    op = rng.randrange(6)
    if op <= 1 or (op == 2 and not name.endswith(".pkl")):
        members[i] = (name, rng.choice(BYTE_MUTATORS)(body, rng, []))
    elif op == 2:
        members[i] = (name, pickle_values(body, rng, []))
    elif op == 3:
        del members[i]
    elif op == 4:
        members.insert(i, (name, rng.choice((body, b"", body * 2))))
    else:
        members[i] = (rng.choice(("archive/data/99", "../evil", "archive/data.pkl", "other/data.pkl", "x" * 300,
                                  name.upper(), name + "/")), body)
    out = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(out, "w", rng.choice((zipfile.ZIP_STORED,) * 3 +
                                                                           (zipfile.ZIP_DEFLATED,))) as z:
        warnings.simplefilter("ignore")
        for n, b in members:
            z.writestr(n, b)
    return out.getvalue()


def gzip_content(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """Decompress, mutate the text inside, and compress it again."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as g:
            inner = g.read(MAX_SIZE)
    except (OSError, EOFError, zlib.error):
        return data
    inner = rng.choice(BYTE_MUTATORS)(inner, rng, []) if rng.random() < 0.5 else _line_edit(inner, rng)
    return gzip.compress(inner, compresslevel=rng.choice((1, 6, 9)), mtime=0)


def _line_edit(text: bytes, rng: random.Random) -> bytes:
    """Drop, swap, repeat or cut lines of a line-oriented file (many results stay valid)."""
    lines = text.split(b"\n")
    if len(lines) < 2:
        return text
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    op = rng.randrange(4)
    if op == 0:
        del lines[i]
    elif op == 1:
        lines[i], lines[j] = lines[j], lines[i]
    elif op == 2:
        lines.insert(j, lines[i])
    else:
        lines = lines[:i + 1]
    return b"\n".join(lines)


def gzip_bomb(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """A small gzip that inflates to 8 or 40 MiB (zeros, or one line over and over): past what a small file
    may inflate to."""
    return _bomb(rng.choice((b"\x00" * 64, b"IQ== 1\n" * 8, b"\n" * 64, b"QUFB 12345\n" * 6)), rng.choice((8, 40)))


@functools.lru_cache(maxsize=16)
def _bomb(line: bytes, megabytes: int) -> bytes:
    """`line` repeated to `megabytes` MiB, gzipped (built once per process: it takes seconds)."""
    total = megabytes << 20
    chunk = line * ((1 << 20) // len(line))
    z = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    out = bytearray()
    for _ in range(total // len(chunk)):
        out += z.compress(chunk)
        if len(out) > MAX_SIZE:
            break
    out += z.flush()
    return bytes(out[:MAX_SIZE])
