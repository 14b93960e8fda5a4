"""quicktok ``.vocab`` files (and their ``.special`` siblings) -> `Vocabulary`.

Both are little-endian, as quicktok's ``_import_core.write_files`` writes them:
``.vocab`` is ``u32 count`` then, per token, ``u16 length, bytes, u32 rank`` (id = rank);
``.special`` is ``u32 count`` then, per token, ``u32 id, u16 length, UTF-8 text``.
An encoding imported from a Tekken file also has a ``.enc`` text file with ``id_offset=N``:
its ordinary ids are rank + N, while its ``.special`` ids are written as the model's ids.
"""

from __future__ import annotations

import struct
from pathlib import Path

from provenance.errors import CorruptFileError
from provenance.io import guard
from provenance.vocab.model import NORMAL, SPECIAL, Vocabulary, from_pairs

MAX_ID = 1 << 24  # ids beyond this would mean a vocabulary far past any real one
_U16, _U32 = struct.Struct("<H"), struct.Struct("<I")
_FIX = "the file is cut short or is not a quicktok file; reinstall quicktok or re-run its importer"


def _count(buf: bytes, path: Path, smallest_record: int) -> int:
    """The leading u32 record count, checked against what the file could hold."""
    if len(buf) < 4:
        raise CorruptFileError(f"{len(buf)} bytes is too short for the 4-byte record count; {_FIX}", path=path)
    (count,) = _U32.unpack_from(buf, 0)
    if count * smallest_record > len(buf) - 4:
        raise CorruptFileError(f"header counts {count} records, which need at least "
                               f"{count * smallest_record} bytes, but {len(buf) - 4} follow it; {_FIX}", path=path)
    return count


def _need(buf: bytes, pos: int, size: int, what: str, path: Path) -> None:
    """Raise unless `size` bytes for `what` remain at `pos`."""
    if pos + size > len(buf):
        raise CorruptFileError(f"{what} at byte {pos} needs {size} bytes but only {len(buf) - pos} remain; "
                               f"{_FIX}", path=path)


def _check_id(value: int, what: str, path: Path) -> None:
    """Raise when an id/rank is past `MAX_ID` (a sign of a damaged or foreign file)."""
    if value >= MAX_ID:
        raise CorruptFileError(f"{what} has id {value}, beyond {MAX_ID}; {_FIX}", path=path)


def read_vocab_records(path: Path) -> list[tuple[int, bytes]]:
    """The (rank, bytes) records of a ``.vocab`` file, bounds-checked; ranks must be unique."""
    buf = guard.read_bytes(path)
    count, pos = _count(buf, path, 2 + 4), 4
    records: list[tuple[int, bytes]] = []
    seen: set[int] = set()
    for i in range(count):
        _need(buf, pos, 2, f"token {i} length", path)
        (size,) = _U16.unpack_from(buf, pos)
        _need(buf, pos + 2, size + 4, f"token {i} ({size} bytes and its rank)", path)
        token = buf[pos + 2:pos + 2 + size]
        (rank,) = _U32.unpack_from(buf, pos + 2 + size)
        _check_id(rank, f"token {i}", path)
        if rank in seen:
            raise CorruptFileError(f"rank {rank} appears twice (again at token {i}); {_FIX}", path=path)
        seen.add(rank)
        records.append((rank, token))
        pos += 2 + size + 4
    if pos != len(buf):
        raise CorruptFileError(f"{len(buf) - pos} bytes follow the {count} tokens the header counts; {_FIX}",
                               path=path)
    return records


def read_special_records(path: Path) -> list[tuple[int, str]]:
    """The (id, text) records of a ``.special`` file, bounds-checked; text must be UTF-8."""
    buf = guard.read_bytes(path)
    count, pos = _count(buf, path, 4 + 2), 4
    records: list[tuple[int, str]] = []
    for i in range(count):
        _need(buf, pos, 6, f"special token {i} id and length", path)
        (token_id,) = _U32.unpack_from(buf, pos)
        (size,) = _U16.unpack_from(buf, pos + 4)
        _need(buf, pos + 6, size, f"special token {i} text", path)
        _check_id(token_id, f"special token {i}", path)
        try:
            text = buf[pos + 6:pos + 6 + size].decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptFileError(f"special token {i} (id {token_id}) is not UTF-8; {_FIX}", path=path) from None
        records.append((token_id, text))
        pos += 6 + size
    if pos != len(buf):
        raise CorruptFileError(f"{len(buf) - pos} bytes follow the {count} special tokens the header counts; "
                               f"{_FIX}", path=path)
    return records


def id_offset(path: Path) -> int:
    """The ``id_offset=N`` of the ``.enc`` file beside a ``.vocab`` (0 when absent, as quicktok reads it)."""
    enc = path.with_suffix(".enc")
    if not enc.is_file():
        return 0
    try:
        lines = guard.read_bytes(enc).decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise CorruptFileError(f"not UTF-8 text; {_FIX}", path=enc) from None
    values = [line.partition("=")[2].strip() for line in lines if line.partition("=")[0].strip() == "id_offset"]
    if not values:
        return 0
    if not values[-1].isdigit() or int(values[-1]) >= MAX_ID:
        raise CorruptFileError(f"id_offset must be a whole number below {MAX_ID}. Got {values[-1]!r} instead.",
                               path=enc)
    return int(values[-1])


def read_quicktok(path: Path) -> Vocabulary:
    """A quicktok ``.vocab`` in canonical form, with specials from the sibling ``.special`` if present."""
    path = Path(path)
    offset = id_offset(path)
    pairs = [(rank + offset, token, NORMAL) for rank, token in read_vocab_records(path)]
    special_path = path.with_suffix(".special")
    notes: list[str] = []
    recorded = special_path.is_file()
    if recorded:
        taken = {i for i, _, _ in pairs}
        for token_id, text in read_special_records(special_path):
            if token_id in taken:
                raise CorruptFileError(f"special token {text!r} has id {token_id}, which {path.name} already "
                                       f"uses; {_FIX}", path=special_path)
            taken.add(token_id)
            pairs.append((token_id, text.encode("utf-8"), SPECIAL))
    else:
        notes.append(f"no {special_path.name} beside the vocab: special tokens unknown")
    vocab = from_pairs(pairs, source=str(path), format="quicktok", model="bpe", merges=None,
                       specials_recorded=recorded, notes=notes)
    if offset:
        vocab.notes.append(f"ordinary ids are rank + {offset} (id_offset in {path.with_suffix('.enc').name})")
    holes = vocab.tokens.count(None)
    if holes:
        vocab.notes.append(f"{holes} ids below {len(vocab)} hold no token")
    return vocab
