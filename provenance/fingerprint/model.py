"""`Fingerprint`: what a model keeps for later comparison once its weights are gone.

Plain data: the JSON metadata (source, config, roles, per-layer statistics, tokenizer
summary), per-layer residual profiles over every hidden dimension, anchor embedding rows,
anchor-projected weight sketches and the full canonical vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from provenance.fingerprint.anchors import Anchors
from provenance.vocab.model import Vocabulary

FORMAT = "provenance.fingerprint"
VERSION = 1


@dataclass
class Sketch:
    """One role's weights seen through the sketch anchors: its largest rows, then rows at fixed neuron ids."""

    rows: np.ndarray  # float32 [top + probes, m]: projections of the `top` rows of largest norm (largest
    # first), then of the probe neurons (`anchors.probe_neurons`)
    neurons: np.ndarray  # int64: each row's neuron index in the model
    n_out: int  # how many neurons (rows) the role has
    top: int  # how many leading rows are the largest ones


@dataclass
class Fingerprint:
    """One model (or tokenizer) reduced to what the weight and tokenizer evidence need."""

    meta: dict[str, Any]
    layers: list[int] = field(default_factory=list)
    profiles: np.ndarray | None = None  # float32 [L, len(PROFILE_KEYS), hidden], NaN where a role is absent
    anchors: dict[str, Anchors] = field(default_factory=dict)  # pairing mode -> anchor tokens
    anchor_rows: dict[str, np.ndarray] = field(default_factory=dict)  # pairing mode -> float32 [n, hidden]
    # pairing mode -> (layer, profile key) -> sketch on that mode's first anchors (`sketch_anchors[mode]` of them)
    sketches: dict[str, dict[tuple[int, str], Sketch]] = field(default_factory=dict)
    sketch_anchors: dict[str, int] = field(default_factory=dict)
    vocabulary: Vocabulary | None = None
    screens: dict[str, np.ndarray] = field(default_factory=dict)  # pre-filter vectors (fingerprint.screen)
    path: str | None = None  # the file it was read from

    @property
    def name(self) -> str:
        return str(self.meta.get("source", {}).get("name") or self.meta.get("source", {}).get("spec") or "?")

    def sketch_keys(self, mode: str) -> list[bytes]:
        """The anchor keys the sketches of `mode` project on, in column order."""
        return self.anchors[mode].keys[: self.sketch_anchors.get(mode, 0)]

    @property
    def has_weights(self) -> bool:
        return self.profiles is not None

    def summary(self) -> dict[str, Any]:
        """Plain-data summary: what it came from and what it holds."""
        m, src = self.meta, self.meta.get("source", {})
        return {"name": self.name, "spec": src.get("spec"), "format": src.get("format"),
                "package": src.get("package"), "license": src.get("license"), "lineage": src.get("lineage"),
                "architecture": m.get("model", {}).get("architecture"), "layers": len(self.layers) or None,
                "parameters": m.get("model", {}).get("parameters"), "hidden": m.get("weights", {}).get("hidden"),
                "vocab_rows": m.get("facts", {}).get("vocab"), "dtype": m.get("facts", {}).get("dtype"),
                "quantized": m.get("facts", {}).get("quantized"),
                "anchors": {mode: len(a) for mode, a in self.anchors.items()},
                "sketches": {mode: len(s) for mode, s in self.sketches.items()},
                "tokenizer": self.vocabulary.summary() if self.vocabulary is not None else None,
                "file": self.path}

    def __repr__(self) -> str:
        what = f"{len(self.layers)} layers" if self.has_weights else "tokenizer only"
        return f"<Fingerprint {self.name!r}: {what}>"
