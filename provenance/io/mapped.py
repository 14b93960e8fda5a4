"""Weight files mapped read-only: tensors as views of the page cache, read ahead by the kernel.

`pread` copies every byte from the page cache into a buffer of ours; a mapping lets the kernel hand
over its own pages instead, so a stream over a 7B checkpoint spends its CPU on the arithmetic, not
on copies. Pages are mapped in ahead of use on a reader thread (`populate`: the kernel reads the
range in large sequential requests and the thread waits for them) and dropped from our mapping
after use (`release`), so resident memory stays bounded by the tensors in flight. A stream reads bytes
that are not cached yet past the cache instead (`direct_file`, `provenance.io.direct`). The
mapping is private and copy-on-write: a consumer that wrote into a view would change only its own
copy, never the file.

A file shortened by another process while it is mapped would fault (SIGBUS) where `pread` would
report a short read, so every view first checks the file's current size.
"""

from __future__ import annotations

import mmap
import os
import threading
from pathlib import Path

import numpy as np

from provenance.errors import CorruptFileError
from provenance.io import direct
from provenance.io.arena import unmap
from provenance.io.guard import open_fd

_PAGE = mmap.PAGESIZE
_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)  # Linux >= 5.14; older kernels answer EINVAL


def available() -> bool:
    """Whether this platform can map files and advise the kernel about them (Linux and most Unixes)."""
    return hasattr(mmap.mmap, "madvise") and hasattr(mmap, "MADV_DONTNEED")


class MappedFile:
    """One regular file mapped whole, private and copy-on-write (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd = open_fd(path)
        self.size = os.fstat(self._fd).st_size
        self._map = mmap.mmap(self._fd, self.size, access=mmap.ACCESS_COPY) if self.size else None
        self._populate = True
        self._direct: direct.DirectFile | None = None
        self._lock = threading.Lock()

    def view(self, offset: int, nbytes: int) -> np.ndarray:
        """The bytes [offset, offset + nbytes) as a uint8 array over the mapping (no copy)."""
        if offset + nbytes > os.fstat(self._fd).st_size:
            raise CorruptFileError(f"truncated: expected {nbytes} bytes at offset {offset}, but the file is now "
                                   f"{os.fstat(self._fd).st_size} bytes (it changed while being read)", path=self.path)
        if nbytes == 0 or self._map is None:
            return np.empty(0, np.uint8)
        return np.frombuffer(self._map, np.uint8, count=nbytes, offset=offset)

    def _advise(self, option: int, offset: int, nbytes: int) -> None:
        lo = offset - offset % _PAGE
        hi = min(self.size, offset + nbytes)
        if self._map is not None and hi > lo:
            self._map.madvise(option, lo, hi - lo)

    def populate(self, offset: int, nbytes: int) -> None:
        """Map the range in, waiting for its reads, so that the thread computing on it never faults."""
        if self._populate:
            try:
                self._advise(_POPULATE_READ, offset, nbytes)
                return
            except OSError:  # an older kernel: touch one byte per page instead
                self._populate = False
        view = self.view(offset, nbytes)
        if view.size:
            int(view[::_PAGE].sum())

    def release(self, offset: int, nbytes: int) -> None:
        """Drop the range from our mapping (the page cache keeps it); a later view faults it in again."""
        self._advise(mmap.MADV_DONTNEED, offset, nbytes)

    def resident(self, offset: int, nbytes: int) -> bool:
        """Whether the range looks to be in the page cache already (`provenance.io.direct.resident`)."""
        return direct.resident(self._fd, offset, nbytes)

    def direct_file(self) -> direct.DirectFile | None:
        """This file's O_DIRECT reader (opened on first use), or None where the file system refuses one."""
        with self._lock:
            if self._direct is None:
                self._direct = direct.DirectFile(self._fd, self.path)
        return self._direct if self._direct.usable else None

    def close(self) -> None:
        """Unmap and close; a mapping still viewed by a live array is left to the garbage collector."""
        if self._direct is not None:
            self._direct.close()
        unmap(self._map)
        self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
