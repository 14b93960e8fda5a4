"""The registry index (`provenance.fingerprint.index`) and the batch screen: the same shortlist, ranking and
numbers as reading every file; rebuilt when the registry changes or the index is damaged; never trusted blindly.

The per-file path (`scan` + `screen`, `identify(index=False)`) is the reference throughout.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from provenance.errors import ProvenanceError
from provenance.fingerprint import index as ix
from provenance.fingerprint import load
from provenance.fingerprint import registry as rg
from provenance.fingerprint import screen as sc
from provenance.fingerprint.fileformat import load_screens, to_bytes
from provenance.fingerprint.model import Fingerprint
from provenance.fingerprint.screen import SCORES_EPS, embedding_score, embedding_scores, embedding_screen, minhash
from provenance.identify import SCREEN_JACCARD, SCREEN_R, _near_a_cut, _shortlist, identify, shortlist_registry

SHIPPED = Path(__file__).resolve().parents[1] / "fingerprints"
SMALL = ["tokenizer-mistral-v1", "tokenizer-mistral-v2", "tokenizer-bert-base-uncased", "all-minilm-l6-v2-int8-onnx",
         "all-minilm-l6-v2"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Indexes of read-only registries go to a cache inside tmp_path; files are never racy unless a test says so."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(ix, "RACY_NS", 0)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The registry files the index reads (by name)."""
    seen: list[str] = []
    monkeypatch.setattr(rg, "_read_entry", lambda path, real=rg._read_entry: seen.append(path.name) or real(path))
    return seen


def copy_registry(folder: Path, stems: list[str] | None = None) -> Path:
    folder.mkdir()
    for p in sorted(SHIPPED.glob("*.fingerprint")):
        if stems is None or p.stem in stems:
            shutil.copyfile(p, folder / p.name)
    return folder


def per_file(query: Fingerprint, reg: Path, n: int = 8) -> list:
    return shortlist_registry(query, reg, n, None, rg.scan(reg))[0]


def assert_same_shortlist(a: list, b: list) -> None:
    assert [(e.path, e.meta, s) for e, s in a] == [(e.path, e.meta, s) for e, s in b]


def assert_close(got: rg.Screen, want: rg.Screen, what: str = "") -> None:
    """The batch screen of an entry against the one-entry one: r within SCORES_EPS, the rest exactly."""
    assert (got.anchors, got.paired_by, got.jaccard, got.same_vocabulary) == \
        (want.anchors, want.paired_by, want.jaccard, want.same_vocabulary), what
    assert (got.weights_r is None) == (want.weights_r is None), what
    assert got.weights_r is None or abs(got.weights_r - want.weights_r) <= SCORES_EPS, what


# ----------------------------------------------------------------------------------------------- the batch screen

def test_batch_screen_equals_screen_vectors_on_the_shipped_registry(tmp_path: Path) -> None:
    reg = copy_registry(tmp_path / "reg")
    idx = rg.open_index(reg)
    entries = rg.scan(reg)
    assert idx.state == "built" and len(idx) == len(entries) == 18
    for q in entries:
        table = rg.screen_index(q.screens, q.meta["tokenizer"].get("digest"), idx)
        for i, e in enumerate(entries):
            want = rg.screen_vectors(q.screens, e.screens, q.meta["tokenizer"].get("digest"),
                                     e.meta["tokenizer"].get("digest"))
            assert_close(table.screen(i), want, f"{q.path.name} / {e.path.name}")


def _random_entries(rng: np.random.Generator, pa: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """n entries sharing 0-96 of the query's anchors, in any order, some repeating one, some constant or NaN."""
    anchors = np.zeros((n, 96), dtype=np.uint64)
    counts = rng.integers(0, 97, size=n)
    tri = np.zeros((n, ix.WIDTH), dtype=np.float16)
    one_by_one = np.zeros(n, dtype=bool)
    for i, k in enumerate(counts):
        shared = rng.choice(pa, size=min(k, int(rng.integers(0, len(pa) + 1))), replace=False)
        pri = np.concatenate([shared, rng.integers(1, 2**63, size=k - len(shared), dtype=np.uint64)])
        pri = np.sort(pri) if rng.random() < 0.7 else rng.permutation(pri)
        if k > 20 and i % 17 == 0:
            pri[1], one_by_one[i] = pri[0], True  # a repeated anchor: scored by embedding_score itself
        anchors[i, :k] = pri
        vals, _ = embedding_screen(rng.standard_normal((k, 24)), pri) if k else (np.zeros(0, np.float16), None)
        if i % 23 == 0:
            vals[:] = 0.25  # constant: no correlation to speak of
        if i % 29 == 0 and len(vals):
            vals[0] = np.nan
        tri[i, :len(vals)] = vals
    return anchors, counts, tri, one_by_one


@pytest.mark.parametrize("k,seed,case", [(96, 0, ""), (96, 1, ""), (40, 2, ""), (17, 3, ""),
                                         (96, 4, "the query's anchors"), (60, 5, "a repeated query anchor")])
def test_batch_scores_equal_embedding_score_on_random_entries(k: int, seed: int, case: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(seed)
    pa = np.sort(rng.integers(1, 2**63, size=k, dtype=np.uint64))  # priority order, as fingerprints keep them
    if case == "a repeated query anchor":
        pa[7] = pa[3]  # every entry is then left to embedding_score
    va, _ = embedding_screen(rng.standard_normal((k, 24)), pa)
    anchors, counts, tri, one_by_one = _random_entries(rng, pa, 400)
    if case == "the query's anchors":  # the fast path: one dot product per entry, from its moments
        anchors[:50, :k], counts[:50] = pa, k
        tri[:50, :len(va)] = (va.astype(np.float64) * rng.uniform(-1, 1, size=(50, 1))).astype(np.float16)
    moments = np.array([ix._moments(tri[i, :c * (c - 1) // 2]) for i, c in enumerate(counts)])
    whole = []
    monkeypatch.setattr(sc, "_pearson_whole", lambda *a, real=sc._pearson_whole: whole.append(1) or real(*a))
    scores, common = embedding_scores((va, pa), anchors, counts, lambda rows: tri[rows], one_by_one, 16, moments)
    for i in range(len(anchors)):
        c = int(counts[i])
        want, n = embedding_score((va, pa), (tri[i, :c * (c - 1) // 2], anchors[i, :c]))
        assert common[i] == n, i
        if n >= 16:
            assert abs(scores[i] - want) <= SCORES_EPS, (i, scores[i], want)
    assert (common >= 16).sum() > 20 and (whole or case != "the query's anchors")


def _screen_file(path: Path, screens: dict[str, np.ndarray], digest: str | None) -> None:
    meta = {"source": {"name": path.stem}, "tokenizer": {"digest": digest} if digest else {}}
    path.write_bytes(to_bytes(Fingerprint(meta=meta, screens=screens)))


@pytest.fixture
def crafted(tmp_path: Path) -> tuple[Path, Fingerprint]:
    """A registry of screen-only entries, one per branch of screen_vectors, and a query."""
    rng = np.random.default_rng(11)
    rows = {t: rng.standard_normal((96, 32)) for t in ("tokens", "ids")}
    pri = {t: np.sort(rng.integers(1, 2**63, size=96, dtype=np.uint64)) for t in ("tokens", "ids")}

    def mode(tag: str, shared: int, k: int = 96, repeat: bool = False) -> dict[str, np.ndarray]:
        own = rng.integers(1, 2**63, size=k - shared, dtype=np.uint64)
        p = np.concatenate([pri[tag][:shared], own])
        if repeat:
            p[-1] = p[0]
        r = np.concatenate([rows[tag][:shared] + 0.5 * rng.standard_normal((shared, 32)),
                            rng.standard_normal((k - shared, 32))])
        order = np.argsort(p, kind="stable")
        v, a = embedding_screen(r[order], p[order])
        return {tag: v, tag + ".anchors": a}

    keys = rng.integers(1, 2**63, size=5000, dtype=np.uint64)
    qscreens = {"minhash": minhash(keys), **{t: embedding_screen(rows[t], pri[t])[0] for t in pri},
                **{t + ".anchors": pri[t] for t in pri}}
    reg = tmp_path / "crafted"
    reg.mkdir()
    cases = {"tokens-40": mode("tokens", 40) | mode("ids", 90), "tokens-16": mode("tokens", 16) | mode("ids", 90),
             "tokens-15-ids-30": mode("tokens", 15) | mode("ids", 30), "tokens-10-ids-10": mode("tokens", 10)
             | mode("ids", 10), "ids-all": {"ids": qscreens["ids"], "ids.anchors": pri["ids"]},
             "tokens-repeat": mode("tokens", 30, repeat=True), "tokens-empty": mode("tokens", 0, k=0),
             "tokens-short": mode("tokens", 20, k=25), "minhash-same": {"minhash": minhash(keys[:3000])},
             "minhash-other": {"minhash": minhash(keys[2000:] + np.uint64(1))}, "nothing": {}}
    for i, (name, screens) in enumerate(cases.items()):
        _screen_file(reg / f"{name}.fingerprint", screens, ("q-digest", f"d{i}", None)[i % 3])
        shutil.copyfile(reg / f"{name}.fingerprint", reg / f"{name}-twin.fingerprint")  # ties: registry order
    return reg, Fingerprint(meta={"tokenizer": {"digest": "q-digest"}}, screens=qscreens)


def test_batch_screen_takes_every_branch_of_screen_vectors(crafted: tuple[Path, Fingerprint]) -> None:
    reg, query = crafted
    idx = rg.open_index(reg)
    table = rg.screen_index(query.screens, "q-digest", idx)
    for i, e in enumerate(rg.scan(reg)):
        assert_close(table.screen(i), rg.screen(query, e), e.path.name)
    assert {table.screen(i).paired_by for i in range(len(idx))} == {"token strings", "token ids", None}


# ----------------------------------------------------------------------------------------------- the shortlist

def _old_shortlist(scored: list, n: int) -> list:
    """identify's `_shortlist` before the index, verbatim (entries keyed by path)."""
    by_r = sorted((x for x in scored if x[1].weights_r is not None), key=lambda x: -(x[1].weights_r or 0.0))
    by_j = sorted((x for x in scored if x[1].jaccard is not None), key=lambda x: -(x[1].jaccard or 0.0))
    keep: dict = {}
    for e, s in by_r[:n] + by_j[:n]:
        keep[e] = (e, s)
    for e, s in scored:
        if (s.weights_r or 0.0) >= SCREEN_R or (s.jaccard or 0.0) >= SCREEN_JACCARD or s.same_vocabulary:
            keep[e] = (e, s)
    return list(keep.values())


@pytest.mark.parametrize("seed", range(6))
def test_shortlist_keeps_the_rule_and_order_of_before(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 60))
    levels = np.array([0.0, -0.0, 0.3, SCREEN_R, 0.7, 1.0])  # ties, both zeros, the bars themselves
    r = np.where(rng.random(m) < 0.5, rng.choice(levels, m), rng.uniform(-1, 1, m))
    j = np.where(rng.random(m) < 0.5, rng.choice(levels[levels >= 0], m), rng.uniform(0, 1, m))
    r[rng.random(m) < 0.2], j[rng.random(m) < 0.2] = np.nan, np.nan
    same = rng.random(m) < 0.1
    scored = [(i, rg.Screen(None if np.isnan(r[i]) else float(r[i]), 0, None, None if np.isnan(j[i]) else float(j[i]),
                            bool(same[i]))) for i in range(m)]
    for n in (1, 3, 8):
        assert _shortlist(r, j, same, n) == [e for e, _ in _old_shortlist(scored, n)]


@pytest.mark.parametrize("seed", range(6))
def test_rescoring_near_the_cuts_makes_batch_rounding_harmless(seed: int) -> None:
    """Batch scores off by up to SCORES_EPS: rescoring what `_near_a_cut` names gives the exact shortlist."""
    rng = np.random.default_rng(seed)
    exact = rng.choice(np.r_[rng.uniform(-1, 1, 20), SCREEN_R, 0.9, 0.9], size=200)
    exact[rng.random(200) < 0.1] = np.nan
    batch = exact + rng.uniform(-SCORES_EPS, SCORES_EPS, 200)
    j, same = np.full(200, np.nan), np.zeros(200, dtype=bool)
    for n in (1, 8, 30):
        fixed = batch.copy()
        near = _near_a_cut(fixed, n, SCORES_EPS)
        fixed[near] = exact[near]
        assert _shortlist(fixed, j, same, n) == _shortlist(exact, j, same, n)


def test_index_shortlist_equals_the_per_file_one(tmp_path: Path, crafted: tuple[Path, Fingerprint]) -> None:
    reg = copy_registry(tmp_path / "reg")
    for p in sorted(reg.glob("*.fingerprint"))[:6]:  # twins: equal screens, ranked in registry order
        shutil.copyfile(p, reg / f"{p.stem}-twin.fingerprint")
    idx = rg.open_index(reg)
    for q in sorted(SHIPPED.glob("*.fingerprint")):
        query = load(q)
        for n in (1, 8):
            assert_same_shortlist(shortlist_registry(query, reg, n, idx, [])[0], per_file(query, reg, n))
    reg, query = crafted
    assert_same_shortlist(shortlist_registry(query, reg, 3, rg.open_index(reg), [])[0], per_file(query, reg, 3))


@pytest.mark.slow
@pytest.mark.parametrize("query", ["all-minilm-l6-v2", "tokenizer-mistral-v3"])
def test_identify_gives_the_same_result_with_and_without_the_index(tmp_path: Path, query: str) -> None:
    reg = copy_registry(tmp_path / "reg")
    for p in sorted(reg.glob("all-minilm*.fingerprint")) + sorted(reg.glob("tokenizer-mistral-v*.fingerprint")):
        shutil.copyfile(p, reg / f"{p.stem}-twin.fingerprint")
    runs = [identify(SHIPPED / f"{query}.fingerprint", registry=reg, device="cpu", hashes=False, top=40, index=x)
            for x in (True, False)]
    docs = [json.loads(r.to_json()) for r in runs]
    assert set(docs[0]["timings"]) == {"scan", "index", "query", "screen", "compare"}
    assert docs[1]["timings"]["index"] == 0.0
    for d in docs:
        d.pop("timings")
    assert docs[0] == docs[1] and docs[0]["shortlisted"] >= 8


# ----------------------------------------------------------------------------------------------- invalidation

def test_an_unchanged_registry_loads_its_index_without_reading_a_file(tmp_path: Path, reads: list[str]) -> None:
    reg = copy_registry(tmp_path / "reg", SMALL)
    assert rg.open_index(reg).state == "built" and sorted(reads) == sorted(f"{s}.fingerprint" for s in SMALL)
    reads.clear()
    idx = rg.open_index(reg)
    assert (idx.state, idx.where, reads) == ("loaded", str(reg / ix.NAME), [])
    assert [idx.meta(i) for i in range(len(idx))] == [e.meta for e in rg.scan(reg)]


def test_the_index_follows_added_removed_touched_and_rewritten_files(tmp_path: Path, reads: list[str]) -> None:
    reg = copy_registry(tmp_path / "reg", SMALL)
    rg.open_index(reg)
    steps = [("add", lambda: shutil.copyfile(SHIPPED / "tokenizer-mistral-v3.fingerprint",
                                             reg / "tokenizer-mistral-v3.fingerprint"), ["tokenizer-mistral-v3"]),
             ("remove", lambda: (reg / "tokenizer-mistral-v1.fingerprint").unlink(), []),
             ("touch", lambda: os.utime(reg / "all-minilm-l6-v2.fingerprint", ns=(1, 10**18)), ["all-minilm-l6-v2"]),
             ("rewrite", lambda: _rewrite_in_place(reg / "tokenizer-mistral-v2.fingerprint"), ["tokenizer-mistral-v2"])]
    for what, change, expect in steps:
        reads.clear()
        change()
        idx = rg.open_index(reg)
        assert idx.state == "updated" and reads == [f"{s}.fingerprint" for s in expect], what
        files = rg.scan(reg)
        assert idx.names == [e.path.name for e in files], what
        for i, e in enumerate(files):
            held = idx.screens(i)
            assert idx.meta(i) == e.meta and all(np.array_equal(held[k], e.screens[k]) for k in e.screens), what
        assert rg.open_index(reg).state == "loaded", what


def _rewrite_in_place(path: Path) -> None:
    """Another fingerprint of the same size (its name reversed) written into path in place, its mtime put back:
    only the ctime tells."""
    fp, st = load(path), path.stat()
    fp.meta["source"]["name"] = fp.meta["source"]["name"][::-1]
    data = to_bytes(fp)
    assert len(data) == st.st_size and data != path.read_bytes()
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_racily_clean_files_are_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file rewritten within the file system's clock tick keeps all its stats: only re-reading tells."""
    monkeypatch.setattr(ix, "RACY_NS", 2_000_000_000)
    reg = copy_registry(tmp_path / "reg", SMALL)
    rg.open_index(reg)
    frozen = rg.listing(reg)
    monkeypatch.setattr(rg, "listing", lambda d: frozen)
    target = reg / "tokenizer-mistral-v1.fingerprint"
    target.write_bytes((SHIPPED / "tokenizer-mistral-v2.fingerprint").read_bytes())
    idx = rg.open_index(reg)
    i = idx.names.index(target.name)
    assert idx.state == "updated" and idx.meta(i) == rg._slim(load_screens(target)[0])


# ----------------------------------------------------------------------------------------------- trust

def _rewrite_header(path: Path, edit) -> None:
    data = bytearray(path.read_bytes())
    hl = int.from_bytes(data[8:16], "little")
    head = json.loads(data[ix.PREFIX:ix.PREFIX + hl])
    edit(head)
    text = json.dumps(head, sort_keys=True, separators=(",", ":")).encode()  # shorter than the writer's
    assert len(text) <= hl
    text += b" " * (hl - len(text))
    path.write_bytes(data[:16] + ix.hashlib.sha256(text).digest() + text + data[ix.PREFIX + hl:])


DAMAGE = {
    "flipped header byte": lambda p: p.write_bytes(p.read_bytes()[:60] + b"#" + p.read_bytes()[61:]),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "empty": lambda p: p.write_bytes(b""),
    "foreign bytes": lambda p: p.write_bytes(os.urandom(4096)),
    "a fingerprint file": lambda p: shutil.copyfile(SHIPPED / "tokenizer-mistral-v1.fingerprint", p),
    "another version": lambda p: _rewrite_header(p, lambda h: h.update(version=99)),
    "huge entry count": lambda p: _rewrite_header(p, lambda h: h.update(entries=10**12)),
    "array past the end": lambda p: _rewrite_header(p, lambda h: h["arrays"]["minhash"].__setitem__(2, 1 << 40)),
    "wrong dtype": lambda p: _rewrite_header(p, lambda h: h["arrays"]["ids.anchors"].__setitem__(0, "<f8")),
    "odd JSON types": lambda p: _rewrite_header(p, lambda h: h["arrays"].update({"ids.k": 5})),
    "flipped small-array byte": lambda p: p.write_bytes(_flip(p.read_bytes(), "minhash")),
    "a directory": lambda p: (p.unlink(), p.mkdir()),
    "a symlink": lambda p: (p.unlink(), p.symlink_to(SHIPPED / "tokenizer-mistral-v1.fingerprint")),
    "a FIFO": lambda p: (p.unlink(), os.mkfifo(p)),
}


def _flip(data: bytes, name: str, at: int = 0) -> bytes:
    """data with one byte of array `name` changed."""
    hl = int.from_bytes(data[8:16], "little")
    head = json.loads(data[ix.PREFIX:ix.PREFIX + hl])
    pos = -(-(ix.PREFIX + hl) // ix.ALIGN) * ix.ALIGN + head["arrays"][name][2] + at
    return data[:pos] + bytes([data[pos] ^ 0x10]) + data[pos + 1:]


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_or_foreign_index_is_rebuilt_with_one_warning(tmp_path: Path, damage: str,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    reg = copy_registry(tmp_path / "reg", SMALL)
    rg.open_index(reg)
    path = reg / ix.NAME
    DAMAGE[damage](path)
    with caplog.at_level(logging.WARNING):
        idx = rg.open_index(reg)
    assert idx.state == "built"
    if damage == "a directory":  # left alone: the index goes to the user cache
        assert path.is_dir() and Path(idx.where).parent == tmp_path / "cache" / "provenance" / "index"
    else:
        assert idx.where == str(path) and path.is_file() and not path.is_symlink()
    assert len(caplog.records) == 1 and "\n" not in caplog.records[0].getMessage(), caplog.text
    assert "Traceback" not in caplog.text
    query = load(SHIPPED / "all-minilm-l6-v2.fingerprint")
    assert_same_shortlist(shortlist_registry(query, reg, 8, idx, [])[0], per_file(query, reg))


def test_a_damaged_screen_row_is_caught_when_it_is_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Rows are checked as the screen reads them (a warm load checks only the small arrays)."""
    reg = copy_registry(tmp_path / "reg", SMALL)
    rg.open_index(reg)
    path = reg / ix.NAME
    path.write_bytes(_flip(path.read_bytes(), "tokens.tri", at=100))
    idx = rg.open_index(reg)
    assert idx.state == "loaded"
    query = load(SHIPPED / "all-minilm-l6-v2.fingerprint")
    with caplog.at_level(logging.WARNING):
        chosen, scanned, _ = shortlist_registry(query, reg, 8, idx, [])
    assert len(caplog.records) == 1 and "does not match its checksum" in caplog.text
    assert_same_shortlist(chosen, per_file(query, reg)) and scanned == len(SMALL)
    assert rg.open_index(reg).state == "loaded"


def test_a_shortlisted_file_that_disagrees_with_the_index_rebuilds_it(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    reg = copy_registry(tmp_path / "reg", SMALL)
    rg.open_index(reg)
    frozen = rg.listing(reg)
    monkeypatch.setattr(rg, "listing", lambda d: frozen)  # the change hides from the stats
    (reg / "tokenizer-mistral-v1.fingerprint").write_bytes((SHIPPED / "tokenizer-mistral-v3.fingerprint").read_bytes())
    idx = rg.open_index(reg)
    assert idx.state == "loaded"
    query = load(SHIPPED / "tokenizer-mistral-v3.fingerprint")
    chosen = shortlist_registry(query, reg, 8, idx, [])[0]
    assert_same_shortlist(chosen, per_file(query, reg))


def test_a_read_only_registry_indexes_into_the_user_cache_then_memory(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    reg = copy_registry(tmp_path / "reg", SMALL)
    real = rg._write_atomic
    refused: set[Path] = {reg}

    def read_only(target: Path, write_to) -> None:
        if target.parent in refused or refused == {None}:
            raise PermissionError(13, "Permission denied")
        real(target, write_to)

    monkeypatch.setattr(rg, "_write_atomic", read_only)
    idx = rg.open_index(reg)
    cache = tmp_path / "cache" / "provenance" / "index"
    assert idx.state == "built" and Path(idx.where).parent == cache and not (reg / ix.NAME).exists()
    assert rg.open_index(reg).state == "loaded"
    refused.clear()
    refused.add(None)
    shutil.rmtree(cache)
    idx = rg.open_index(reg)
    assert (idx.state, idx.where) == ("built", "memory")
    query = load(SHIPPED / "all-minilm-l6-v2.fingerprint")
    assert_same_shortlist(shortlist_registry(query, reg, 8, idx, [])[0], per_file(query, reg))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_directory(tmp_path: Path) -> None:
    reg = copy_registry(tmp_path / "reg", SMALL)
    reg.chmod(0o555)
    try:
        idx = rg.open_index(reg)
        assert idx.state == "built" and Path(idx.where).parent == tmp_path / "cache" / "provenance" / "index"
    finally:
        reg.chmod(0o755)


def test_the_installed_registry_is_never_written(tmp_path: Path) -> None:
    shipped = rg.default_registry_data()
    where = rg.index_locations(shipped)
    assert len(where) == 1 and where[0].parent == tmp_path / "cache" / "provenance" / "index"
    assert rg.index_locations(tmp_path)[0] == tmp_path / ix.NAME


def test_registry_errors_are_unchanged(tmp_path: Path) -> None:
    with pytest.raises(ProvenanceError, match="is not a directory"):
        rg.open_index(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProvenanceError, match="holds no .fingerprint files"):
        rg.open_index(tmp_path / "empty")
    reg = copy_registry(tmp_path / "reg", SMALL[:2])
    (reg / "broken.fingerprint").write_bytes(b"\x00" * 100)
    with pytest.raises(ProvenanceError) as info:
        rg.open_index(reg)
    with pytest.raises(ProvenanceError) as before:
        rg.scan(reg)
    assert str(info.value) == str(before.value) and "broken.fingerprint" in str(info.value)
