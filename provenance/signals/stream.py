"""Stream a model's roles one tensor at a time, reading ahead of the one being processed.

On the CPU, a safetensors checkpoint is viewed through read-only mappings of its files
(`provenance.io.mapped`): a reader thread maps the next `ahead` tensors in (the kernel reads each in
large sequential requests), so the disk stays busy while the other core computes and no byte is
copied; the consumer `release`s each tensor when it is done with it. (Asking the kernel to read a
further 1 GiB ahead with MADV_WILLNEED was measured: it halved the cold stream's rate and took ten
times the CPU, 13 GB at 1.1-1.3 GB/s and 3.6 CPU-s against 2.6-2.8 GB/s and 0.4 CPU-s, load ~4.5.)
Bytes not yet in the page cache are read past it instead (O_DIRECT, `provenance.io.direct`) into a
reused ring of buffers (`provenance.io.arena`): adding a cold page to the cache costs more CPU than the
arithmetic on it on a virtual machine, and a comparison reads each byte once. A tensor the ring has no
room for, or a file system that refuses direct reads, falls back to the mapping.
Other formats are read with `reader.read` on the reader thread. On CUDA, tensors move to the device and convert there. The
plain reference path (`provenance.fastpath`) reads each tensor with `reader.read` when it is asked
for, on the calling thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from provenance import fastpath
from provenance.arch.view import CanonicalModel, materialize
from provenance.io import direct, mapped
from provenance.io.arena import Arena
from provenance.io.convert import to_f32

AHEAD = 3  # tensors mapped in (or read) ahead of the one being processed
HELD = 3  # tensors a consumer holds besides those read ahead (the one yielded, two being reduced)


def maps_files(model: CanonicalModel, device: torch.device) -> bool:
    """Whether `model`'s tensors are read here as views of mapped files (the fast CPU path for safetensors)."""
    return (fastpath.enabled() and device.type == "cpu" and mapped.available()
            and hasattr(model.checkpoint.reader, "read_mapped"))


def ring_capacity(spans: list[tuple[int, int]], window: int) -> int:
    """Ring bytes that never turn a tensor away: the most any `window` tensors in a row take (each
    (offset, nbytes) read as whole aligned blocks), plus the largest (the room a wrap can leave unused)."""
    need = [direct.span(offset, n) for offset, n in spans if n >= direct.MIN_BYTES]
    if not need:
        return 0
    most = max(sum(need[i:i + window]) for i in range(max(1, len(need) - window + 1)))
    return most + max(need)


class RoleStream:
    """Yields (role, tensor) in order; a tensor is valid until `release(role)` (or the next yield on the plain path).

    Tensors are float32, except on the CPU for roles stored whole (no fused split, transpose or
    expert slice): those come in their stored float dtype, for consumers that widen in blocks.
    `start(roles)` begins reading before the caller is ready to consume (its reads overlap other work);
    `then`, if set, runs on the reader thread once the last tensor is in (to start the next stream).
    """

    def __init__(self, model: CanonicalModel, device: str = "cpu", *, ahead: int = AHEAD) -> None:
        self.model = model
        self.device = torch.device(device)
        self.ahead = ahead
        self.then: Callable[[], None] | None = None
        self._roles: list[str] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[Future] = deque()
        self._next = 0  # the next role to submit to the reader thread
        self._spans: dict[str, tuple[mapped.MappedFile, int, int]] = {}  # role -> (file, offset, nbytes)
        self._arena: Arena | None = None
        self._regions: dict[str, int] = {}  # role -> its span of the ring (its bytes, or emptied while mapped)
        self.direct_reads = self.fallbacks = 0  # tensors read past the page cache; cold ones the ring had no room for
        self._closed = False

    @property
    def mapped(self) -> bool:
        """Whether tensors are views of mapped files (the fast CPU path for safetensors)."""
        return maps_files(self.model, self.device)

    @property
    def threaded(self) -> bool:
        return fastpath.enabled() and self.device.type == "cpu"

    def start(self, roles: list[str]) -> None:
        """Begin reading `roles` ahead (a no-op where reads are not threaded or were already started)."""
        if self._roles is not None or self._closed or not self.threaded:
            return
        self._roles = list(roles)
        if self.mapped:
            reader = self.model.checkpoint.reader
            self._spans = {r: reader.mapping(self.model.roles.roles[r].tensor) for r in self._roles}
            ring = ring_capacity([(offset, n) for _, offset, n in self._spans.values()], self.ahead + HELD)
            if ring and direct.available():
                self._arena = Arena(ring)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="provenance-read")
        while self._next < min(self.ahead, len(self._roles)):
            self._submit()

    def _submit(self) -> None:
        assert self._pool is not None and self._roles is not None
        k = self._next
        self._next += 1
        self._pending.append(self._pool.submit(self._fetch, k))

    def _fetch(self, k: int) -> torch.Tensor:
        """On the reader thread: map tensor `k` in (or read it); run `then` after the last."""
        assert self._roles is not None
        src = self.model.roles.roles[self._roles[k]]
        reader = self.model.checkpoint.reader
        if self._spans:
            mfile, offset, nbytes = self._spans[self._roles[k]]
            cold = self._ring_read(self._roles[k], mfile, offset, nbytes)
            if cold is None:
                mfile.populate(offset, nbytes)
            raw = reader.read_mapped(src.tensor, cold)
        else:
            raw = reader.read(src.tensor)
        if k == len(self._roles) - 1 and self.then is not None:
            self.then()
        return raw

    def _ring_read(self, role: str, mfile: mapped.MappedFile, offset: int, nbytes: int) -> np.ndarray | None:
        """On the reader thread: `role`'s bytes read past the page cache into the ring, or None (map them).

        A cached tensor is mapped, but still holds its span of the ring, emptied of pages, until released:
        the ring's size then bounds the bytes in flight by either route (a half-cached pair would
        otherwise keep the whole ring resident beside the mapped tensors)."""
        if self._arena is None or nbytes < direct.MIN_BYTES:
            return None
        taken = self._arena.take(direct.span(offset, nbytes))
        if taken is None:
            self.fallbacks += 1
            return None
        start, region = taken
        self._regions[role] = start
        dfile = None if mfile.resident(offset, nbytes) else mfile.direct_file()
        raw = None if dfile is None else dfile.read(offset, nbytes, region)
        if raw is None:
            self._arena.empty(start)
        else:
            self.direct_reads += 1
        return raw

    def release(self, role: str) -> None:
        """The consumer is done with `role`'s tensor: hand its ring span back, drop its pages from the
        mapping if it was mapped (a no-op elsewhere)."""
        start = self._regions.pop(role, None)
        if start is not None:
            assert self._arena is not None
            self._arena.give(start)
        if role in self._spans:
            mfile, offset, nbytes = self._spans[role]
            mfile.release(offset, nbytes)

    def close(self) -> None:
        """Stop the reader thread (reads under way finish; none start, and `start` does nothing after)."""
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._arena is not None:
            self._arena.close()  # unmapped once the last tensor viewing it is gone

    def _widened(self, role: str, raw: torch.Tensor) -> torch.Tensor:
        src = self.model.roles.roles[role]
        plain = src.expert_index is None and src.cut is None and not src.pre and not src.post
        if plain and raw.dtype in (torch.bfloat16, torch.float16, torch.float32):
            return raw
        return materialize(to_f32(raw), src)

    def __call__(self, roles: list[str]) -> Iterator[tuple[str, torch.Tensor]]:
        if self.device.type != "cpu":
            for role in roles:
                yield role, self.model.tensor(role, device=self.device, dtype="float32")
            return
        if not self.threaded:
            for role in roles:
                yield role, self._widened(role, self.model.checkpoint.reader.read(self.model.roles.roles[role].tensor))
            return
        self.start(roles)
        if self._roles != list(roles):
            raise ValueError("a started RoleStream must be consumed with the roles it was started with")
        try:
            for role in roles:
                if self._next < len(roles):
                    self._submit()
                yield role, self._widened(role, self._pending.popleft().result())
        finally:
            self.close()
