"""A signal's report section as plain data: paragraphs, facts, tables, token lists and plots.

Each signal builds its `Section` from a result dict; the HTML and Markdown renderers draw any
section the same way, so adding a signal adds its section without touching a renderer. Values
stay raw (numbers, None, strings from untrusted files): each renderer escapes and formats them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from provenance.report.sections import LayerMatrix


@dataclass(frozen=True)
class P:
    """A p-value cell: formatted as a bound where it sits at the floor."""

    value: float | None


@dataclass(frozen=True)
class Code:
    """A cell of literals (token strings) shown as code, each in its own span."""

    items: list[str]


@dataclass(frozen=True)
class Text:
    """A paragraph (untrusted text); `muted` for notes."""

    text: str
    muted: bool = False


@dataclass(frozen=True)
class Facts:
    """Label -> value rows (a key/value table)."""

    rows: list[tuple[str, Any]]
    title: str = ""


@dataclass(frozen=True)
class Table:
    """A table; `folded`: shown behind this summary in HTML (Markdown shows it inline)."""

    header: list[str]
    rows: list[list[Any]]
    title: str = ""
    folded: str = ""


@dataclass(frozen=True)
class Tokens:
    """Rows of token literals shown as code: (label, tokens)."""

    rows: list[tuple[str, list[str]]]
    title: str = ""


@dataclass(frozen=True)
class Plot:
    """A figure: `draw(result)` for HTML (None: nothing to draw); `matrix` for a text heatmap in Markdown."""

    ident: str
    caption: str
    draw: Callable[[dict[str, Any]], Figure | None]
    matrix: LayerMatrix | None = None


Block = Union[Text, Facts, Table, Tokens, Plot]


@dataclass(frozen=True)
class Section:
    """One signal's part of a report: an anchor id, a title and its blocks in order."""

    ident: str
    title: str
    blocks: list[Block] = field(default_factory=list)
