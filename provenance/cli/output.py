"""Write output files whole or not at all (temp file + atomic rename)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from provenance.errors import ProvenanceError


def check_writable(*paths: str | os.PathLike[str] | None) -> None:
    """Fail before any work when an output's directory is missing (or the path is a directory)."""
    for path in paths:
        if path is None:
            continue
        target = Path(path)
        if target.is_dir():
            raise ProvenanceError(f"cannot write {target}: it is a directory")
        if not target.parent.is_dir():
            raise ProvenanceError(f"cannot write {target}: directory {target.parent} does not exist")


def write_atomic(path: str | os.PathLike[str], text: str | bytes) -> None:
    """Write `text` (or bytes) to `path` via a temp file in the same directory, so a crash leaves no half file."""
    target = Path(path)
    check_writable(target)
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


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Pretty, key-stable JSON, written atomically."""
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
