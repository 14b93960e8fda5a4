"""Where a run spends its time: seconds per named stage, recorded only inside `stages(...)`.

Nothing in the library calls this module; a benchmark names the functions that make up each
stage (`"module:function"` or `"module:Class.method"`, as the caller looks them up), and for
the duration of a `with` block each is wrapped with a timer. Outside the block the functions
are the originals: the instrumentation costs nothing when off. Times are *exclusive*: a stage
called inside another is subtracted from it, so the main thread's stages add up to at most the
block's wall time. Work in other threads (the reader thread of a weight stream) overlaps the
main thread and is kept apart, under `background`.

>>> import json
>>> dumps = json.dumps
>>> with stages({"encode": ["json:dumps"], "gone": ["json:no_such_function"]}) as t:
...     _ = json.dumps([1, 2, 3])
>>> t.calls, t.seconds["encode"] >= 0.0, t.missing, json.dumps is dumps
({'encode': 1}, True, ['json:no_such_function'], True)
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StageTimes:
    """Exclusive seconds and calls per stage: main thread in `seconds`, other threads in `background`."""

    seconds: dict[str, float] = field(default_factory=dict)
    background: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # targets that do not exist in this version of the code
    unused: list[str] = field(default_factory=list)  # targets whose module the block never imported
    wall: float = 0.0  # seconds inside the `with` block


class _Recorder:
    def __init__(self, times: StageTimes) -> None:
        self.times = times
        self.main = threading.main_thread()
        self.local = threading.local()
        self.lock = threading.Lock()

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = self.local.__dict__.setdefault("stack", [])
            stack.append(0.0)  # seconds spent in stages called from this one
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                inner = stack.pop()
                if stack:
                    stack[-1] += elapsed
                self._add(stage, elapsed - inner)

        return timed

    def _add(self, stage: str, seconds: float) -> None:
        t = self.times
        into = t.seconds if threading.current_thread() is self.main else t.background
        with self.lock:
            into[stage] = into.get(stage, 0.0) + seconds
            t.calls[stage] = t.calls.get(stage, 0) + 1


def _split(target: str) -> tuple[str, list[str]]:
    module, _, qual = target.partition(":")
    if not module or not qual:
        raise ValueError(f"The 'target' parameter of stages must look like 'package.module:function'. Got {target!r} "
                         "instead.")
    return module, qual.split(".")


class _Patches:
    """The wrapped attributes, to put back; targets in modules not imported yet wait for their import."""

    def __init__(self, rec: _Recorder, targets: Mapping[str, Sequence[str]]) -> None:
        self.rec = rec
        self.done: list[tuple[Any, str, Any, bool]] = []
        self.pending = [(stage, t) for stage, names in targets.items() for t in names]
        for stage, t in self.pending:
            _split(t)  # refuse a malformed name before anything is patched

    def apply_ready(self) -> None:
        """Wrap every pending target whose module is loaded now (never imports anything itself)."""
        waiting = []
        for stage, target in self.pending:
            module, path = _split(target)
            loaded = sys.modules.get(module)
            if loaded is None or getattr(getattr(loaded, "__spec__", None), "_initializing", False):
                waiting.append((stage, target))  # not imported, or its body still runs
            else:
                self._wrap(stage, target, sys.modules[module], path)
        self.pending = waiting

    def _wrap(self, stage: str, target: str, owner: Any, path: list[str]) -> None:
        try:
            for part in path[:-1]:
                owner = getattr(owner, part)
            original = inspect.getattr_static(owner, path[-1])
        except AttributeError:
            self.rec.times.missing.append(target)
            return
        if isinstance(original, staticmethod):
            wrapped: Any = staticmethod(self.rec.wrap(stage, original.__func__))
        elif callable(original):
            wrapped = self.rec.wrap(stage, original)
        else:
            self.rec.times.missing.append(target)
            return
        self.done.append((owner, path[-1], original, path[-1] in vars(owner)))
        setattr(owner, path[-1], wrapped)

    def undo(self) -> None:
        for owner, name, original, own in reversed(self.done):
            if own:
                setattr(owner, name, original)
            else:  # it was inherited: uncover the base class's again
                delattr(owner, name)


@contextmanager
def stages(targets: Mapping[str, Sequence[str]], *, imports: str | None = None) -> Iterator[StageTimes]:
    """Time every named function under its stage while the block runs; yields the `StageTimes` it fills.

    Nothing is imported to find a target: one in a module the block has not imported yet is
    wrapped as soon as the block imports it, and one never imported is listed in `unused`.
    A target that cannot be found (code moved or renamed) is listed in `missing`, not an
    error: the benchmark still runs and says which stage it could not see. `imports` names a
    stage that receives the time spent loading modules, wherever it happens.
    """
    times = StageTimes()
    rec = _Recorder(times)
    patches = _Patches(rec, targets)
    loader = importlib._bootstrap  # type: ignore[attr-defined]  # `import` statements call its _find_and_load
    find_and_load = loader._find_and_load
    timed_load = rec.wrap(imports, find_and_load) if imports else find_and_load

    def load_then_patch(*args: Any, **kwargs: Any) -> Any:
        try:
            return timed_load(*args, **kwargs)
        finally:
            if patches.pending:
                patches.apply_ready()

    loader._find_and_load = load_then_patch
    start = time.perf_counter()
    try:
        patches.apply_ready()
        yield times
    finally:
        times.wall = time.perf_counter() - start
        loader._find_and_load = find_and_load
        patches.undo()
        times.unused = [t for _, t in patches.pending]
