"""Output files written whole or not at all: a temp file beside the target, then an atomic rename.

A path that is not a regular file (/dev/stdout, a FIFO, a terminal) is written in place, never
replaced: renaming a temp file onto /dev/stdout would swap the device link for a file. Used by
the CLI and by the library's own `save` methods (results, fingerprints, audit reports).
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

from provenance.errors import ProvenanceError

STDOUT = "-"


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
