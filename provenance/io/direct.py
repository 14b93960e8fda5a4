"""Read bytes that are not in the page cache straight from the disk (O_DIRECT), past the cache.

A comparison reads each weight byte once. Through the page cache every cold byte first costs the
kernel a fresh cache page, and on a virtual machine that is most of the read's CPU: the project's
2-core VM read a 27 GB pair cold in 36 s with 35 CPU-s through the cache, and in 14 s with 1.3 CPU-s
with O_DIRECT into one reused buffer (`benchmarks/bench_compare.py`, raw-cold and raw-direct-cold, one run).
Bytes already cached are better viewed in place (`provenance.io.mapped`), so `resident` tells the
two apart first. Linux only; anywhere O_DIRECT is refused (tmpfs, other systems) the caller reads the
usual way. The bytes are the same either way; only the route differs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from provenance.errors import CorruptFileError
from provenance.io.arena import ALIGN, aligned

MIN_BYTES = 1 << 20  # smaller tensors are not worth a second descriptor's reads
_NOWAIT = getattr(os, "RWF_NOWAIT", None)
_DIRECT = getattr(os, "O_DIRECT", None)


def available() -> bool:
    """Whether this platform has both O_DIRECT and a way to ask what the page cache holds."""
    return _NOWAIT is not None and _DIRECT is not None and hasattr(os, "preadv") and os.path.isdir("/proc/self/fd")


def resident(fd: int, offset: int, nbytes: int) -> bool:
    """Whether the first, middle and last pages of the range are in the page cache (reads one byte each)."""
    if _NOWAIT is None:
        return True
    probe = bytearray(1)
    for at in {offset, offset + nbytes // 2, offset + max(nbytes - 1, 0)}:
        try:
            os.preadv(fd, [probe], at, _NOWAIT)
        except BlockingIOError:
            return False
        except OSError:  # a kernel or file system without RWF_NOWAIT: treat as cached, read the usual way
            return True
    return True


class DirectFile:
    """An O_DIRECT descriptor for a file already opened (and checked) as `fd`: reopened through /proc,
    so no path is resolved again."""

    def __init__(self, fd: int, path: Path) -> None:
        self.path = path
        self._fd = -1
        if available():
            try:
                self._fd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | _DIRECT | os.O_CLOEXEC)  # type: ignore[operator]
            except OSError:  # the file system refuses O_DIRECT (tmpfs, some network mounts)
                self._fd = -1

    @property
    def usable(self) -> bool:
        return self._fd >= 0

    def read(self, offset: int, nbytes: int, region: np.ndarray) -> np.ndarray | None:
        """Read [offset, offset + nbytes) into the page-aligned `region` (at least `span(offset, nbytes)` long);
        the view of the bytes, or None where the device refused the request (read them the usual way)."""
        lo = offset - offset % ALIGN
        view = memoryview(region[:span(offset, nbytes)])
        done = 0
        while lo + done < offset + nbytes:
            try:
                n = os.preadv(self._fd, [view[done:]], lo + done)
            except OSError:  # EINVAL: a coarser alignment wanted, or a short read left an odd offset
                return None
            if n == 0:
                raise CorruptFileError(f"truncated: expected {nbytes} bytes at offset {offset}, got "
                                       f"{max(0, lo + done - offset)}", path=self.path)
            done += n
        return region[offset - lo:offset - lo + nbytes]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def span(offset: int, nbytes: int) -> int:
    """Bytes an aligned read of [offset, offset + nbytes) covers: from the block holding `offset` on."""
    return aligned(offset % ALIGN + nbytes)
