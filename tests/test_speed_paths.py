"""The speed work changes no result: a real pair gives the same JSON twice, and the same on the plain path.

`PROVENANCE_PLAIN=1` (`fastpath.plain()`) turns every speed-up off: cached tokenizers and token maps, block-wise
widening, the batched nulls, the registry index. The JSON must be byte-for-byte what the plain path gives, and
the same on a second run (no timings, no unordered sets in it), but for the date the run records.
"""

from __future__ import annotations

import json

import pytest

from provenance import compare, fastpath
from tests.real_models import MINILM_DIR, MINILM_INT8_ONNX

PAIRS = {"minilm-fp32-vs-int8-onnx": (MINILM_DIR, MINILM_INT8_ONNX),
         "minilm-vs-itself": (MINILM_DIR, MINILM_DIR)}


def _undated(result) -> str:
    data = json.loads(result.to_json())
    assert data["environment"].pop("date")
    return json.dumps(data, indent=1)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_same_json_twice_and_on_the_plain_path(name: str) -> None:
    base, cand = PAIRS[name]
    first = _undated(compare(base, cand, device="cpu"))
    again = _undated(compare(base, cand, device="cpu"))
    with fastpath.plain():
        plain = _undated(compare(base, cand, device="cpu"))
    assert again == first
    assert plain == first
