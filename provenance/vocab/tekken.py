"""Mistral Tekken JSON (``tekken.json``) -> `Vocabulary`, with the ids mistral-common gives.

Special tokens take ids ``0 .. num_special - 1``; the ordinary token of rank ``r`` gets id
``r + num_special``; only the first ``default_vocab_size - num_special`` ranks are live
(mistral-common's ``Tekkenizer`` cuts the rest). Token bytes are stored as base64, so they
are canonical as read.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

from provenance.errors import CorruptFileError
from provenance.jsonfile import read_json
from provenance.vocab.model import (
    ADDED,
    NORMAL,
    SPECIAL,
    Vocabulary,
    check_id_space,
    from_pairs,
)


def _checked(data: Any, path: Path) -> dict[str, Any]:
    """The parsed file, which must be a JSON object with a config and a vocab; a one-line error otherwise."""
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict) \
            or not isinstance(data.get("vocab"), list):
        raise CorruptFileError("not a Tekken file: expected a JSON object with a 'config' object and a "
                               "'vocab' list", path=path)
    return data


def _int(config: dict[str, Any], key: str, path: Path, *, minimum: int = 0) -> int:
    """An integer config entry of at least `minimum`."""
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise CorruptFileError(f"config.{key} must be an integer >= {minimum}. Got {value!r} instead.",
                               path=path)
    return value


def _pattern(config: dict[str, Any], path: Path) -> str:
    """The pre-tokenizer regex, which every Tekken file must give."""
    pattern = config.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise CorruptFileError(f"config.pattern must be the pre-tokenizer regex. Got {pattern!r} instead.",
                               path=path)
    return pattern


def _sizes(config: dict[str, Any], n_vocab: int, path: Path) -> tuple[int, int]:
    """(number of special ids, number of live ordinary ranks), checked against the vocab length."""
    n_special = _int(config, "default_num_special_tokens", path)
    size = _int(config, "default_vocab_size", path, minimum=n_special)
    if size - n_special > n_vocab:
        raise CorruptFileError(f"config.default_vocab_size {size} needs {size - n_special} ordinary tokens "
                               f"besides {n_special} specials, but 'vocab' has only {n_vocab}", path=path)
    return n_special, size - n_special


def _ordinary(entries: list[Any], live: int, offset: int, path: Path) -> list[tuple[int, bytes, str]]:
    """The first `live` vocab entries as (id, bytes, NORMAL); every entry's rank is checked."""
    pairs: list[tuple[int, bytes, str]] = []
    seen: dict[bytes, int] = {}
    for i, entry in enumerate(entries):
        rank = entry.get("rank") if isinstance(entry, dict) else None
        if not isinstance(rank, int) or isinstance(rank, bool) or rank != i:
            raise CorruptFileError(f"vocab entry {i} has rank {rank!r}; Tekken ranks must be the integers "
                                   "0, 1, 2, ... in order, one per entry", path=path)
        if i >= live:
            continue
        raw = entry.get("token_bytes")
        try:
            token = base64.b64decode(raw, validate=True) if isinstance(raw, str) else None
        except (binascii.Error, ValueError):
            token = None
        if not token:
            raise CorruptFileError(f"vocab entry {i} has token_bytes {str(raw)[:40]!r}, which is not "
                                   "non-empty base64", path=path)
        if token in seen:
            raise CorruptFileError(f"vocab ranks {seen[token]} and {i} hold the same bytes {token!r}; "
                                   "mistral-common refuses such a file too", path=path)
        seen[token] = i
        pairs.append((i + offset, token, NORMAL))
    return pairs


def _specials(entries: Any, n_special: int, path: Path) -> list[tuple[int, bytes, str]]:
    """The ``special_tokens`` list as (id, text, SPECIAL | ADDED); ranks are the ids."""
    if not isinstance(entries, list):
        raise CorruptFileError(f"'special_tokens' must be a list. Got {type(entries).__name__} instead.",
                               path=path)
    pairs: list[tuple[int, bytes, str]] = []
    ranks: set[int] = set()
    texts: set[str] = set()
    for entry in entries:
        e = entry if isinstance(entry, dict) else {}
        rank, text, control = e.get("rank"), e.get("token_str"), e.get("is_control", True)
        if not isinstance(rank, int) or isinstance(rank, bool) or not 0 <= rank < n_special \
                or not isinstance(text, str) or not isinstance(control, bool):
            raise CorruptFileError(f"special token {str(entry)[:80]!r} needs an integer 'rank' in "
                                   f"[0, {n_special}), a string 'token_str' and a bool 'is_control'", path=path)
        if rank in ranks or text in texts:
            raise CorruptFileError(f"special token {text!r} (rank {rank}) repeats a rank or a text", path=path)
        ranks.add(rank)
        texts.add(text)
        pairs.append((rank, text.encode("utf-8"), SPECIAL if control else ADDED))
    return pairs


def read_tekken(path: Path, data: Any = None) -> Vocabulary:
    """A Tekken ``tekken.json`` in canonical form, ids as mistral-common assigns them (`data`: already parsed)."""
    path = Path(path)
    if data is None:
        data = read_json(path, hint="a Tekken file is the tekken.json shipped with the model")
    data = _checked(data, path)
    config, entries = data["config"], data["vocab"]
    n_special, live = _sizes(config, len(entries), path)
    specials = data.get("special_tokens")
    check_id_space(n_special + live, live + (len(specials) if isinstance(specials, list) else 0), path)
    pairs = _ordinary(entries, live, n_special, path)
    notes: list[str] = []
    recorded = data.get("special_tokens") is not None
    if recorded:
        pairs += _specials(data["special_tokens"], n_special, path)
    else:
        notes.append(f"no 'special_tokens': ids 0..{n_special - 1} are reserved for specials whose text "
                     "the file does not give (mistral-common substitutes its built-in list)")
    missing = n_special - sum(1 for i, _, _ in pairs if i < n_special)
    if recorded and missing:
        notes.append(f"{missing} of {n_special} special ids have no entry (mistral-common names them "
                     "<SPECIAL_id>)")
    if len(entries) > live:
        notes.append(f"vocab holds {len(entries)} ranks; only the first {live} are used "
                     f"(default_vocab_size {live + n_special})")
    vocab = from_pairs(pairs, source=str(path), format="tekken", model="bpe", merges=None,
                       pretokenizer=_pattern(config, path), specials_recorded=recorded, notes=notes)
    extra = n_special + live - len(vocab)  # reserved ids past the last token still count
    vocab.tokens += [None] * extra
    vocab.kinds += [""] * extra
    return vocab
