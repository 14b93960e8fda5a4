"""File sha256s computed from the bytes a stream reads anyway, so hashing costs no second read.

A reader that knows where each tensor's bytes lie calls `ReadHashes.observe(path, offset, data)`
after every read. Each file keeps a cursor: bytes at the cursor are hashed as they arrive. A piece
that arrives ahead of it is hashed after reading the gap from the file when the gap is no larger
than the piece (a header, a norm vector, a head the stream skips); otherwise the gap is likely
tensors the stream reads later, so the piece waits in memory (up to `budget` bytes in all) until
the cursor reaches it, and past the budget the gap is read just for hashing. `finish()` hashes what
no read covered (an untied head the stream skips), so the digests are always those of the whole
files, whatever order the reads came in; only how many bytes are read twice depends on it.

Given the tensors' byte spans, the same in-order bytes also feed one sha256 per tensor (its stored
bytes) and a check whether the tensor is constant (every element's bytes the same, as a norm at init):
no second pass, and only the tensors under way hold a hasher.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from provenance.errors import CorruptFileError
from provenance.io.base import TensorSpan

_CHUNK = 16 * 1024 * 1024
SMALL_GAP = 4096  # gaps up to this (or up to the piece's own size) are read at once
DEFAULT_BUDGET = 64 * 1024 * 1024
_CONST_BLOCK = 4 * 1024 * 1024  # the constant check compares this many bytes at a time (bounded scratch)


@dataclass(frozen=True)
class TensorDigest:
    """sha256 of a tensor's stored bytes, and whether they repeat one element (all zeros, all ones...)."""

    sha256: str | None  # None: not hashed (no tensor of the other model has the same sampled bytes)
    constant: bool


def digest_tensor(t: torch.Tensor) -> TensorDigest:
    """The digest of a tensor in memory: its elements' bytes in row-major order (what a file stores)."""
    flat = t.detach().cpu().contiguous().reshape(-1)
    h = _TensorHash(flat.element_size())
    if flat.numel():
        h.update(memoryview(flat.view(torch.uint8).numpy()))
    return TensorDigest(h.sha.hexdigest(), h.constant)


PROBES = 4  # sampled pieces of a tensor's bytes that must agree before both sides hash it whole
PROBE_BYTES = 64


def probe_keys(spans: dict[Path, list[TensorSpan]]) -> dict[str, bytes]:
    """Per tensor: its length and PROBES pieces of its bytes (start, thirds, end). Byte-identical tensors have
    equal keys, so a tensor whose key no tensor of the other model shares cannot be byte-identical to one;
    a fine-tuned or quantized tensor differs in every piece. 4 small reads a tensor."""
    keys: dict[str, bytes] = {}
    for path, items in spans.items():
        with open(path, "rb", buffering=0) as f:
            for s in items:
                at = sorted({min(max(0, s.nbytes * k // (PROBES - 1) - PROBE_BYTES // 2), max(0, s.nbytes - PROBE_BYTES))
                             for k in range(PROBES)})
                keys[s.name] = s.nbytes.to_bytes(8, "little") + b"".join(
                    os.pread(f.fileno(), min(PROBE_BYTES, s.nbytes), s.offset + a) for a in at)
    return keys


class _TensorHash:
    """One tensor's digest and constant check, fed its bytes in order."""

    def __init__(self, period: int, hashed: bool = True) -> None:
        self.sha = hashlib.sha256() if hashed else None
        self.period = max(1, period)
        self.constant = True
        self.tail = b""  # the last `period` bytes seen (to compare across pieces)

    def update(self, piece: memoryview) -> None:
        if self.sha is not None:
            self.sha.update(piece)
        if self.constant:
            self.constant = _periodic(self.tail, piece, self.period)
            self.tail = (self.tail + bytes(piece[-self.period:]))[-self.period:]


def _periodic(tail: bytes, piece: memoryview, period: int) -> bool:
    """Whether `tail + piece` repeats with `period` (byte k equals byte k - period), checked block by block."""
    a = np.frombuffer(piece, np.uint8)
    if tail:  # the piece's first bytes against the element before them
        head = np.frombuffer(tail + bytes(piece[:period]), np.uint8)
        lo = max(period, len(tail))
        if len(head) > lo and not np.array_equal(head[lo:], head[lo - period:len(head) - period]):
            return False
    lo, size = period, 4096  # small first: a tensor of random-looking values fails within its first bytes
    while lo < len(a):
        hi = min(len(a), lo + size)
        if not np.array_equal(a[lo:hi], a[lo - period:hi - period]):
            return False
        lo, size = hi, min(4 * size, _CONST_BLOCK)
    return True


class _SpanHashes:
    """Per-tensor digests of one file, fed the file's bytes in order by its `_FileHash`; tensors outside
    `hashed` (when given) get only the constant check."""

    def __init__(self, spans: list[TensorSpan], hashed: Collection[str] | None = None) -> None:
        self.spans = sorted((s for s in spans if s.nbytes > 0), key=lambda s: (s.offset, s.nbytes))
        self.hashed = None if hashed is None else frozenset(hashed)
        self.next = 0  # first span not finished
        self.open: dict[int, _TensorHash] = {}
        self.done: dict[str, TensorDigest] = {}

    def feed(self, start: int, data: memoryview) -> None:
        end = start + len(data)
        j = self.next
        while j < len(self.spans) and self.spans[j].offset < end:
            s = self.spans[j]
            if s.name not in self.done and s.end > start:
                h = self.open.get(j) or self.open.setdefault(
                    j, _TensorHash(s.period, self.hashed is None or s.name in self.hashed))
                h.update(data[max(s.offset, start) - start:min(s.end, end) - start])
                if s.end <= end:
                    del self.open[j]
                    self.done[s.name] = TensorDigest(None if h.sha is None else h.sha.hexdigest(), h.constant)
            j += 1
        while self.next < len(self.spans) and self.spans[self.next].name in self.done:
            self.next += 1


class _FileHash:
    """The sha256 of one file, fed in any order, consumed in file order."""

    def __init__(self, path: Path, spans: list[TensorSpan] | None = None, hashed: Collection[str] | None = None) -> None:
        self.path = path
        self.size = path.stat().st_size
        self.sha = hashlib.sha256()
        self.cursor = 0
        self.ahead: dict[int, bytes] = {}  # offset -> bytes that arrived before the cursor got there
        self.ahead_bytes = 0
        self.extra_reads = 0  # bytes read only to hash them
        self.tensors = _SpanHashes(spans, hashed) if spans else None

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
        self._consume(data[self.cursor - offset:])
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
                    self._consume(memoryview(chunk))
                    self.extra_reads += len(chunk)

    def _drain(self) -> None:
        """Consume waiting pieces that the cursor has reached; drop those it passed."""
        for off in sorted(self.ahead):
            if off > self.cursor:
                break
            data = self.ahead.pop(off)
            self.ahead_bytes -= len(data)
            if off + len(data) > self.cursor:
                self._consume(memoryview(data)[self.cursor - off:])

    def _consume(self, data: memoryview) -> None:
        """Hash the bytes at the cursor (the file's and their tensors') and move the cursor past them."""
        self.sha.update(data)
        if self.tensors is not None:
            self.tensors.feed(self.cursor, data)
        self.cursor += len(data)

    def digest(self) -> str:
        self.fill(self.size)
        return self.sha.hexdigest()


class ReadHashes:
    """Per-file hashers fed by a reader's `observer` hook; thread-safe (prefetch threads read too)."""

    def __init__(self, files: list[Path], budget: int = DEFAULT_BUDGET,
                 spans: dict[Path, list[TensorSpan]] | None = None, hashed: Collection[str] | None = None) -> None:
        """`spans` (file -> its tensors' byte spans) asks for per-tensor digests too (`tensor_digests`): a
        sha256 for the tensors in `hashed` (all when None), the constant check for all."""
        self.budget = budget
        self._files = {Path(p): _FileHash(Path(p), (spans or {}).get(Path(p)), hashed) for p in files}
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

    def tensor_digests(self) -> dict[str, TensorDigest]:
        """Every spanned tensor's digest; complete once `finish()` ran (each file then was hashed to its end)."""
        with self._lock:
            return {n: d for h in self._files.values() if h.tensors is not None for n, d in h.tensors.done.items()}

    @property
    def extra_bytes(self) -> int:
        """Bytes read only to hash them so far (tails, headers and gaps)."""
        return sum(h.extra_reads for h in self._files.values())
