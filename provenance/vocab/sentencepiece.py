"""SentencePiece ``.model`` files -> `Vocabulary`, read with a small protobuf decoder of our own.

A ``.model`` file is a serialized ``ModelProto``. We decode only the wire format and the few
fields we need (pieces, trainer and normalizer specs), so neither ``sentencepiece`` nor
``google.protobuf`` is required, and a damaged file gives a one-line `CorruptFileError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from provenance.errors import CorruptFileError
from provenance.io import guard
from provenance.vocab.model import ADDED, BYTE, NORMAL, SPECIAL, Vocabulary, from_pairs
from provenance.vocab.pieces import byte_fallback_value, metaspace_bytes

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5
_WIRE_SIZE = {FIXED64: 8, FIXED32: 4}
_MAX_VARINT_BYTES = 10  # a uint64 takes at most ten 7-bit groups

# SentencePiece.Type -> our kind (1 NORMAL, 2 UNKNOWN, 3 CONTROL, 4 USER_DEFINED, 5 UNUSED, 6 BYTE)
PIECE_KINDS = {1: NORMAL, 2: SPECIAL, 3: SPECIAL, 4: ADDED, 5: SPECIAL, 6: BYTE}
_PIECE_FIELDS = {1: ("text", LEN), 2: ("score", FIXED32), 3: ("type", VARINT)}
MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}
_FIX = "the file is cut short or is not a SentencePiece .model; fetch it again"


class Field(NamedTuple):
    """One protobuf field: its number, wire type, varint value, and payload span in the buffer."""

    number: int
    wire: int
    value: int  # the varint (0 for other wire types)
    start: int  # payload [start, end) for LEN / FIXED32 / FIXED64
    end: int


def _varint(buf: bytes, pos: int, end: int, path: Path) -> tuple[int, int]:
    """Decode a varint at `pos` that must finish before `end`: (value, next position)."""
    if pos < end and buf[pos] < 0x80:  # the common one-byte case, kept fast
        return buf[pos], pos + 1
    value = shift = 0
    for i in range(pos, min(end, pos + _MAX_VARINT_BYTES)):
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i + 1
        shift += 7
    if end - pos >= _MAX_VARINT_BYTES:
        raise CorruptFileError(f"varint at byte {pos} runs past 10 bytes; {_FIX}", path=path)
    raise CorruptFileError(f"varint at byte {pos} is truncated at byte {end}; {_FIX}", path=path)


def fields(buf: bytes, start: int, end: int, path: Path) -> Iterator[Field]:
    """The fields of the message in ``buf[start:end]``, each bounds-checked against `end`.

    >>> [tuple(f) for f in fields(b"\\x08\\x96\\x01\\x12\\x02hi", 0, 7, Path("x.model"))]
    [(1, 0, 150, 1, 3), (2, 2, 0, 5, 7)]
    """
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end, path)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise CorruptFileError(f"field number 0 at byte {pos}; {_FIX}", path=path)
        if wire == VARINT:
            value, after = _varint(buf, pos, end, path)
            yield Field(number, wire, value, pos, after)
            pos = after
            continue
        if wire == LEN:
            size, pos = _varint(buf, pos, end, path)
        elif wire in _WIRE_SIZE:
            size = _WIRE_SIZE[wire]
        else:
            raise CorruptFileError(f"field {number} before byte {pos} has wire type {wire}, which a "
                                   f"SentencePiece model never uses (only 0, 1, 2, 5); {_FIX}", path=path)
        if size > end - pos:
            raise CorruptFileError(f"field {number} at byte {pos} needs {size} bytes but only {end - pos} "
                                   f"remain in its message; {_FIX}", path=path)
        yield Field(number, wire, 0, pos, pos + size)
        pos += size


def _expect(f: Field, wire: int, what: str, path: Path) -> None:
    """Raise unless field `f` (`what`, formatted with the field) has its schema's wire type."""
    if f.wire != wire:
        raise CorruptFileError(f"{what} (field {f.number}) at byte {f.start} has wire type {f.wire}, "
                               f"expected {wire}; {_FIX}", path=path)


def _text(buf: bytes, f: Field, what: str, path: Path) -> str:
    """A string field as text; raises if it is not UTF-8."""
    _expect(f, LEN, what, path)
    try:
        return buf[f.start:f.end].decode("utf-8")
    except UnicodeDecodeError:
        raise CorruptFileError(f"{what} at byte {f.start} is not UTF-8; {_FIX}", path=path) from None


def _piece(buf: bytes, span: Field, index: int, path: Path) -> tuple[int, bytes, str]:
    """Piece `index` (a SentencePiece message) as an (id, canonical bytes, kind) triple."""
    text, type_ = None, 1
    for f in fields(buf, span.start, span.end, path):
        if f.number in _PIECE_FIELDS:
            name, wire = _PIECE_FIELDS[f.number]
            if f.wire != wire:  # message built only on failure: this loop runs once per piece
                _expect(f, wire, f"piece {index} {name}", path)
            if f.number == 1:
                text = _text(buf, f, f"piece {index} text", path)
            elif f.number == 3:
                type_ = f.value
    if text is None:
        raise CorruptFileError(f"piece {index} (at byte {span.start}) has no text; {_FIX}", path=path)
    if type_ not in PIECE_KINDS:
        raise CorruptFileError(f"piece {index} {text!r} has type {type_}; SentencePiece types are 1-6 "
                               "(NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE)", path=path)
    kind = PIECE_KINDS[type_]
    if kind == BYTE:
        value = byte_fallback_value(text)
        if value is None:
            raise CorruptFileError(f"piece {index} {text!r} has type BYTE but is not spelled <0xNN>", path=path)
        return index, value, BYTE
    return index, metaspace_bytes(text) if kind == NORMAL else text.encode("utf-8"), kind


def _spec(buf: bytes, span: Field | None, wanted: dict[int, int], path: Path) -> dict[int, Field]:
    """The last occurrence of each wanted field (number -> wire type) of a spec message."""
    if span is None:
        return {}
    out: dict[int, Field] = {}
    for f in fields(buf, span.start, span.end, path):
        if f.number in wanted:
            _expect(f, wanted[f.number], f"spec field {f.number}", path)
            out[f.number] = f
    return out


def _flag(spec: dict[int, Field], number: int, default: bool) -> bool:
    """A bool field of a spec, or its protobuf default when absent."""
    return bool(spec[number].value) if number in spec else default


def _describe(buf: bytes, trainer: Field | None, normalizer: Field | None,
              path: Path) -> tuple[str, str, str | None]:
    """(model type, normalizer description, pre-tokenizer description) from the two specs."""
    t = _spec(buf, trainer, {3: VARINT, 25: VARINT}, path)
    model_type = t[3].value if 3 in t else 1  # protobuf default: UNIGRAM
    if model_type not in MODEL_TYPES:
        raise CorruptFileError(f"trainer spec has model_type {model_type}; expected 1-4 "
                               "(UNIGRAM, BPE, WORD, CHAR)", path=path)
    n = _spec(buf, normalizer, {1: LEN, 3: VARINT, 4: VARINT}, path)
    parts = [_text(buf, n[1], "normalizer name", path) if 1 in n else "unnamed"]
    parts += [flag for num, flag in ((3, "add_dummy_prefix"), (4, "remove_extra_whitespaces"))
              if _flag(n, num, True)]
    return MODEL_TYPES[model_type], ", ".join(parts), "split_digits" if _flag(t, 25, False) else None


def read_sentencepiece(path: Path) -> Vocabulary:
    """A SentencePiece ``.model`` file in canonical form (ids are piece positions)."""
    path = Path(path)
    buf = guard.read_bytes(path)
    if not buf:
        raise CorruptFileError("empty file; a SentencePiece .model holds at least its pieces", path=path)
    spans: list[Field] = []
    trainer = normalizer = None
    for f in fields(buf, 0, len(buf), path):
        if f.number == 1:
            _expect(f, LEN, "piece", path)
            spans.append(f)
        elif f.number == 2:
            _expect(f, LEN, "trainer spec", path)
            trainer = f
        elif f.number == 3:
            _expect(f, LEN, "normalizer spec", path)
            normalizer = f
    if not spans:
        raise CorruptFileError("no pieces (ModelProto field 1); not a SentencePiece .model", path=path)
    pairs = [_piece(buf, span, i, path) for i, span in enumerate(spans)]
    model, norm, pretok = _describe(buf, trainer, normalizer, path)
    vocab = from_pairs(pairs, source=str(path), format="sentencepiece", model=model, merges=None,
                       pretokenizer=pretok, normalizer=norm)
    vocab.notes.append("SentencePiece records no merges list; piece scores rank the pieces"
                       if model == "bpe" else f"SentencePiece {model} model; no merges")
    return vocab
