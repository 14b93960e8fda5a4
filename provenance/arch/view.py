"""`CanonicalModel`: a checkpoint seen through its RoleMap — read any role, one at a time."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from provenance.arch.refine import refine_q_o
from provenance.arch.rolemap import Cut, RoleMap, RoleSource
from provenance.arch.select import map_roles
from provenance.errors import TensorNotFoundError
from provenance.io.checkpoint import Checkpoint
from provenance.io.convert import place, resolve_device, resolve_dtype
from provenance.io.resolve import open_checkpoint


def apply_cut(t: torch.Tensor, cut: Cut) -> torch.Tensor:
    """View `cut.dim` as [groups, size/groups], keep [start:stop) of each group, flatten back."""
    shape = list(t.shape)
    grouped = t.reshape(shape[:cut.dim] + [cut.groups, shape[cut.dim] // cut.groups] + shape[cut.dim + 1:])
    part = grouped.narrow(cut.dim + 1, cut.start, cut.stop - cut.start)
    return part.reshape(shape[:cut.dim] + [cut.groups * (cut.stop - cut.start)] + shape[cut.dim + 1:])


def rope_unpermute(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Undo llama.cpp's Q/K row permutation (GGUF interleaves each head's rotary halves).

    >>> w = torch.arange(8.).reshape(8, 1)
    >>> rope_unpermute(rope_permute(w, 2), 2).flatten().tolist() == w.flatten().tolist()
    True
    """
    rows = w.shape[0]
    return w.reshape(n_heads, rows // n_heads // 2, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def rope_permute(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """The forward permutation llama.cpp's converter applies (inverse of `rope_unpermute`)."""
    rows = w.shape[0]
    return w.reshape(n_heads, 2, rows // n_heads // 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def materialize(raw: torch.Tensor, src: RoleSource) -> torch.Tensor:
    """Turn the stored tensor into the role's canonical tensor (expert slice, transpose, cut, rope)."""
    t = raw[src.expert_index] if src.expert_index is not None else raw
    if "transpose" in src.pre:
        t = t.t()
    if src.cut is not None:
        t = apply_cut(t, src.cut)
    for name, arg in src.post:
        if name == "rope_unpermute":
            t = rope_unpermute(t, arg)
    return t.contiguous()


@dataclass
class CanonicalModel:
    """A checkpoint plus its canonical role map; tensors stream one role at a time."""

    checkpoint: Checkpoint
    roles: RoleMap

    def tensor(self, role: str, *, device: str | torch.device = "cpu",
               dtype: str | torch.dtype | None = None) -> torch.Tensor:
        """The canonical tensor of `role` ([d_out, d_in] for matrices) on `device`."""
        src = self.roles.roles.get(role)
        if src is None:
            raise TensorNotFoundError(role, self.roles.roles, path=self.checkpoint.root, what="role")
        t = materialize(self.checkpoint.reader.read(src.tensor), src)
        return place(t, resolve_device(device), resolve_dtype(dtype))

    def close(self) -> None:
        self.checkpoint.close()

    def __enter__(self) -> CanonicalModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_model(spec: str | os.PathLike[str]) -> CanonicalModel:
    """Open a model spec and map its tensors to canonical roles.

    Reads headers only, except for checkpoints whose names had to be inferred: then the
    attention Q/O weights are read to tell them apart (see `provenance.arch.refine`).
    """
    ckpt = open_checkpoint(spec)
    try:
        roles = map_roles(ckpt.tensors, ckpt.config, ckpt.format)
        if roles.inferred:  # anonymous names: let the weights settle what shapes cannot
            roles = refine_q_o(roles, ckpt.reader.read)
        return CanonicalModel(ckpt, roles)
    except BaseException:
        ckpt.close()
        raise
