"""Small HTML building blocks for reports: escaping of untrusted text, numbers, tables."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

from provenance.report.pvalues import at_floor, floor_text
from provenance.report.untrusted import visible


def esc(x: Any, *, multiline: bool = False) -> str:
    """Untrusted text -> HTML text: invisible and deceptive characters made visible, then escaped.

    >>> esc('<script>alert("x")</script>\\x00')
    '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;\\\\x00'
    """
    return html.escape(visible("" if x is None else str(x), multiline=multiline), quote=True)


def num(x: Any) -> str:
    """A number for reading (plain text, not yet escaped): None '—', ints grouped, tiny p-values as bounds.

    >>> num(None), num(30517), num(3.2e-12), num(1.5e-299), num(2e-300), num(0.98765432), num(True)
    ('—', '30,517', '3.2e-12', '≤ 1.5e-299', '≤ 2e-300', '0.9877', 'yes')
    """
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if x == 0:
            return "0"
        if at_floor(x):  # the tests clamp p-values at 1e-300 (Bonferroni bounds at multiples of it)
            return floor_text(x)
        return f"{x:.2g}" if abs(x) < 1e-3 else f"{x:.4g}"
    return str(x)


def table(head: Sequence[str], rows: Iterable[Sequence[Any]], raw_cols: set[int] | frozenset[int] = frozenset()) -> str:
    """An HTML table; every cell is escaped except the columns in `raw_cols` (already-built markup)."""
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c if i in raw_cols else esc(c)}</td>" for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def kv_table(pairs: Iterable[tuple[str, Any]]) -> str:
    """A two-column key/value table, everything escaped."""
    body = "".join(f"<tr><th scope=\"row\">{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in pairs)
    return f"<table class=\"kv\"><tbody>{body}</tbody></table>"
