"""`provenance.heap.give_back` returns the C heap's free pages to the kernel (glibc), and is a no-op elsewhere."""

from __future__ import annotations

import platform

import pytest

from provenance import heap


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_free_heap_pages_go_back_to_the_kernel() -> None:
    chunks = [bytearray(64 << 10) for _ in range(3200)]  # 200 MiB in blocks the heap serves (below mmap's floor)
    for c in chunks:
        c[::4096] = b"\x01" * len(c[::4096])  # every page resident
    last = chunks[-1]  # kept: the freed blocks below it cannot be trimmed from the heap's top
    del chunks
    before = _rss_mib()
    assert heap.give_back()
    assert before - _rss_mib() > 100, (before, _rss_mib())
    assert last[0] == 1
