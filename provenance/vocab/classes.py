"""What kind of token a piece is — to say *what* a vocabulary dropped, e.g. "all multi-digit numbers"."""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter

from provenance.vocab.model import Vocabulary

CLASSES = ("multi-digit numbers", "single digits", "whitespace", "CJK", "punctuation and symbols",
           "words", "partial UTF-8", "other")
_MULTI_DIGIT = re.compile(r"\s?[0-9]{2,}")
_DIGIT = re.compile(r"\s?[0-9]")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def token_class(token: bytes) -> str:
    """The class of one token's bytes.

    >>> token_class(b" 2024"), token_class(b"7"), token_class(b" the"), token_class("的".encode()), token_class(b"\\xe4")
    ('multi-digit numbers', 'single digits', 'words', 'CJK', 'partial UTF-8')
    """
    if token.isascii():
        return _ascii_class(token)
    try:
        text = token.decode("utf-8")
    except UnicodeDecodeError:
        return "partial UTF-8"
    if _MULTI_DIGIT.fullmatch(text):
        return "multi-digit numbers"
    if _DIGIT.fullmatch(text):
        return "single digits"
    if not text or text.isspace():
        return "whitespace"
    if _CJK.search(text):
        return "CJK"
    stripped = text.strip()
    if stripped and all(unicodedata.category(c)[0] in "PS" for c in stripped):
        return "punctuation and symbols"
    if stripped.replace("'", "").isalpha():
        return "words"
    return "other"


_SPACES = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"  # what str.isspace / regex \s accept in ASCII
_PUNCT = string.punctuation.encode()  # exactly the ASCII characters of Unicode categories P* and S*


def _ascii_class(token: bytes) -> str:
    """`token_class` for ASCII tokens without decoding or regexes (most of any vocabulary)."""
    body = token[1:] if token[:1] and token[:1] in _SPACES else token
    if body.isdigit():
        return "multi-digit numbers" if len(body) >= 2 else "single digits"
    stripped = token.strip(_SPACES)
    if not stripped:
        return "whitespace"
    if not stripped.translate(None, _PUNCT):
        return "punctuation and symbols"
    if stripped.replace(b"'", b"").isalpha():
        return "words"
    return "other"


def class_counts(tokens: list[bytes]) -> Counter[str]:
    """How many tokens of each class."""
    return Counter(token_class(t) for t in tokens)


def vocabulary_classes(v: Vocabulary) -> Counter[str]:
    """Class counts of a vocabulary's ordinary tokens, computed once per vocabulary."""
    return v.memo("class_counts", lambda: class_counts(list(v.ordinary())))


def missing_classes(totals: Counter[str], dropped: list[bytes], *, min_count: int = 10) -> list[dict[str, object]]:
    """Per class: how many of a vocabulary's tokens (class `totals`) the other lacks; `entire` at ≥ 99%."""
    lost: dict[str, list[bytes]] = {}
    for t in dropped:
        lost.setdefault(token_class(t), []).append(t)
    out = []
    for cls in CLASSES:
        n = len(lost.get(cls, ()))
        if n == 0:
            continue
        total = max(totals.get(cls, 0), n)
        examples = [t.decode("utf-8", "replace") for t in lost[cls][:5]]
        out.append({"class": cls, "missing": n, "of": total, "entire": n >= min_count and n >= 0.99 * total,
                    "examples": examples})
    return sorted(out, key=lambda d: -int(d["missing"]))  # type: ignore[call-overload]
