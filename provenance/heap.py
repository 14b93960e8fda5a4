"""Give the C heap's free pages back to the kernel at a phase boundary, so the peak memory is the live data.

glibc keeps freed blocks for reuse, and the CLI raises its thresholds so that large temporaries do not
cost fresh pages each time (`provenance.cli.tuning`). After the alignment of a 7B-shaped pair ~225 MiB
of its temporaries (a 4096 x 4096 correlation, the embedding rows) sat free in the heap while the
stream's buffers and sketches were added on top: `malloc_trim(0)` returns them, in a few milliseconds.
Elsewhere than glibc it does nothing. It changes no result, only the resident size.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache


@cache
def glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (mallopt and malloc_trim are glibc's), else None; looked up once."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "gnu_get_libc_version") else None


def give_back() -> bool:
    """Return the heap's free pages to the kernel; False where the C library has no `malloc_trim`."""
    trim = getattr(glibc(), "malloc_trim", None)
    if trim is None:
        return False
    trim(0)
    return True
