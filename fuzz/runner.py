"""The parent of a fuzzing run: hands batches of input indices to workers, enforces the per-input time
cap, restarts workers that hang, die or go over the memory budget, and records findings."""

from __future__ import annotations

import json
import select
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fuzz import seeds as seed_store
from fuzz.checks import CRASH, FINDINGS, HANG, OVER
from fuzz.findings import DEFAULT_DIR, Finding, Findings
from fuzz.pool import Proc
from fuzz.targets import get


@dataclass
class Options:
    """What `python -m fuzz run` was asked to do."""

    targets: list[str]
    inputs: int | None = 1000  # per target; None: until `seconds` run out
    seconds: float | None = None
    workers: int = 2
    seed: int = 0
    timeout: float = 10.0  # per input
    batch: int = 20
    findings: Path = DEFAULT_DIR
    seeds_dir: Path = seed_store.DEFAULT_DIR
    confirm: bool = True
    progress: float = 60.0  # seconds between progress lines (0: none)
    first: int = 0  # index of each target's first input: runs over disjoint ranges add up
    summary: Path | None = None  # a JSON file rewritten with the counters at each progress line and at the end


@dataclass
class Stats:
    """Per-target counters."""

    inputs: int = 0
    seconds: float = 0.0  # worker time spent on inputs
    refused: int = 0
    crashes: int = 0
    hangs: int = 0
    over: int = 0
    peak: int = 0  # bytes, highest per-input peak RSS
    growth: int = 0  # bytes, highest peak above the worker's baseline
    slowest: float = 0.0
    corpus: int = 0  # regression corpus files replayed (once per worker that warmed the target up)


@dataclass
class Summary:
    """A finished run: counters per target, findings, harness problems, wall time."""

    stats: dict[str, Stats]
    findings: list[Finding]
    problems: list[str] = field(default_factory=list)  # seeds a reader rejects, workers that never started
    wall: float = 0.0
    recycled: int = 0


class Run:
    """One fuzzing run (see `run`)."""

    def __init__(self, options: Options, log: Callable[[str], None]) -> None:
        self.o, self.log = options, log
        self.seeds_dir = seed_store.ensure(options.seeds_dir, log)
        self.seeds = {t: get(t).fixed_seeds or seed_store.load(self.seeds_dir, t) for t in options.targets}
        self.stats = {t: Stats() for t in options.targets}
        self.next = {t: options.first for t in options.targets}
        self.retry: dict[str, deque[int]] = {t: deque() for t in options.targets}
        self.findings = Findings(options.findings)
        self.problems: list[str] = []
        self.recycled = 0
        self.tmp = Path(tempfile.mkdtemp(prefix="provenance-fuzz-"))
        self.procs: list[Proc] = []
        self.spawned = 0
        self.start = time.monotonic()

    def on_term(self, signum: int, frame: object) -> None:
        """SIGTERM stops the run like Ctrl-C: workers are killed and the table is printed."""
        raise KeyboardInterrupt

    def spawn(self) -> Proc:
        """A fresh worker; refuses to go on when workers keep dying before they are ready."""
        self.spawned += 1
        if self.spawned > 50 + 20 * self.o.workers and not any(p.ready for p in self.procs):
            raise RuntimeError("workers keep failing to start; see the worker.log files under " + str(self.tmp))
        return Proc(self.spawned, self.seeds_dir, self.o.seed, self.tmp / f"w{self.spawned}", self.o.timeout)

    def time_left(self) -> bool:
        """Whether --seconds (if given) has not run out."""
        return self.o.seconds is None or time.monotonic() - self.start < self.o.seconds

    def want(self, target: str) -> bool:
        """Whether `target` still has inputs to hand out."""
        if self.retry[target]:
            return True
        return self.time_left() and self.next[target] < self.limit(target)

    def limit(self, target: str) -> float:
        """Index past this target's last input: --first + --inputs (unbounded without it), within its own cap."""
        cap = get(target).max_inputs
        return self.o.first + min(x for x in (self.o.inputs, cap, float("inf")) if x is not None)

    def assign(self, proc: Proc) -> None:
        """Give an idle worker the next batch of the target that has had the fewest inputs (retries one by one)."""
        open_targets = [t for t in self.o.targets if self.want(t)]
        if not open_targets:
            return
        target = min(open_targets, key=lambda t: (self.next[t] - len(self.retry[t]), t))
        if self.retry[target]:
            index = self.retry[target].popleft()
            self.request(proc, {"op": "batch", "target": target, "start": index, "count": 1}, [(target, index)])
            return
        start = self.next[target]
        stop = int(min(start + self.o.batch, self.limit(target)))
        self.next[target] = stop
        self.request(proc, {"op": "batch", "target": target, "start": start, "count": stop - start},
                     [(target, i) for i in range(start, stop)])

    def request(self, proc: Proc, request: dict[str, Any], inputs: list[tuple[str, int | str]]) -> None:
        """Send a request; a worker that is already gone is noticed by its end of file instead."""
        try:
            proc.send(request, inputs)
        except (BrokenPipeError, OSError):
            pass  # the worker is gone: its end of file is handled in `loop`

    def loop(self) -> None:
        """Until every target has had its inputs (or the time is up) and every worker is idle."""
        self.procs = [self.spawn() for _ in range(self.o.workers)]
        last_progress = time.monotonic()
        while True:
            for proc in self.procs:
                if proc.idle:
                    self.assign(proc)
            busy = [p for p in self.procs if not p.idle]
            if not busy:
                return
            wait = max(0.0, min(p.deadline for p in busy) - time.monotonic())
            readable, _, _ = select.select(busy, [], [], min(wait, 5.0))
            for proc in readable:
                self.read(proc)
            now = time.monotonic()
            for proc in list(self.procs):
                if proc in busy and proc.proc.poll() is None and now > proc.deadline:
                    self.hung(proc)
            if self.o.progress and now - last_progress > self.o.progress:
                last_progress = now
                self.log(self.progress_line())
                self.write_summary()

    def read(self, proc: Proc) -> None:
        """Handle what a worker has written; its end of file means it is gone."""
        messages, closed = proc.messages()
        for m in messages:
            self.handle(proc, m)
        if closed:
            self.died(proc)

    def handle(self, proc: Proc, m: dict[str, Any]) -> None:
        """One message from a worker: ready, warm, start, result, harness, recycle or done."""
        op = m["op"]
        if op == "ready":
            proc.ready, proc.deadline = True, time.monotonic() + 1e9
        elif op == "warm":
            proc.warm.add(m["target"])
            proc.deadline = time.monotonic() + self.o.timeout
            for error in m["seed_errors"]:
                self.problem(f"{m['target']} seed rejected: {error}")
        elif op == "start":
            proc.running = (m["target"], m["i"])
            proc.deadline = time.monotonic() + self.o.timeout
        elif op == "result":
            proc.running = None
            self.result(proc, m)
        elif op == "harness":
            proc.running = None
            if proc.pending and proc.pending[0] == (m["target"], m["i"]):
                proc.pending.popleft()
            self.problem(f"{m['target']} input {m['i']}: {m['error']}")
        elif op == "recycle":
            proc.exited_on_purpose = True
            self.recycled += 1
        elif op == "done" and not proc.pending:  # results empty `pending`; a later batch may be queued already
            proc.deadline = time.monotonic() + 1e9

    def result(self, proc: Proc, m: dict[str, Any]) -> None:
        """Count one input's outcome and record it when it is a finding."""
        target, label = m["target"], m["i"]
        if proc.pending and proc.pending[0] == (target, label):
            proc.pending.popleft()
        proc.deadline = time.monotonic() + self.o.timeout
        s = self.stats.get(target)
        if s is None:
            return
        if isinstance(label, int):
            s.inputs += 1
            s.seconds += m["seconds"]
        else:
            s.corpus += 1
        s.refused += m["kind"] == "refused"
        s.peak = max(s.peak, m["peak"])
        s.growth = max(s.growth, m["peak"] - m["baseline"])
        s.slowest = max(s.slowest, m["seconds"])
        if m["kind"] in FINDINGS:
            if m["kind"] == OVER:
                proc.exited_on_purpose = True
            self.record(target, label, m["kind"], m["type"], m["where"], m["raised_at"], m["message"])

    def record(self, target: str, label: int | str, kind: str, type_: str, where: str, raised_at: str,
               message: str) -> None:
        """Count a finding and save its input (regenerated from the seed, or the corpus file)."""
        s = self.stats[target]
        if isinstance(label, int) and (kind == HANG or type_.startswith("WorkerDied")):
            s.inputs += 1  # no result message counted it
        s.crashes += kind == CRASH
        s.hangs += kind == HANG
        s.over += kind == OVER
        data = self.input_bytes(target, label)
        finding = Finding(target, kind, type_, where, raised_at, message, str(label), self.o.seed, len(data))
        if self.findings.add(finding, data, get(target).filename):
            self.log(f"FINDING {target} {kind} {type_} at {where}: {message[:160]} -> {finding.path}")

    def input_bytes(self, target: str, label: int | str) -> bytes:
        """The bytes of input `label`: regenerated from (seed, target, index), or a corpus file."""
        if isinstance(label, int):
            return get(target).input(self.seeds[target], self.o.seed, label)
        path = Path(label)
        return path.read_bytes() if path.is_absolute() else (Path(__file__).parent / label).read_bytes()

    def problem(self, text: str) -> None:
        """Note a harness problem once (not a finding: the readers are not at fault)."""
        if text not in self.problems:
            self.problems.append(text)
            self.log(f"HARNESS PROBLEM: {text}")

    def died(self, proc: Proc) -> None:
        """A worker closed its output: on purpose (over budget, recycled) or killed while reading an input
        (a finding) or outside one (a harness problem)."""
        code = proc.proc.wait()
        name = f"WorkerDied(exit {code})" if code >= 0 else f"WorkerDied(signal {-code})"
        if proc.running is not None:
            self.drop(proc, proc.running)
            self.record(*proc.running, CRASH, name, proc.hang_stack(), "?", proc.death_note())
        elif not proc.exited_on_purpose:
            self.problem(f"worker died outside an input (next: {list(proc.pending)[:1]}, {name}): {proc.death_note()}")
            if proc.pending:
                proc.pending.popleft()  # skip what it was generating or warming up for
        self.replace(proc)

    def hung(self, proc: Proc) -> None:
        """A worker passed its deadline: kill it and record the input it was on (or a harness problem when
        it was not on one: generating it, or starting up)."""
        proc.kill()
        where = proc.hang_stack()
        if proc.running is not None:
            self.drop(proc, proc.running)
            self.record(*proc.running, HANG, "Timeout", where, where, f"no result within {self.o.timeout:g} s")
        else:
            self.problem(f"worker stuck outside an input (next: {list(proc.pending)[:1]}) at {where}: "
                         f"{proc.death_note()}")
            if proc.pending:
                proc.pending.popleft()  # skip what it was generating
        self.replace(proc)

    @staticmethod
    def drop(proc: Proc, item: tuple[str, int | str]) -> None:
        """Take the input a worker died or hung on out of its pending list (so it is not retried)."""
        if item in proc.pending:
            proc.pending.remove(item)

    def replace(self, proc: Proc) -> None:
        """Swap in a fresh worker; the inputs the old one had not reported go back in the queue."""
        proc.kill()
        for target, label in reversed(proc.pending):
            if isinstance(label, int):
                self.retry[target].appendleft(label)
        self.procs[self.procs.index(proc)] = self.spawn()

    def progress_line(self) -> str:
        """Elapsed time, inputs so far per target, findings."""
        done = sum(s.inputs for s in self.stats.values())
        found = len(self.findings.all())
        return (f"[{time.monotonic() - self.start:7.0f} s] {done} inputs, {found} findings, "
                + ", ".join(f"{t} {s.inputs}" for t, s in self.stats.items()))

    def summary(self) -> Summary:
        return Summary(self.stats, self.findings.all(), self.problems, time.monotonic() - self.start, self.recycled)

    def write_summary(self) -> None:
        """The counters so far as JSON (--summary), so a run killed outright still leaves its numbers."""
        if self.o.summary is not None:
            s = self.summary()
            data = {"seed": self.o.seed, "first": self.o.first, "wall": s.wall, "recycled": s.recycled,
                    "stats": {t: asdict(v) for t, v in s.stats.items()}, "problems": s.problems,
                    "findings": [asdict(f) for f in s.findings]}
            self.o.summary.write_text(json.dumps(data, indent=1))

    def close(self) -> None:
        """Kill every worker and remove their work folders."""
        for proc in self.procs:
            proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


def confirm(run: Run) -> None:
    """Replay every finding in a fresh worker (one per finding kind that kills workers)."""
    for finding in run.findings.all():
        if finding.confirmed is not None:
            continue
        outcome = replay_file(run.seeds_dir, run.o.seed, finding.target, Path(finding.path),
                              run.o.timeout, run.tmp / f"confirm-{finding.digest()}")
        run.findings.confirm(finding, outcome.get("kind") == finding.kind)


def replay_file(seeds_dir: Path, seed: int, target: str, path: Path, timeout: float,
                workdir: Path) -> dict[str, Any]:
    """Run one file through `target` in a fresh worker: its result message, or a hang/death verdict."""
    proc = Proc(0, seeds_dir, seed, workdir, timeout)
    try:
        proc.send({"op": "file", "target": target, "path": str(path.resolve())}, [(target, str(path.resolve()))])
        proc.deadline = time.monotonic() + 180 + 60 + timeout
        while True:
            wait = proc.deadline - time.monotonic()
            if wait <= 0:
                return {"kind": HANG, "type": "Timeout", "where": proc.hang_stack(), "message": "no result"}
            readable, _, _ = select.select([proc], [], [], wait)
            if not readable:
                continue
            messages, closed = proc.messages()
            for m in messages:
                if m["op"] == "warm":
                    proc.deadline = time.monotonic() + timeout
                if m["op"] == "result" and m["i"] == str(path.resolve()):
                    return m
            if closed:
                code = proc.proc.wait()
                return {"kind": CRASH, "type": f"WorkerDied({code})", "where": proc.hang_stack(), "message": ""}
    finally:
        proc.kill()


def run(options: Options, log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True)) -> Summary:
    """Fuzz `options.targets`; findings go under `options.findings`."""
    r = Run(options, log)
    previous = signal.signal(signal.SIGTERM, r.on_term) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        try:
            r.loop()
        except KeyboardInterrupt:
            log("interrupted: stopping the workers")
        for proc in r.procs:
            proc.kill()
        summary = r.summary()  # the wall time of the fuzzing itself, before confirmation
        if options.confirm and r.findings.all():
            log(f"confirming {len(r.findings.all())} findings in fresh workers")
            try:
                confirm(r)
            except KeyboardInterrupt:
                log("interrupted: findings left unconfirmed")
        r.write_summary()
        return summary
    finally:
        r.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
