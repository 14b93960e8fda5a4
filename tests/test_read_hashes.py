"""File hashes taken from the weight stream's own reads: the digests are exact whatever the read order,
and fingerprinting or comparing with hashes on reads each weight byte about once, not twice."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest

from provenance.comparison import compare
from provenance.errors import CorruptFileError
from provenance.fingerprint import fingerprint
from provenance.io import read_hashes
from provenance.io.checkpoint import file_sha256
from provenance.io.read_hashes import ReadHashes
from tests.real_models import SMOLLM2_GGUF, require
from tests.tiny_models import shard


def _file(tmp_path: Path, size: int = 200_000, seed: int = 0) -> tuple[Path, bytes]:
    data = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    return path, data


def _pieces(size: int, n: int, seed: int) -> list[tuple[int, int]]:
    """n random (offset, length) pieces, overlapping and leaving holes."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, size, n)
    return [(int(s), int(min(size - s, rng.integers(1, size // 8)))) for s in starts]


@pytest.mark.parametrize("small_gap,budget", [(0, 0), (0, 10**9), (1000, 30_000), (10**9, 0)])
@pytest.mark.parametrize("seed", range(4))
def test_any_read_order_gives_the_plain_digest(tmp_path, monkeypatch, small_gap, budget, seed):
    """Holding pieces, filling gaps, overlaps, repeats and never-read holes: always the file's sha256."""
    monkeypatch.setattr(read_hashes, "SMALL_GAP", small_gap)
    path, data = _file(tmp_path, seed=seed)
    h = ReadHashes([path], budget=budget)
    for off, n in _pieces(len(data), 40, seed):
        h.observe(path, off, data[off:off + n])
    assert h.finish() == {path: hashlib.sha256(data).hexdigest()}


def test_in_order_reads_need_no_extra_read(tmp_path):
    path, data = _file(tmp_path)
    h = ReadHashes([path])
    for off in range(0, len(data), 7_000):
        h.observe(path, off, data[off:off + 7_000])
    assert h.finish()[path] == hashlib.sha256(data).hexdigest()
    assert h.extra_bytes == 0


def test_a_file_that_shrinks_during_the_run_is_a_clear_error(tmp_path):
    path, data = _file(tmp_path)
    h = ReadHashes([path])
    h.observe(path, 0, data[:1000])
    path.write_bytes(data[:5000])
    with pytest.raises(CorruptFileError, match="changed during the run"):
        h.finish()


def test_concurrent_readers_and_unknown_files(tmp_path):
    path, data = _file(tmp_path, size=400_000)
    h = ReadHashes([path], budget=50_000)
    chunks = [(off, data[off:off + 10_000]) for off in range(0, len(data), 10_000)]

    def feed(part: list[tuple[int, bytes]]) -> None:
        for off, b in part:
            h.observe(path, off, b)
            h.observe(tmp_path / "other.bin", off, b)  # not one of the hashed files: ignored

    threads = [threading.Thread(target=feed, args=(chunks[k::3],)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert h.finish()[path] == hashlib.sha256(data).hexdigest()


def _count_reads(monkeypatch) -> dict[str, int]:
    """Bytes the readers reported plus bytes read only to hash, over every ReadHashes used."""
    total = {"observed": 0, "extra": 0}
    observe, finish = ReadHashes.observe, ReadHashes.finish

    def spy_observe(self, path, offset, data):
        total["observed"] += memoryview(data).cast("B").nbytes
        observe(self, path, offset, data)

    def spy_finish(self):
        out = finish(self)
        total["extra"] += self.extra_bytes
        return out

    monkeypatch.setattr(ReadHashes, "observe", spy_observe)
    monkeypatch.setattr(ReadHashes, "finish", spy_finish)
    return total


def _weight_bytes(folder: Path, suffix: str) -> int:
    return sum(p.stat().st_size for p in folder.glob(f"*{suffix}"))


def test_fingerprint_of_sharded_safetensors_hashes_exactly_reading_once(tiny_llama, tmp_path, monkeypatch):
    _, state = tiny_llama
    folder = shard({k: v.clone() for k, v in state.items()}, tmp_path / "sharded", n=3)
    (folder / "config.json").write_text((tiny_llama[0] / "config.json").read_text())
    total = _count_reads(monkeypatch)
    fp = fingerprint(folder, device="cpu")
    assert fp.meta["source"]["sha256"] == {p.name: file_sha256(p) for p in sorted(folder.iterdir())
                                          if p.name in fp.meta["source"]["sha256"]}
    assert len(fp.meta["source"]["sha256"]) == 5  # 3 shards, the index, config.json
    size = _weight_bytes(folder, ".safetensors")
    assert total["observed"] > 0
    assert total["observed"] + total["extra"] <= 1.10 * size, total  # twice the files before


@pytest.mark.slow
def test_fingerprint_of_real_smollm2_reads_each_byte_about_once(smollm2_hf, monkeypatch):
    """Tied SmolLM2 (0.5 GB): the stream reads every tensor, so hashing it adds almost nothing."""
    total = _count_reads(monkeypatch)
    fp = fingerprint(smollm2_hf, device="cpu")
    st = smollm2_hf / "model.safetensors"
    assert fp.meta["source"]["sha256"]["model.safetensors"] == file_sha256(st)
    assert total["extra"] < 0.01 * st.stat().st_size, total
    assert total["observed"] + total["extra"] <= 1.02 * st.stat().st_size, total


@pytest.mark.slow
def test_real_gguf_hash_from_the_stream_is_the_file_hash(monkeypatch):
    gguf = require(SMOLLM2_GGUF)
    total = _count_reads(monkeypatch)
    fp = fingerprint(gguf, device="cpu")
    assert fp.meta["source"]["sha256"] == {gguf.name: file_sha256(gguf)}
    assert total["observed"] + total["extra"] <= 1.10 * gguf.stat().st_size, total


def test_compare_hashes_both_models_from_their_streams(tiny_llama, tmp_path, monkeypatch):
    folder, state = tiny_llama
    other = shard({k: v.clone() for k, v in state.items()}, tmp_path / "copy", n=2)
    (other / "config.json").write_text((folder / "config.json").read_text())
    total = _count_reads(monkeypatch)
    r = compare(folder, other, signals=("weights",), device="cpu")
    assert r.base["sha256"]["model.safetensors"] == file_sha256(folder / "model.safetensors")
    assert all(r.candidate["sha256"][p.name] == file_sha256(p) for p in other.iterdir())
    size = _weight_bytes(folder, ".safetensors") + _weight_bytes(other, ".safetensors")
    assert total["observed"] + total["extra"] <= 1.25 * size, total
