"""`AuditOptions`: the one options object of an audit, shared by the CLI, `provenance.audit` and notebooks."""

from __future__ import annotations

from dataclasses import dataclass

from provenance.errors import InvalidParameterError
from provenance.identify import SCREEN_JACCARD, SCREEN_R

COMPARE = ("screened", "all")


@dataclass(frozen=True)
class AuditOptions:
    """Options of one audit (CLI flags map onto these)."""

    executor: str = "local"
    workers: int = 1
    address: str | None = None  # a Ray cluster; None starts a local Ray instance
    hashes: bool = True
    device: str = "cpu"  # where fingerprinting streams the weights (auto: CUDA when present)
    seed: int = 0
    compare: str = "screened"  # screened: pairs the screen flags; all: every pair
    screen_r: float = SCREEN_R
    screen_jaccard: float = SCREEN_JACCARD
    progress: bool | None = False  # bars on stderr; None: when stderr is a terminal

    def __post_init__(self) -> None:
        if self.compare not in COMPARE:
            raise InvalidParameterError("compare", "audit", f"one of {COMPARE}", self.compare)
