"""Byte-level mutators: flips, interesting integers, truncation, chunk edits, splicing.

Each mutator takes (data, rng, others) and returns new bytes; `others` are the other seeds of the
same target, for splicing. `mutate` stacks a few of them, chosen by `rng` (so a seed reproduces).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

MAX_SIZE = 1 << 20  # a mutated input never grows past 1 MiB: inputs must run in milliseconds

INTERESTING = (0, 1, -1, 2**7, 2**8 - 1, 2**15, 2**16 - 1, 2**16, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**62,
               2**63 - 1, 2**63, 2**64 - 1, 10**9, 10**12, 1 << 24, 1 << 40)
NUMBERS = (b"0", b"-1", b"1", b"65536", b"2147483648", b"4294967296", b"9223372036854775808",
           b"18446744073709551615", b"99999999999999999999999999", b"1e309", b"-1e309", b"NaN", b"Infinity",
           b"1.5", b"0x10", b"00", b"16777216", b"-0")

Mutator = Callable[[bytes, random.Random, Sequence[bytes]], bytes]


def _pos(data: bytes, rng: random.Random) -> int:
    return rng.randrange(len(data)) if data else 0


def flip_bits(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """Flip one to eight random bits."""
    if not data:
        return data
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        out[_pos(out, rng)] ^= 1 << rng.randrange(8)
    return bytes(out)


def set_bytes(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """Overwrite a few bytes with random or boundary values."""
    if not data:
        return bytes([rng.randrange(256)])
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        out[_pos(out, rng)] = rng.choice((0, 0xFF, 0x7F, 0x80, 0x01, 0x0A, 0x22, rng.randrange(256)))
    return bytes(out)


def set_int(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """Overwrite 1, 2, 4 or 8 bytes (often aligned) with an interesting integer, either byte order."""
    width = rng.choice((1, 2, 4, 8, 8))
    if len(data) < width:
        return data
    pos = _pos(data[:len(data) - width + 1], rng)
    if rng.random() < 0.5:
        pos -= pos % width
    if rng.random() < 0.3:  # nudge the current value instead
        value = int.from_bytes(data[pos:pos + width], "little") + rng.choice((-2, -1, 1, 2, 16, 4096, -4096))
    else:
        value = rng.choice(INTERESTING)
    value %= 1 << (8 * width)
    return data[:pos] + value.to_bytes(width, rng.choice(("little", "little", "big"))) + data[pos + width:]


def truncate(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """Cut the tail: a few bytes, or anywhere."""
    if not data:
        return data
    if rng.random() < 0.5:
        return data[:max(0, len(data) - rng.randint(1, 16))]
    return data[:_pos(data, rng)]


def delete_chunk(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """Remove a chunk from the middle."""
    if len(data) < 2:
        return data
    a = _pos(data, rng)
    return data[:a] + data[a + rng.randint(1, max(1, min(len(data) - a, rng.choice((4, 64, 4096))))):]


def duplicate_chunk(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """Copy a chunk elsewhere, sometimes many times over (bounded by MAX_SIZE)."""
    if not data:
        return data
    a = _pos(data, rng)
    chunk = data[a:a + rng.choice((1, 8, 64, 1024, 16384))]
    times = rng.choice((1, 1, 2, 16, 256, 4096))
    times = max(1, min(times, (MAX_SIZE - len(data)) // max(1, len(chunk))))
    b = _pos(data, rng)
    return data[:b] + chunk * times + data[b:]


def insert_random(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """Insert random bytes."""
    b = _pos(data, rng)
    return data[:b] + rng.randbytes(rng.choice((1, 4, 32, 512))) + data[b:]


def splice(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """Head of this input with the tail of another seed of the same format, or a chunk of it inserted."""
    if not others:
        return data
    other = rng.choice(others)
    if not other or not data:
        return data + other
    if rng.random() < 0.5:
        return data[:_pos(data, rng)] + other[_pos(other, rng):]
    a = _pos(other, rng)
    b = _pos(data, rng)
    return data[:b] + other[a:a + rng.choice((16, 256, 4096))] + data[b:]


_DIGITS = re.compile(rb"-?\d+(\.\d+)?")


def text_number(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """Replace a decimal number in text with a boundary value (huge, negative, float, NaN...)."""
    spans = [m.span() for _, m in zip(range(2000), _DIGITS.finditer(data))]
    if not spans:
        return data
    a, b = rng.choice(spans)
    return data[:a] + rng.choice(NUMBERS) + data[b:]


BYTE_MUTATORS: tuple[Mutator, ...] = (flip_bits, set_bytes, set_int, set_int, truncate, delete_chunk,
                                      duplicate_chunk, insert_random, splice, text_number)


def token_inserter(tokens: Sequence[bytes]) -> Mutator:
    """A mutator that inserts or overwrites with one of a format's syntax `tokens`."""

    def insert_token(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
        token = rng.choice(tokens) * rng.choice((1, 1, 1, 2, 64))
        b = _pos(data, rng)
        cut = rng.choice((0, 0, 1, len(token)))
        return data[:b] + token + data[b + cut:]

    return insert_token


def mutate(data: bytes, rng: random.Random, others: Sequence[bytes], mutators: Sequence[Mutator],
           structured: Sequence[Mutator] = ()) -> bytes:
    """Apply one to four mutators (structure-aware ones for about half the inputs when given). A structure-aware
    mutator that trips on what an earlier one made (a shape turned into a string) leaves the input as it was."""
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        pool = structured if structured and rng.random() < 0.5 else mutators
        try:
            data = rng.choice(pool)(data, rng, others)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError, OverflowError):
            continue
        if len(data) > MAX_SIZE:
            data = data[:MAX_SIZE]
    return data
