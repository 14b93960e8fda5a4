"""Where audit tasks run: local worker processes (default) or a Ray cluster; results stream back
in completion order so the driver can store each one at once."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from provenance.errors import InvalidParameterError, ProvenanceError

EXECUTORS = ("local", "ray")
Task = tuple[Callable[..., dict[str, Any]], tuple[Any, ...]]
Runner = Callable[[list[Task]], Iterator[dict[str, Any]]]  # an executor's `run`: results in completion order


class LocalExecutor:
    """A pool of `workers` spawned processes (1: run in this process, no pool)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def run(self, tasks: list[Task]) -> Iterator[dict[str, Any]]:
        if self.workers == 1:
            for fn, args in tasks:
                yield fn(*args)
            return
        ctx = multiprocessing.get_context("spawn")  # torch in a forked child can deadlock
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx) as pool:
            pending = {pool.submit(fn, *args) for fn, args in tasks}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    yield f.result()

    def close(self) -> None:
        pass


class RayExecutor:
    """Tasks as Ray remote functions on the cluster `address` names (None: a local Ray instance)."""

    def __init__(self, workers: int, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ProvenanceError("--executor ray needs Ray: pip install 'ray>=2.40'") from None
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=workers, **kwargs)
        self._remote: dict[Callable[..., Any], Any] = {}

    def run(self, tasks: list[Task]) -> Iterator[dict[str, Any]]:
        refs = []
        for fn, args in tasks:
            remote = self._remote.setdefault(fn, self.ray.remote(num_cpus=1)(fn))
            refs.append(remote.remote(*args))
        while refs:
            done, refs = self.ray.wait(refs, num_returns=1)
            for ref in done:
                yield self.ray.get(ref)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def make_executor(kind: str, workers: int, address: str | None = None) -> LocalExecutor | RayExecutor:
    if kind not in EXECUTORS:
        raise InvalidParameterError("executor", "audit", f"one of {EXECUTORS}", kind)
    if workers < 1:
        raise InvalidParameterError("workers", "audit", "at least 1", workers)
    return LocalExecutor(workers) if kind == "local" else RayExecutor(workers, address)
