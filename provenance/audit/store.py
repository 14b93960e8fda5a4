"""The audit's results store: one SQLite file with models, fingerprints, pair results and runs.

Every finished unit of work (one fingerprint, one pair) is written in its own transaction,
keyed by what it was computed from, so a run killed at any moment loses only the work in
flight, and a re-run with unchanged inputs finds everything and recomputes nothing.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from provenance.errors import ProvenanceError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY, spec TEXT NOT NULL, input_key TEXT NOT NULL, files TEXT NOT NULL,
    fingerprint BLOB, fingerprint_sha256 TEXT, summary TEXT NOT NULL, bytes_read INTEGER NOT NULL,
    seconds REAL NOT NULL, error TEXT);
CREATE TABLE IF NOT EXISTS pairs (
    base TEXT NOT NULL, candidate TEXT NOT NULL, key TEXT NOT NULL, screen TEXT NOT NULL, compared INTEGER NOT NULL,
    label TEXT, relation TEXT, p_value REAL, decided_by TEXT NOT NULL, strongest TEXT, result TEXT,
    seconds REAL NOT NULL, PRIMARY KEY (base, candidate));
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started TEXT NOT NULL, finished TEXT, manifest TEXT NOT NULL,
    options TEXT NOT NULL, stages TEXT);
"""
STORE_VERSION = "provenance.audit-store/1"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Store:
    """A results store; open with `Store(path)` (created if missing), close with `.close()`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.is_dir() or not self.path.parent.is_dir():
            raise ProvenanceError(f"cannot use {self.path} as the results store (a file in an existing directory)")
        try:
            self.db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
            with self.db:
                self.db.execute("BEGIN")
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('version', ?)", (STORE_VERSION,))
            version = self.db.execute("SELECT value FROM meta WHERE key='version'").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise ProvenanceError(f"{self.path}: not a provenance results store ({exc})") from None
        if version != STORE_VERSION:
            raise ProvenanceError(f"{self.path}: results store version {version!r}, expected {STORE_VERSION!r}")

    def close(self) -> None:
        self.db.close()

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        with self.db:  # one transaction: the row is there whole or not at all
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(sql, args)

    # runs
    def start_run(self, manifest: str, options: dict[str, Any]) -> int:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            cur = self.db.execute("INSERT INTO runs (started, manifest, options) VALUES (?, ?, ?)",
                                  (_now(), manifest, json.dumps(options, sort_keys=True)))
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, stages: dict[str, Any]) -> None:
        self._write("UPDATE runs SET finished = ?, stages = ? WHERE id = ?", (_now(), json.dumps(stages), run_id))

    # models
    def model(self, name: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT name, spec, input_key, files, fingerprint, fingerprint_sha256, summary, "
                              "bytes_read, seconds, error FROM models WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        keys = ("name", "spec", "input_key", "files", "fingerprint", "fingerprint_sha256", "summary", "bytes_read",
                "seconds", "error")
        out = dict(zip(keys, row))
        out["files"], out["summary"] = json.loads(out["files"]), json.loads(out["summary"])
        return out

    def put_model(self, name: str, spec: str, input_key: str, files: dict[str, str], fingerprint: bytes | None,
                  fingerprint_sha256: str | None, summary: dict[str, Any], bytes_read: int, seconds: float,
                  error: str | None) -> None:
        self._write("INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (name, spec, input_key, json.dumps(files, sort_keys=True), fingerprint, fingerprint_sha256,
                     json.dumps(summary, sort_keys=True), bytes_read, seconds, error))

    # pairs
    def pair(self, base: str, candidate: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT key, screen, compared, label, relation, p_value, decided_by, strongest, result, "
                              "seconds FROM pairs WHERE base = ? AND candidate = ?", (base, candidate)).fetchone()
        if row is None:
            return None
        keys = ("key", "screen", "compared", "label", "relation", "p_value", "decided_by", "strongest", "result",
                "seconds")
        out = dict(zip(keys, row))
        out["decided_by"], out["screen"] = json.loads(out["decided_by"]), json.loads(out["screen"])
        out["result"] = json.loads(out["result"]) if out["result"] else None
        out["compared"] = bool(out["compared"])
        return out

    def pair_state(self, base: str, candidate: str) -> tuple[str, bool] | None:
        """(key, compared) of a stored pair, without parsing its result: enough to tell whether it is current."""
        row = self.db.execute("SELECT key, compared FROM pairs WHERE base = ? AND candidate = ?",
                              (base, candidate)).fetchone()
        return (row[0], bool(row[1])) if row is not None else None

    def put_pair(self, base: str, candidate: str, key: str, screen: dict[str, Any], compared: bool, label: str | None,
                 relation: str | None, p_value: float | None, decided_by: list[str], strongest: str | None,
                 result: dict[str, Any] | None, seconds: float) -> None:
        self._write("INSERT OR REPLACE INTO pairs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (base, candidate, key, json.dumps(screen, sort_keys=True), int(compared), label, relation, p_value,
                     json.dumps(decided_by), strongest,
                     json.dumps(result, sort_keys=True) if result is not None else None, seconds))

    def put_unflagged(self, rows: list[tuple[str, str, str, dict[str, Any]]]) -> None:
        """Pairs the screen did not flag, (base, candidate, key, screen) each, in one transaction: thousands of
        them would otherwise cost one synchronous commit each."""
        if not rows:
            return
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR REPLACE INTO pairs VALUES (?, ?, ?, ?, 0, NULL, NULL, NULL, '[]', NULL, "
                                "NULL, 0.0)", [(a, b, k, json.dumps(s, sort_keys=True)) for a, b, k, s in rows])

    def table(self, name: str) -> list[tuple[Any, ...]]:
        """Every row of a table, sorted (for comparing two stores)."""
        if name not in ("models", "pairs", "runs", "meta"):
            raise ValueError(name)
        return sorted(self.db.execute(f"SELECT * FROM {name}").fetchall(), key=repr)
