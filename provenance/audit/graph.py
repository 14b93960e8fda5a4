"""The lineage graph of an audit as a matplotlib figure: one boxed circle of models per family.

Each family with more than one member is drawn in its own box, its models on a circle (a chord
never passes through a third node, so dense families of siblings stay readable), the origins
first from the top and clockwise by depth. Directed edges are arrows parent -> child, undirected
ones plain grey lines. Model names come from the manifest and are untrusted: they are drawn with
invisible characters made visible, no mathtext, and cut to a bounded length; matplotlib's SVG
writer escapes them as XML text.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass

from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from provenance.audit.result import Lineage, LineageEdge
from provenance.relation import short_tag
from provenance.report.figures import ReportFigure, to_svg
from provenance.report.untrusted import visible

NODE_GAP = 1.6  # inches between neighbouring models on a family's circle
LABEL_CHARS = 24  # model names longer than this are cut in the figure (the tables show them whole)
EDGE_LABEL_CHARS = 20
MAX_LABELLED_EDGES = 12  # a denser family draws only its arrows' labels (or none); the table has them all
ROW_WIDTH = 10.5  # inches: families are packed left to right into rows this wide
PAD, TITLE, SIDE = 0.2, 0.4, 1.75  # box padding, title band, room for labels beside a circle (inches)
MARGIN = 0.05  # around the whole figure, so the boxes' outlines are not cut
ORIGIN, NODE, ARROW, LINE = "#1f4e99", "#8a96aa", "#a31515", "#9aa3b2"


@dataclass
class FamilyBox:
    """One family's place in the figure: its members' positions relative to the box's centre."""

    number: int  # 1-based, as in the families table
    members: list[str]
    edges: list[LineageEdge]
    positions: dict[str, tuple[float, float]]
    width: float
    height: float


def multi_families(lineage: Lineage) -> list[list[str]]:
    """The families with more than one member, in the lineage's order (numbered from 1 in the report)."""
    return [f for f in lineage.families if len(f) > 1]


def short_label(relation: str | None, reason: str | None = None, limit: int = EDGE_LABEL_CHARS) -> str:
    """A few words for an edge: the relation's first tag (`relation.short_tag`), else the reason's first clause.

    >>> short_label("layer subset, fine-tune or perturbation"), short_label("base is a layer subset")
    ('layer subset', 'layer subset')
    >>> short_label("fine-tune or perturbation"), short_label(None, "quantized from the fp16 one")
    ('fine-tune', 'quantized from the…')
    """
    text = visible(short_tag(relation) if relation else re.sub(r"\s*\(.*", "", (reason or "").split(",")[0]))
    first = text.strip()
    return first if len(first) <= limit else first[:limit - 1].rstrip() + "…"


def node_label(name: str, limit: int = LABEL_CHARS) -> str:
    """A model's name as drawn: controls visible, at most `limit` characters.

    >>> node_label("org/model-\\u202e-7b-instruct-v0.3-awq-4bit")
    'org/model-\\\\u202e-7b-ins…'
    """
    text = visible(name)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def circle_order(members: list[str], edges: list[LineageEdge]) -> list[str]:
    """Members by depth along directed edges (origins first), then by name; cycles cannot loop forever."""
    depth = dict.fromkeys(members, 0)
    directed = [e for e in edges if e.directed and e.parent in depth and e.child in depth]
    for _ in range(len(members)):
        changed = False
        for e in directed:
            if depth[e.child] < depth[e.parent] + 1 <= len(members):
                depth[e.child], changed = depth[e.parent] + 1, True
        if not changed:
            break
    return sorted(members, key=lambda m: (depth[m], m))


def family_box(number: int, members: list[str], edges: list[LineageEdge]) -> FamilyBox:
    """Positions on a circle (two models side by side) and the box that holds them and their labels."""
    order = circle_order(members, edges)
    n = len(order)
    if n == 2:
        pos = {order[0]: (-1.1, 0.0), order[1]: (1.1, 0.0)}
        return FamilyBox(number, members, edges, pos, 2.2 + 2 * (0.85 + PAD), 1.3 + TITLE)
    r = max(0.9, NODE_GAP / (2 * math.sin(math.pi / n)))
    pos = {m: (r * math.cos(math.pi / 2 - 2 * math.pi * i / n), r * math.sin(math.pi / 2 - 2 * math.pi * i / n))
           for i, m in enumerate(order)}
    return FamilyBox(number, members, edges, pos, 2 * (r + SIDE + PAD), 2 * (r + 0.45 + PAD) + TITLE)


def pack(boxes: list[FamilyBox], row_width: float = ROW_WIDTH) -> tuple[list[tuple[float, float]], float, float]:
    """Top-left corners of the boxes packed into rows (y grows downwards), and the total width and height."""
    corners, x, y, row_h, width = [], 0.0, 0.0, 0.0, 0.0
    for b in boxes:
        if x > 0 and x + b.width > row_width:
            x, y, row_h = 0.0, y + row_h + PAD, 0.0
        corners.append((x, y))
        x, row_h, width = x + b.width + PAD, max(row_h, b.height), max(width, x + b.width)
    return corners, width, y + row_h


def lineage_figure(lineage: Lineage) -> ReportFigure | None:
    """The lineage graph (1 figure inch = 1 data unit), or None when no model is related to another."""
    families = multi_families(lineage)
    if not families:
        return None
    family_of = {m: i for i, fam in enumerate(families) for m in fam}
    edges: list[list[LineageEdge]] = [[] for _ in families]
    for e in lineage.edges:
        if e.parent in family_of and family_of.get(e.child) == family_of[e.parent]:
            edges[family_of[e.parent]].append(e)
    boxes = [family_box(i + 1, fam, edges[i]) for i, fam in enumerate(families)]
    corners, width, height = pack(boxes)
    fig = ReportFigure(figsize=(width + 2 * MARGIN, height + 2 * MARGIN), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-MARGIN, width + MARGIN)
    ax.set_ylim(height + MARGIN, -MARGIN)
    ax.set_axis_off()
    serial = 0
    for box, (x, y) in zip(boxes, corners):
        serial = _draw_family(ax, box, x, y, serial)
    return fig


def _draw_family(ax, box: FamilyBox, x: float, y: float, serial: int) -> int:
    """One family's box, title, edges and nodes; `serial` numbers the edges' SVG ids across families."""
    ax.add_patch(FancyBboxPatch((x, y), box.width, box.height, boxstyle="round,pad=0,rounding_size=0.12",
                                fc="#f6f8fa", ec="#d5dbe5", lw=1.0))
    ax.text(x + PAD, y + PAD, f"family {box.number} ({len(box.members)} models)", fontsize=8.5, fontweight="bold",
            color="#3a4354", ha="left", va="top")
    cx, cy = x + box.width / 2, y + TITLE + (box.height - TITLE) / 2
    at = {m: (cx + px, cy - py) for m, (px, py) in box.positions.items()}  # y down: the circle's top is up
    labelled = _labelled(box.edges)
    for k, e in enumerate(box.edges):
        _draw_edge(ax, at[e.parent], at[e.child], e, f"edge-{serial}-{'directed' if e.directed else 'undirected'}",
                   label_at=(0.42 if k % 2 else 0.58) if k in labelled else None)
        serial += 1
    origins = {e.parent for e in box.edges if e.directed} - {e.child for e in box.edges if e.directed}
    members = sorted(at)
    ax.scatter([at[m][0] for m in members], [at[m][1] for m in members], s=110, zorder=3, edgecolors="white",
               c=[ORIGIN if m in origins else NODE for m in members], linewidths=1.2)
    for m in members:
        _draw_name(ax, at[m], box.positions[m], m, two=len(box.members) == 2)
    return serial


def _labelled(edges: list[LineageEdge]) -> set[int]:
    """Which edges get a label: all when few, else only the arrows when they are few, else none."""
    if len(edges) <= MAX_LABELLED_EDGES:
        return set(range(len(edges)))
    arrows = {k for k, e in enumerate(edges) if e.directed}
    return arrows if len(arrows) <= MAX_LABELLED_EDGES else set()


def _draw_edge(ax, a: tuple[float, float], b: tuple[float, float], e: LineageEdge, gid: str,
               label_at: float | None) -> None:
    """An arrow (directed) or a plain line between two nodes, with a short label part way along."""
    style = dict(arrowstyle="-|>", mutation_scale=13, color=ARROW, lw=1.4) if e.directed else \
        dict(arrowstyle="-", color=LINE, lw=1.1)
    ax.add_patch(FancyArrowPatch(a, b, shrinkA=8, shrinkB=8, zorder=2, gid=gid, **style))
    label = short_label(e.relation, e.reason)
    if label_at is not None and label:
        lx, ly = a[0] + label_at * (b[0] - a[0]), a[1] + label_at * (b[1] - a[1])
        ax.text(lx, ly, label, fontsize=6.5, ha="center", va="center", color="#3a4354", zorder=4, parse_math=False,
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))


def _draw_name(ax, at: tuple[float, float], rel: tuple[float, float], name: str, *, two: bool) -> None:
    """A node's name just outside the circle (below the node in a family of two)."""
    norm = math.hypot(*rel) or 1.0
    ux, uy = (0.0, -1.0) if two else (rel[0] / norm, rel[1] / norm)
    ha = "left" if ux > 0.3 else "right" if ux < -0.3 else "center"
    va = "bottom" if uy > 0.3 else "top" if uy < -0.3 else "center"
    ax.text(at[0] + 0.17 * ux, at[1] - 0.17 * uy, node_label(name), fontsize=8, ha=ha, va=va, color="#1d2330",
            zorder=4, parse_math=False)


def lineage_svg(lineage: Lineage, prefix: str = "lineage") -> str | None:
    """The graph as inline SVG (deterministic, ids prefixed), or None when nothing is related."""
    fig = lineage_figure(lineage)
    if fig is None:
        return None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from")  # names in scripts DejaVu lacks
        return to_svg(fig, prefix)
