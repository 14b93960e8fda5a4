"""The response cache: every answer an endpoint gave, appended to a JSON-lines file as it arrives.

A black-box audit spends queries (money, rate limits), so each answer is written down the moment
it is parsed: one line, flushed and fsynced. A run killed at any point leaves a file that loads
(a torn last line is dropped), a rerun resumes where it stopped, and an offline rerun re-scores
without the network. Lines hold the request (path and body) and the raw response text, never the
API key or any header.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from provenance.errors import CorruptFileError, ProvenanceError
from provenance.io.guard import kind_of, open_file

MAX_CACHE_BYTES = 1 << 30  # a cache of a few thousand answers is a few MiB; more is not ours
_FIELDS = ("request_sha256", "request", "response_sha256", "response")


def canonical_json(value: Any) -> bytes:
    """`value` as canonical JSON bytes (sorted keys, no spaces, UTF-8, no NaN): equal requests, equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def sha256_hex(data: bytes) -> str:
    """The hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def request_sha256(request: dict[str, Any]) -> str:
    """The cache key of a request `{"url": ..., "body": ...}`: the SHA-256 of its canonical JSON."""
    return sha256_hex(canonical_json(request))


class ResponseCache:
    """An append-only JSON-lines file of `{request_sha256, request, response_sha256, response}`, one per answer."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._entries: dict[str, tuple[str, str]] = {}  # request sha -> (response sha, raw response text)
        self._good_end = 0  # bytes up to the end of the last whole answer; a torn tail past it is cut on append
        self._size = 0  # the file's size as this object last saw it
        self._unterminated = False  # the last whole answer lacks its newline
        if os.path.lexists(self._path):
            self._load()

    @property
    def path(self) -> Path:
        """The JSON-lines file."""
        return self._path

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, request_sha256: str) -> str | None:
        """The raw response text cached for a request hash, or None."""
        entry = self._entries.get(request_sha256)
        return entry[1] if entry is not None else None

    def put(self, request_sha256: str, request: dict[str, Any], response_sha256: str, response: str) -> None:
        """Append one answer and fsync it; a request already cached keeps its first answer."""
        if request_sha256 in self._entries:
            return
        line = canonical_json({"request_sha256": request_sha256, "request": request,
                               "response_sha256": response_sha256, "response": response}) + b"\n"
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProvenanceError(f"cannot create the response cache's folder: {exc.strerror or exc}",
                                  path=self._path) from None
        fd = self._open_for_append()
        try:
            if self._size > self._good_end and os.fstat(fd).st_size == self._size:
                os.ftruncate(fd, self._good_end)  # a line torn by a killed run would glue onto ours
                self._size = self._good_end
            if self._size > self._good_end or self._unterminated:
                line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        except OSError as exc:
            raise ProvenanceError(f"cannot write the response cache: {exc.strerror or exc}", path=self._path) from None
        finally:
            os.close(fd)
        self._size += len(line)
        self._good_end = self._size
        self._unterminated = False
        self._entries[request_sha256] = (response_sha256, response)

    def _open_for_append(self) -> int:
        """A write descriptor of the cache file (created 0644), refusing FIFOs and devices without blocking."""
        try:
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise ProvenanceError(f"cannot write the response cache: {exc.strerror or exc}", path=self._path) from None
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise ProvenanceError(f"the response cache is {kind_of(mode)}, not a regular file", path=self._path)
        return fd

    def _load(self) -> None:
        """Read every whole line; the last line may be torn (dropped), any other bad line is an error."""
        try:
            with open_file(self._path) as f:
                size = os.fstat(f.fileno()).st_size
                data = f.read(MAX_CACHE_BYTES + 1) if size <= MAX_CACHE_BYTES else b""
        except OSError as exc:
            raise ProvenanceError(f"cannot read the response cache: {exc.strerror or exc}", path=self._path) from None
        if max(size, len(data)) > MAX_CACHE_BYTES:  # checked again after reading: it may have grown
            raise ProvenanceError(f"the response cache is {max(size, len(data)):,} bytes, over the "
                                  f"{MAX_CACHE_BYTES:,}-byte limit; start a new cache file", path=self._path)
        self._size = len(data)
        lines = data.split(b"\n")
        for number, raw in enumerate(lines, 1):
            last = number == len(lines)
            entry = _entry(raw) if raw or not last else None
            if entry is None:
                if last:  # empty after the final newline, or torn by a kill mid-write: asked again next time
                    return
                raise CorruptFileError(f"line {number} of the response cache is not a cached answer; move the file "
                                       "aside to start a new cache", path=self._path)
            self._entries.setdefault(entry[0], entry[1:])
            self._good_end += len(raw) + (0 if last else 1)
            self._unterminated = last  # a whole answer whose newline was lost: the next one starts a new line


def _entry(raw: bytes) -> tuple[str, str, str] | None:
    """(request sha, response sha, response text) of one cache line, or None unless it checks out."""
    try:
        line = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(line, dict) or set(line) != set(_FIELDS):
        return None
    key, request, response_sha, response = (line[f] for f in _FIELDS)
    if not (isinstance(key, str) and isinstance(request, dict) and isinstance(response_sha, str)
            and isinstance(response, str)):
        return None
    try:
        if request_sha256(request) != key or sha256_hex(response.encode("utf-8")) != response_sha:
            return None
    except (ValueError, UnicodeEncodeError):  # NaN in a request, a lone surrogate in a response
        return None
    return key, response_sha, response
