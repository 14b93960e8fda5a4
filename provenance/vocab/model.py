"""`Vocabulary`: any tokenizer brought to one canonical form — the exact bytes of each id.

Every reader (tokenizer.json, SentencePiece, tiktoken, vocab.txt, Tekken, GGUF, quicktok)
returns this, so the same vocabulary shipped in two formats compares as identical.

Canonical token bytes: byte-level BPE pieces are decoded through GPT-2's byte table;
SentencePiece's "▁" becomes a space; byte-fallback pieces ``<0x0A>`` become that byte with
kind ``byte``; a WordPiece piece that starts a word gets a leading space (as SentencePiece
would write it) and a ``##`` continuation loses its prefix. Special and added tokens keep
their text (UTF-8) and are compared apart from the ordinary vocabulary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

NORMAL, SPECIAL, ADDED, BYTE = "normal", "special", "added", "byte"
KINDS = (NORMAL, SPECIAL, ADDED, BYTE)
ORDINARY_KINDS = (NORMAL, BYTE)


@dataclass
class Vocabulary:
    """A tokenizer in canonical form: token bytes and kind by id, ranked merges, rules, specials.

    Treat it as read-only once built: the token indexes are computed once and cached.
    """

    source: str  # the file it was read from
    format: str  # tokenizer.json | sentencepiece | tiktoken | vocab.txt | vocab.json | tekken | gguf | quicktok
    model: str  # bpe | wordpiece | unigram (tiktoken files are rank-ordered bpe)
    tokens: list[bytes | None]  # by id; None for ids the file leaves empty
    kinds: list[str]  # by id, one of KINDS ('' where tokens[id] is None)
    merges: list[tuple[bytes, bytes]] | None = None  # in rank order, as canonical bytes; None if not recorded
    pretokenizer: str | None = None  # split pattern(s), as written
    normalizer: str | None = None  # a short description of the normalizer
    chat_template: str | None = None
    specials_recorded: bool = True  # False for formats that do not carry special tokens (.tiktoken)
    notes: list[str] = field(default_factory=list)
    # (count, sha256) of merges known only by digest (a fingerprint keeps no merge list); None otherwise
    merges_recorded: tuple[int, str] | None = None
    _ordinary: dict[bytes, int] | None = field(default=None, init=False, repr=False, compare=False)
    _bytes: dict[bytes, int] | None = field(default=None, init=False, repr=False, compare=False)
    _memo: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.kinds):
            raise ValueError("tokens and kinds must have one entry per id")

    def __len__(self) -> int:
        return len(self.tokens)

    def ordinary(self) -> dict[bytes, int]:
        """Normal token bytes -> id (the lowest id where a vocabulary repeats a piece); built once."""
        if self._ordinary is None:
            self._ordinary = _index(self, NORMAL)
        return self._ordinary

    def byte_fallback(self) -> dict[bytes, int]:
        """Byte-fallback tokens (``<0x41>``): the byte -> id; built once."""
        if self._bytes is None:
            self._bytes = _index(self, BYTE)
        return self._bytes

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """`compute()` once per vocabulary (derived statistics reused across many comparisons)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def memoized(self, key: str) -> Any:
        """What `memo` keeps under `key`, or None when nothing was computed for it."""
        return self._memo.get(key)

    def share_indexes(self, twin: Vocabulary, memos: tuple[str, ...]) -> None:
        """Take `twin`'s token indexes and its `memos` entries: `twin` holds the same tokens and kinds (a
        fingerprint's token table decoded before), so what it computed from them holds here too."""
        self._ordinary, self._bytes = twin.ordinary(), twin.byte_fallback()
        self._memo.update({k: twin._memo[k] for k in memos if k in twin._memo})

    def specials(self) -> dict[str, int]:
        """Special and added token text -> id (computed once: a read-only vocabulary's specials do not change)."""
        return dict(self.memo("specials", self._specials))

    def _specials(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for i, (t, k) in enumerate(zip(self.tokens, self.kinds)):
            if t is not None and k in (SPECIAL, ADDED):
                out.setdefault(t.decode("utf-8", "replace"), i)
        return out

    def count(self, *kinds: str) -> int:
        """How many ids hold a token of these kinds."""
        return sum(1 for t, k in zip(self.tokens, self.kinds) if t is not None and k in kinds)

    def digest(self) -> str:
        """sha256 over (id, kind, bytes) of every token: equal digests mean the same vocabulary (computed once)."""
        return self.memo("digest", self._digest)

    def _digest(self) -> str:
        h = hashlib.sha256()
        for i, (t, k) in enumerate(zip(self.tokens, self.kinds)):
            if t is not None:
                h.update(f"{i}\x00{k}\x00{len(t)}\x00".encode())
                h.update(t)
        return h.hexdigest()

    def __repr__(self) -> str:  # the generated one would print every token
        return (f"<Vocabulary {self.format}/{self.model}: {len(self.tokens):,} ids, "
                f"{len(self.ordinary()) + len(self.byte_fallback()):,} ordinary, from {self.source!r}>")

    def summary(self) -> dict[str, object]:
        """Plain-data summary for reports: where it came from, sizes, digest."""
        return {"file": self.source, "format": self.format, "model": self.model, "size": len(self),
                "ordinary": len(self.ordinary()) + len(self.byte_fallback()), "specials": len(self.specials()),
                "merges": self.merges_count(), "digest": self.digest()}

    def merges_count(self) -> int | None:
        """How many ranked merges the tokenizer has (also when only their digest was kept)."""
        if self.merges is not None:
            return len(self.merges)
        return self.merges_recorded[0] if self.merges_recorded is not None else None

    def merges_digest(self) -> str | None:
        """sha256 over the ranked merges, or None where the format records none."""
        if self.merges is None:
            return self.merges_recorded[1] if self.merges_recorded is not None else None
        h = hashlib.sha256()
        for a, b in self.merges:
            h.update(len(a).to_bytes(4, "little") + a + len(b).to_bytes(4, "little") + b)
        return h.hexdigest()


def _index(v: Vocabulary, kind: str) -> dict[bytes, int]:
    out: dict[bytes, int] = {}
    for i, (t, k) in enumerate(zip(v.tokens, v.kinds)):
        if k == kind and t is not None and t not in out:
            out[t] = i
    return out


# Ids may leave holes (reserved specials, pruned pieces), but a file may not claim an id space much
# larger than what it holds: one 60-byte entry with id 2^24 would otherwise cost a 16M-slot list.
SPARE_IDS = 1 << 16


def check_id_space(size: int, held: int, source: object) -> None:
    """Refuse an id space over twice the tokens held plus SPARE_IDS (memory bounded by the file)."""
    if size > 2 * held + SPARE_IDS:
        from provenance.errors import CorruptFileError

        raise CorruptFileError(f"token ids reach {size - 1:,} but the file holds only {held:,} tokens; refusing a "
                               f"sparse id space over {2 * held + SPARE_IDS:,}", path=str(source) if source else None)


def from_pairs(pairs: list[tuple[int, bytes, str]], **fields: object) -> Vocabulary:
    """Build a Vocabulary from (id, bytes, kind) triples; later triples win on a repeated id."""
    size = max((i for i, _, _ in pairs), default=-1) + 1
    check_id_space(size, len(pairs), fields.get("source"))
    tokens: list[bytes | None] = [None] * size
    kinds = [""] * size
    for i, t, k in pairs:
        tokens[i], kinds[i] = t, k
    return Vocabulary(tokens=tokens, kinds=kinds, **fields)  # type: ignore[arg-type]


def display(token: bytes) -> str:
    """A readable, unambiguous rendering of token bytes (invalid UTF-8 shown as \\xNN).

    >>> display(b" the"), display(b"\\xe4\\xb8"), display(b"a\\nb")
    ("' the'", "b'\\\\xe4\\\\xb8'", "'a\\\\nb'")
    """
    try:
        return repr(token.decode("utf-8"))
    except UnicodeDecodeError:
        return repr(token)
