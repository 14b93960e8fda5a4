"""Reading a JSON file from an untrusted checkpoint: any failure is one `CorruptFileError` line.

Torch-free on purpose: the tokenizer readers use it without importing the weight loaders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from provenance.errors import CorruptFileError, ProvenanceError


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_json(path: Path, *, hint: str = "", strict: bool = False) -> Any:
    """Parse a UTF-8 JSON file; `hint` (what the file should be) is appended to the error.

    `strict` refuses NaN and Infinity, which Python writes but JSON does not have.
    """
    try:
        # imported here: provenance.io imports this module
        from provenance.io.guard import read_bytes

        data = read_bytes(path)
    except OSError as exc:
        raise ProvenanceError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constant if strict else None)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CorruptFileError(f"not valid JSON ({first})" + (f"; {hint}" if hint else ""), path=path) from None
