"""A registry: a directory of `.fingerprint` files, screened cheaply before any full comparison.

`scan` reads each file's header and its few small pre-filter vectors (each verified against the
checksums in the header); `open_index` keeps those vectors of every entry in one index file
(`provenance.fingerprint.index`), refreshed from the files' stats, and `screen_index` scores a query
against all of them at once, with the numbers `screen` gives one entry at a time. The full
fingerprint is loaded only for the shortlist.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from provenance.errors import ProvenanceError
from provenance.fingerprint import index as ix
from provenance.fingerprint.anchors import BY_IDS, BY_TOKENS, TAG_OF
from provenance.fingerprint.fileformat import SUFFIX, load_screens
from provenance.fingerprint.model import Fingerprint
from provenance.fingerprint.screen import embedding_score, embedding_scores, jaccard_estimate

MIN_SCREEN_ANCHORS = 16


@dataclass
class Entry:
    """One registry file: its verified metadata and pre-filter vectors."""

    path: Path
    meta: dict[str, Any]
    screens: dict[str, np.ndarray]

    @property
    def name(self) -> str:
        src = self.meta.get("source", {})
        return str(src.get("name") or self.path.stem)

    @property
    def has_weights(self) -> bool:
        return "facts" in self.meta


@dataclass
class Screen:
    """How one registry entry looks against the query before the full comparison."""

    weights_r: float | None  # correlation of the anchor-token cosine structures (None: not comparable)
    anchors: int  # anchor tokens both hold
    paired_by: str | None
    jaccard: float | None  # MinHash estimate of the ordinary-token overlap
    same_vocabulary: bool


def default_registry() -> Path:
    """`$PROVENANCE_REGISTRY`, else the registry installed with the package: `provenance.registry_data`,
    which is the repository's `fingerprints/` directory (pyproject.toml maps it; wheels ship its files)."""
    env = os.environ.get("PROVENANCE_REGISTRY")
    return Path(env) if env else Path(str(resources.files("provenance.registry_data")))


def listing(directory: str | os.PathLike[str]) -> ix.Listing:
    """The `.fingerprint` files of a registry directory with their stats (no file is opened), sorted by name.

    Regular files, or links to one (what `Path.is_file()` accepts); a file gone since the listing, or a
    dangling link, is left out. One `stat` per name, relative to the open directory (the cost at 100,000 files)."""
    d = Path(directory)
    if not d.is_dir():
        raise ProvenanceError(f"registry {d} is not a directory (pass --registry DIR, or build one with "
                              "`python fingerprints/build.py`)")
    at = os.open(d, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if os.stat in os.supports_dir_fd else None
    try:
        names = sorted(n for n in os.listdir(d if at is None else at) if n.endswith(SUFFIX) and len(n) > len(SUFFIX))
        kept, size, mtime, ctime, ino = [], [], [], [], []
        for name in names:
            try:
                st = os.stat(name, dir_fd=at) if at is not None else os.stat(d / name)
            except OSError:  # gone since the listing, or a dangling link: as Path.is_file() says
                continue
            if stat.S_ISREG(st.st_mode):
                kept.append(name)
                size.append(st.st_size)
                mtime.append(st.st_mtime_ns)
                ctime.append(st.st_ctime_ns)
                ino.append(st.st_ino)
    finally:
        if at is not None:
            os.close(at)
    if not kept:
        raise ProvenanceError(f"registry {d} holds no {SUFFIX} files")
    stats = np.array([size, mtime, ctime], dtype=np.int64).T.copy()
    return ix.Listing(kept, stats, np.array(ino, dtype=np.uint64))


def registry_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The `.fingerprint` files of a registry directory, sorted by name."""
    d = Path(directory)
    return [d / name for name in listing(d).names]


def _slim(meta: dict[str, Any]) -> dict[str, Any]:
    """What ranking and reporting need of an entry's metadata (config, roles and statistics stay on disk)."""
    out = {"source": meta.get("source", {}), "tokenizer": {"digest": meta.get("tokenizer", {}).get("digest")}}
    if "facts" in meta:
        out["facts"] = meta["facts"]
    return out


def scan(directory: str | os.PathLike[str]) -> list[Entry]:
    """Every entry's metadata and pre-filter vectors; a damaged file stops the scan with its name."""
    entries = []
    for p in registry_files(directory):
        meta, screens = load_screens(p)
        entries.append(Entry(p, _slim(meta), screens))
    return entries


def _vectors(screens: dict[str, np.ndarray], mode: str) -> tuple[np.ndarray, np.ndarray] | None:
    tag = TAG_OF[mode]
    return (screens[tag], screens[tag + ".anchors"]) if tag in screens and tag + ".anchors" in screens else None


def screen(query: Fingerprint, entry: Entry) -> Screen:
    """Pre-filter scores of one registry entry against the query."""
    qd = query.meta.get("tokenizer", {}).get("digest") if query.vocabulary is None else query.vocabulary.digest()
    return screen_vectors(query.screens, entry.screens, qd, entry.meta.get("tokenizer", {}).get("digest"))


def screen_vectors(a: dict[str, np.ndarray], b: dict[str, np.ndarray], digest_a: str | None,
                   digest_b: str | None) -> Screen:
    """Pre-filter scores from two fingerprints' screen vectors: the embedding screen by token strings,
    else by id; the MinHash overlap; whether the vocabularies are the same."""
    r, n, paired = None, 0, None
    for mode in (BY_TOKENS, BY_IDS):
        va, vb = _vectors(a, mode), _vectors(b, mode)
        if va is None or vb is None:
            continue
        score, common = embedding_score(va, vb)
        if common >= MIN_SCREEN_ANCHORS:
            r, n, paired = score, common, mode
            break
    jac = jaccard_estimate(a["minhash"], b["minhash"]) if "minhash" in a and "minhash" in b else None
    return Screen(r, n, paired, jac, digest_a is not None and digest_a == digest_b)


# ----------------------------------------------------------------------------------------------- the index

log = logging.getLogger(__name__)


def index_locations(directory: Path) -> list[Path]:
    """Where the index of `directory` may live, in order: inside it, then the user cache. The registry
    installed with the package is never written (it may be read-only, or a source checkout)."""
    real = os.path.realpath(directory)
    base = os.environ.get("XDG_CACHE_HOME", "")
    try:
        cache = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    except (RuntimeError, KeyError):  # no home directory
        cache = None
    out = [] if real == os.path.realpath(str(default_registry_data())) else [directory / ix.NAME]
    if cache is not None:
        out.append(cache / "provenance" / "index" / (hashlib.sha256(os.fsencode(real)).hexdigest()[:32] + ".index"))
    return out


def default_registry_data() -> Path:
    return Path(str(resources.files("provenance.registry_data")))


def _read_entry(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    meta, screens = load_screens(path)
    return _slim(meta), screens


def _unchanged(index: ix.RegistryIndex, j: int, read: tuple[dict[str, Any], dict[str, np.ndarray]]) -> bool:
    """Whether a file read again says what the index holds of it."""
    slim, screens = read
    held = index.screens(j)
    return index.meta(j) == slim and held.keys() == screens.keys() and all(
        held[k].dtype == screens[k].dtype and np.array_equal(held[k], screens[k]) for k in held)


def open_index(directory: str | os.PathLike[str], *, rebuild: bool = False) -> ix.RegistryIndex:
    """The registry's index, loaded if it still matches the files' stats, else brought up to date (changed and
    new files read, the rest copied) and written where it can be; a damaged or foreign index is rebuilt
    (one logged line). rebuild: read every file again. A damaged registry file stops it with its name, as `scan`."""
    d = Path(directory)
    built_ns = time.time_ns()
    files = listing(d)
    t0 = time.perf_counter()
    blob, old, where = files.blob(), None, index_locations(d)
    for loc in [] if rebuild else where:
        try:
            found = ix.read_index(loc, d)
        except ix.Damaged as exc:
            log.warning("registry index %s does not verify (%s): rebuilding it from the files", loc, exc)
            continue
        if found is not None and (loc.parent == d or found.header.get("registry") == os.path.realpath(d)):
            old = old or found
            if found.names_blob == blob:
                old = found
                break
    reuse = _reusable(old, files, blob)
    if old is not None:
        racy = [int(i) for i in np.flatnonzero((reuse >= 0) & old.racy()[np.maximum(reuse, 0)])]
        for i in racy:  # same stats, but taken within a clock tick of a possible change: read it again
            if not _unchanged(old, int(reuse[i]), _read_entry(d / files.names[i])):
                reuse[i] = -1
        if len(reuse) == old.n and np.array_equal(reuse, np.arange(old.n)):
            young = bool(racy) and files.stats[racy, 1:].max() >= time.time_ns() - ix.RACY_NS
            if not racy or young:  # else: write it again, so that they are no longer racy
                old.seconds = time.perf_counter() - t0
                return old
    fresh = _write(d, files, built_ns, reuse.tolist(), old, where)
    fresh.state = "built" if np.all(reuse < 0) else "updated"
    fresh.seconds = time.perf_counter() - t0
    return fresh


def _reusable(old: ix.RegistryIndex | None, files: ix.Listing, blob: bytes) -> np.ndarray:
    """Per listed file, the old index's entry with the same name and stats, else -1."""
    if old is None:
        return np.full(len(files.names), -1, dtype=np.int64)
    if old.names_blob == blob:  # the usual case: the same files, compared at once
        at = np.arange(len(files.names))
    else:
        where = {name: j for j, name in enumerate(old.names)}
        at = np.array([where.get(name, -1) for name in files.names], dtype=np.int64)
    ok = at >= 0
    ok[ok] = np.all(old.stats[at[ok]] == files.stats[ok], axis=1) & (old.ino[at[ok]] == files.ino[ok])
    return np.where(ok, at, -1)


def _write_atomic(target: Path, write_to: Any) -> None:
    """write_to(file) on a temp file beside `target`, renamed onto it: whole or not at all (`outfile.write_atomic`
    takes the bytes at once; an index is written in pieces)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            write_to(f)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _spool_in(folder: Path | None) -> Any:
    """Scratch files for `build`: unnamed temp files in `folder`, or memory."""
    if folder is None:
        return io.BytesIO
    return lambda: tempfile.TemporaryFile(dir=folder, prefix=".provenance-index-spool-")


def _write(d: Path, files: ix.Listing, built_ns: int, reuse: list[int], old: ix.RegistryIndex | None,
           where: list[Path]) -> ix.RegistryIndex:
    """Build the index into the first location that takes it, else in memory. When what was copied from `old`
    or what was written does not verify, it is built again from the files alone, then in memory."""
    for attempt in range(3):
        try:
            for loc in where:
                try:
                    loc.parent.mkdir(parents=True, exist_ok=True)
                    spool = _spool_in(loc.parent)
                    _write_atomic(loc, lambda f, spool=spool, reuse=reuse, old=old: ix.build(
                        d, files, built_ns, reuse, old, _read_entry, f, spool))
                    found = ix.read_index(loc, d)
                    if found is not None:
                        return found
                except OSError:  # read-only, full, not ours: the next place
                    continue
            buf = io.BytesIO()
            ix.build(d, files, built_ns, reuse, old, _read_entry, buf, _spool_in(None))
            return ix.parse(buf.getbuffer(), d, "memory")
        except ix.Damaged as exc:
            if attempt == 2:
                raise ProvenanceError(f"registry index of {d} does not verify after a rebuild ({exc})") from None
            log.warning("registry index of %s does not verify (%s): rebuilding it from the files", d, exc)
            reuse, old, where = [-1] * len(files.names), None, where if attempt == 0 else []
    raise AssertionError("unreachable")


@dataclass
class ScreenTable:
    """`Screen` of every registry entry as arrays (NaN for None, paired_by as an index into PAIRED, -1: None)."""

    weights_r: np.ndarray
    anchors: np.ndarray
    paired: np.ndarray
    jaccard: np.ndarray
    same_vocabulary: np.ndarray

    def screen(self, i: int) -> Screen:
        r, j, p = float(self.weights_r[i]), float(self.jaccard[i]), int(self.paired[i])
        return Screen(None if np.isnan(r) else r, int(self.anchors[i]), PAIRED[p] if p >= 0 else None,
                      None if np.isnan(j) else j, bool(self.same_vocabulary[i]))

    def set(self, i: int, s: Screen) -> None:
        self.weights_r[i] = np.nan if s.weights_r is None else s.weights_r
        self.anchors[i], self.paired[i] = s.anchors, -1 if s.paired_by is None else PAIRED.index(s.paired_by)
        self.jaccard[i] = np.nan if s.jaccard is None else s.jaccard
        self.same_vocabulary[i] = s.same_vocabulary


PAIRED = (BY_TOKENS, BY_IDS)


def screen_index(query: dict[str, np.ndarray], digest: Any, index: ix.RegistryIndex) -> ScreenTable:
    """`screen_vectors(query, entry)` for every entry of the index at once (values within SCORES_EPS of it,
    to the last bit in practice; the anchor counts, pairing modes, MinHash and vocabulary are exact)."""
    n = len(index)
    t = ScreenTable(np.full(n, np.nan), np.zeros(n, dtype=np.int64), np.full(n, -1, dtype=np.int8),
                    np.full(n, np.nan), np.zeros(n, dtype=bool))
    todo = np.ones(n, dtype=bool)
    for code, mode in enumerate(PAIRED):
        q = _vectors(query, mode)
        if q is None:
            continue
        m = index.modes[TAG_OF[mode]]
        sel = np.flatnonzero(todo & (m.row >= 0))
        rows = m.row[sel].astype(np.int64)
        every = np.array_equal(rows, np.arange(len(m.k)))  # rows are numbered in entry order: no copies
        scores, common = embedding_scores(q, m.anchors if every else m.anchors[rows], m.k[rows].astype(np.int64),
                                          lambda part, rows=rows, m=m: m.read(rows[part]), m.exact[rows],
                                          MIN_SCREEN_ANCHORS, m.moments if every else m.moments[rows])
        ok = common >= MIN_SCREEN_ANCHORS
        hit = sel[ok]
        t.weights_r[hit], t.anchors[hit], t.paired[hit] = scores[ok], common[ok], code
        todo[hit] = False
    if "minhash" in query:  # equal slots counted: the same number np.mean(a == b) gives, without a float pass
        for i in range(0, n, 65536):
            equal = np.count_nonzero(index.minhash[i:i + 65536] == query["minhash"], axis=1) / len(query["minhash"])
            t.jaccard[i:i + 65536] = np.where(index.has_minhash[i:i + 65536], equal, np.nan)
    if isinstance(digest, str) and digest in index.digests:
        t.same_vocabulary[:] = index.digest_id == index.digests.index(digest)
    elif digest is not None and not isinstance(digest, str):
        for i in np.flatnonzero(index.digest_id == -2):
            t.same_vocabulary[i] = index.digest(int(i)) == digest
    return t
