"""The vector float16 casts equal numpy's, bit for bit, and the BLAS helpers give the same bits either way."""

from __future__ import annotations

import numpy as np
import pytest
import torch  # noqa: F401  (halfcast uses torch only once it is imported)

from provenance import fastpath
from provenance.blas import side_by_side
from provenance.halfcast import SERIAL_ELEMENTS, from_half, to_half
from provenance.signals.align import _cross


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    bits = a.view(np.uint16 if a.dtype == np.float16 else np.uint32)
    other = b.view(bits.dtype)
    return bool(((bits == other) | (np.isnan(a) & np.isnan(b))).all())


def test_every_float16_widens_exactly() -> None:
    every = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    assert _same(from_half(every), every.astype(np.float32))


def test_float32_rounds_to_float16_as_numpy_does() -> None:
    rng = np.random.default_rng(0)
    patterns = rng.integers(0, 1 << 32, size=4_000_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    # dense near the float16 subnormal range, the overflow edge and rounding ties
    exps = np.concatenate([np.linspace(-27, -13, 200_000), np.linspace(14, 17, 50_000)])
    edges = (2.0 ** exps).astype(np.float32)
    positive = np.arange(0x7C00, dtype=np.uint16).view(np.float16).astype(np.float32)  # 0 .. largest finite
    ties = positive[:-1] + (positive[1:] - positive[:-1]) / 2  # exactly halfway: rounds to the even one
    for x in (patterns, edges, -edges, ties, -ties, np.nextafter(ties, np.float32(np.inf))):
        with np.errstate(all="ignore"):
            want = x.astype(np.float16)
        assert _same(to_half(x), want)


def test_shapes_chunks_and_read_only_inputs() -> None:
    x = np.random.default_rng(1).standard_normal((3 * SERIAL_ELEMENTS // 7 + 5, 7)).astype(np.float32)
    assert to_half(x).shape == x.shape and _same(to_half(x), x.astype(np.float16))
    x.setflags(write=False)  # torch cannot wrap it: numpy converts
    assert _same(to_half(x), x.astype(np.float16))
    h = x.astype(np.float16)
    assert from_half(h).dtype == np.float32 and _same(from_half(h), h.astype(np.float32))
    assert from_half(x) is x  # float32 passes through


def test_side_by_side_equals_one_after_another() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((512, 300)).astype(np.float32), rng.standard_normal((512, 200)).astype(np.float32)
    fast = _cross(x, y)
    with fastpath.plain():
        plain = _cross(x, y)
    assert fast.shape == (300, 200) and np.array_equal(fast, plain)
    np.testing.assert_allclose(fast, x.T @ y, rtol=1e-4, atol=1e-3)
    assert side_by_side([lambda: 1, lambda: 2, lambda: 3]) == [1, 2, 3]


@pytest.mark.parametrize("dtype", [np.float64, np.int32])
def test_other_dtypes_fall_back(dtype: type) -> None:
    x = np.arange(5000).astype(dtype)
    assert np.array_equal(from_half(x), x.astype(np.float32))
