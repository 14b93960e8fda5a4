"""The committed registry in fingerprints/: every file verifies, records its source, covers REAL_MODELS.md,
and matches what `python fingerprints/build.py` computes now from the installed packages."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import sysconfig
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

from provenance.cli.main import main
from provenance.errors import CorruptFileError, ProvenanceError
from provenance.fingerprint import Fingerprint, load, save
from provenance.fingerprint.fileformat import read_meta, to_bytes
from provenance.io.checkpoint import file_sha256
from tests import real_models as rm
from tests.real_models import require

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(sysconfig.get_paths()["purelib"])  # registry paths are relative to it
REGISTRY = ROOT / "fingerprints"
FILES = sorted(REGISTRY.glob("*.fingerprint"))
MINILM = REGISTRY / "all-minilm-l6-v2.fingerprint"
BERT = REGISTRY / "tokenizer-bert-base-uncased.fingerprint"
SOURCE_KEYS = {"name", "kind", "package", "file", "license", "lineage", "spec", "sha256"}

CHECKPOINTS = [rm.MINILM_DIR, rm.MINILM_INT8_ONNX, rm.BGE_ONNX, rm.COLBERT_ONNX, rm.RERANKER_ONNX, rm.SMOLLM2_GGUF]
TOKENIZER_FILES = [rm.CL100K_TIKTOKEN, rm.CL100K_GZ, rm.O200K_GZ, rm.LLAMA3_JSON, rm.LLAMA3_TIKTOKEN, rm.QWEN_TIKTOKEN,
                   rm.QWEN36_TIKTOKEN, rm.DEEPSEEK_JSON, rm.MISTRAL_V1, rm.MISTRAL_V2, rm.MISTRAL_V3, rm.MISTRAL_V7,
                   rm.TEKKEN, rm.BERT_VOCAB_TXT,
                   *(rm.QUICKTOK / f"{n}.vocab" for n in ("cl100k", "o200k", "llama3", "qwen3"))]


def rel(path: Path) -> str:
    """A real-model path as the registry records it: relative to site-packages."""
    return path.relative_to(SITE).as_posix()


def pins() -> set[str]:
    """The `name==version` pins of tests/requirements-models.txt."""
    lines = (ROOT / "tests" / "requirements-models.txt").read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def build_script() -> ModuleType:
    """fingerprints/build.py as a module (a script, not part of the package), imported once."""
    name = "fingerprints_build"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REGISTRY / "build.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses look their module up while being defined
        spec.loader.exec_module(module)
    return sys.modules[name]


def entry_of(build: ModuleType, slug: str) -> Any:
    """The registry entry `slug` of the build script (a `build.Entry`)."""
    return next(e for e in build.ENTRIES if e.slug == slug)


def shipped_files(fp: Fingerprint) -> list[str]:
    """Every site-packages file a tokenizer entry stands for: the one fingerprinted and the same-vocabulary ones."""
    src = fp.meta["source"]
    return [src["file"], *(s["file"] for s in src.get("also_shipped_as", []))]


@pytest.fixture(scope="module")
def registry() -> dict[str, Fingerprint]:
    """Every registry file, loaded (and so verified against its checksums)."""
    return {p.stem: load(p) for p in FILES}


def test_every_registry_file_loads_and_records_its_source(registry: dict[str, Fingerprint]) -> None:
    assert len(registry) == 18
    allowed_pins = pins()
    for slug, fp in registry.items():
        src = fp.meta["source"]
        assert SOURCE_KEYS <= set(src), slug
        assert src["kind"] == ("model" if fp.has_weights else "tokenizer"), slug
        assert isinstance(src["name"], str) and src["name"], slug
        assert src["package"] in allowed_pins, slug
        assert src["file"] == src["spec"] and not os.path.isabs(src["file"]) and ".." not in src["file"], slug
        assert set(src["license"]) == {"package", "package_source", "upstream", "upstream_source"}, slug
        assert src["license"]["package"] and src["license"]["upstream"], slug
        assert (src["license"]["upstream"] == "unknown") == (src["license"]["upstream_source"] is None), slug
        assert isinstance(src["lineage"], list) and all(isinstance(f, str) and f for f in src["lineage"]), slug
        for item in src.get("also_shipped_as", []):
            assert item["package"] in allowed_pins and not os.path.isabs(item["file"]), slug


def test_no_machine_paths_in_the_registry() -> None:
    for path in FILES:
        text = json.dumps(read_meta(path))
        assert str(SITE) not in text and str(ROOT) not in text and "site-packages" not in text, path.name


def test_registry_covers_every_real_checkpoint_and_tokenizer(registry: dict[str, Fingerprint]) -> None:
    models = {fp.meta["source"]["file"] for fp in registry.values() if fp.has_weights}
    assert models == {rel(p) for p in CHECKPOINTS}
    tokenizers = [f for fp in registry.values() if not fp.has_weights for f in shipped_files(fp)]
    assert len(tokenizers) == len(set(tokenizers))  # each file stands in one entry only
    assert {rel(p) for p in TOKENIZER_FILES} <= set(tokenizers)
    smollm2 = registry["smollm2-135m-instruct"].vocabulary  # SmolLM2's vocabulary ships only inside its GGUF
    assert smollm2 is not None and len(smollm2) == 49152


def test_tokenizer_entries_are_distinct_vocabularies(registry: dict[str, Fingerprint]) -> None:
    digests = {slug: fp.vocabulary.digest() for slug, fp in registry.items() if not fp.has_weights}
    assert len(set(digests.values())) == len(digests) == 12
    for slug, fp in registry.items():
        for item in fp.meta["source"].get("also_shipped_as", []):
            same = item["vocabulary_digest"] == digests[slug]
            assert same == (item["same"] == "identical vocabulary"), (slug, item["file"])
    # the BERT uncased entry is the vocabulary shipped inside the four BERT models (README says why it has its own)
    bert = digests["tokenizer-bert-base-uncased"]
    for slug in ("all-minilm-l6-v2", "bge-small-en-v1.5", "answerai-colbert-small-v1", "ms-marco-minilm-l12-v2"):
        assert registry[slug].vocabulary.digest() == bert
    assert registry["tokenizer-cl100k-base"].vocabulary.digest() != registry["tokenizer-llama3"].vocabulary.digest()


def test_registry_matches_the_installed_packages(registry: dict[str, Fingerprint]) -> None:
    for slug, fp in registry.items():
        src = fp.meta["source"]
        spec = require(SITE / src["spec"])
        folder = spec if spec.is_dir() else spec.parent
        for name, digest in src["sha256"].items():
            assert file_sha256(folder / name) == digest, (slug, name)
        for item in src.get("also_shipped_as", []):
            assert file_sha256(require(SITE / item["file"])) == item["sha256"], (slug, item["file"])
        dist, version = src["package"].split("==")
        assert metadata.version(dist) == version, slug


def _content(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(metadata without the `created_by` versions, every array) of a fingerprint file."""
    meta = read_meta(path)
    meta.pop("created_by")
    return meta, load_file(str(path))


@pytest.mark.parametrize("slug", [pytest.param("all-minilm-l6-v2", marks=pytest.mark.slow),
                                  "tokenizer-bert-base-uncased"])
def test_an_entry_refingerprinted_now_matches_the_registry(slug: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    build = build_script()
    entry = entry_of(build, slug)
    for shipped in entry.files:
        require(SITE / shipped.path)
    monkeypatch.chdir(SITE)
    fresh = tmp_path / f"{slug}.fingerprint"
    save(build.build(entry), fresh)
    meta_now, arrays_now = _content(fresh)
    meta_then, arrays_then = _content(REGISTRY / f"{slug}.fingerprint")
    assert sorted(arrays_now) == sorted(arrays_then)
    for name, arr in arrays_then.items():
        assert arr.dtype == arrays_now[name].dtype, name
        assert_same_model_arrays(name, arr, arrays_now[name])
    assert meta_now == meta_then, "stale registry: run python fingerprints/build.py"


def assert_same_model_arrays(name: str, then: np.ndarray, now: np.ndarray) -> None:
    """Arrays of one model fingerprinted on two machines: integers equal; floats equal up to one unit in
    the last place in at most 1 value in 1,000 (the float64 arithmetic of the build leaves a value within
    ~1e-16 of a float16 rounding boundary a chance of landing on either side, never more)."""
    if then.dtype.kind != "f":
        assert np.array_equal(then, now), name
        return
    assert np.array_equal(np.isnan(then), np.isnan(now)), name  # absent roles are NaN in the profile scales
    ok = ~np.isnan(then)
    a, b = then[ok], now[ok]
    ulps = np.abs(a.view(f"i{a.itemsize}").astype(np.int64) - b.view(f"i{b.itemsize}").astype(np.int64))
    differ = int((ulps > 0).sum())
    assert ulps.max(initial=0) <= 1 and differ <= max(1, a.size // 1000), \
        f"{name}: {differ} of {a.size} values differ (at most {ulps.max(initial=0)} ulps): stale registry, " \
        "or a build that depends on the machine; run python fingerprints/build.py"


def test_a_tokenizer_entry_rebuilds_byte_for_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    """The build is deterministic: the same bytes as the committed file (versions taken from that file)."""
    build = build_script()
    entry = entry_of(build, "tokenizer-bert-base-uncased")
    for shipped in entry.files:
        require(SITE / shipped.path)
    monkeypatch.chdir(SITE)
    fp = build.build(entry)
    fp.meta["created_by"] = read_meta(BERT)["created_by"]
    assert to_bytes(fp) == BERT.read_bytes(), "stale registry: run python fingerprints/build.py"


def _flipped(tmp_path: Path, position: int, mask: int = 0x01) -> Path:
    data = bytearray(BERT.read_bytes())
    data[position] ^= mask
    out = tmp_path / "damaged.fingerprint"
    out.write_bytes(bytes(data))
    return out


def test_a_flipped_byte_in_the_arrays_fails_the_tensor_checksum(tmp_path: Path) -> None:
    with pytest.raises(CorruptFileError, match="checksum mismatch in tensor"):
        load(_flipped(tmp_path, len(BERT.read_bytes()) - 1))


def test_a_flipped_byte_in_the_metadata_fails_the_metadata_checksum(tmp_path: Path) -> None:
    position = BERT.read_bytes().index(b"BERT uncased WordPiece")  # 'B' -> 'C' inside the JSON metadata
    with pytest.raises(CorruptFileError, match="checksum mismatch in the fingerprint's metadata") as info:
        load(_flipped(tmp_path, position))
    assert info.value.path is not None and info.value.path.name == "damaged.fingerprint"


def test_no_flipped_byte_goes_unnoticed(tmp_path: Path) -> None:
    """A sample of single-bit damage across header and arrays: every one is a ProvenanceError, none loads."""
    size = len(BERT.read_bytes())
    header_end = 8 + int.from_bytes(BERT.read_bytes()[:8], "little")
    positions = sorted({*range(8), *range(8, header_end, 37), *range(header_end, size, 2003), size - 1})
    for position in positions:
        for mask in (0x01, 0x80):
            with pytest.raises(ProvenanceError):
                load(_flipped(tmp_path, position, mask))


@pytest.mark.slow
def test_compare_the_minilm_entry_with_the_installed_model(tmp_path: Path) -> None:
    model = require(rm.MINILM_DIR)
    out = tmp_path / "result.json"
    assert main(["compare", str(MINILM), str(model), "--no-hash", "--device", "cpu", "--json", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["verdict"]["label"] == "identical"
    assert result["base"]["spec"].endswith("all-minilm-l6-v2.fingerprint")
