"""Findings on disk: one input file per (target, kind, exception type, location), the smallest seen kept,
with a sidecar .txt that says what happened and how to replay it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_DIR = Path(__file__).resolve().parent / "findings"


@dataclass
class Finding:
    """One deduplicated finding and the smallest input that shows it."""

    target: str
    kind: str  # crash | hang | over-budget
    type: str  # exception type (or WorkerDied/-)
    where: str  # innermost frame in provenance/ (or the hung frame)
    raised_at: str
    message: str
    input: str  # index in the run, or the corpus file
    seed: int
    size: int
    hits: int = 1
    path: str = ""
    confirmed: bool | None = None  # replayed in a fresh worker at the end of the run

    @property
    def key(self) -> tuple[str, str, str, str]:
        return self.target, self.kind, self.type, self.where

    def digest(self) -> str:
        """A short stable name for the key, used in file names."""
        return hashlib.sha1("|".join(self.key).encode()).hexdigest()[:10]


class Findings:
    """The findings of one run, written under `root/<target>/` as they come."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.by_key: dict[tuple[str, str, str, str], Finding] = {}

    def add(self, finding: Finding, data: bytes, filename: str) -> bool:
        """Record a finding; True when it is new in this run. A smaller input replaces a larger one."""
        old = self.by_key.get(finding.key)
        if old is not None:
            old.hits += 1
            if len(data) >= old.size:
                self._write_note(old)
                return False
            finding.hits = old.hits
        self.by_key[finding.key] = finding
        folder = self.root / finding.target
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{finding.kind}-{finding.type.split('(')[0].split('<')[0]}-{finding.digest()}"
        path = folder / f"{stem}__{filename}"
        path.write_bytes(data)
        finding.path = str(path)
        self._write_note(finding)
        return old is None

    def _write_note(self, f: Finding) -> None:
        note = Path(f.path).with_name(Path(f.path).name.split("__")[0] + ".txt")
        lines = [f"target: {f.target}", f"kind: {f.kind}", f"exception: {f.type}", f"where: {f.where}",
                 f"raised at: {f.raised_at}", f"message: {f.message}", f"input: {f.input} of --seed {f.seed}",
                 f"size: {f.size} bytes", f"hits: {f.hits}",
                 f"confirmed in a fresh worker: {'not yet' if f.confirmed is None else f.confirmed}",
                 f"replay: python -m fuzz replay {f.path}", "", json.dumps(asdict(f))]
        note.write_text("\n".join(lines) + "\n")

    def confirm(self, finding: Finding, reproduced: bool) -> None:
        """Note whether a fresh worker reproduced the finding."""
        finding.confirmed = reproduced
        self._write_note(finding)

    def all(self) -> list[Finding]:
        """Every finding, sorted by key."""
        return sorted(self.by_key.values(), key=lambda f: f.key)
