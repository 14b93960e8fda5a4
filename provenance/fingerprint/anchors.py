"""Anchor tokens: embedding rows a fingerprint keeps, chosen so two models pick the same tokens.

Each token gets a priority from a keyed hash of its bytes (or, for a model without a
tokenizer, of its id), and a fingerprint keeps the lowest-priority tokens. Two vocabularies
that share tokens therefore keep largely the same anchors without ever seeing each other: a
bottom-k sample of each, which overlap in about k·|A∩B|/|A∪B| tokens.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np

from provenance.vocab.model import BYTE, NORMAL, Vocabulary

BY_TOKENS, BY_IDS = "token strings", "token ids"  # the same words the weight signal reports
TAG_OF = {BY_TOKENS: "tokens", BY_IDS: "ids"}  # short names in file tensor names
_SALT = b"provenance-anchor-1\x00"


@dataclass
class Anchors:
    """Anchor tokens of one pairing mode, in priority order: keys, their embedding rows' ids."""

    mode: str  # BY_TOKENS | BY_IDS
    keys: list[bytes]  # kind-tagged token bytes, or b"id:<n>"
    ids: np.ndarray  # int64 embedding row of each key

    def __len__(self) -> int:
        return len(self.keys)


def priority(key: bytes) -> int:
    """A token's anchor priority: a keyed 64-bit hash of its key (lower comes first)."""
    return int.from_bytes(hashlib.blake2b(_SALT + key, digest_size=8).digest(), "little")


def priorities(keys: list[bytes]) -> np.ndarray:
    return np.fromiter((priority(k) for k in keys), dtype=np.uint64, count=len(keys))


def token_key(kind: str, token: bytes) -> bytes:
    """The anchor key of an ordinary (n) or byte-fallback (b) token: kinds pair apart, as in `shared_tokens`."""
    return (b"n" if kind == NORMAL else b"b") + token


def token_keys(vocab: Vocabulary, rows: int | None = None) -> tuple[list[bytes], np.ndarray]:
    """(keys, ids) of the ordinary and byte-fallback tokens, limited to ids below `rows` when given."""
    items = [(token_key(kind, t), i) for kind, index in ((NORMAL, vocab.ordinary()), (BYTE, vocab.byte_fallback()))
             for t, i in index.items() if rows is None or i < rows]
    return [k for k, _ in items], np.array([i for _, i in items], dtype=np.int64)


def by_ids(rows: int, k: int) -> Anchors:
    """About `k` anchor rows by id, spread over bands [0, 256), [256, 512), [512, 1024), ... with an
    equal share each, lowest priority first within a band. Small vocabularies (the first bands) thus
    keep many anchors in common with large ones, where a plain bottom-k over all ids would keep few."""
    bands, lo = [], 0
    while lo < rows:
        hi = min(rows, 256 if lo == 0 else 2 * lo)
        bands.append((lo, hi))
        lo = hi
    share = max(1, k // max(len(bands), 1))
    chosen: list[tuple[int, int]] = []  # (priority, id)
    for lo, hi in bands:
        pri = priorities([b"id:%d" % i for i in range(lo, hi)])
        order = np.argsort(pri, kind="stable")[:share]
        chosen += [(int(pri[j]), lo + int(j)) for j in order]
    chosen.sort()
    return Anchors(BY_IDS, [b"id:%d" % i for _, i in chosen], np.array([i for _, i in chosen], dtype=np.int64))


@functools.lru_cache(maxsize=64)
def probe_neurons(n_out: int, k: int) -> np.ndarray:
    """`k` neuron ids chosen by hash among range(n_out): the same ids in every model of that width (cached:
    a model has few widths and many tensors)."""
    pri = priorities([b"neuron:%d" % i for i in range(n_out)])
    return np.sort(np.argsort(pri, kind="stable")[:k]).astype(np.int64)


def lowest(mode: str, keys: list[bytes], ids: np.ndarray, pri: np.ndarray, k: int) -> Anchors:
    """The `k` keys of lowest priority, in priority order."""
    order = np.argsort(pri, kind="stable")[:k]
    return Anchors(mode, [keys[i] for i in order], ids[order])


def common(a: list[bytes], b: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Positions in `a` and in `b` of the keys both hold, in `a`'s order."""
    where = {key: j for j, key in enumerate(b)}
    pairs = [(i, where[key]) for i, key in enumerate(a) if key in where]
    return (np.array([p[0] for p in pairs], dtype=np.int64), np.array([p[1] for p in pairs], dtype=np.int64))
