"""Cold tensor bytes read past the page cache (O_DIRECT into a ring of buffers) are the same bytes.

The stream reads a tensor that is not in the page cache with O_DIRECT into `provenance.io.arena`'s
ring, and views the mapping otherwise. These tests force the direct route on (every tensor treated as
cold, no size floor) and check the ring, the aligned reads at odd offsets and file ends, the fallbacks
(ring full, file system without O_DIRECT), truncation, and that a whole comparison gives the same JSON
and measurements as the mapped route and the plain reference path.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from provenance import fastpath
from provenance.arch.view import open_model
from provenance.comparison import CompareOptions, compare
from provenance.errors import CorruptFileError
from provenance.io import direct, mapped
from provenance.io.arena import ALIGN, Arena, aligned
from provenance.signals import stream as stream_mod
from tests.families import add_noise, permute_residual, to_dtype
from tests.test_weights_fastpath import _raw, _same
from tests.tiny_models import tiny_llama_state, write_hf_dir

OPTS = CompareOptions(hashes=False, device="cpu")


# --- the ring --------------------------------------------------------------------------------

def test_ring_takes_in_order_wraps_and_refuses_when_full() -> None:
    ring = Arena(10 * ALIGN)
    a = ring.take(3 * ALIGN)
    b = ring.take(3 * ALIGN - 5)  # rounded up to whole pages
    assert a is not None and b is not None and (a[0], b[0]) == (0, 3 * ALIGN) and b[1].size == 3 * ALIGN
    assert ring.take(5 * ALIGN) is None  # 4 pages left at the end, none at the start
    c = ring.take(4 * ALIGN)
    assert c is not None and c[0] == 6 * ALIGN
    ring.give(a[0])
    d = ring.take(3 * ALIGN)  # wraps to the start, into the space `a` held
    assert d is not None and d[0] == 0
    assert ring.take(ALIGN) is None  # wrapped: the only free space lies between d and b, and there is none
    ring.give(c[0])  # out of order: not reusable until b, older, is back too
    assert ring.take(ALIGN) is None and ring.in_use == 3
    ring.give(b[0])
    assert ring.in_use == 1
    e = ring.take(7 * ALIGN)
    assert e is not None and e[0] == 3 * ALIGN
    assert ring.take(11 * ALIGN) is None  # larger than the ring
    with pytest.raises(ValueError):
        ring.give(ALIGN)
    ring.close()


def test_ring_regions_are_page_aligned_and_writable() -> None:
    ring = Arena(4 * ALIGN)
    start, region = ring.take(ALIGN + 1)  # type: ignore[misc]
    assert region.ctypes.data % ALIGN == 0 and region.size == aligned(ALIGN + 1) == 2 * ALIGN
    region[:] = 7
    assert int(region.sum()) == 7 * 2 * ALIGN
    ring.give(start)


def test_an_emptied_region_stays_taken_and_loses_its_pages() -> None:
    ring = Arena(4 * ALIGN)
    start, region = ring.take(2 * ALIGN)  # type: ignore[misc]
    region[:] = 9
    ring.empty(start)
    assert not region.any() and ring.in_use == 1  # private anonymous pages: emptied, they read as zeros
    assert ring.take(3 * ALIGN) is None
    ring.give(start)
    assert ring.take(4 * ALIGN) is not None
    with pytest.raises(ValueError):
        ring.empty(ALIGN)


def test_ring_capacity_holds_the_widest_window_and_a_wrap() -> None:
    mib = 1 << 20
    sizes = [2 * mib, 10, 5 * mib, 3 * mib, 1 * mib, 4 * mib]  # the 10-byte tensor is never read directly
    assert stream_mod.ring_capacity([(0, n) for n in sizes], 2) == (5 + 3) * mib + 5 * mib
    assert stream_mod.ring_capacity([(0, n) for n in sizes], 9) == (2 + 5 + 3 + 1 + 4) * mib + 5 * mib
    assert stream_mod.ring_capacity([(0, 10), (0, 20)], 3) == 0
    # an odd offset costs up to one more block at each end
    assert stream_mod.ring_capacity([(ALIGN - 1, mib), (8, mib)], 1) == 2 * (mib + ALIGN)


# --- aligned reads ---------------------------------------------------------------------------

@pytest.fixture
def blob(tmp_path: Path) -> Path:
    path = tmp_path / "blob.bin"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 3 * ALIGN * 100 + 123, dtype=np.uint8).tobytes())
    return path


def _direct_or_skip(m: mapped.MappedFile) -> direct.DirectFile:
    d = m.direct_file()
    if d is None:
        pytest.skip(f"this platform or file system refuses O_DIRECT for {m.path.parent} "
                    f"(available: {direct.available()})")
    return d


def test_direct_reads_equal_the_mapped_bytes_at_odd_offsets_and_the_end(blob: Path) -> None:
    m = mapped.MappedFile(blob)
    try:
        d = _direct_or_skip(m)
        ring = Arena(64 * ALIGN)
        rng = np.random.default_rng(1)
        cases = [(0, m.size), (m.size - 1, 1), (m.size - 5000, 5000), (ALIGN, ALIGN), (ALIGN - 1, 2)]
        cases += [(int(o), int(rng.integers(1, min(40 * ALIGN, m.size - o) + 1)))
                  for o in rng.integers(0, m.size - 1, 40)]
        for offset, nbytes in cases:
            need = direct.span(offset, nbytes)
            assert need % ALIGN == 0 and need >= nbytes
            if need > ring.capacity:
                ring = Arena(need)
            start, region = ring.take(need)  # type: ignore[misc]
            got = d.read(offset, nbytes, region)
            assert got is not None and np.array_equal(got, m.view(offset, nbytes)), (offset, nbytes)
            ring.give(start)
    finally:
        m.close()


def test_a_direct_read_of_a_truncated_file_never_returns_wrong_bytes(blob: Path) -> None:
    m = mapped.MappedFile(blob)
    try:
        d = _direct_or_skip(m)
        size = m.size
        os.truncate(blob, 10 * ALIGN + 7)
        region = Arena(direct.span(0, size)).take(direct.span(0, size))[1]  # type: ignore[index]
        with pytest.raises(CorruptFileError, match="truncated"):
            d.read(20 * ALIGN, ALIGN, region)  # wholly past the new end
        try:  # short: either reported here, or refused (None) and read the usual way, which reports it
            assert d.read(5 * ALIGN, 10 * ALIGN, region) is None
        except CorruptFileError as e:
            assert "truncated" in str(e)
        with pytest.raises(CorruptFileError, match="changed while being read"):
            m.view(5 * ALIGN, 10 * ALIGN)
    finally:
        m.close()


def test_resident_follows_the_page_cache(blob: Path) -> None:
    m = mapped.MappedFile(blob)
    try:
        _direct_or_skip(m)
        fd = os.open(blob, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            dropped = m.resident(0, m.size)
            os.pread(fd, m.size, 0)
            assert m.resident(0, m.size)
        finally:
            os.close(fd)
        if dropped:
            pytest.skip("the kernel kept the file cached after POSIX_FADV_DONTNEED; only the cached half was checked")
    finally:
        m.close()


# --- a whole comparison ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("direct")
    state, config = tiny_llama_state(seed=0)
    derived, _ = add_noise(*permute_residual(state, config, seed=3), rel=0.05, seed=4)
    return (write_hf_dir(root / "base", to_dtype(state, torch.bfloat16), config),
            write_hf_dir(root / "cand", to_dtype(derived, torch.bfloat16), config))


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(direct reads, fallbacks) of every stream that closes while the test runs."""
    seen: list[tuple[int, int]] = []
    close = stream_mod.RoleStream.close

    def counting(self: stream_mod.RoleStream) -> None:
        if not self._closed:
            seen.append((self.direct_reads, self.fallbacks))
        close(self)

    monkeypatch.setattr(stream_mod.RoleStream, "close", counting)
    return seen


def _all_cold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(direct, "MIN_BYTES", 1)
    monkeypatch.setattr(mapped.MappedFile, "resident", lambda self, offset, nbytes: False)


def _same_compare(a, b) -> None:
    _same({k: v for k, v in a.to_dict().items() if k != "environment"},
          {k: v for k, v in b.to_dict().items() if k != "environment"}, "json")
    _same(_raw(a.weights), _raw(b.weights), "weights")


def test_compare_reading_every_tensor_directly_is_the_same(pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                                            counted: list[tuple[int, int]]) -> None:
    mapped_route = compare(*pair, OPTS)
    assert all(n == 0 for n, _ in counted)  # just written, so cached: viewed in the mapping
    with fastpath.plain():
        plain = compare(*pair, OPTS)
    _all_cold(monkeypatch)
    counted.clear()
    cold = compare(*pair, OPTS)
    if not any(n for n, _ in counted):
        pytest.skip(f"no direct read happened: O_DIRECT is refused for {pair[0].parent} here")
    assert len(counted) == 2 and all(n > 0 and f == 0 for n, f in counted), counted
    assert cold.verdict.label == "derived"
    _same_compare(cold, mapped_route)
    _same_compare(cold, plain)


def test_a_half_cached_pair_reads_the_cold_half_directly(pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                                         counted: list[tuple[int, int]]) -> None:
    reference = compare(*pair, OPTS)
    monkeypatch.setattr(direct, "MIN_BYTES", 1)
    monkeypatch.setattr(mapped.MappedFile, "resident", lambda self, offset, nbytes: (offset // 997) % 2 == 0)
    counted.clear()
    mixed = compare(*pair, OPTS)
    if not any(n for n, _ in counted):
        pytest.skip(f"no direct read happened: O_DIRECT is refused for {pair[0].parent} here")
    with open_model(pair[0]) as m:
        total = sum(1 for t in m.checkpoint.tensors.values() if t.nbytes)
    assert all(0 < n < total and f == 0 for n, f in counted), (counted, total)
    _same_compare(mixed, reference)


def test_a_full_ring_falls_back_to_the_mapping(pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                               counted: list[tuple[int, int]]) -> None:
    reference = compare(*pair, OPTS)
    _all_cold(monkeypatch)
    with open_model(pair[0]) as m:
        largest = max(t.nbytes for t in m.checkpoint.tensors.values())
    monkeypatch.setattr(stream_mod, "ring_capacity", lambda sizes, window: direct.span(0, largest))  # one tensor
    counted.clear()
    tight = compare(*pair, OPTS)
    if not any(n for n, _ in counted):
        pytest.skip(f"no direct read happened: O_DIRECT is refused for {pair[0].parent} here")
    assert any(f > 0 for _, f in counted), counted
    _same_compare(tight, reference)


def test_a_file_system_without_o_direct_reads_through_the_mapping(pair: tuple[Path, Path],
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  counted: list[tuple[int, int]]) -> None:
    reference = compare(*pair, OPTS)
    _all_cold(monkeypatch)
    monkeypatch.setattr(direct, "_DIRECT", None)  # as on macOS, or where the open is refused
    counted.clear()
    _same_compare(compare(*pair, OPTS), reference)
    assert counted and all(n == 0 for n, _ in counted)


def test_a_fingerprint_built_from_direct_reads_is_the_same_file(pair: tuple[Path, Path],
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                counted: list[tuple[int, int]]) -> None:
    """The fingerprint builder's visitor sees each tensor before its span of the ring is reused."""
    from provenance.fingerprint.build import fingerprint
    from provenance.fingerprint.fileformat import to_bytes

    reference = to_bytes(fingerprint(pair[1], device="cpu", hashes=False))
    _all_cold(monkeypatch)
    counted.clear()
    cold = to_bytes(fingerprint(pair[1], device="cpu", hashes=False))
    if not any(n for n, _ in counted):
        pytest.skip(f"no direct read happened: O_DIRECT is refused for {pair[1].parent} here")
    assert cold == reference
