"""What counts as a finding: the rule every reader must keep, applied to one input's outcome."""

from __future__ import annotations

import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

PROVENANCE_DIR = str(Path(__file__).resolve().parent.parent / "provenance")
RSS_SLACK = 200 * 2**20  # bound: baseline + RSS_PER_BYTE x input size + RSS_SLACK
RSS_PER_BYTE = 10

OK, REFUSED, CRASH, HANG, OVER = "ok", "refused", "crash", "hang", "over-budget"
FINDINGS = (CRASH, HANG, OVER)


@dataclass
class Outcome:
    """How one input went: its kind, and for a finding the exception type, where, and the message's first line."""

    kind: str
    type: str = ""
    where: str = ""  # innermost frame inside provenance/ (else the innermost frame): the dedupe location
    raised_at: str = ""  # innermost frame of all
    message: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def budget(size: int) -> int:
    """Bytes of RSS an input of `size` bytes may add to the worker's baseline."""
    return RSS_SLACK + RSS_PER_BYTE * size


def _frame(f: traceback.FrameSummary) -> str:
    return f"{_short(f.filename)}:{f.lineno} in {f.name}"


def _short(filename: str) -> str:
    for marker in ("/provenance/", "/fuzz/", "/site-packages/", "/lib/python"):
        if marker in filename:
            return filename[filename.index(marker) + 1:]
    return filename


def locate(exc: BaseException) -> tuple[str, str]:
    """(innermost frame inside provenance/, innermost frame with its source line) of an exception's traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?", "?"
    ours = [f for f in frames if f.filename.startswith(PROVENANCE_DIR)]
    last = frames[-1]
    return _frame((ours or frames)[-1]), f"{_frame(last)}: {(last.line or '').strip()[:160]}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else "")[:300]


def _memory_behind(exc: BaseException) -> bool:
    """Whether a MemoryError (or torch's failed allocation) is in the exception's context chain."""
    seen = 0
    e: BaseException | None = exc
    while e is not None and seen < 32:
        if isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and "can't allocate memory" in str(e)[:500]):
            return True
        e = e.__cause__ or e.__context__
        seen += 1
    return False


def judge(exc: BaseException | None) -> Outcome:
    """The outcome of an input that returned (None) or raised `exc`, before the memory check."""
    from provenance.errors import ProvenanceError

    if exc is None:
        return Outcome(OK)
    where, raised_at = locate(exc)
    name = type(exc).__name__
    if isinstance(exc, ProvenanceError):
        text = str(exc)
        if _memory_behind(exc):
            return Outcome(OVER, f"{name}<-MemoryError", where, raised_at, _first_line(exc))
        if "\n" in text.strip() or not text.strip():
            return Outcome(CRASH, f"{name}(multi-line message)" if text.strip() else f"{name}(empty message)",
                           where, raised_at, _first_line(exc))
        return Outcome(REFUSED, name, message=_first_line(exc))
    return Outcome(CRASH, name, where, raised_at, _first_line(exc))
