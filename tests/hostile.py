"""Checks for hostile input: one line on stderr, exit status 2, nothing written, memory bounded.

`refused` runs the CLI in-process (fast); `run_measured` runs it in a child process and reads
the child's own peak RSS, for the files built to make a parser allocate far more than they hold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from provenance.cli.main import main

# A refused file may cost the interpreter and its imports plus a small multiple of its own size.
RSS_BASE = 200 * 2**20
RSS_PER_INPUT_BYTE = 10
_CHILD = """
import os, resource, sys
from provenance.cli.main import main
rc = main(sys.argv[1:])
# VmHWM, the peak of this process's own memory map: ru_maxrss would start at the test runner's size, which
# the kernel carries over into a child across fork and exec, and hide any growth below it.
with open("/proc/self/status") as f:
    hwm = next((int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:")), 0)
with open(os.environ["PROVENANCE_RSS_OUT"], "w") as f:
    f.write(str(hwm or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))
sys.exit(rc)
"""
_BASELINE: dict[str, int] = {}


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run `provenance ARGV` in-process; assert exit 2 with exactly one line on stderr and nothing on
    stdout; return that line."""
    rc = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 2, f"exit {rc} for {argv}: {err.strip()[-500:]}"
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err[-800:]
    assert out == "", out[:300]
    return lines[0]


@dataclass
class Measured:
    """One CLI run in a child process."""

    returncode: int
    stderr: str
    peak_rss: int  # bytes
    seconds: float


def run_measured(argv: list[str], tmp_path: Path, *, timeout: float = 120) -> Measured:
    """`provenance ARGV` in a fresh interpreter; its own peak RSS (not the test runner's)."""
    out = tmp_path / f"rss-{len(list(tmp_path.glob('rss-*')))}.txt"
    env = {**os.environ, "PROVENANCE_RSS_OUT": str(out)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, *argv], capture_output=True, text=True, env=env,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    return Measured(proc.returncode, proc.stderr, int(out.read_text()) if out.exists() else -1, seconds)


def baseline_rss(tmp_path: Path) -> int:
    """Peak RSS of a child that imports what `compare` imports and refuses an empty file at once (a missing
    one is refused before the imports)."""
    if "rss" not in _BASELINE:
        empty = tmp_path / "empty.safetensors"
        empty.write_bytes(b"")
        _BASELINE["rss"] = run_measured(["inspect", str(empty)], tmp_path).peak_rss
    return _BASELINE["rss"]


def assert_bounded(m: Measured, input_bytes: int, baseline: int) -> None:
    """Peak RSS within the baseline plus RSS_PER_INPUT_BYTE per input byte plus RSS_BASE."""
    bound = baseline + RSS_BASE + RSS_PER_INPUT_BYTE * input_bytes
    assert m.peak_rss <= bound, (f"peak RSS {m.peak_rss / 2**20:.0f} MiB over the bound {bound / 2**20:.0f} MiB "
                                 f"({input_bytes} input bytes): {m.stderr.strip()[-300:]}")


def safetensors_bytes(header: object, data: bytes = b"") -> bytes:
    """A safetensors file with the given header (any JSON value, or raw bytes) and data section."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + data
