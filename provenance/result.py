"""`CompareResult`: a comparison as plain data, with DataFrames, figures and reports for notebooks.

Every view is computed from `to_dict()` (the `provenance.compare/1` JSON), so a result loaded
from a saved file (`CompareResult.load`) shows, plots and renders exactly like a fresh one.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from provenance.evidence import Evidence, Verdict, identical_files
from provenance.report import sections
from provenance.report.schema import SCHEMA_ID, validate_result

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from provenance.signals.activations import ActivationEvidence
    from provenance.signals.weights import WeightEvidence
    from provenance.vocab.compare import VocabComparison

VERDICT_KEYS = ("label", "relation", "confidence", "p_value", "explanation", "decided_by", "signals",
                "disagreements")


@dataclass
class CompareResult:
    """The comparison: both models, the verdict, evidence items, the layer map, the environment."""

    base: dict[str, Any]
    candidate: dict[str, Any]
    verdict: Verdict
    evidence: list[Evidence]
    layer_map: list[list[float]]
    environment: dict[str, Any]
    weights: WeightEvidence | None = field(default=None, repr=False)  # the raw measurements (fresh runs only)
    tokenizer: VocabComparison | None = field(default=None, repr=False)
    activations: ActivationEvidence | None = field(default=None, repr=False)
    measurements: dict[str, Any] = field(default_factory=dict, repr=False)  # every signal's raw measurement, by name

    def __post_init__(self) -> None:
        """Byte-identical weight files (the same sha256 on both sides) are said so, whichever path compared them."""
        self.verdict = identical_files(self.verdict, self.base.get("sha256") or {}, self.candidate.get("sha256") or {})

    def __repr__(self) -> str:
        v = self.verdict
        from provenance.report.pvalues import p_phrase

        return (f"<CompareResult {v.label}" + (f" ({v.relation})" if v.relation else "") + f", {p_phrase(v.p_value)}: "
                f"{self.candidate.get('spec')!r} vs {self.base.get('spec')!r}, {len(self.evidence)} evidence items>")

    # -- the JSON contract ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of DESIGN.md (`provenance.compare/1`); non-finite numbers become null."""
        v = asdict(self.verdict)
        return _finite({"schema": SCHEMA_ID, "base": self.base, "candidate": self.candidate,
                        "verdict": {k: v[k] for k in VERDICT_KEYS},
                        "evidence": [asdict(e) for e in self.evidence], "layer_map": self.layer_map,
                        "environment": self.environment})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any, source: str = "result") -> CompareResult:
        """A result from its JSON form, validated against the schema (ProvenanceError names the problem)."""
        validate_result(data, source)
        v = data["verdict"]
        return cls(data["base"], data["candidate"], Verdict(**{k: v[k] for k in VERDICT_KEYS}),
                   [Evidence(**e) for e in data["evidence"]], data["layer_map"], data["environment"])

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CompareResult:
        """Read a result written by `provenance compare --json` (or `save`); strict JSON (no NaN)."""
        from provenance.jsonfile import read_json

        return cls.from_dict(read_json(path, hint="a provenance.compare/1 result is expected", strict=True), str(path))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the JSON atomically."""
        from provenance.outfile import write_atomic

        write_atomic(path, self.to_json())

    # -- DataFrames ----------------------------------------------------------------------------
    def evidence_frame(self) -> pd.DataFrame:
        """One row per evidence item: signal, kind, statistic, p-value, finding."""
        import pandas as pd

        return pd.DataFrame([{"signal": e.signal, "kind": e.kind, "statistic": e.statistic, "p_value": e.p_value,
                              "finding": e.finding} for e in self.evidence],
                            columns=["signal", "kind", "statistic", "p_value", "finding"])

    def signals_frame(self) -> pd.DataFrame:
        """Each signal's own verdict and its role in the combined one."""
        import pandas as pd

        return pd.DataFrame(self.verdict.signals, columns=["signal", "label", "relation", "p_value", "role", "finding"])

    def layer_map_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.layer_map, columns=["base_layer", "candidate_layer", "similarity"])

    def weight_layers_frame(self) -> pd.DataFrame:
        """Per candidate layer: best base layer, profile correlation, p-value (weights)."""
        import pandas as pd

        return pd.DataFrame(sections.weight_layers(self.to_dict()),
                            columns=["base", "candidate", "similarity", "p_value"])

    def neurons_frame(self) -> pd.DataFrame:
        """Per candidate layer: matched-neuron statistics (activations)."""
        import pandas as pd

        data = self.to_dict()
        rows = sections.neuron_layers(data)
        e = sections.item(data, "activations", "neurons")
        carried = {tuple(x) for x in e["details"].get("carried_by", [])} if e else set()
        return pd.DataFrame([{**t, "carries": (t["base_layer"], t["candidate_layer"]) in carried} for t in rows])

    def similarity_frame(self, signal: str = "weights") -> pd.DataFrame:
        """The layer x layer matrix (rows: base layers, columns: candidate layers) of 'weights' or 'activations'."""
        import pandas as pd

        m = sections.weight_matrix(self.to_dict()) if signal == "weights" else sections.cka_matrix(self.to_dict())
        if m is None:
            return pd.DataFrame()
        return pd.DataFrame(m.values, index=pd.Index(m.base_layers, name="base layer"),
                            columns=pd.Index(m.candidate_layers, name="candidate layer"))

    def tokenizer_frame(self) -> pd.DataFrame:
        """The tokenizer comparison's figures (shared, same id, order, ...) as (measure, value) rows."""
        import pandas as pd

        # object dtype: counts stay integers beside fractions and p-values
        return pd.DataFrame(sections.tokenizer_facts(self.to_dict()), columns=["measure", "value"], dtype=object)

    # -- figures and reports -------------------------------------------------------------------
    def weight_heatmap(self) -> Figure | None:
        from provenance.report.figures import weight_heatmap

        return weight_heatmap(self.to_dict())

    def cka_heatmap(self) -> Figure | None:
        from provenance.report.figures import cka_heatmap

        return cka_heatmap(self.to_dict())

    def layer_plot(self) -> Figure | None:
        from provenance.report.figures import layer_plot

        return layer_plot(self.to_dict())

    def to_html(self) -> str:
        """The self-contained HTML report."""
        from provenance.report.html import render_html

        return render_html(self.to_dict())

    def to_markdown(self) -> str:
        from provenance.report.markdown import render_markdown

        return render_markdown(self.to_dict())

    def _repr_html_(self) -> str:
        """Jupyter display: verdict, signals, evidence and the heatmap (the full report is `to_html()`)."""
        from provenance.report.html import render_summary

        return render_summary(self.to_dict())


def _finite(x: Any) -> Any:
    """JSON has no NaN or infinity: map them to null, recursively (tuples become lists)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, str):  # lone surrogates (undecodable file names) cannot be written as UTF-8
        return x.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(x, dict):
        return {str(k): _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", 1) == 0:  # numpy scalar
        return _finite(x.item())
    if x is not None and not isinstance(x, (int, bool)):
        raise TypeError(f"{type(x).__name__} is not JSON data")
    return x
