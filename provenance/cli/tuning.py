"""Process settings the command line applies before any work: how idle threads wait, how memory is reused.

They are the CLI's to set, not the library's: a notebook that imports `provenance` keeps its own. Both are
skipped on the plain reference path (`PROVENANCE_PLAIN=1`), and a value already in the environment wins.
"""

from __future__ import annotations

import os

from provenance import fastpath
from provenance.heap import glibc

# torch's OpenMP threads spin while they wait for work; where the other cores are busy, the spinning
# takes the CPU from the thread that has work (SmolLM2 pair on 2 cores at load 2-4: CLI 16 s -> 8-10 s).
WAIT_POLICY = "PASSIVE"
# glibc serves every block above 32 MiB (dynamic threshold) from a fresh mmap and unmaps it on free, so each
# large temporary (an |x| of a 47 MB embedding, a widened tensor, a neuron test's 45 MB arrays) costs a page
# fault per 4 KiB and the kernel's zeroing: |x| of 30522 x 384 floats took 54 ms, 22 ms with the blocks kept
# in the heap. Blocks up to MMAP_THRESHOLD come from the heap, and at most TRIM_THRESHOLD of free heap top is
# kept (more would count against the peak memory bound: 1 GiB here raised a 1B-shaped pair's peak RSS by 400 MiB).
MMAP_THRESHOLD = 256 << 20
TRIM_THRESHOLD = 128 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)


def tune_process() -> dict[str, bool]:
    """Apply the settings (before torch is imported); which of them took effect."""
    applied = {"wait_policy": False, "malloc": False}
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
        applied["wait_policy"] = True
    if fastpath.enabled() and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        applied["malloc"] = _keep_large_blocks()
    return applied


def _keep_large_blocks() -> bool:
    """Raise glibc's mmap and trim thresholds; False where the C library is not glibc."""
    mallopt = getattr(glibc(), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
