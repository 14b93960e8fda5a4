"""A worker process: runs the inputs the parent asks for and reports one JSON line per input.

Started as `python -m fuzz.worker SEEDS_DIR SEED WORKDIR TIMEOUT`. Requests arrive on stdin; results go to
the original stdout, which is then pointed at /dev/null so that nothing a library prints corrupts them.
stderr is WORKDIR/worker.log: faulthandler writes the stack of a hung input there just before the
parent's deadline. Peak RSS is measured per input (the high-water mark is reset before each one).
"""

from __future__ import annotations

import faulthandler
import importlib
import json
import os
import resource
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from fuzz import seeds as seed_store
from fuzz.checks import OVER, Outcome, budget, judge
from fuzz.targets import Target, get

CORPUS = Path(__file__).resolve().parent / "corpus"
CREEP = 150 * 2**20  # RSS left over between inputs past this: recycle the worker
ADDRESS_SPACE = 3 * 2**30  # allocations past this raise MemoryError instead of swamping the machine


def _status(key: str) -> int:
    """A VmXXX field of /proc/self/status, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> bool:
    """Reset the peak RSS (VmHWM, ru_maxrss) to the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak() -> int:
    """Peak RSS since the last reset. VmHWM, not ru_maxrss: after fork and exec the kernel keeps the parent's
    peak in ru_maxrss (a worker started from a 900 MB pytest would read 900 MB whatever it did)."""
    return _status("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Worker:
    """State of one worker: its seeds, baseline RSS and the targets warmed up so far."""

    def __init__(self, seeds_dir: Path, seed: int, workdir: Path, timeout: float, out: Any) -> None:
        self.seeds_dir, self.seed, self.workdir, self.timeout, self.out = seeds_dir, seed, workdir, timeout, out
        self.seeds: dict[str, dict[str, bytes]] = {}
        self.baseline = _peak()
        self.resets = _reset_peak()

    def send(self, message: dict[str, Any]) -> None:
        """One JSON line to the parent."""
        self.out.write(json.dumps(message) + "\n")
        self.out.flush()

    def folder(self, target: Target, corpus: bool = True) -> Path:
        """The target's work folder; the first call warms the target up (and replays its corpus if asked)."""
        folder = self.workdir / target.name
        if target.name not in self.seeds:
            folder.mkdir(parents=True, exist_ok=True)
            self.warm(target, folder, corpus)
        return folder

    def warm(self, target: Target, folder: Path, corpus: bool) -> None:
        """Load the target's seeds, check each is read without error, raise the baseline, replay the corpus."""
        self.seeds[target.name] = seeds = target.fixed_seeds or seed_store.load(self.seeds_dir, target.name)
        if target.companion:
            other, name, filename = target.companion
            (folder / filename).write_bytes(seed_store.load(self.seeds_dir, other)[name])
        errors = []
        _reset_peak()  # the baseline is what this target's seeds take, not a previous target's largest input
        for name, data in seeds.items() if target.fixed_seeds is None else ():  # canaries would trip here
            try:
                target.run(data, folder)
            except Exception as exc:  # noqa: BLE001 - a rejected seed is a harness problem, reported
                errors.append(f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
        self.baseline = max(self.baseline, _peak())
        self.send({"op": "warm", "target": target.name, "seed_errors": errors, "baseline": self.baseline})
        for path in sorted((CORPUS / target.name).glob("*")) if corpus and (CORPUS / target.name).is_dir() else []:
            self.run_one(target, folder, path.read_bytes(), f"corpus/{target.name}/{path.name}")

    def run_one(self, target: Target, folder: Path, data: bytes, label: str | int) -> str:
        """Run one input and report it; returns its kind."""
        if not self.resets and _peak() > self.baseline + budget(0):
            self.send({"op": "recycle", "target": target.name, "i": label})
            sys.exit(0)
        _reset_peak()
        if os.fstat(2).st_size:
            os.ftruncate(2, 0)
            os.lseek(2, 0, os.SEEK_SET)
        self.send({"op": "start", "target": target.name, "i": label})
        faulthandler.dump_traceback_later(max(0.5, self.timeout - 1.0), exit=False)
        start = time.perf_counter()
        try:
            target.run(data, folder)
            outcome = judge(None)
        except BaseException as exc:  # noqa: BLE001 - judging what escaped is the point
            outcome = judge(exc)
        finally:
            faulthandler.cancel_dump_traceback_later()
        seconds = time.perf_counter() - start
        peak = _peak()
        if outcome.kind != OVER and peak > self.baseline + budget(len(data)):
            mib = 2**20
            note = (f"peak RSS {peak / mib:,.0f} MiB > baseline {self.baseline / mib:,.0f} MiB + budget "
                    f"{budget(len(data)) / mib:,.0f} MiB; {outcome.kind}: {outcome.message}")
            outcome = Outcome(OVER, outcome.type or outcome.kind, outcome.where or "(no exception)",
                              outcome.raised_at, note[:300])
        self.send({"op": "result", "target": target.name, "i": label, "size": len(data), "seconds": seconds,
                   "peak": peak, "baseline": self.baseline, **outcome.to_dict()})
        return outcome.kind

    def batch(self, target: Target, start: int, count: int) -> None:
        """Generate and run inputs start .. start + count - 1; exit after an over-budget input or memory creep."""
        folder = self.folder(target)
        for index in range(start, start + count):
            faulthandler.dump_traceback_later(max(0.5, self.timeout - 1.0), exit=False)  # a stuck mutator shows
            try:
                data = target.input(self.seeds[target.name], self.seed, index)
            except Exception as exc:  # noqa: BLE001 - a mutator bug is the harness's problem, reported as such
                self.send({"op": "harness", "target": target.name, "i": index,
                           "error": f"generating the input: {type(exc).__name__}: {str(exc)[:200]}"})
                continue
            finally:
                faulthandler.cancel_dump_traceback_later()
            if self.run_one(target, folder, data, index) == OVER:
                sys.exit(0)  # a fresh process resets the heap the input left behind
            if _status("VmRSS") > self.baseline + CREEP:
                self.send({"op": "recycle", "target": target.name, "i": index})
                sys.exit(0)


def _quiet() -> Any:
    """Keep the real stdout for results and point fd 1 at /dev/null (fd 2 is the log the parent opened)."""
    out = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    return out


def _limit_memory() -> None:
    """Cap the address space a few GiB above what the imports took."""
    size = _status("VmSize") + ADDRESS_SPACE
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > size:
        resource.setrlimit(resource.RLIMIT_AS, (size, hard))


def main(argv: list[str]) -> None:
    """Import everything, cap the address space, then serve requests until stdin closes."""
    seeds_dir, seed, workdir, timeout = Path(argv[0]), int(argv[1]), Path(argv[2]), float(argv[3])
    out = _quiet()
    warnings.simplefilter("ignore")
    faulthandler.enable()
    import torch

    torch.set_num_threads(1)
    for module in ("provenance.audit.manifest", "provenance.fingerprint", "provenance.io", "provenance.vocab.load"):
        importlib.import_module(module)  # up front: the baseline includes them

    _limit_memory()
    worker = Worker(seeds_dir, seed, workdir, timeout, out)
    worker.send({"op": "ready", "pid": os.getpid(), "resets_peak": worker.resets})
    for line in sys.stdin:
        request = json.loads(line)
        target = get(request["target"])
        if request["op"] == "batch":
            worker.batch(target, request["start"], request["count"])
        elif request["op"] == "file":
            folder = worker.folder(target, corpus=False)
            kind = worker.run_one(target, folder, Path(request["path"]).read_bytes(), request["path"])
            if kind == OVER:
                sys.exit(0)
        worker.send({"op": "done"})


if __name__ == "__main__":
    main(sys.argv[1:])
