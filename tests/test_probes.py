"""The shipped probe corpus: size, categories, bounds, a pinned digest, subsets and bad files."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

from provenance.activations import probes as probes_mod
from provenance.activations.probes import (
    PROBE_VERSION,
    load_probes,
    parse_probes,
    texts_sha256,
)
from provenance.errors import CorruptFileError, InvalidParameterError, MissingFileError

# Any edit to probes_v1.jsonl changes this digest: ship the edit as a new version instead.
V1_SHA256 = "c69cf4649ea4e1b449a2a661f1bb08accb636f60d9d1aebd045879de7acd530b"
V1_SUBSET64_SHA256 = "3727b0721496043c84bc8413ff69691ccc513b3722e81f25e29c0d8c68aaf558"

COUNTS = {"english": 60, "german": 20, "french": 20, "spanish": 20, "chinese": 30, "japanese": 10,
          "russian": 10, "arabic": 10, "code": 60, "math": 30, "dialogue": 30, "structured": 20}
CODE_LANGS = {"python": 20, "javascript": 10, "c": 10, "sql": 5, "shell": 5, "rust": 5, "html": 3, "css": 2}


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    path = resources.files("provenance.activations") / "data" / "probes_v1.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_corpus_size_categories_and_order(rows: list[dict[str, str]]) -> None:
    probes = load_probes()
    assert len(probes) == 320 and len(rows) == 320
    assert probes.version == PROBE_VERSION == "provenance-probes/1"
    assert Counter(probes.categories) == COUNTS
    # grouped by category in the listed order, ids sequential
    assert list(dict.fromkeys(probes.categories)) == list(COUNTS)
    assert probes.ids == tuple(f"p{i:04d}" for i in range(1, 321))
    assert Counter(r["lang"] for r in rows if r["category"] == "code") == CODE_LANGS
    assert probes.texts == tuple(r["text"] for r in rows)


def test_texts_within_bounds_and_distinct() -> None:
    probes = load_probes()
    assert all(200 <= len(t) <= 600 for t in probes.texts)
    assert len(set(probes.texts)) == 320
    assert all(t == t.strip() for t in probes.texts)


def test_digest_is_pinned() -> None:
    probes = load_probes()
    assert probes.sha256 == V1_SHA256
    assert texts_sha256(probes.texts) == V1_SHA256
    assert texts_sha256(["ab", "c"]) != texts_sha256(["a", "bc"])  # the NUL keeps boundaries


def test_subset_spreads_over_every_category() -> None:
    probes = load_probes()
    small = probes.subset(64)
    assert len(small) == 64
    assert small.version == "provenance-probes/1[64 of 320]"
    assert small.ids == tuple(f"p{i:04d}" for i in range(1, 321, 5))
    assert set(small.categories) == set(COUNTS)
    assert small.sha256 == V1_SUBSET64_SHA256 == texts_sha256(small.texts)
    assert small == load_probes().subset(64)
    assert probes.subset(320).texts == probes.texts


@pytest.mark.parametrize("n", [0, 321, 2.5, True])
def test_subset_rejects_bad_n(n: object) -> None:
    with pytest.raises(InvalidParameterError) as info:
        load_probes().subset(n)  # type: ignore[arg-type]
    assert str(info.value) == (f"The 'n' parameter of ProbeSet.subset must be an int in [1, 320]. "
                               f"Got {n!r} instead.")


def test_unknown_version() -> None:
    with pytest.raises(InvalidParameterError) as info:
        load_probes("2")
    assert str(info.value) == "The 'version' parameter of load_probes must be one of ['1']. Got '2' instead."
    with pytest.raises(InvalidParameterError, match=r"Got \[1\] instead"):
        load_probes([1])  # type: ignore[arg-type]


def _line(**row: object) -> str:
    base = {"id": "p0001", "category": "english", "lang": "en", "text": "Some text."}
    return json.dumps({**base, **row})


@pytest.mark.parametrize(("text", "message"), [
    ("{not json\n", "line 1 is not valid JSON (Expecting property name enclosed in double quotes)."),
    ('["a list"]\n', ("line 1 must be an object with exactly the keys ['id', 'category', 'lang', 'text']; "
                      "got list.")),
    ('{"id": "p0001", "text": "x"}\n', ("line 1 must be an object with exactly the keys "
                                        "['id', 'category', 'lang', 'text']; got ['id', 'text'].")),
    (_line(text="   ") + "\n", "line 1: 'text' must be a non-empty string; got '   '."),
    (_line(lang=3) + "\n", "line 1: 'lang' must be a non-empty string; got 3."),
    (_line() + "\n\n" + _line() + "\n", "line 3: id 'p0001' repeats line 1."),
    ("\n", "holds no probe texts."),
])
def test_malformed_file(text: str, message: str) -> None:
    with pytest.raises(CorruptFileError) as info:
        parse_probes(text, "bad.jsonl")
    assert str(info.value) == f"bad.jsonl: {message}"
    assert isinstance(info.value, ValueError)


def test_parse_good_file_keeps_order() -> None:
    text = _line(id="a", text="first") + "\n" + _line(id="b", category="math", text="second") + "\n"
    probes = parse_probes(text, "ok.jsonl", version="test/1")
    assert (probes.version, probes.ids, probes.categories, probes.texts) == (
        "test/1", ("a", "b"), ("english", "math"), ("first", "second"))
    assert probes.sha256 == texts_sha256(["first", "second"])


def test_broken_packaged_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "probes_v9.jsonl").write_bytes(b'{"id": "p0001", "category": "x", "lang": "en", '
                                                         b'"text": "\xff"}\n')
    monkeypatch.setattr(probes_mod, "_data_dir", lambda: tmp_path / "data")
    monkeypatch.setitem(probes_mod._FILES, "9", "probes_v9.jsonl")
    monkeypatch.setitem(probes_mod._FILES, "8", "probes_v8.jsonl")
    with pytest.raises(CorruptFileError,
                       match=r"probes_v9\.jsonl: is not UTF-8 \(invalid start byte at byte 56\)"):
        load_probes("9")
    with pytest.raises(MissingFileError, match=r"probes_v8\.jsonl: is missing from the installed package"):
        load_probes("8")
