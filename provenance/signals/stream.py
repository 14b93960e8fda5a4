"""Stream a model's roles as float32, reading the next tensor while the current one is processed.

On the CPU, reads go into a ring of reused byte buffers (AHEAD + 1 of them) and conversions into one
reused float32 buffer, so a pass over a 7B model costs no fresh pages per tensor and the disk
keeps busy while the other core computes. On CUDA, tensors move to the device and convert there.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from provenance.arch.view import CanonicalModel, materialize
from provenance.io.convert import to_f32

AHEAD = 3  # tensors read ahead of the one being processed: keeps the disk busy through long computations


class RoleStream:
    """Yields (role, tensor) in order; each tensor is valid until the next one is yielded.

    Tensors are float32, except on the CPU for roles stored whole (no fused split, transpose or
    expert slice): those come in their stored float dtype, for consumers that widen in blocks.
    """

    def __init__(self, model: CanonicalModel, device: str = "cpu", *, ahead: int = AHEAD) -> None:
        self.model = model
        self.device = torch.device(device)
        self.ahead = ahead
        self._raw: list[np.ndarray] = []
        self._f32: np.ndarray | None = None

    def _buffers(self, roles: list[str]) -> None:
        """One byte buffer per tensor in flight and one float32 buffer, sized for these roles."""
        infos = self.model.checkpoint.tensors
        sources = [infos[self.model.roles.roles[r].tensor] for r in roles]
        largest = max((i.nbytes for i in sources), default=0)
        self._raw = [np.empty(largest, np.uint8) for _ in range(self.ahead + 1)]
        self._f32 = np.empty(max((i.numel for i in sources), default=0), np.float32)

    @property
    def _fast(self) -> bool:
        return self.device.type == "cpu" and hasattr(self.model.checkpoint.reader, "read_into")

    def _read(self, role: str, slot: int) -> torch.Tensor:
        src = self.model.roles.roles[role]
        reader = self.model.checkpoint.reader
        if self._fast:
            return reader.read_into(src.tensor, self._raw[slot])
        return reader.read(src.tensor)

    def __call__(self, roles: list[str]) -> Iterator[tuple[str, torch.Tensor]]:
        if self.device.type != "cpu":
            for role in roles:
                yield role, self.model.tensor(role, device=self.device, dtype="float32")
            return
        if self._fast:
            self._buffers(roles)
        slots = self.ahead + 1
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="provenance-read") as pool:
            pending: deque[Future] = deque(pool.submit(self._read, r, k % slots)
                                           for k, r in enumerate(roles[: self.ahead]))
            for k, role in enumerate(roles):
                nxt = k + self.ahead
                if nxt < len(roles):  # its slot is free: the tensor that used it was yielded and dropped
                    pending.append(pool.submit(self._read, roles[nxt], nxt % slots))
                raw = pending.popleft().result()
                src = self.model.roles.roles[role]
                plain = src.expert_index is None and src.cut is None and not src.pre and not src.post
                if plain and raw.dtype in (torch.bfloat16, torch.float16, torch.float32):
                    yield role, raw
                else:
                    yield role, materialize(to_f32(raw, self._f32 if self._fast else None), src)
