"""Reading a JSON file from an untrusted checkpoint: any failure is one `CorruptFileError` line.

Torch-free on purpose: the tokenizer readers use it without importing the weight loaders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from provenance.errors import CorruptFileError


def read_json(path: Path, *, hint: str = "") -> Any:
    """Parse a UTF-8 JSON file; `hint` (what the file should be) is appended to the error."""
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CorruptFileError(f"not valid JSON ({first})" + (f"; {hint}" if hint else ""), path=path) from None
