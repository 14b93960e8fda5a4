"""Where output goes: files whole or not at all (temp file + atomic rename), `-` to standard
output, progress bars to stderr.

A path that is not a regular file (/dev/stdout, a FIFO, a terminal) is written in place, never
replaced: renaming a temp file onto /dev/stdout would swap the device link for a file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO

from provenance.errors import ProvenanceError  # noqa: F401 - re-exported for commands
from provenance.outfile import STDOUT, check_writable, is_stdout, write_atomic  # noqa: F401 - re-exported


def add_progress(p: argparse.ArgumentParser) -> None:
    """`--progress/--no-progress`: bars on stderr; by default only when stderr is a terminal."""
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars on stderr (default: when stderr is a terminal)")


def summary_stream(*paths: str | os.PathLike[str] | None) -> TextIO:
    """Where the human summary goes: stderr when an output is stdout (it stays clean for `jq`), else stdout."""
    return sys.stderr if any(is_stdout(p) for p in paths) else sys.stdout


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


def json_text(data: Any) -> str:
    """Pretty, key-stable JSON text."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Pretty, key-stable JSON, written atomically (or to standard output for `-`)."""
    write_output(path, json_text(data))


def refuse_missing_paths(*specs: str) -> None:
    """Refuse an absolute path that does not exist before the command imports torch (2.7 s), with the message
    `resolve` would give. Relative names may still be cached model ids and URLs may be endpoints: `resolve`
    decides those."""
    from provenance.errors import CheckpointNotFoundError

    for spec in specs:
        path = os.path.expanduser(spec)
        if os.path.isabs(path) and not os.path.exists(path):
            raise CheckpointNotFoundError(f"no such file or directory: {spec}")
