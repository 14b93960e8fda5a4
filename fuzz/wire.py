"""Protobuf wire format, tolerant: walk the fields of ONNX and SentencePiece files to mutate or cut them."""

from __future__ import annotations

from typing import NamedTuple

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5


class Span(NamedTuple):
    """One field: number, wire type, where its key starts, where its payload starts and ends."""

    number: int
    wire: int
    key_start: int
    start: int  # payload (after the length prefix for LEN fields)
    end: int
    value: int  # the varint, or the length of a LEN field


def encode_varint(value: int) -> bytes:
    """`value` (taken mod 2^64) as a protobuf varint."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int] | None:
    value = shift = 0
    for i in range(pos, min(end, pos + 10)):
        value |= (buf[i] & 0x7F) << shift
        if buf[i] < 0x80:
            return value, i + 1
        shift += 7
    return None


def fields(buf: bytes, start: int = 0, end: int | None = None) -> list[Span]:
    """The fields of the message in buf[start:end], stopping quietly at the first malformed one."""
    end = len(buf) if end is None else end
    out: list[Span] = []
    pos = start
    while pos < end:
        key = _varint(buf, pos, end)
        if key is None or key[0] >> 3 == 0:
            break
        (k, after) = key
        number, wire = k >> 3, k & 7
        if wire == VARINT:
            v = _varint(buf, after, end)
            if v is None:
                break
            out.append(Span(number, wire, pos, after, v[1], v[0]))
            pos = v[1]
        elif wire == LEN:
            n = _varint(buf, after, end)
            if n is None or n[1] + n[0] > end:
                break
            out.append(Span(number, wire, pos, n[1], n[1] + n[0], n[0]))
            pos = n[1] + n[0]
        elif wire in (FIXED64, FIXED32):
            size = 8 if wire == FIXED64 else 4
            if after + size > end:
                break
            out.append(Span(number, wire, pos, after, after + size, 0))
            pos = after + size
        else:
            break
    return out


def walk(buf: bytes, start: int = 0, end: int | None = None, depth: int = 0, limit: int = 4000) -> list[Span]:
    """Every field, nested messages included (a LEN payload that parses whole is taken as a message)."""
    end = len(buf) if end is None else end
    found: list[Span] = []
    stack = [(start, end, depth)]
    while stack and len(found) < limit:
        s, e, d = stack.pop()
        spans = fields(buf, s, e)
        found.extend(spans)
        for f in spans:
            if f.wire == LEN and d < 12 and f.end > f.start and _parses_whole(buf, f.start, f.end):
                stack.append((f.start, f.end, d + 1))
    return found[:limit]


def _parses_whole(buf: bytes, start: int, end: int) -> bool:
    spans = fields(buf, start, end)
    return bool(spans) and spans[-1].end == end


def key(number: int, wire: int) -> bytes:
    """The key bytes of a field."""
    return encode_varint(number << 3 | wire)


def len_field(number: int, payload: bytes) -> bytes:
    """A whole LEN field."""
    return key(number, LEN) + encode_varint(len(payload)) + payload
