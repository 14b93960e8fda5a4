"""Whether the speed-ups run, or the plain reference path that each of them must agree with.

Every optimisation that could change a number (a batched null, a block-wise widening, a
read-ahead thread, a memory-mapped registry index) keeps the straightforward version beside it
and asks `enabled()` which to run. `PROVENANCE_PLAIN=1` in the environment, or `plain()` in a
test, selects the plain versions everywhere, so a test can check that results are identical
with and without the speed work.

>>> enabled()
True
>>> with plain():
...     enabled()
False
>>> enabled()
True
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

ENV = "PROVENANCE_PLAIN"
_global_plain = [False]  # set by `plain()`; read by every thread (reader threads included)


def enabled() -> bool:
    """True unless the plain reference path was asked for (environment or `plain()`)."""
    if _global_plain[0]:
        return False
    return os.environ.get(ENV, "") in ("", "0")


@contextmanager
def plain() -> Iterator[None]:
    """Run the block on the plain reference path, in every thread."""
    before = _global_plain[0]
    _global_plain[0] = True
    try:
        yield
    finally:
        _global_plain[0] = before
