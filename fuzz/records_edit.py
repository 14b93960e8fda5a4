"""quicktok-aware mutators: rewrite the record count, a token length, a rank or an id in place."""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence

_VALUES = (0, 1, 2**16 - 1, 2**31, 2**32 - 1, 1 << 24, (1 << 24) - 1, 400, 401, 65536)


def _vocab_slots(data: bytes) -> list[tuple[int, int]]:
    """(offset, width) of the count and of each record's u16 length and u32 rank, as far as they parse."""
    if len(data) < 4:
        return []
    slots, pos = [(0, 4)], 4
    while pos + 2 <= len(data) and len(slots) < 4000:
        (size,) = struct.unpack_from("<H", data, pos)
        if pos + 2 + size + 4 > len(data):
            break
        slots += [(pos, 2), (pos + 2 + size, 4)]
        pos += 2 + size + 4
    return slots


def _special_slots(data: bytes) -> list[tuple[int, int]]:
    """(offset, width) of the count and of each record's u32 id and u16 length."""
    if len(data) < 4:
        return []
    slots, pos = [(0, 4)], 4
    while pos + 6 <= len(data) and len(slots) < 4000:
        (size,) = struct.unpack_from("<H", data, pos + 4)
        slots += [(pos, 4), (pos + 4, 2)]
        pos += 6 + size
    return slots


def _rewrite(data: bytes, slots: list[tuple[int, int]], rng: random.Random) -> bytes:
    if not slots:
        return data
    pos, width = rng.choice(slots)
    current = int.from_bytes(data[pos:pos + width], "little")
    value = rng.choice(_VALUES + (current + 1, current - 1, current * 2)) % (1 << (8 * width))
    return data[:pos] + value.to_bytes(width, "little") + data[pos + width:]


def quicktok_vocab(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """A hostile count, token length or rank in a .vocab file."""
    return _rewrite(data, _vocab_slots(data), rng)


def quicktok_special(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """A hostile count, id or text length in a .special file."""
    return _rewrite(data, _special_slots(data), rng)
