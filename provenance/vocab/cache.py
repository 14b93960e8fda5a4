"""Tokenizers and shared-token maps computed once per content, not once per comparison.

An audit or an identify run compares one model against many, and each comparison used to parse
the same tokenizer file again (SmolLM2's tokenizer.json: 0.1-0.3 s) and pair the same two
vocabularies again. Files are keyed by the sha256 of their bytes, so a renamed or copied
tokenizer is a hit and an edited one is not; maps are keyed by the two vocabularies' keys. Both
caches are small LRUs (a vocabulary of 150k tokens holds ~20 MB), per process, thread-safe.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from provenance.vocab.model import Vocabulary

MAX_FILE_BYTES = 256 << 20  # larger files (a GGUF holding its own vocabulary) are read, not hashed for the cache
VOCABULARIES = 8
TOKEN_MAPS = 16
_KEY = "content_key"  # where a cached vocabulary keeps its key (in its memo)
T = TypeVar("T")


class LRU:
    """A bounded, thread-safe least-recently-used map; with `weight`, also bounded by the values' total weight
    (a value heavier than `most_weight` alone is not kept)."""

    def __init__(self, size: int, *, weight: Callable[[Any], int] | None = None, most_weight: int = 0) -> None:
        self.size, self.items, self.lock = size, OrderedDict[Any, Any](), threading.Lock()
        self.weight, self.most_weight = weight, most_weight

    def get(self, key: Any) -> Any:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return None

    def put(self, key: Any, value: Any) -> None:
        if self.weight is not None and self.weight(value) > self.most_weight:
            return
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size or (
                    self.weight is not None and sum(map(self.weight, self.items.values())) > self.most_weight):
                self.items.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


_vocabularies = LRU(VOCABULARIES)
_maps = LRU(TOKEN_MAPS)


def file_key(path: Path) -> str | None:
    """sha256 of a tokenizer file's bytes, or None when it is too large to be worth caching."""
    if path.stat().st_size > MAX_FILE_BYTES:
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def cached_vocabulary(path: Path, read: Callable[[Path], Vocabulary]) -> Vocabulary:
    """`read(path)`, or the vocabulary already read from a file with the same bytes (named for this path)."""
    key = file_key(path)
    if key is None:
        return read(path)
    hit = _vocabularies.get(key)
    if hit is None:
        hit = read(path)
        set_content_key(hit, key)
        _vocabularies.put(key, hit)
    if hit.source == str(path):
        return hit
    named = copy.copy(hit)  # shares tokens and memo (same bytes); only the file it names differs
    named.source = str(path)
    return named


def content_key(v: Vocabulary) -> str | None:
    """The content key `v` was marked with (None: read on the plain path, or built in memory)."""
    return v.memoized(_KEY)


def set_content_key(v: Vocabulary, key: str) -> None:
    """Mark `v` as read from content `key` (a fingerprint's token table), so `cached_map` pairs it once."""
    v.memo(_KEY, lambda: key)


def cached_map(base: Vocabulary, candidate: Vocabulary, compute: Callable[[], T]) -> T:
    """`compute()` once per pair of cached vocabularies' contents (always computed for others)."""
    ka, kb = content_key(base), content_key(candidate)
    if ka is None or kb is None:
        return compute()
    hit = _maps.get((ka, kb))
    if hit is None:
        hit = compute()
        _maps.put((ka, kb), hit)
    return hit


def clear() -> None:
    """Forget every cached vocabulary and map (tests; a long-lived process that wants the memory back)."""
    _vocabularies.clear()
    _maps.clear()
