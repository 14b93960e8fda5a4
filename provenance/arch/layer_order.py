"""Layers from file order, for checkpoints whose tensor names carry no layer number (every name random).

A decoder stores its layers one after another, each with the same tensor shapes. With no
number in any name, the non-global tensors are cut into L runs in file order, L the greatest
common divisor of the matrix shapes' counts; the cut is taken only when every run holds the
same shapes. The global tensors are the vocabulary tables (the largest first dimension over
the hidden size: embedding, untied head) and the vectors left over after L layers' worth
(final norm, embedding norm), found at either end of the order. Where the order does not
repeat per layer (a safetensors writer sorts by name, so random names shuffle it), nothing
is guessed: no layers, and a note says why.
"""

from __future__ import annotations

from collections import Counter
from functools import reduce
from math import gcd

from provenance.io.base import TensorInfo

Layers = dict[int, dict[str, str]]  # layer index -> {suffix: tensor name}; here the suffix is the name itself


def hidden_size(names: list[str], infos: dict[str, TensorInfo]) -> int | None:
    """The most common vector length (norms are [hidden]); None without vectors."""
    vec = Counter(infos[n].shape[0] for n in names if len(infos[n].shape) == 1)
    return vec.most_common(1)[0][0] if vec else None


def vocabulary_tables(names: list[str], infos: dict[str, TensorInfo], h: int) -> list[str]:
    """[vocab, hidden] tables: the largest first dimension over the hidden size (embedding, untied head)."""
    tables = [n for n in names if len(infos[n].shape) == 2 and infos[n].shape[1] == h]
    big = max((infos[n].shape[0] for n in tables), default=0)
    return [n for n in tables if infos[n].shape[0] == big] if big > h else []


def layers_from_order(names: list[str], infos: dict[str, TensorInfo], notes: list[str]) -> Layers:
    """{layer: {name: name}} cut from file order (`names` in file order), or {} with a note saying why."""
    h = hidden_size(names, infos)
    if h is None:
        return {}
    tables = set(vocabulary_tables(names, infos, h))
    rest = [n for n in names if n not in tables]
    mats = Counter(infos[n].shape for n in rest if len(infos[n].shape) >= 2)
    n_layers = reduce(gcd, mats.values(), 0)
    vectors = [n for n in rest if infos[n].shape == (h,)]
    if n_layers < 2:
        return {}
    extra = len(vectors) % n_layers  # global norms: final norm, embedding norm
    for head in range(extra + 1):
        globals_ = set(vectors[:head]) | set(vectors[len(vectors) - (extra - head):])
        seq = [n for n in rest if n not in globals_]
        cut = _cut(seq, infos, n_layers)
        if cut:
            notes.append(f"no tensor name carries a layer number: {n_layers} layers taken as runs of "
                         f"{len(seq) // n_layers} tensors in file order, each with the same shapes")
            return cut
    notes.append(f"no tensor name carries a layer number and the file order does not repeat per layer (names "
                 f"randomized and sorted?): the {n_layers} layers cannot be told apart")
    return {}


def _cut(seq: list[str], infos: dict[str, TensorInfo], n_layers: int) -> Layers:
    """`seq` cut into `n_layers` equal runs with the same shapes, or {}."""
    if len(seq) % n_layers:
        return {}
    size = len(seq) // n_layers
    runs = [seq[i * size:(i + 1) * size] for i in range(n_layers)]
    first = Counter(infos[n].shape for n in runs[0])
    if any(Counter(infos[n].shape for n in run) != first for run in runs[1:]):
        return {}
    return {i: {n: n for n in run} for i, run in enumerate(runs)}
