"""`provenance.heap.give_back` returns the C heap's free pages to the kernel (glibc), and is a no-op elsewhere."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# Run in a fresh interpreter, so the heap's layout does not depend on what earlier tests allocated and freed.
CHECK = """
from provenance import heap

def rss_mib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))

chunks = [bytearray(64 << 10) for _ in range(3200)]  # 200 MiB in blocks the heap serves (below mmap's floor)
for c in chunks:
    c[::4096] = b"\\x01" * len(c[::4096])  # every page resident
last = chunks[-1]  # kept: the freed blocks below it cannot be trimmed from the heap's top
del chunks
before = rss_mib()
trimmed = heap.give_back()
print(trimmed, before - rss_mib(), last[0])
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_free_heap_pages_go_back_to_the_kernel() -> None:
    """Without the trim (`give_back()` replaced by `True`) the same script shows ~0 MiB going back."""
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "True" and out[2] == "1", out
    assert float(out[1]) > 100, f"only {out[1]} MiB went back"

