"""Where the black-box signal asks its questions: text prefixes cut from the shipped probe corpus.

Each query is one probe text cut after a seeded number of the BASE's tokens (8 to 96), at a cut
whose prefix re-encodes to the same tokens and decodes to whole characters, so the base and a
candidate that shares its tokenizer see the same tokens. The cuts depend only on the seed, the
probe set and the base's tokenizer: a rerun asks the same questions (and hits the response cache).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from provenance.activations.probes import ProbeSet

MIN_CUT, MAX_CUT = 8, 96  # base tokens before the asked-for next token


@dataclass(frozen=True)
class Query:
    """One question: the text before the next token, with where it came from."""

    index: int
    probe_id: str
    category: str
    prefix: str
    cut: int  # base tokens in the prefix


def choose_queries(probes: ProbeSet, encode: Callable[[str], list[int]], decode: Callable[[list[int]], str],
                   n: int, seed: int) -> list[Query]:
    """Up to `n` queries, one per probe text, texts in a seeded order; a text too short to cut is skipped."""
    rng = np.random.default_rng([seed, 0x6F757470])  # 'outp': independent of the other signals' streams
    out: list[Query] = []
    for t in rng.permutation(len(probes)):
        if len(out) == n:
            break
        text = probes.texts[int(t)]
        ids = encode(text)
        cuts = np.arange(MIN_CUT, min(len(ids) - 1, MAX_CUT) + 1)
        for c in rng.permutation(cuts)[:8]:
            prefix = decode(ids[:int(c)])
            if "\ufffd" not in prefix and prefix.strip() and encode(prefix) == ids[:int(c)]:
                out.append(Query(len(out), probes.ids[int(t)], probes.categories[int(t)], prefix, int(c)))
                break
    return out
