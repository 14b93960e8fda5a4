"""Where output goes: files whole or not at all (temp file + atomic rename), `-` to standard
output, progress bars to stderr.

A path that is not a regular file (/dev/stdout, a FIFO, a terminal) is written in place, never
replaced: renaming a temp file onto /dev/stdout would swap the device link for a file.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

from provenance.errors import ProvenanceError

STDOUT = "-"


def add_progress(p: argparse.ArgumentParser) -> None:
    """`--progress/--no-progress`: bars on stderr; by default only when stderr is a terminal."""
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars on stderr (default: when stderr is a terminal)")


def is_stdout(path: str | os.PathLike[str] | None) -> bool:
    """True for `-`, and for a path that is this process's standard output (/dev/stdout, /dev/fd/1)."""
    if path is None:
        return False
    if str(path) == STDOUT:
        return True
    try:
        return os.path.samestat(os.stat(path), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError, AttributeError):  # no such path, or stdout is not a file (captured)
        return False


def summary_stream(*paths: str | os.PathLike[str] | None) -> TextIO:
    """Where the human summary goes: stderr when an output is stdout (it stays clean for `jq`), else stdout."""
    return sys.stderr if any(is_stdout(p) for p in paths) else sys.stdout


def check_writable(*paths: str | os.PathLike[str] | None) -> None:
    """Fail before any work when an output's directory is missing (or the path is a directory);
    at most one output may be standard output."""
    if sum(is_stdout(p) for p in paths) > 1:
        raise ProvenanceError("only one output can go to standard output ('-'); give the others a file name")
    for path in paths:
        if path is None or is_stdout(path):
            continue
        target = Path(path)
        if target.is_dir():
            raise ProvenanceError(f"cannot write {target}: it is a directory")
        if not target.parent.is_dir():
            raise ProvenanceError(f"cannot write {target}: directory {target.parent} does not exist")


def write_output(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write a rendered output to `path`, or to standard output for `-` (one write, after rendering)."""
    if not is_stdout(path):
        write_atomic(path, data)
        return
    sys.stdout.flush()
    if isinstance(data, bytes):
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        sys.stdout.write(data)
        sys.stdout.flush()


def _in_place(target: Path) -> bool:
    """Paths written in place, not replaced: devices, FIFOs, sockets, and anything under /dev or /proc."""
    if str(target.absolute()).startswith(("/dev/", "/proc/")):
        return True
    try:
        return not stat.S_ISREG(target.stat().st_mode)
    except FileNotFoundError:
        return False


def write_atomic(path: str | os.PathLike[str], text: str | bytes) -> None:
    """Write `text` (or bytes) to `path` via a temp file in the same directory, so a crash leaves no half file.

    A symlink to a file is followed (the link stays); a device or FIFO is written in place.
    """
    target = Path(path)
    check_writable(target)
    if _in_place(target):
        with open(target, "wb") as f:
            f.write(text if isinstance(text, bytes) else text.encode("utf-8"))
        return
    target = Path(os.path.realpath(target))
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        if isinstance(text, bytes):
            with os.fdopen(fd, "wb") as f:
                f.write(text)
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
        os.chmod(tmp, _mode_for(target))  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _mode_for(target: Path) -> int:
    """The mode an existing target has, else what a plain open() would give (0666 less the umask)."""
    try:
        return target.stat().st_mode & 0o777
    except FileNotFoundError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def json_text(data: Any) -> str:
    """Pretty, key-stable JSON text."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Pretty, key-stable JSON, written atomically (or to standard output for `-`)."""
    write_output(path, json_text(data))
