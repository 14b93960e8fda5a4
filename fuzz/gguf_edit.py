"""GGUF-aware mutators: rewrite counts, lengths, type ids, dims and offsets found by a tolerant header walk."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import NamedTuple

_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
STRING, ARRAY = 8, 9


class Slot(NamedTuple):
    """An integer field of the header: its kind, byte offset and width."""

    kind: str  # version, count, strlen, vtype, itype, alen, ndims, dim, ttype, toffset, value
    pos: int
    width: int


class _Walk:
    """Walks as far as the header parses, recording every integer slot; never raises."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.order = "big" if len(data) >= 8 and int.from_bytes(data[4:8], "little") >= 1 << 16 else "little"
        self.slots: list[Slot] = []
        self.kv_spans: list[tuple[int, int]] = []
        self.pos = 0

    def int(self, kind: str, width: int) -> int:
        if self.pos + width > len(self.data):
            raise EOFError
        self.slots.append(Slot(kind, self.pos, width))
        value = int.from_bytes(self.data[self.pos:self.pos + width], self.order)
        self.pos += width
        return value

    def string(self) -> None:
        n = self.int("strlen", 8)
        if n > len(self.data) - self.pos:
            raise EOFError
        self.pos += n

    def value(self, vtype: int, depth: int = 0) -> None:
        if vtype == STRING:
            self.string()
        elif vtype == ARRAY:
            itype, n = self.int("itype", 4), self.int("alen", 8)
            if depth > 2 or n > len(self.data):
                raise EOFError
            if itype in _SCALAR_SIZES and n > 64:  # a long scalar array: record its first items only
                for _ in range(64):
                    self.value(itype, depth + 1)
                self.pos += (n - 64) * _SCALAR_SIZES[itype]
                if self.pos > len(self.data):
                    raise EOFError
                return
            for _ in range(n):
                self.value(itype, depth + 1)
        elif vtype in _SCALAR_SIZES:
            self.int("value", _SCALAR_SIZES[vtype])
        else:
            raise EOFError

    def run(self) -> None:
        try:
            self.pos = 4
            self.int("version", 4)
            n_tensors, n_kv = self.int("count", 8), self.int("count", 8)
            for _ in range(min(n_kv, 10_000)):
                start = self.pos
                self.string()
                self.value(self.int("vtype", 4))
                self.kv_spans.append((start, self.pos))
            for _ in range(min(n_tensors, 10_000)):
                self.string()
                for _ in range(min(self.int("ndims", 4), 16)):
                    self.int("dim", 8)
                self.int("ttype", 4)
                self.int("toffset", 8)
        except EOFError:
            pass


_WEIGHTS = {"version": 1, "count": 4, "strlen": 3, "vtype": 4, "itype": 4, "alen": 4, "ndims": 3, "dim": 5,
            "ttype": 5, "toffset": 5, "value": 2}


def _value(slot: Slot, current: int, rng: random.Random) -> int:
    if slot.kind in ("vtype", "itype", "ttype") and rng.random() < 0.7:
        return rng.randrange(42)
    return rng.choice((0, 1, current + 1, current - 1, current * 2, current + 32, 2**31, 2**32 - 1, 2**32,
                       2**63, 2**64 - 1, 2**62, 1 << 24, rng.randrange(1 << 16)))


def gguf_header(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """Overwrite one header integer (a count, length, type id, dim or offset) with a hostile value, or
    duplicate or drop a key/value record without fixing the count."""
    walk = _Walk(data)
    walk.run()
    if not walk.slots:
        return data
    if walk.kv_spans and rng.random() < 0.15:
        a, b = rng.choice(walk.kv_spans)
        return data[:b] + data[a:b] + data[b:] if rng.random() < 0.5 else data[:a] + data[b:]
    kinds = sorted({s.kind for s in walk.slots})
    kind = rng.choices(kinds, weights=[_WEIGHTS[k] for k in kinds])[0]
    slot = rng.choice([s for s in walk.slots if s.kind == kind])
    current = int.from_bytes(data[slot.pos:slot.pos + slot.width], walk.order)
    value = _value(slot, current, rng) % (1 << (8 * slot.width))
    return data[:slot.pos] + value.to_bytes(slot.width, walk.order) + data[slot.pos + slot.width:]
