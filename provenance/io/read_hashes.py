"""File sha256s computed from the bytes a stream reads anyway, so hashing costs no second read.

A reader that knows where each tensor's bytes lie calls `ReadHashes.observe(path, offset, data)`
after every read. Each file keeps a cursor: bytes at the cursor are hashed as they arrive. A piece
that arrives ahead of it is hashed after reading the gap from the file when the gap is no larger
than the piece (a header, a norm vector, a head the stream skips); otherwise the gap is likely
tensors the stream reads later, so the piece waits in memory (up to `budget` bytes in all) until
the cursor reaches it, and past the budget the gap is read just for hashing. `finish()` hashes what
no read covered (an untied head the stream skips), so the digests are always those of the whole
files, whatever order the reads came in; only how many bytes are read twice depends on it.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from provenance.errors import CorruptFileError

_CHUNK = 16 * 1024 * 1024
SMALL_GAP = 4096  # gaps up to this (or up to the piece's own size) are read at once
DEFAULT_BUDGET = 64 * 1024 * 1024


class _FileHash:
    """The sha256 of one file, fed in any order, consumed in file order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size
        self.sha = hashlib.sha256()
        self.cursor = 0
        self.ahead: dict[int, bytes] = {}  # offset -> bytes that arrived before the cursor got there
        self.ahead_bytes = 0
        self.extra_reads = 0  # bytes read only to hash them

    def feed(self, offset: int, data: memoryview, budget: int) -> None:
        end = offset + len(data)
        if end <= self.cursor:
            return
        if offset > self.cursor:
            if offset - self.cursor > max(SMALL_GAP, len(data)) and self.ahead_bytes + len(data) <= budget:
                held = len(self.ahead.get(offset, b""))
                if len(data) > held:
                    self.ahead_bytes += len(data) - held
                    self.ahead[offset] = bytes(data)
                return
            self.fill(offset)
            if end <= self.cursor:
                return
        self.sha.update(data[self.cursor - offset:])
        self.cursor = end
        self._drain()

    def fill(self, until: int) -> None:
        """Hash [cursor, until) from pieces waiting ahead, or from the file where none covers it."""
        with open(self.path, "rb") as f:
            while self.cursor < until:
                self._drain()
                if self.cursor >= until:
                    break
                nxt = min((o for o in self.ahead if o > self.cursor), default=until)
                f.seek(self.cursor)
                while self.cursor < min(nxt, until):
                    chunk = f.read(min(_CHUNK, min(nxt, until) - self.cursor))
                    if not chunk:
                        raise CorruptFileError(f"the file ended at byte {self.cursor} while it was hashed; it "
                                               f"changed during the run, run again on a stable copy", path=self.path)
                    self.sha.update(chunk)
                    self.cursor += len(chunk)
                    self.extra_reads += len(chunk)

    def _drain(self) -> None:
        """Consume waiting pieces that the cursor has reached; drop those it passed."""
        for off in sorted(self.ahead):
            if off > self.cursor:
                break
            data = self.ahead.pop(off)
            self.ahead_bytes -= len(data)
            if off + len(data) > self.cursor:
                self.sha.update(memoryview(data)[self.cursor - off:])
                self.cursor = off + len(data)

    def digest(self) -> str:
        self.fill(self.size)
        return self.sha.hexdigest()


class ReadHashes:
    """Per-file hashers fed by a reader's `observer` hook; thread-safe (prefetch threads read too)."""

    def __init__(self, files: list[Path], budget: int = DEFAULT_BUDGET) -> None:
        self.budget = budget
        self._files = {Path(p): _FileHash(Path(p)) for p in files}
        self._lock = threading.Lock()

    def observe(self, path: Path, offset: int, data: memoryview | bytes | bytearray) -> None:
        """Record that the bytes `data` were read from `path` at `offset`."""
        h = self._files.get(Path(path))
        if h is None:
            return
        with self._lock:
            h.feed(offset, memoryview(data).cast("B"), self.budget)

    def finish(self) -> dict[Path, str]:
        """sha256 of every file, reading only what no observed read covered."""
        with self._lock:
            return {p: h.digest() for p, h in self._files.items()}

    @property
    def extra_bytes(self) -> int:
        """Bytes read only to hash them so far (tails, headers and gaps)."""
        return sum(h.extra_reads for h in self._files.values())
