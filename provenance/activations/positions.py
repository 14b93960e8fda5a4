"""Token positions two tokenizers agree on, by character offsets: compare models on the same spans.

A position is usable when both tokenizations have a token *ending* at the same character of
the same text: a causal model has then read exactly the same prefix in both.

>>> from provenance.activations.base import Encoded
>>> a = Encoded([[1, 2, 3]], [[(0, 3), (3, 7), (7, 9)]])
>>> b = Encoded([[5, 6]], [[(0, 7), (7, 9)]])
>>> aligned_positions(a, b, per_text=4, skip_first=0)
([[1, 2]], [[0, 1]], [(0, 7), (0, 9)])
"""

from __future__ import annotations

import numpy as np

from provenance.activations.base import Encoded


def _ends(offsets: list[tuple[int, int]]) -> dict[int, int]:
    """Character end -> index of the last real token ending there (specials have empty spans)."""
    out: dict[int, int] = {}
    for i, (start, end) in enumerate(offsets):
        if end > start:
            out[end] = i
    return out


def aligned_positions(a: Encoded, b: Encoded, *, per_text: int, skip_first: int = 1
                      ) -> tuple[list[list[int]], list[list[int]], list[tuple[int, int]]]:
    """Per text, up to `per_text` token indices in a and in b that end at the same character.

    Picks evenly across each text (deterministic); skips the first `skip_first` shared ends,
    whose states in causal models carry little but the start of the text. Also returns
    (text index, character end) for each picked position, for reports.
    """
    pos_a, pos_b, where = [], [], []
    for t, (oa, ob) in enumerate(zip(a.offsets, b.offsets)):
        ea, eb = _ends(oa), _ends(ob)
        common = sorted(set(ea) & set(eb))[skip_first:]
        if len(common) > per_text:
            common = [common[i] for i in np.linspace(0, len(common) - 1, per_text).round().astype(int)]
        pos_a.append([ea[e] for e in common])
        pos_b.append([eb[e] for e in common])
        where += [(t, e) for e in common]
    return pos_a, pos_b, where
