"""Stream a model's roles as float32, reading the next tensor while the current one is processed.

On the CPU, reads go into two reused byte buffers (double buffering) and conversions into one
reused float32 buffer, so a pass over a 7B model costs no fresh pages per tensor and the disk
keeps busy while the other core computes. On CUDA, tensors move to the device and convert there.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from provenance.arch.view import CanonicalModel, materialize
from provenance.io.convert import to_f32


class RoleStream:
    """Yields (role, tensor) in order; each tensor is valid until the next one is yielded.

    Tensors are float32, except on the CPU for roles stored whole (no fused split, transpose or
    expert slice): those come in their stored float dtype, for consumers that widen in blocks.
    """

    def __init__(self, model: CanonicalModel, device: str = "cpu") -> None:
        self.model = model
        self.device = torch.device(device)
        infos = model.checkpoint.tensors
        largest = max((infos[s.tensor].nbytes for s in model.roles.roles.values()), default=0)
        largest_elems = max((infos[s.tensor].numel for s in model.roles.roles.values()), default=0)
        self._raw = [np.empty(largest, np.uint8), np.empty(largest, np.uint8)] if self._fast else []
        self._f32 = np.empty(largest_elems, np.float32) if self._fast else None

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
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="provenance-read") as pool:
            pending: Future | None = pool.submit(self._read, roles[0], 0) if roles else None
            for k, role in enumerate(roles):
                raw = pending.result() if pending is not None else None
                pending = pool.submit(self._read, roles[k + 1], (k + 1) % 2) if k + 1 < len(roles) else None
                src = self.model.roles.roles[role]
                plain = src.expert_index is None and src.cut is None and not src.pre and not src.post
                if plain and raw.dtype in (torch.bfloat16, torch.float16, torch.float32):
                    yield role, raw
                else:
                    yield role, materialize(to_f32(raw, self._f32 if self._fast else None), src)
