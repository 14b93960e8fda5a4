"""Hostile values for structure-aware mutators, and edits of parsed JSON/YAML documents at random paths."""

from __future__ import annotations

import json
import random
import re
from typing import Any

MAX_TEXT = 4 << 20  # documents past this are not serialised (an input is cut to 1 MiB anyway)
_DEEP = re.compile(r'"@@deep:(\d+):([ld])@@"')  # placeholders, replaced by deep nesting after serialisation


def deep(depth: int, kind: str = "l") -> str:
    """A placeholder for `depth` nested lists ('l') or objects ('d'); json.dumps would recurse that deep."""
    return f"@@deep:{depth}:{kind}@@"


def _nest(m: re.Match) -> str:
    depth = int(m.group(1))
    return "[" * depth + "]" * depth if m.group(2) == "l" else '{"a":' * depth + "1" + "}" * depth


def hostile(rng: random.Random) -> Any:
    """A value a reader does not expect: bools, huge or negative ints, NaN, long strings, lists, deep nesting."""
    kind = rng.randrange(9)
    if kind == 0:
        return rng.choice((True, False, None))
    if kind == 1:
        return rng.choice((0, -1, 1, 2**31, 2**32, 2**53 + 1, 2**62, 2**63, 2**64 - 1, 2**64, 10**40, -(2**63),
                           1 << 24, 65535))
    if kind == 2:
        return rng.choice((1.5, -0.0, 1e308, float("nan"), float("inf"), -float("inf"), 1e-320))
    if kind == 3:
        return rng.choice(("", "F32", "BF16", "I64", "Q4_K", "x" * rng.choice((1, 300, 70000)), "\x00", "\ud800",
                           "<0x0A>", "##", "\u2581", "../../etc/passwd", "a b", "%s%n", "\n\n", "~nosuchuser/x"))
    if kind == 4:
        return rng.choice(([], [1], [2**63, 2**63], [-1, 5], [[1, 2], [3]], ["a", "b"], [None], [1.5],
                           list(range(rng.choice((17, 1000, 20000)))), [True, False], [0] * 40))
    if kind == 5:
        return rng.choice(({}, {"a": 1}, {"": None}, {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                           {str(i): i for i in range(rng.choice((2, 500, 20000)))}))
    if kind == 6:
        return deep(rng.choice((20, 200, 990, 1100, 5000, 100000)), rng.choice("ld"))
    if kind == 7:
        return rng.choice((0, 1, 2, 3, 4, 7, 8, 16, 255, 256, 1000, 2**16, 2**20))
    return rng.choice(("a", "b", "NORMAL", "bpe", "WordPiece", "Unigram", "BPE", "ByteLevel", "Metaspace"))


def size_of(obj: Any, budget: int) -> int:
    """About how many bytes `obj` serialises to, counting shared values once per reference; stops past `budget`."""
    total, stack = 0, [obj]
    while stack and total <= budget:
        node = stack.pop()
        if isinstance(node, dict):
            total += 2 + sum(len(k) + 4 for k in node)
            stack.extend(node.values())
        elif isinstance(node, list):
            total += 2 + len(node)
            stack.extend(node)
        elif isinstance(node, str):
            total += len(node) + 2 + (6 * int(node.split(":")[1]) if node.startswith("@@deep:") else 0)
        else:
            total += 8
    return total


def dumps(obj: Any, rng: random.Random) -> str:
    """JSON text of `obj` with NaN allowed, deep placeholders expanded, ASCII or UTF-8 at random ('null' if
    an edit made it circular). Raises OverflowError when repeated edits made it larger than MAX_TEXT."""
    if size_of(obj, MAX_TEXT) > MAX_TEXT:
        raise OverflowError("the edited document is too large to be an input")
    try:
        text = json.dumps(obj, ensure_ascii=rng.random() < 0.3, allow_nan=True,
                          separators=rng.choice(((",", ":"), (", ", ": "))))
    except (ValueError, RecursionError):  # a swap made a value contain itself
        return "null"
    return _DEEP.sub(_nest, text)


def _children(node: Any) -> list[tuple[Any, Any]]:
    if isinstance(node, dict):
        return list(node.items())
    if isinstance(node, list):
        return list(enumerate(node))
    return []


def random_path(doc: Any, rng: random.Random, stop: float = 0.25) -> list[Any]:
    """Keys/indices from the root to a random node (biased towards the first items of long lists)."""
    path: list[Any] = []
    node = doc
    while True:
        kids = _children(node)
        if not kids or (path and rng.random() < stop):
            return path
        if isinstance(node, list) and len(kids) > 8 and rng.random() < 0.5:
            key = rng.randrange(min(8, len(kids)))
        else:
            key = kids[rng.randrange(len(kids))][0]
        path.append(key)
        node = node[key]


def _parent(doc: Any, path: list[Any]) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


def edit(doc: Any, rng: random.Random) -> Any:
    """One edit at a random path: replace, delete, duplicate list items, rename a key, wrap, or swap."""
    path = random_path(doc, rng)
    if not path:
        return hostile(rng) if rng.random() < 0.2 else doc
    parent, key = _parent(doc, path), path[-1]
    op = rng.randrange(7)
    if op <= 1:
        parent[key] = hostile(rng)
    elif op == 2:
        del parent[key]
    elif op == 3 and isinstance(parent, list):
        times = rng.choice((2, 10, 1000) if not isinstance(parent[key], (list, dict)) else (2, 10))
        parent[key:key + 1] = [parent[key]] * times
    elif op == 3 and isinstance(parent, dict):
        for i in range(rng.choice((1, 10, 1000) if not isinstance(parent[key], (list, dict)) else (1, 10))):
            parent[f"{key}{i}"] = parent[key]
    elif op == 4 and isinstance(parent, dict):
        parent[rng.choice(("", "__metadata__", "x" * 300, str(key).upper(), f"{key} ", "\ud800"))] = parent.pop(key)
    elif op == 5:
        parent[key] = rng.choice(([parent[key]], {"value": parent[key]}, [parent[key], parent[key]]))
    else:
        other = random_path(doc, rng)
        if other and other[:len(path)] != path and path[:len(other)] != other:
            op_parent, op_key = _parent(doc, other), other[-1]
            parent[key], op_parent[op_key] = op_parent[op_key], parent[key]
    return doc
