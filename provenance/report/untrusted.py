"""Text from untrusted files made visible: shared by the HTML and Markdown renderers."""

from __future__ import annotations

import re

# Controls (C0/C1), zero-width and bidi format characters ("Trojan Source"), BOM, lone surrogates.
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")
_INVISIBLE_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069"
                                    "\ufeff\ud800-\udfff]")


def visible(text: str, *, multiline: bool = False) -> str:
    """Invisible or deceptive characters as \\xNN / \\uXXXX (newlines kept when `multiline`).

    >>> visible("a\\x07b\\u202ec"), visible("x\\ny", multiline=True)
    ('a\\\\x07b\\\\u202ec', 'x\\ny')
    """
    pattern = _INVISIBLE_BUT_NEWLINE if multiline else _INVISIBLE
    return pattern.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)
