"""BLAS threads for the statistics: one per product, so the bits are the same on every machine.

OpenBLAS splits a product differently for each thread count, so a float32 product's last bits
(and a per-layer p in its 5th digit) depended on the machine's cores. Its idle workers also
spin-wait after each call: on a 7B comparison they were 14.7% of the CPU samples (`perf`), taken
from the streaming reductions. Where the cores would otherwise idle, independent products run side by side
instead (`side_by_side`), each on one BLAS thread: the same calls, so the same bits.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import TypeVar

from threadpoolctl import ThreadpoolController

from provenance import fastpath

T = TypeVar("T")
_LOCK = threading.Lock()
_CONTROLLER: list[ThreadpoolController] = []  # scanned once: a scan takes 2-8 ms


def single_threaded() -> AbstractContextManager:
    """A context in which numpy's BLAS uses one thread (restored on exit; nests)."""
    with _LOCK:
        if not _CONTROLLER:
            _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


def _cores() -> int:
    """The cores this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def side_by_side(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Each call's result, in order; on the fast path they run on up to one thread per core, each with
    one BLAS thread (numpy releases the GIL in a product), on the plain path one after another."""
    workers = min(len(calls), _cores())
    if not fastpath.enabled() or workers < 2:
        with single_threaded():
            return [call() for call in calls]

    with single_threaded(), ThreadPoolExecutor(workers, thread_name_prefix="provenance-blas") as pool:
        return [f.result() for f in [pool.submit(call) for call in calls]]
