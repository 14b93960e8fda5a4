"""Worker processes seen from the parent: start, send requests, read result lines, kill."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
_ENV = {"PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2", "TOKENIZERS_PARALLELISM": "false"}
_FRAME = re.compile(r'File "([^"]+)", line (\d+) in (\S+)')
START_SECONDS = 180.0  # imports on a busy machine
WARM_SECONDS = 60.0  # seeds and corpus of a target seen for the first time


class Proc:
    """One worker process and the inputs it has been given but not yet reported."""

    def __init__(self, number: int, seeds_dir: Path, seed: int, workdir: Path, timeout: float) -> None:
        self.number, self.workdir, self.timeout = number, workdir, timeout
        workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **_ENV, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        with open(workdir / "worker.log", "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "fuzz.worker", str(seeds_dir), str(seed),
                                          str(workdir), str(timeout)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=log, cwd=REPO, env=env,
                                         start_new_session=True)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buffer = b""
        self.pending: deque[tuple[str, int | str]] = deque()  # (target, index or file path), in order
        self.ready = False
        self.warm: set[str] = set()
        self.deadline = time.monotonic() + START_SECONDS
        self.exited_on_purpose = False
        self.running: tuple[str, int | str] | None = None  # (target, input) started and not yet reported

    def fileno(self) -> int:
        return self.proc.stdout.fileno()

    @property
    def idle(self) -> bool:
        return self.ready and not self.pending

    def send(self, request: dict[str, Any], inputs: list[tuple[str, int | str]]) -> None:
        """Ask for `inputs` (described by `request`); the deadline covers a first-time warm-up."""
        self.pending.extend(inputs)
        target = inputs[0][0]
        self.deadline = time.monotonic() + self.timeout + (0 if target in self.warm else WARM_SECONDS)
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()

    def messages(self) -> tuple[list[dict[str, Any]], bool]:
        """The complete lines available now, and whether the process has closed its output."""
        closed = False
        try:
            while chunk := os.read(self.fileno(), 1 << 16):
                self.buffer += chunk
            closed = True  # read returned b"": end of file
        except BlockingIOError:
            pass
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()], closed

    def _log(self) -> str:
        try:
            return (self.workdir / "worker.log").read_text(errors="replace")
        except OSError:
            return ""

    def death_note(self) -> str:
        """What the worker's stderr says about its end: a fatal error line, or its last line."""
        lines = [line.strip() for line in self._log().splitlines() if line.strip()]
        fatal = [line for line in lines if line.startswith(("Fatal Python error", "MemoryError", "Traceback"))]
        return ((fatal or lines or [""])[-1 if not fatal else 0])[:300]

    def hang_stack(self) -> str:
        """The innermost frame a faulthandler dump names (inside provenance/ or fuzz/ when there is one)."""
        frames = [m.groups() for m in _FRAME.finditer(self._log())]
        ours = [f for f in frames if "/provenance/" in f[0] or "/fuzz/" in f[0]]
        if not (ours or frames):
            return "?"
        file, line, func = (ours or frames)[0]
        return f"{file.replace(str(REPO) + '/', '')}:{line} in {func}"

    def kill(self) -> None:
        """Kill the worker's whole process group and reap it."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.proc.wait()
