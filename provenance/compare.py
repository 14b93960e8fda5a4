"""`compare(base, candidate)`: was the candidate built from the base? Plain data in, plain data out.

One options object (`CompareOptions`) is shared by the CLI, the Python API and notebooks.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from provenance import __version__
from provenance.arch.view import CanonicalModel, open_model
from provenance.errors import InvalidParameterError
from provenance.evidence import Evidence, Verdict, decide, storage_tolerance, weight_items
from provenance.io.convert import resolve_device
from provenance.signals.config import config_comparison, config_finding
from provenance.signals.profiles import PROFILE_KEYS
from provenance.signals.weights import WeightEvidence, weight_evidence

SCHEMA = "provenance.compare/1"
AVAILABLE_SIGNALS = ("weights", "config")
PLANNED_SIGNALS = ("tokenizer", "activations")


@dataclass(frozen=True)
class CompareOptions:
    """Options of one comparison (CLI flags map onto these one to one)."""

    signals: tuple[str, ...] = AVAILABLE_SIGNALS
    device: str = "auto"
    seed: int = 0
    hashes: bool = True
    progress: bool = False

    def __post_init__(self) -> None:
        for s in self.signals:
            if s in PLANNED_SIGNALS:
                raise InvalidParameterError("signals", "compare", f"a subset of {AVAILABLE_SIGNALS} "
                                            f"({s!r} evidence is not implemented yet)", s)
            if s not in AVAILABLE_SIGNALS:
                raise InvalidParameterError("signals", "compare", f"a subset of {AVAILABLE_SIGNALS}", s)


@dataclass
class CompareResult:
    """The comparison: both models, the verdict, evidence items, the layer map, the environment."""

    base: dict[str, Any]
    candidate: dict[str, Any]
    verdict: Verdict
    evidence: list[Evidence]
    layer_map: list[list[float]]
    environment: dict[str, Any]
    weights: WeightEvidence | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of DESIGN.md (`provenance.compare/1`)."""
        v = asdict(self.verdict)
        return {"schema": SCHEMA, "base": self.base, "candidate": self.candidate,
                "verdict": {k: v[k] for k in ("label", "relation", "confidence", "p_value", "explanation")},
                "evidence": [asdict(e) for e in self.evidence], "layer_map": self.layer_map,
                "environment": self.environment}

    def evidence_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame([{k: v for k, v in asdict(e).items() if k != "details"} for e in self.evidence])

    def layer_map_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.layer_map, columns=["base_layer", "candidate_layer", "similarity"])


def _model_info(m: CanonicalModel, hashes: bool) -> dict[str, Any]:
    ck, rm = m.checkpoint, m.roles
    return {"spec": ck.spec, "path": str(ck.root), "format": ck.format,
            "architecture": ck.config.get("model_type"), "definition": rm.definition,
            "roles_inferred": rm.inferred, "layers": rm.num_layers, "parameters": ck.parameter_count(),
            "dtypes": dict(Counter(s.dtype for s in rm.roles.values()).most_common()),
            "sha256": ck.sha256() if hashes else {}}


def _shapes(a: CanonicalModel, b: CanonicalModel) -> dict[str, Any]:
    """(base, candidate) sizes and flags the relation wording needs."""
    def dim(m: CanonicalModel, role_suffix: str, axis: int) -> int | None:
        """A size read off the first role with this suffix (configs can be missing or wrong)."""
        src = next((s for r, s in m.roles.roles.items() if r == role_suffix or r.endswith("." + role_suffix)), None)
        return src.shape[axis] if src is not None and len(src.shape) > axis else None

    common = set(a.roles.roles) & set(b.roles.roles)
    same_format = a.checkpoint.format == b.checkpoint.format
    renamed = a.roles.inferred or b.roles.inferred or (
        same_format and any(a.roles.roles[r].tensor != b.roles.roles[r].tensor for r in common))
    da = Counter(s.dtype for s in a.roles.roles.values()).most_common(1)
    db = Counter(s.dtype for s in b.roles.roles.values()).most_common(1)
    quantized = any(i.quantized for m in (a, b) for i in m.checkpoint.tensors.values())
    tolerance = sum(storage_tolerance({s.dtype for r, s in m.roles.roles.items() if r.startswith("layers.")})
                    for m in (a, b))
    return {"hidden": (dim(a, "embed", 1), dim(b, "embed", 1)),
            "intermediate": (dim(a, "mlp.up", 0), dim(b, "mlp.up", 0)),
            "vocab": (dim(a, "embed", 0), dim(b, "embed", 0)), "renamed": bool(renamed), "quantized": quantized,
            "dtypes_differ": (da[0][0] if da else None) != (db[0][0] if db else None), "tolerance": tolerance}


def _environment(device: torch.device, seed: int) -> dict[str, Any]:
    return {"provenance": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "device": str(device),
            "seed": seed, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def _progress_bar(a: CanonicalModel, b: CanonicalModel, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    total = sum(1 for m in (a, b) for i in m.roles.layers for k in PROFILE_KEYS if f"layers.{i}.{k}" in m.roles.roles)
    return tqdm(total=total, unit="tensor", desc="comparing weights", leave=False, disable=None)


def compare(base: str | os.PathLike[str], candidate: str | os.PathLike[str],
            options: CompareOptions | None = None) -> CompareResult:
    """Compare two model specs; returns a CompareResult (never prints, never writes files)."""
    opts = options or CompareOptions()
    device = resolve_device(opts.device)
    with open_model(base) as a, open_model(candidate) as b:
        evidence: list[Evidence] = []
        w = None
        if "weights" in opts.signals:
            bar = _progress_bar(a, b, opts.progress)
            try:
                w = weight_evidence(a, b, device=str(device), seed=opts.seed,
                                    progress=bar.update if bar is not None else None)
            finally:
                if bar is not None:
                    bar.close()
            evidence += weight_items(w)
        if "config" in opts.signals:
            cmp = config_comparison(a, b)
            evidence.append(Evidence("config", None, None, config_finding(cmp), cmp))
        verdict = decide(w, _shapes(a, b)) if w is not None else Verdict(
            "inconclusive", None, 0.0, None, "The weight signal was not run; metadata alone decides nothing.")
        layer_map = [[x, y, round(s, 6)] for x, y, s in w.layer_map.pairs] if w and w.layer_map else []
        return CompareResult(_model_info(a, opts.hashes), _model_info(b, opts.hashes), verdict, evidence,
                             layer_map, _environment(device, opts.seed), w)
