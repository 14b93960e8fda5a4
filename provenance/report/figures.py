"""Matplotlib figures of a result dict, and their deterministic inline SVG for HTML reports.

Figures are built on `matplotlib.figure.Figure` directly (no pyplot state), so they are safe
to make in threads and display in Jupyter. No text from the compared files is drawn: axes
say "base" and "candidate", never a model name, so nothing untrusted reaches the SVG.
"""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from provenance.report.sections import (
    LayerMatrix,
    cka_matrix,
    neuron_layers,
    weight_layers,
    weight_matrix,
)

RASTER_LAYERS = 24  # above this many layers a heatmap's cells are drawn as one embedded PNG
LAYER_P_BAR = 1e-6  # the line drawn on per-layer p-value plots (the derived bar of the weight test)


class ReportFigure(Figure):
    """A Figure that shows itself in Jupyter without pyplot or `%matplotlib inline`."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=100)
        return buf.getvalue()


def _figure(width: float, height: float) -> ReportFigure:
    return ReportFigure(figsize=(width, height), dpi=100, layout="constrained")


def heatmap(m: LayerMatrix) -> Any:
    """Layer x layer heatmap (base layers down, candidate layers across) with matched cells outlined."""
    nb, nc = m.values.shape
    side = min(7.0, max(3.2, 0.16 * max(nb, nc) + 2.2))
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot()
    finite = m.values[np.isfinite(m.values)]
    lo = min(0.0, float(finite.min())) if finite.size else 0.0
    mesh = ax.pcolormesh(np.arange(nc + 1) - 0.5, np.arange(nb + 1) - 0.5, np.ma.masked_invalid(m.values),
                         cmap="viridis", vmin=lo, vmax=1.0, shading="flat", edgecolors="none")
    if max(nb, nc) > RASTER_LAYERS:
        mesh.set_rasterized(True)  # one inline PNG instead of nb*nc vector cells (126 layers: 6.7 MB of SVG)
    col = {c: j for j, c in enumerate(m.candidate_layers)}
    row = {b: i for i, b in enumerate(m.base_layers)}
    pts = [(col[c], row[b]) for b, c in m.matched if b in row and c in col]
    if pts:
        xs, ys = zip(*pts)
        ax.scatter(xs, ys, s=max(8.0, 900.0 / max(nb, nc)), marker="s", facecolors="none", edgecolors="#ff3d3d",
                   linewidths=1.4)
    ax.set_xlim(-0.5, nc - 0.5)
    ax.set_ylim(nb - 0.5, -0.5)
    ax.set_xlabel("candidate layer")
    ax.set_ylabel("base layer")
    _layer_ticks(ax, m.candidate_layers, m.base_layers)
    ax.set_title(m.title + ("\n(red squares: matched layers)" if pts else ""), fontsize=10)
    bar = fig.colorbar(mesh, ax=ax, shrink=0.8, label=m.measure)
    if bar.solids is not None:
        bar.solids.set_rasterized(False)  # vector, not an embedded PNG: the report's CSP allows no images
        bar.solids.set_edgecolor("face")  # no hairline seams between the vector bands
    return fig


def _layer_ticks(ax: Any, cols: list[int], rows: list[int]) -> None:
    for setter, labels in ((ax.set_xticks, cols), (ax.set_yticks, rows)):
        step = max(1, int(np.ceil(len(labels) / 12)))
        idx = list(range(0, len(labels), step))
        setter(idx, [str(labels[i]) for i in idx])


def weight_heatmap(result: dict[str, Any]) -> Any | None:
    """The weight similarity heatmap, or None when the weights were not compared layer by layer."""
    m = weight_matrix(result)
    return heatmap(m) if m is not None else None


def cka_heatmap(result: dict[str, Any]) -> Any | None:
    """The activation CKA heatmap, or None when activations were not compared."""
    m = cka_matrix(result)
    return heatmap(m) if m is not None else None


def layer_plot(result: dict[str, Any]) -> Any | None:
    """Per candidate layer: best-match similarity (top) and -log10 p-value with the derived bar (bottom)."""
    rows = weight_layers(result)
    neurons = neuron_layers(result)
    if not rows and not neurons:
        return None
    fig = _figure(7.0, 4.6)
    top, bottom = fig.subplots(2, 1, sharex=True)
    if rows:
        x = [r["candidate"] for r in rows]
        top.plot(x, [r["similarity"] for r in rows], "o-", color="#1f77b4", ms=3, label="weights: profile correlation")
        bottom.plot(x, [_log_p(r["p_value"]) for r in rows], "o-", color="#1f77b4", ms=3, label="weights")
    if neurons:
        x = [t["candidate_layer"] for t in neurons]
        top.plot(x, [max(t["in_place"], t.get("agreement") or 0.0) for t in neurons], "s-", color="#d62728", ms=3,
                 label="activations: matched neurons")
        bottom.plot(x, [_log_p(min(t["p_in_place"], t.get("p_agreement") or 1.0)) for t in neurons], "s-",
                    color="#d62728", ms=3, label="activations")
    bottom.axhline(-np.log10(LAYER_P_BAR), color="#555", ls="--", lw=1, label="p = 1e-6")
    top.set_ylabel("similarity")
    top.set_ylim(min(0.0, top.get_ylim()[0]), 1.05)
    bottom.set_ylabel("-log10 p (per layer)")
    bottom.set_xlabel("candidate layer")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    top.set_title("Per-layer similarity and significance", fontsize=10)
    return fig


def _log_p(p: float | None) -> float:
    return float(-np.log10(max(p if p is not None else 1.0, 1e-300)))


def to_svg(fig: Any, prefix: str = "fig") -> str:
    """Inline SVG of a figure: no XML prolog, no date, element ids stable and prefixed (several SVGs share
    one HTML document, where ids are global)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "provenance", "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", dpi=150, metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    return re.sub(r'(url\(#|href="#)([^)"]+)', lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", svg)
