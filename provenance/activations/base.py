"""What every activation runner provides: tokenization with character offsets, and capture of
chosen token positions' activations per layer (memory bounded by the positions asked for)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass
class Encoded:
    """Token ids and the character span each token covers in its text ((0, 0) for added specials)."""

    input_ids: list[list[int]]
    offsets: list[list[tuple[int, int]]]


@dataclass
class Captured:
    """Activations at the requested positions, in request order (text by text, position by position).

    residual: float32 [layers, n, d] — the residual stream after each transformer block.
    mlp: per view, float32 [layers, n, f] — 'gate' and 'up' projection outputs for gated MLPs
    (for MoE: every routed expert's, concatenated), 'act' (the hidden activation after the
    nonlinearity) for plain MLPs; empty when the runner could not capture them (`missing` says why).
    """

    residual: np.ndarray
    mlp: dict[str, np.ndarray] = field(default_factory=dict)
    tokens: int = 0  # tokens run through the model (all positions, not only the captured ones)
    notes: list[str] = field(default_factory=list)  # how the activations were found, when a report should say
    missing: str = ""  # why `mlp` is empty ("" when it is not, or when nobody said)


class ActivationModel(Protocol):
    """A model we can run without executing code from its files."""

    name: str

    def encode(self, texts: list[str]) -> Encoded: ...

    def capture(self, enc: Encoded, positions: list[list[int]], *, batch_size: int = 8) -> Captured: ...

    def close(self) -> None: ...
