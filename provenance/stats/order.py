"""Order statistics of one id sequence against another: how much of an order was inherited.

>>> longest_increasing(np.array([3, 1, 2, 5, 4, 6]))
4
>>> concordant_steps(np.array([1, 2, 3, 0, 4]))
(3, 4)
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np


def longest_increasing(seq: np.ndarray) -> int:
    """Length of the longest strictly increasing subsequence (patience sorting, O(n log n))."""
    tails: list[int] = []
    for x in seq.tolist():
        k = bisect_left(tails, x)
        if k == len(tails):
            tails.append(x)
        else:
            tails[k] = x
    return len(tails)


def concordant_steps(seq: np.ndarray) -> tuple[int, int]:
    """(increasing steps, steps) between neighbours: near 1/2 for unrelated orders, 1 for an inherited one."""
    if len(seq) < 2:
        return 0, 0
    return int(np.count_nonzero(np.diff(seq) > 0)), len(seq) - 1
