"""The shared-token map: which ids two vocabularies give the same token bytes.

The weight and activation signals use it to pair embedding rows (and output positions)
when vocabularies differ; the tokenizer signal builds its statistics on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from provenance.vocab.model import BYTE, NORMAL, Vocabulary, display


@dataclass
class TokenMap:
    """Tokens both vocabularies hold (ordinary and byte-fallback), in base id order."""

    tokens: list[bytes]
    kinds: list[str]
    base_ids: np.ndarray  # int64 [n]
    candidate_ids: np.ndarray  # int64 [n]

    def __len__(self) -> int:
        return len(self.tokens)

    def frame(self) -> Any:
        """A DataFrame: token (readable), kind, base_id, candidate_id."""
        import pandas as pd

        return pd.DataFrame({"token": [display(t) for t in self.tokens], "kind": self.kinds,
                             "base_id": self.base_ids, "candidate_id": self.candidate_ids})

    def within(self, base_rows: int, candidate_rows: int) -> TokenMap:
        """Only the pairs whose ids are rows of embedding matrices of these sizes."""
        keep = (self.base_ids < base_rows) & (self.candidate_ids < candidate_rows)
        idx = np.flatnonzero(keep)
        return TokenMap([self.tokens[i] for i in idx], [self.kinds[i] for i in idx], self.base_ids[idx],
                        self.candidate_ids[idx])


def _vocabulary(v: Vocabulary | str | os.PathLike[str]) -> Vocabulary:
    """A Vocabulary as given, or the one a path names (tokenizer file, or a directory holding one)."""
    if isinstance(v, Vocabulary):
        return v
    from provenance.vocab.load import load_vocabulary

    return load_vocabulary(v)


def shared_tokens(base: Vocabulary | str | os.PathLike[str],
                  candidate: Vocabulary | str | os.PathLike[str]) -> TokenMap:
    """Pair the ordinary and byte-fallback tokens of two vocabularies by their exact bytes.

    Each side is a `Vocabulary` or a path: a tokenizer file, or a model directory holding one.

    >>> from provenance.vocab.model import from_pairs
    >>> a = from_pairs([(0, b"a", "normal"), (1, b" the", "normal")], source="a", format="t", model="bpe")
    >>> b = from_pairs([(5, b" the", "normal"), (6, b"a", "normal")], source="b", format="t", model="bpe")
    >>> m = shared_tokens(a, b); m.base_ids.tolist(), m.candidate_ids.tolist()
    ([0, 1], [6, 5])
    """
    base, candidate = _vocabulary(base), _vocabulary(candidate)
    rows: list[tuple[int, bytes, str, int]] = []
    for kind, a, b in ((NORMAL, base.ordinary(), candidate.ordinary()),
                       (BYTE, base.byte_fallback(), candidate.byte_fallback())):
        rows += [(i, t, kind, b[t]) for t, i in a.items() if t in b]
    rows.sort(key=lambda r: r[0])
    return TokenMap([r[1] for r in rows], [r[2] for r in rows], np.array([r[0] for r in rows], dtype=np.int64),
                    np.array([r[3] for r in rows], dtype=np.int64))
