"""The probe corpus: fixed, versioned texts both models read so their activations can be compared.

The texts ship with the package (``data/probes_v<N>.jsonl``, one JSON object a line:
``id``, ``category``, ``lang``, ``text``). Any edit to a corpus file is a new version, and
the SHA-256 over the texts lets a report cite exactly what the models were run on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

from provenance.errors import CorruptFileError, InvalidParameterError, MissingFileError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

PROBE_VERSION = "provenance-probes/1"
_FILES = {"1": "probes_v1.jsonl"}  # version -> file under provenance/activations/data/
_KEYS = ("id", "category", "lang", "text")


@dataclass(frozen=True)
class ProbeSet:
    """Probe texts in corpus order, with their ids, categories and a digest a report can cite.

    >>> probes = load_probes()
    >>> len(probes), probes.version
    (320, 'provenance-probes/1')
    >>> small = probes.subset(8)
    >>> small.version, small.ids[:3]
    ('provenance-probes/1[8 of 320]', ('p0001', 'p0041', 'p0081'))
    """

    version: str
    ids: tuple[str, ...]
    categories: tuple[str, ...]
    texts: tuple[str, ...]
    sha256: str

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, n: int) -> ProbeSet:
        """n texts spread evenly over the whole list (so every part of the corpus is sampled).

        Picks index floor(i * len / n) for i in 0..n-1: deterministic, and since the corpus is
        grouped by category, an even spread keeps the category mix. The version names the cut.
        """
        total = len(self)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= total:
            raise InvalidParameterError("n", "ProbeSet.subset", f"an int in [1, {total}]", n)
        picks = [i * total // n for i in range(n)]
        texts = tuple(self.texts[i] for i in picks)
        return ProbeSet(
            version=f"{self.version}[{n} of {total}]",
            ids=tuple(self.ids[i] for i in picks),
            categories=tuple(self.categories[i] for i in picks),
            texts=texts,
            sha256=texts_sha256(texts),
        )


def texts_sha256(texts: tuple[str, ...] | list[str]) -> str:
    """SHA-256 over the texts in order, each as its UTF-8 bytes followed by a NUL.

    >>> texts_sha256(["a", "b"]) == hashlib.sha256(b"a\\x00b\\x00").hexdigest()
    True
    """
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def parse_probes(text: str, source: str, *, version: str = PROBE_VERSION) -> ProbeSet:
    """Parse and validate a JSONL corpus; any bad line raises `CorruptFileError` naming it."""
    ids: list[str] = []
    categories: list[str] = []
    texts: list[str] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"line {lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorruptFileError(f"{where} is not valid JSON ({exc.msg}).", path=source) from None
        if not isinstance(row, dict) or sorted(row) != sorted(_KEYS):
            got = sorted(row) if isinstance(row, dict) else type(row).__name__
            raise CorruptFileError(f"{where} must be an object with exactly the keys {list(_KEYS)}; "
                                   f"got {got}.", path=source)
        for key in _KEYS:
            if not isinstance(row[key], str) or not row[key].strip():
                raise CorruptFileError(f"{where}: {key!r} must be a non-empty string; got {row[key]!r}.",
                                       path=source)
        if row["id"] in seen:
            raise CorruptFileError(f"{where}: id {row['id']!r} repeats line {seen[row['id']]}.", path=source)
        seen[row["id"]] = lineno
        ids.append(row["id"])
        categories.append(row["category"])
        texts.append(row["text"])
    if not texts:
        raise CorruptFileError("holds no probe texts.", path=source)
    return ProbeSet(version=version, ids=tuple(ids), categories=tuple(categories),
                    texts=tuple(texts), sha256=texts_sha256(texts))


def _data_dir() -> Traversable:
    return resources.files("provenance.activations") / "data"


def load_probes(version: str = "1") -> ProbeSet:
    """The probe corpus shipped with the package, validated ("1" is `PROBE_VERSION`)."""
    if not isinstance(version, str) or version not in _FILES:
        raise InvalidParameterError("version", "load_probes", f"one of {sorted(_FILES)}", version)
    return _read(version)


@lru_cache(maxsize=None)
def _read(version: str) -> ProbeSet:  # read and checked once per version
    resource = _data_dir() / _FILES[version]
    try:
        raw = resource.read_bytes()
    except FileNotFoundError:
        raise MissingFileError("is missing from the installed package; reinstall provenance.",
                               path=str(resource)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptFileError(f"is not UTF-8 ({exc.reason} at byte {exc.start}).",
                               path=str(resource)) from None
    return parse_probes(text, str(resource), version=f"provenance-probes/{version}")
