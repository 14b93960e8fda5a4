"""Small HTML building blocks for reports: escaping of untrusted text, numbers, tables."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

# Characters shown as escapes instead of themselves: C0/C1 controls, lone surrogates, and the
# bidirectional overrides that can make a name read differently from what it is ("Trojan Source").
P_FLOOR = 1e-299  # below this a p-value sits at the floor the signals clamp to
_BIDI = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A)) | {0x200E, 0x200F, 0x061C}


def _visible(ch: str, multiline: bool) -> str:
    o = ord(ch)
    if multiline and ch == "\n":
        return ch
    if o < 0x20 or 0x7F <= o <= 0x9F:
        return f"\\x{o:02x}"
    if 0xD800 <= o <= 0xDFFF or o in _BIDI:
        return f"\\u{o:04x}"
    return ch


def esc(x: Any, *, multiline: bool = False) -> str:
    """Untrusted text -> HTML text: control, surrogate and bidi characters made visible, then escaped.

    >>> esc('<script>alert("x")</script>\\x00')
    '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;\\\\x00'
    """
    text = "" if x is None else str(x)
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF or ord(c) in _BIDI for c in text):
        text = "".join(_visible(c, multiline) for c in text)
    return html.escape(text, quote=True)


def num(x: Any) -> str:
    """A number for reading (plain text, not yet escaped): None '—', ints grouped, tiny p-values in e-notation.

    >>> num(None), num(30517), num(1.5e-299), num(2e-300), num(0.98765432), num(True)
    ('—', '30,517', '1.5e-299', '≤ 1e-299', '0.9877', 'yes')
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
        if 0 < x < P_FLOOR:  # p-values are clamped at 1e-300 (Bonferroni bounds at small multiples of it)
            return f"≤ {P_FLOOR:.0e}"
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
