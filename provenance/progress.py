"""Progress bars for long steps: always on stderr (stdout stays clean for `jq`).

`show` is the one switch every entry point takes: True draws, False never draws, None (the
command line's default) draws when stderr is a terminal.

>>> b = bar(3, "reading", "tensor", False)
>>> b.update(3); b.close()
"""

from __future__ import annotations

import sys
from typing import Any

Show = bool | None


def enabled(show: Show) -> bool:
    """Whether to draw: `show` when given, else whether stderr is a terminal."""
    if show is not None:
        return bool(show)
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # no stderr, or a closed one
        return False


def bar(total: int | None, desc: str, unit: str, show: Show) -> Any:
    """A tqdm bar on stderr (a disabled, free one when not shown); `total=None` counts without an end."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not enabled(show), leave=False,
                dynamic_ncols=True)
