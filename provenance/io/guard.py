"""Opening files that the accused party wrote: regular files only, inside the model's folder.

A checkpoint is adversarial input. A FIFO named `model.safetensors` would block a plain `open`
forever, a device would stream without end, and a symlinked shard or tokenizer file could make
the tool read (and quote) a file outside the folder under audit. Every file the loaders pick
from a model folder goes through `member`, and every open goes through `open_fd`, which never
blocks and refuses anything but a regular file.
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path
from typing import BinaryIO

from provenance.errors import UnsafePathError

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_fd(path: str | os.PathLike[str]) -> int:
    """A read-only descriptor of a regular file; FIFOs, devices and sockets are refused without blocking."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnsafePathError(f"is {kind_of(mode)}, not a regular file; refusing to read it", path=Path(path))
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_file(path: str | os.PathLike[str]) -> BinaryIO:
    """`open(path, "rb")` through `open_fd`: never blocks, regular files only."""
    return os.fdopen(open_fd(path), "rb")


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The whole content of a regular file (`Path.read_bytes` would block on a FIFO)."""
    with open_file(path) as f:
        return f.read()


def member(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """`path` if it is a regular file whose real location (symlinks resolved) is inside `root`.

    Symlinks that stay inside the folder are fine (the Hugging Face cache links snapshots to
    blobs one level up, so the root of a cached model is its repository folder: pass that).
    """
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        raise UnsafePathError("is a link to a file outside the model directory; refusing to read it",
                              path=Path(path))
    try:
        mode = os.stat(real).st_mode
    except OSError:
        return Path(path)  # missing: the caller reports it in its own words
    if not stat.S_ISREG(mode):
        raise UnsafePathError(f"is {kind_of(mode)}, not a regular file; refusing to read it", path=Path(path))
    return Path(path)
