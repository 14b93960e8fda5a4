"""`RoleMap`: where each canonical role lives in a checkpoint, and how to cut it out."""

from __future__ import annotations

from dataclasses import dataclass, field

from provenance.arch.layout import Layout
from provenance.arch.roles import role_sort_key


@dataclass(frozen=True)
class Cut:
    """Take [start:stop) of every group after viewing `dim` as [groups, size/groups].

    groups=1 is a plain slice (concatenated QKV); groups=heads picks one part of
    head-interleaved QKV (GPT-NeoX); groups=kv_heads one part of Falcon's grouped QKV.
    """

    dim: int
    groups: int
    start: int
    stop: int


@dataclass(frozen=True)
class RoleSource:
    """One canonical role: the stored tensor and the steps that turn it into [d_out, d_in]."""

    role: str
    tensor: str  # checkpoint tensor name
    shape: tuple[int, ...]  # canonical shape, after every step below
    dtype: str
    expert_index: int | None = None  # index into a 3-D [n_experts, ...] tensor
    cut: Cut | None = None
    pre: tuple[str, ...] = ()  # transforms before the cut ("transpose")
    post: tuple[tuple[str, int], ...] = ()  # transforms after it (("rope_unpermute", n_heads))
    tied_to: str | None = None  # e.g. lm_head stored as the embedding
    inferred: bool = False  # role assigned from structure, not from a definition


@dataclass
class RoleMap:
    """Every role found in one checkpoint, and what could not be mapped."""

    roles: dict[str, RoleSource]
    definition: str | None  # definition name, None when all roles were inferred
    how: str  # how the definition was chosen, in words
    layout: Layout
    layers: list[int] = field(default_factory=list)  # layer indices present
    unmapped: list[str] = field(default_factory=list)  # float tensors no role claims
    ignored: list[str] = field(default_factory=list)  # buffers (position ids, masks, int tensors)
    missing: list[str] = field(default_factory=list)  # required roles the definition expected
    notes: list[str] = field(default_factory=list)
    norm: str = "pre"  # pre: norm1/norm2 feed attention/MLP; post (BERT): they follow them

    def __post_init__(self) -> None:
        self.sort_roles()

    def sort_roles(self) -> None:
        """Keep `roles` in reading order: globals, then layers by index and data flow."""
        self.roles = dict(sorted(self.roles.items(), key=lambda kv: role_sort_key(kv[0])))

    @property
    def inferred(self) -> bool:
        """True when any role was assigned from structure rather than names."""
        return any(s.inferred for s in self.roles.values())

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def coverage(self, n_float_tensors: int) -> float:
        """Share of the float tensors some role claims."""
        used = {s.tensor for s in self.roles.values()}
        return len(used) / n_float_tensors if n_float_tensors else 0.0
