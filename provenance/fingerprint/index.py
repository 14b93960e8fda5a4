"""The registry index: every entry's screen vectors in flat arrays, so `identify` screens a registry
without opening its files.

Where: `.provenance-index` in the registry directory; for the registry installed with the package or a
directory that cannot be written, `$XDG_CACHE_HOME/provenance/index/<sha256 of its real path>.index`;
in memory when neither can be written. Layout (version 1), little-endian, arrays 64-byte aligned:

    b"PROVIDX\0" | u64 header length | sha256 of the header | header (JSON) | zeros
    | the small arrays | meta.blob | tokens.tri | ids.tri

The header gives each array's dtype, shape and offset, when the index was built, and a checksum of the
small arrays (file names and stats, digests, MinHashes, anchors, row moments and checksums). The large
arrays are checked where they are read: each screen triangle against `<tag>.tri_sum`, each entry's slim
metadata against `meta.sha`; so a warm screen reads only the rows it scores.

Invalidation: the `.fingerprint` files' (name, size, mtime_ns, ctime_ns, inode) from `os.scandir` are
compared with the stored list, without reading a file; changed and added files are read, removed ones
dropped, the rest copied. A file changed within RACY_NS before the build may keep its stored stats (a
coarse file-system clock): it is read again on every load until a newer index is written (git's
"racily clean" entries).

Trust: a registry folder can come from anyone. The header checksum, format and version, every array's
dtype, shape and bounds, and the cross-array invariants are checked before any array is used; a damaged
or foreign index is rebuilt from the files (one logged line), never trusted. The checksums catch damage,
not forgery: whoever can write the index can also write the fingerprints it indexes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import stat
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np

from provenance.fingerprint.anchors import TAG_OF
from provenance.fingerprint.model import VERSION
from provenance.fingerprint.screen import MINHASH, SCREEN_ANCHORS, TRIANGLE

log = logging.getLogger(__name__)
NAME = ".provenance-index"
FORMAT = "provenance.registry-index"
INDEX_VERSION = 1
MAGIC = b"PROVIDX\x00"
PREFIX = len(MAGIC) + 8 + 32
ALIGN = 64
MAX_HEADER = 1 << 20
MAX_ENTRIES = 1 << 24
RACY_NS = 2_000_000_000
TAGS = tuple(TAG_OF.values())  # "tokens", "ids": the pairing modes, in screen_vectors' order
WIDTH = TRIANGLE + (-TRIANGLE % 4)  # float16 per stored triangle row: whole uint64 words
_WEIGHTS = np.random.default_rng(20261206).integers(0, 2**62, size=2048, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


class Damaged(Exception):
    """The index does not verify: rebuild it from the files."""


def _spec(n: int, m: dict[str, int]) -> dict[str, tuple[str, tuple[int, ...] | None]]:
    """Every array's dtype and shape for n entries (None: a byte string of any length)."""
    out: dict[str, tuple[str, tuple[int, ...] | None]] = {
        "files.names": ("|u1", None), "files.stat": ("<i8", (n, 3)), "files.ino": ("<u8", (n,)),
        "meta.offsets": ("<i8", (n + 1,)), "meta.sha": ("|u1", (n, 32)), "digest.json": ("|u1", None),
        "digest.id": ("<i4", (n,)), "minhash": ("<u8", (n, MINHASH)), "minhash.has": ("|u1", (n,))}
    for tag in TAGS:
        k = m[tag]
        out |= {f"{tag}.row": ("<i4", (n,)), f"{tag}.k": ("<i4", (k,)), f"{tag}.anchors": ("<u8", (k, SCREEN_ANCHORS)),
                f"{tag}.exact": ("|u1", (k,)), f"{tag}.tri_sum": ("<u8", (k,)), f"{tag}.moments": ("<f8", (k, 2))}
    return out


def _large(m: dict[str, int]) -> dict[str, tuple[str, tuple[int, ...] | None]]:
    return {"meta.blob": ("|u1", None)} | {f"{tag}.tri": ("<f2", (m[tag], WIDTH)) for tag in TAGS}


def row_sums(words: np.ndarray) -> np.ndarray:
    """Position-weighted sums (mod 2**64) of rows of uint64 words: a changed or moved word changes its row's."""
    return np.einsum("ij,j->i", words, _WEIGHTS[:words.shape[1]])  # wraps mod 2**64, no temporaries


def checksum(data: bytes | memoryview) -> str:
    """Checksum of bytes whose length is a multiple of 8: row sums of 1024-word rows, folded to one word."""
    words = np.frombuffer(data, dtype="<u8")
    while True:
        full = len(words) - len(words) % 1024
        tail = np.zeros((1, 1024), dtype=np.uint64)
        tail[0, :len(words) - full] = words[full:]
        words = np.concatenate([row_sums(words[:full].reshape(-1, 1024)), row_sums(tail)])
        if len(words) == 1:
            return f"{int(words[0]):016x}-{len(data)}"


def _moments(tri: np.ndarray) -> np.ndarray:
    """Mean and centred sum of squares of a screen triangle, computed as `embedding_score` computes them."""
    x = tri.astype(np.float64)
    if not len(x):
        return np.zeros(2)
    mean = x.mean()
    x -= mean
    return np.array([mean, np.einsum("i,i->", x, x)])


def _align(n: int) -> int:
    return n + (-n % ALIGN)


class Mode:
    """One pairing mode's screens: entry -> row (-1: none), and per row its anchors, count, triangle, checks."""

    def __init__(self, a: dict[str, np.ndarray], tag: str) -> None:
        self.row, self.k, self.anchors = a[f"{tag}.row"], a[f"{tag}.k"], a[f"{tag}.anchors"]
        self.exact, self.tri, self.tri_sum = a[f"{tag}.exact"].astype(bool), a[f"{tag}.tri"], a[f"{tag}.tri_sum"]
        self.moments = a[f"{tag}.moments"]  # per row: mean and centred sum of squares of its whole triangle

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The triangles of `rows`, each verified against its checksum (Damaged otherwise)."""
        block = np.ascontiguousarray(self.tri[rows])
        if not np.array_equal(row_sums(block.view("<u8")), self.tri_sum[rows]):
            raise Damaged("a screen triangle does not match its checksum")
        return block


class RegistryIndex:
    """A loaded (verified) index: arrays over the registry's entries in file-name order."""

    def __init__(self, directory: Path, header: dict[str, Any], a: dict[str, np.ndarray], where: str,
                 digests: list[str]) -> None:
        self.directory, self.header, self.arrays, self.where = directory, header, a, where
        self.n = int(header["entries"])
        self.built_ns = int(header["built_ns"])
        self.names_blob = a["files.names"].tobytes()
        self.names = self.names_blob.decode("utf-8", "surrogateescape").split("\0") if self.n else []
        self.stats, self.ino = a["files.stat"], a["files.ino"]
        self.minhash, self.has_minhash = a["minhash"], a["minhash.has"].astype(bool)
        self.digest_id, self.digests = a["digest.id"], digests
        self.modes = {tag: Mode(a, tag) for tag in TAGS}
        self.state, self.seconds = "loaded", 0.0

    def __len__(self) -> int:
        return self.n

    def path(self, i: int) -> Path:
        return self.directory / self.names[i]

    def meta(self, i: int) -> dict[str, Any]:
        """Entry i's slim metadata (registry `_slim`), verified against its checksum."""
        a, b = (int(x) for x in self.arrays["meta.offsets"][i:i + 2])
        raw = self.arrays["meta.blob"][a:b].tobytes()
        if hashlib.sha256(raw).digest() != self.arrays["meta.sha"][i].tobytes():
            raise Damaged(f"the metadata of {self.names[i]} does not match its checksum")
        meta = json.loads(raw)
        if not isinstance(meta, dict):
            raise Damaged(f"the metadata of {self.names[i]} is not an object")
        return meta

    def digest(self, i: int) -> Any:
        """Entry i's tokenizer digest, as `_slim(meta)["tokenizer"]["digest"]` holds it."""
        d = int(self.digest_id[i])
        return None if d == -1 else self.digests[d] if d >= 0 else self.meta(i).get("tokenizer", {}).get("digest")

    def screens(self, i: int) -> dict[str, np.ndarray]:
        """Entry i's screen vectors as `load_screens` returns them (verified)."""
        out = {"minhash": np.array(self.minhash[i])} if self.has_minhash[i] else {}
        for tag, m in self.modes.items():
            r = int(m.row[i])
            if r >= 0:
                k = int(m.k[r])
                out[tag] = m.read(np.array([r]))[0, :k * (k - 1) // 2].copy()
                out[tag + ".anchors"] = np.array(m.anchors[r, :k])
        return out

    def racy(self) -> np.ndarray:
        """Entries whose stored stats were taken too close to the build to prove them unchanged."""
        return np.maximum(self.stats[:, 1], self.stats[:, 2]) >= self.built_ns - RACY_NS


def _check(ok: bool, why: str) -> None:
    if not ok:
        raise Damaged(why)


def parse(buf: Any, directory: Path, where: str) -> RegistryIndex:
    """Verify an index held in `buf` (bytes or mmap) and view its arrays; Damaged when anything is off."""
    try:
        return _parse(buf, directory, where)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError) as exc:  # odd JSON types
        raise Damaged(f"malformed ({type(exc).__name__})") from None


def _parse(buf: Any, directory: Path, where: str) -> RegistryIndex:
    size = len(buf)
    _check(size >= PREFIX and bytes(buf[:len(MAGIC)]) == MAGIC, "not a registry index")
    hl = int.from_bytes(buf[8:16], "little")
    _check(0 < hl <= MAX_HEADER and PREFIX + hl <= size, "truncated header")
    raw = bytes(buf[PREFIX:PREFIX + hl])
    _check(hashlib.sha256(raw).digest() == bytes(buf[16:48]), "header checksum mismatch")
    head = json.loads(raw)
    _check(isinstance(head, dict), "header is not an object")
    want = {"format": FORMAT, "version": INDEX_VERSION, "fingerprint_version": VERSION,
            "screen_anchors": SCREEN_ANCHORS, "minhash": MINHASH, "width": WIDTH}
    for key, value in want.items():
        _check(head.get(key) == value and type(head.get(key)) is type(value), f"made by another version ({key})")
    n, arrays, small = head.get("entries"), head.get("arrays"), head.get("small")
    _check(type(n) is int and 0 <= n <= MAX_ENTRIES and type(head.get("built_ns")) is int, "bad entry count")
    _check(isinstance(arrays, dict) and isinstance(small, list) and len(small) == 3, "bad array table")
    m = {tag: arrays[f"{tag}.k"][1][0] for tag in TAGS}
    _check(all(type(v) is int and 0 <= v <= n for v in m.values()), "bad row counts")
    spec = _spec(n, m) | _large(m)
    _check(set(arrays) == set(spec), "unexpected arrays")
    base = _align(PREFIX + hl)
    a: dict[str, np.ndarray] = {}
    for name, (dtype, shape) in spec.items():
        entry = arrays[name]
        _check(isinstance(entry, list) and len(entry) == 3 and entry[0] == dtype, f"{name}: bad dtype")
        got, offset = entry[1], entry[2]
        _check(isinstance(got, list) and all(type(d) is int and 0 <= d < 1 << 40 for d in got)
               and (shape is None and len(got) == 1 or shape is not None and tuple(got) == shape), f"{name}: bad shape")
        count = int(np.prod(got, dtype=np.int64))
        nbytes = count * np.dtype(dtype).itemsize
        _check(type(offset) is int and offset % ALIGN == 0 and 0 <= offset and base + offset + nbytes <= size,
               f"{name}: outside the file")
        a[name] = np.frombuffer(buf, dtype=dtype, count=count, offset=base + offset).reshape(got)
    start, end, digest = small
    _check(type(start) is int and type(end) is int and 0 <= start <= end and base + end <= size
           and (end - start) % 8 == 0, "bad small-array region")
    for name in _spec(n, m):
        off = arrays[name][2]
        _check(start <= off and off + a[name].nbytes <= end, f"{name}: outside the checked region")
    _check(checksum(memoryview(buf)[base + start:base + end]) == digest, "checksum mismatch")
    return RegistryIndex(directory, head, a, where, _invariants(a, n, m))


def _invariants(a: dict[str, np.ndarray], n: int, m: dict[str, int]) -> list[str]:
    """What the arrays must say of each other before the screen indexes with them; the digest table."""
    names = a["files.names"].tobytes()
    _check(n == 0 and not names or names.count(b"\0") == n - 1, "file names do not match the entry count")
    off = a["meta.offsets"]
    _check(off[0] == 0 and off[-1] == len(a["meta.blob"]) and bool(np.all(np.diff(off) >= 0)), "bad metadata offsets")
    digests = json.loads(a["digest.json"].tobytes())
    _check(isinstance(digests, list) and set(map(type, digests)) <= {str}, "bad digest table")
    _check(bool(np.all((a["digest.id"] >= -2) & (a["digest.id"] < len(digests)))), "bad digest ids")
    _check(bool(np.all(a["minhash.has"] <= 1)), "bad MinHash flags")
    for tag in TAGS:
        row, k = a[f"{tag}.row"], a[f"{tag}.k"]
        used = row[row >= 0]
        _check(bool(np.all(row >= -1)) and len(used) == m[tag] and bool(np.all(row < m[tag])), f"{tag}: bad rows")
        _check(bool(np.all(np.bincount(used, minlength=m[tag]) == 1)), f"{tag}: rows shared")
        _check(bool(np.all((k >= 0) & (k <= SCREEN_ANCHORS))) and bool(np.all(a[f"{tag}.exact"] <= 1)),
               f"{tag}: bad anchor counts")
    return digests


def read_index(path: Path, directory: Path) -> RegistryIndex | None:
    """The index at `path` (None if there is none); Damaged if it does not verify."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Damaged(f"cannot open it ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        _check(stat.S_ISREG(st.st_mode), "not a regular file")
        _check(st.st_size >= PREFIX, "truncated")
        buf = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    return parse(buf, directory, str(path))


class Listing(NamedTuple):
    """A registry directory's `.fingerprint` files, sorted by name, with the stats that tell a changed file."""

    names: list[str]
    stats: np.ndarray  # int64 (n, 3): size, mtime_ns, ctime_ns
    ino: np.ndarray  # uint64 (n,)

    def blob(self) -> bytes:
        return "\0".join(self.names).encode("utf-8", "surrogateescape")


class _Rows:
    """One mode's rows as they are collected: (anchors, repeated?, checksum, moments, old row or -1: scratch)."""

    def __init__(self, n: int) -> None:
        self.row, self.rows = np.full(n, -1, dtype="<i4"), []

    def add(self, i: int, *row: Any) -> None:
        self.row[i] = len(self.rows)
        self.rows.append(row)

    def arrays(self, tag: str) -> dict[str, np.ndarray]:
        anchors = np.zeros((len(self.rows), SCREEN_ANCHORS), dtype="<u8")
        for r, (pri, *_) in enumerate(self.rows):
            anchors[r, :len(pri)] = pri
        cols = list(zip(*self.rows)) or [[]] * 5
        return {f"{tag}.row": self.row, f"{tag}.k": np.array([len(p) for p in cols[0]], dtype="<i4"),
                f"{tag}.anchors": anchors, f"{tag}.exact": np.array(cols[1], dtype=np.uint8),
                f"{tag}.tri_sum": np.array(cols[2], dtype="<u8"),
                f"{tag}.moments": np.array(cols[3], dtype="<f8").reshape(-1, 2)}

    @property
    def source(self) -> list[int]:
        return [row[4] for row in self.rows]


def build(directory: Path, files: Listing, built_ns: int, reuse: list[int], old: RegistryIndex | None,
          read: Any, out: IO[bytes], spool: Any) -> None:
    """Write the index of `files` to `out`: file i copied from `old`'s entry reuse[i] (verified as it is
    copied), or where reuse[i] is -1 read with `read(path) -> (slim metadata, screens)`. What is read waits
    in `spool()` scratch files, so memory holds only the small arrays."""
    n = len(files.names)
    a = {"files.stat": files.stats.astype("<i8").reshape(n, 3), "files.ino": files.ino.astype("<u8"),
         "meta.offsets": np.zeros(n + 1, dtype="<i8"), "meta.sha": np.zeros((n, 32), np.uint8),
         "digest.id": np.full(n, -1, dtype="<i4"), "minhash": np.zeros((n, MINHASH), "<u8"),
         "minhash.has": np.zeros(n, dtype=np.uint8), "files.names": np.frombuffer(files.blob(), np.uint8)}
    modes, digests = {tag: _Rows(n) for tag in TAGS}, {}
    scratch = {key: spool() for key in ("meta", *TAGS)}
    for i, (name, j) in enumerate(zip(files.names, reuse)):
        if j >= 0:
            lo, hi = old.arrays["meta.offsets"][j:j + 2]
            a["meta.offsets"][i + 1], a["meta.sha"][i] = hi - lo, old.arrays["meta.sha"][j]
            digest, has, mh = old.digest(j), old.has_minhash[j], old.minhash[j]
            for tag, mode in old.modes.items():
                r = int(mode.row[j])
                if r >= 0:
                    modes[tag].add(i, mode.anchors[r, :int(mode.k[r])], bool(mode.exact[r]), int(mode.tri_sum[r]),
                                   mode.moments[r], r)
        else:
            slim, screens = read(directory / name)
            raw = json.dumps(slim, sort_keys=True, ensure_ascii=True).encode("ascii")
            scratch["meta"].write(raw)
            a["meta.offsets"][i + 1], a["meta.sha"][i] = len(raw), np.frombuffer(hashlib.sha256(raw).digest(), np.uint8)
            digest, has, mh = slim.get("tokenizer", {}).get("digest"), "minhash" in screens, screens.get("minhash")
            for tag in TAGS:
                if tag in screens:
                    pri, tri = screens[tag + ".anchors"].astype("<u8"), np.zeros((1, WIDTH), dtype="<f2")
                    tri[0, :len(screens[tag])] = screens[tag]
                    scratch[tag].write(tri.tobytes())
                    modes[tag].add(i, pri, len(np.unique(pri)) != len(pri), int(row_sums(tri.view("<u8"))[0]),
                                   _moments(screens[tag]), -1)
        if has:
            a["minhash"][i], a["minhash.has"][i] = mh, 1
        if digest is not None:
            a["digest.id"][i] = digests.setdefault(digest, len(digests)) if isinstance(digest, str) else -2
    a["meta.offsets"] = np.cumsum(a["meta.offsets"], dtype="<i8")
    a["digest.json"] = np.frombuffer(json.dumps(list(digests), ensure_ascii=True).encode("ascii"), np.uint8)
    for tag in TAGS:
        a |= modes[tag].arrays(tag)
    _emit(out, a, modes, scratch, reuse, old, {"registry": os.path.realpath(directory), "built_ns": built_ns})


def _emit(out: IO[bytes], a: dict[str, np.ndarray], modes: dict[str, _Rows], scratch: dict[str, Any],
          reuse: list[int], old: RegistryIndex | None, about: dict[str, Any]) -> None:
    """The file: header, the small arrays, then the large ones streamed from `old` (verified) or scratch."""
    n, m = len(reuse), {tag: len(modes[tag].rows) for tag in TAGS}
    region, table = bytearray(), {}
    for name, (dtype, _) in _spec(n, m).items():
        region += bytes(-len(region) % ALIGN)
        table[name] = [dtype, list(a[name].shape), len(region)]
        region += np.ascontiguousarray(a[name], dtype=dtype).tobytes()
    region += bytes(-len(region) % ALIGN)
    cursor, blob = len(region), int(a["meta.offsets"][-1])
    for name, (dtype, shape) in _large(m).items():
        table[name] = [dtype, list(shape or (blob,)), cursor]
        cursor = _align(cursor + (int(np.prod(shape)) * 2 if shape else blob))
    head = {"format": FORMAT, "version": INDEX_VERSION, "fingerprint_version": VERSION, "entries": n,
            "screen_anchors": SCREEN_ANCHORS, "minhash": MINHASH, "width": WIDTH, **about, "arrays": table,
            "small": [0, len(region), checksum(memoryview(region))]}
    text = json.dumps(head, sort_keys=True, ensure_ascii=True).encode("ascii")
    out.write(MAGIC + len(text).to_bytes(8, "little") + hashlib.sha256(text).digest() + text)
    out.write(bytes(_align(PREFIX + len(text)) - PREFIX - len(text)) + region)
    for f in scratch.values():
        f.seek(0)
    for i, j in enumerate(reuse):
        size = int(a["meta.offsets"][i + 1] - a["meta.offsets"][i])
        raw = old.arrays["meta.blob"][int(old.arrays["meta.offsets"][j]):][:size].tobytes() if j >= 0 else \
            scratch["meta"].read(size)
        if j >= 0 and hashlib.sha256(raw).digest() != a["meta.sha"][i].tobytes():
            raise Damaged("the metadata of an unchanged entry does not match its checksum")
        out.write(raw)
    out.write(bytes(-blob % ALIGN))
    for tag in TAGS:
        source = np.array(modes[tag].source, dtype=np.int64)
        for i in range(0, len(source), 1024):
            part = source[i:i + 1024]
            block, copied = np.empty((len(part), WIDTH), dtype="<f2"), part >= 0
            if copied.any():
                block[copied] = old.modes[tag].read(part[copied])
            fresh = int((~copied).sum())
            block[~copied] = np.frombuffer(scratch[tag].read(fresh * WIDTH * 2), "<f2").reshape(fresh, WIDTH)
            out.write(block.tobytes())
        out.write(bytes(-len(source) * WIDTH * 2 % ALIGN))
