"""A ring of page-aligned bytes that a stream reads tensors into and hands back in the order it took them.

Reused memory costs the kernel nothing after the first pass: a fresh buffer per tensor would be
faulted in and zeroed page by page every time. Regions are page-aligned, as direct I/O requires
(`provenance.io.direct`). `take` never waits: when the ring is full it answers None and the caller
reads that tensor another way, so a consumer that holds more tensors than the ring fits cannot
deadlock the reader.
"""

from __future__ import annotations

import mmap
import threading
from collections import deque

import numpy as np

ALIGN = 4096  # the page, and a multiple of every block device's logical block


def aligned(n: int) -> int:
    """`n` rounded up to a multiple of ALIGN."""
    return -(-n // ALIGN) * ALIGN


class Arena:
    """FIFO ring allocator over one anonymous mapping of `capacity` bytes (mapped on first use)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = aligned(max(capacity, ALIGN))
        self._map: mmap.mmap | None = None
        self._bytes: np.ndarray | None = None
        self._live: deque[list[int]] = deque()  # [start, end, given back]; oldest first
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> tuple[int, np.ndarray] | None:
        """(a region's start, its `aligned(nbytes)` bytes), or None if the ring has no room now."""
        n = aligned(nbytes)
        with self._lock:
            start = self._free_start(n)
            if start is None:
                return None
            if self._bytes is None:
                self._map = mmap.mmap(-1, self.capacity, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
                self._bytes = np.frombuffer(self._map, np.uint8)
            self._live.append([start, start + n, 0])
            return start, self._bytes[start:start + n]

    def _free_start(self, n: int) -> int | None:
        if n > self.capacity:
            return None
        if not self._live:
            return 0
        oldest, newest = self._live[0][0], self._live[-1][1]
        if self._live[-1][0] >= oldest:  # in use: [oldest, newest); free at the end, then from the start
            if newest + n <= self.capacity:
                return newest
            return 0 if n <= oldest else None
        return newest if newest + n <= oldest else None  # wrapped: free only between the two

    def empty(self, start: int) -> None:
        """Free the pages of the region at `start` (still taken): its span is held for bytes kept elsewhere."""
        with self._lock:
            for begin, end, _ in self._live:
                if begin == start:
                    assert self._map is not None
                    self._map.madvise(mmap.MADV_DONTNEED, begin, end - begin)
                    return
        raise ValueError(f"no region of this arena starts at {start}")

    def give(self, start: int) -> None:
        """Hand the region at `start` back; space is reused once every older region is back too."""
        with self._lock:
            for entry in self._live:
                if entry[0] == start and not entry[2]:
                    entry[2] = 1
                    break
            else:
                raise ValueError(f"no region of this arena starts at {start}")
            while self._live and self._live[0][2]:
                self._live.popleft()

    @property
    def in_use(self) -> int:
        """Regions taken and not yet reusable."""
        return len(self._live)

    def close(self) -> None:
        """Unmap (left to the garbage collector while an array still views it)."""
        self._bytes = None
        unmap(self._map)
        self._map = None


def unmap(mapping: mmap.mmap | None) -> None:
    """Close a mapping now, or leave it to the garbage collector while an array still views it
    (closing it under a live view would turn the view's next read into a crash; mmap refuses)."""
    if mapping is not None:
        try:
            mapping.close()
        except BufferError:
            pass
