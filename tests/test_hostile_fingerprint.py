"""Hostile fingerprint files with valid checksums (the attacker recomputes them as our writer does):
refused through the CLI with one line and exit status 2, in memory bounded by the file's own size.

Each file starts from a small valid fingerprint written by `to_bytes`, then has tensors or metadata
swapped and every checksum recomputed with the same serializer (`_serialize`) and sha256.
"""

from __future__ import annotations

import functools
import hashlib
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from provenance.fingerprint.anchors import BY_IDS, by_ids, priorities
from provenance.fingerprint.fileformat import _serialize, to_bytes
from provenance.fingerprint.model import FORMAT, VERSION, Fingerprint, Sketch
from provenance.fingerprint.screen import embedding_screen
from provenance.signals.profiles import PROFILE_KEYS
from provenance.vocab.model import Vocabulary
from tests.hostile import assert_bounded, baseline_rss, refused, run_measured

HIDDEN = 16


def _valid() -> Fingerprint:
    """A two-layer fingerprint with 300 anchors by id, their screen, one sketch, and a 3-token vocabulary."""
    rng = np.random.default_rng(0)
    anchors = by_ids(1000, 300)
    facts = {"format": "safetensors", "hidden": HIDDEN, "intermediate": None, "vocab": 1000, "inferred": False,
             "role_tensors": {}, "dtype": "F32", "quantized": False, "tolerance": 0.0}
    fp = Fingerprint(meta={"source": {"spec": "tiny", "format": "safetensors"}, "model": {"parameters": 1234},
                           "weights": {"hidden": HIDDEN, "profile_keys": list(PROFILE_KEYS)}, "notes": [],
                           "facts": facts, "config_facts": {"architecture": None, "layout": {}}},
                     layers=[0, 1], profiles=rng.random((2, len(PROFILE_KEYS), HIDDEN)).astype(np.float32))
    fp.anchors[BY_IDS] = anchors
    fp.anchor_rows[BY_IDS] = rng.standard_normal((len(anchors), HIDDEN)).astype(np.float32)
    fp.screens["ids"], fp.screens["ids.anchors"] = embedding_screen(fp.anchor_rows[BY_IDS], priorities(anchors.keys))
    fp.sketch_anchors[BY_IDS] = 32
    fp.sketches[BY_IDS] = {(0, "attn.q"): Sketch(rng.standard_normal((40, 32)).astype(np.float32),
                                                 np.arange(40, dtype=np.int64), 64, 8)}
    fp.vocabulary = Vocabulary(source="vocab.txt", format="vocab.txt", model="wordpiece",
                               tokens=[b"a", b"b", b" c"], kinds=["normal"] * 3)
    return fp


def _parts(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The tensors and JSON metadata of fingerprint bytes."""
    n = int.from_bytes(data[:8], "little")
    head = json.loads(data[8:8 + n])
    tensors = {}
    for name, info in head.items():
        if name != "__metadata__":
            a, b = info["data_offsets"]
            dtype = {"F16": np.float16, "F32": np.float32, "I8": np.int8, "U8": np.uint8, "I64": np.int64,
                     "U64": np.uint64}[info["dtype"]]
            tensors[name] = np.frombuffer(data[8 + n + a:8 + n + b], dtype=dtype).reshape(info["shape"])
    return tensors, json.loads(head["__metadata__"]["fingerprint"])


def _forge(path: Path, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write `tensors` and `meta` as a fingerprint whose checksums all hold, as `to_bytes` would."""
    meta = {**meta, "format": FORMAT, "version": VERSION,
            "tensors": {k: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()
                        for k, v in sorted(tensors.items())}}
    text = json.dumps(meta, sort_keys=True)
    header = {"format": FORMAT, "version": str(VERSION), "fingerprint": text,
              "sha256": hashlib.sha256(text.encode()).hexdigest()}
    path.write_bytes(_serialize(tensors, header))
    return path


def _plain(line: str) -> None:
    """A message is short printable text: never bytes of the file it refuses."""
    assert line.isprintable() and len(line) < 500 and "\\x" not in line, line[:600]


def test_the_valid_base_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The hostile files below differ from this one only where they say."""
    tensors, meta = _parts(to_bytes(_valid()))
    path = _forge(tmp_path / "ok.fingerprint", tensors, meta)
    from provenance.cli.main import main

    assert main(["inspect", str(path)]) == 0
    assert "weights     unnamed architecture, 2 layers, hidden 16, 1,234 parameters" in capsys.readouterr().out
    assert main(["compare", str(path), str(path), "--no-hash"]) == 0
    assert "identical" in capsys.readouterr().out


@functools.cache
def _bomb_blob() -> bytes:
    """500 MB of zeros, zlib-compressed (~1000:1)."""
    pack, chunk = zlib.compressobj(9), bytes(1 << 24)
    return b"".join(pack.compress(chunk) for _ in range(30)) + pack.flush()


def _zlib_bomb(path: Path) -> Path:
    """508 KB: a token table of 500 MB of zeros (100 million empty ids) compressed ~1000:1 to 489 KB."""
    tensors, meta = _parts(to_bytes(_valid()))
    tensors["vocab.table"] = np.frombuffer(_bomb_blob(), dtype=np.uint8)
    meta["tokenizer"]["size"] = 30 * (1 << 24) // 5
    return _forge(path, tensors, meta)


def test_zlib_bomb_vocabulary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _zlib_bomb(tmp_path / "bomb.fingerprint")
    line = refused(["inspect", str(path)], capsys)
    assert "bomb.fingerprint: the fingerprint's tokenizer metadata gives no vocabulary size in [0, 4,194,304] " \
           "(got '100663296')" in line
    _plain(line)


def test_zlib_bomb_within_the_id_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same bomb claiming a plausible size: refused once the table passes its bound, not after 500 MB."""
    path = _zlib_bomb(tmp_path / "bomb.fingerprint")
    tensors, meta = _parts(path.read_bytes())
    meta["tokenizer"]["size"] = 200_000
    path = _forge(path, tensors, meta)
    line = refused(["inspect", str(path)], capsys)
    packed = len(_bomb_blob())  # 489,220 bytes with zlib 1.3
    assert f"the fingerprint's token table expands past {16 * packed + 5 * 200_000:,} bytes (16x its {packed:,} " \
           "compressed bytes plus 5 per id): refused as a zlib bomb" in line, line
    _plain(line)


def _broadcast_rows(path: Path) -> Path:
    """3.6 MB: anchor rows stored 1-D [3,600,000] and their scale [150], which broadcast to a
    [150, 3,600,000] float32 product: 2.2 GB."""
    tensors, meta = _parts(to_bytes(_valid()))
    tensors["anchors.ids.rows"] = np.ones(3_600_000, np.int8)
    tensors["anchors.ids.row_scale"] = np.ones(150, np.float32)
    return _forge(path, tensors, meta)


def test_one_dimensional_anchor_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _broadcast_rows(tmp_path / "rows.fingerprint")
    line = refused(["inspect", str(path)], capsys)
    assert line.endswith("rows.fingerprint: the fingerprint is inconsistent: tensor 'anchors.ids.row_scale' is F32 "
                         "[150], but its metadata and the other tensors say F32 [300]"), line
    _plain(line)


HOSTILE_LAYOUTS = {
    "profiles of another hidden size": (lambda t, m: t.update(profiles=np.zeros((2, 7, 9), np.float16)),
                                        ("tensor 'profiles' is F16 [2, 7, 9], but its metadata and the other "
                                         "tensors say F16 [2, 7, 16]")),
    "screen of 5000 anchors": (lambda t, m: t.update({"screen.ids.anchors": np.zeros(5000, np.uint64),
                                                      "screen.ids": np.zeros(10, np.float16)}),
                               "its screen holds 5000 anchors by ids, more than the 96"),
    "sketch anchors beyond the anchors": (lambda t, m: m["weights"]["sketch_anchors"].update(ids=10**12),
                                          "ids sketch anchors is 1000000000000, not an integer in [0, 300]"),
    "sketch with more top rows than rows": (lambda t, m: m["weights"]["sketches"]["ids.0.attn.q"].update(top=41),
                                            "sketch ids.0.attn.q top rows is 41, not an integer in [1, 40]"),
    "anchor offsets beyond the keys": (lambda t, m: t.update({"anchors.ids.offsets": np.arange(301) * 10**9}),
                                       "anchors.ids.offsets do not split the"),
    "an extra tensor": (lambda t, m: t.update({"screen.evil": np.zeros(3, np.float16)}),
                        "tensor 'screen.evil' is not part of a version-1 fingerprint"),
    "layers given as a string": (lambda t, m: m["weights"].update(layers="01"),
                                 "its layers are not a list"),
    "tokenizer metadata as a list": (lambda t, m: m.update(tokenizer=[1]),
                                     "its 'tokenizer' metadata is not an object"),
    "no config facts": (lambda t, m: m.pop("config_facts"), "its config facts lack an architecture name or layout"),
    "tolerance as text": (lambda t, m: m["facts"].update(tolerance="0.1"), "its model facts give tolerance as 0.1"),
    "parameters as text": (lambda t, m: m["model"].update(parameters="many"),
                           "it gives no parameter count for its model"),
    "role tensor as a number (found by mutation)": (lambda t, m: m["facts"]["role_tensors"].update(embed=float("nan")),
                                                    "its model facts name a role's tensor with something other"),
    "sketch without top rows (found by mutation)": (lambda t, m: m["weights"]["sketches"]["ids.0.attn.q"].update(top=0),
                                                    "sketch ids.0.attn.q top rows is 0, not an integer in [1, 40]"),
    "constant norms as an object (found by mutation)": (lambda t, m: m["weights"].update(constant_norms={"a": 1}),
                                                        "its weight statistics (constant norms, problems) are not"),
}


@pytest.mark.parametrize("case", list(HOSTILE_LAYOUTS))
def test_hostile_layout(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit, words = HOSTILE_LAYOUTS[case]
    tensors, meta = _parts(to_bytes(_valid()))
    edit(tensors, meta)
    path = _forge(tmp_path / "x.fingerprint", tensors, meta)
    line = refused(["inspect", str(path)], capsys)
    assert words in line and "x.fingerprint: " in line, line
    _plain(line)


def test_registry_entry_with_an_oversized_screen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """identify squares each entry's screen: 20,096 anchor keys (the query's 96 among them, so the screens
    overlap) in a 160 KB file would make two 20,096 x 20,096 float64/int64 arrays, 6.5 GB."""
    tensors, meta = _parts(to_bytes(_valid()))
    query = _forge(tmp_path / "query.fingerprint", tensors, meta)
    (tmp_path / "registry").mkdir()
    keys = np.concatenate([tensors["screen.ids.anchors"], np.arange(20_000, dtype=np.uint64)])
    _forge(tmp_path / "registry" / "entry.fingerprint", {**tensors, "screen.ids.anchors": keys,
                                                          "screen.ids": np.zeros(10, np.float16)}, meta)
    line = refused(["identify", str(query), "--registry", str(tmp_path / "registry"), "--no-hash"], capsys)
    assert line.endswith("entry.fingerprint: the fingerprint is inconsistent: its screen holds 20096 anchors by ids, "
                         "more than the 96 a screen keeps"), line
    _plain(line)


@pytest.mark.slow
@pytest.mark.parametrize("build", [_zlib_bomb, _broadcast_rows], ids=["zlib bomb", "1-D anchor rows"])
def test_memory_is_bounded_by_the_file(build, tmp_path: Path) -> None:
    """Before: the bomb inflated 500 MB and listed 100 million ids; the rows broadcast to 2.2 GB."""
    path = build(tmp_path / "hostile.fingerprint")
    m = run_measured(["compare", str(path), str(path), "--no-hash"], tmp_path)
    assert m.returncode == 2 and len(m.stderr.strip().splitlines()) == 1, m.stderr[-500:]
    assert_bounded(m, path.stat().st_size, baseline_rss(tmp_path))
