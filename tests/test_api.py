"""The public Python API: `shared_tokens` on paths, `identify` on a `Fingerprint`, `provenance.audit(...)`,
and the default registry shipped inside the package (pyproject maps fingerprints/ to provenance.registry_data)."""

from __future__ import annotations

import inspect
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.torch import save_file

import provenance
from provenance.errors import CheckpointNotFoundError, InvalidParameterError
from tests.real_models import BERT_VOCAB_TXT, MINILM_DIR, require

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pair(tiny_llama, tmp_path_factory) -> dict[str, Path]:
    """The tiny Llama, an exact copy of it, and a registry holding the tiny Llama's fingerprint."""
    from provenance.fingerprint import fingerprint, save

    folder, state = tiny_llama
    root = tmp_path_factory.mktemp("api")
    copy = root / "copy"
    copy.mkdir()
    save_file(state, str(copy / "model.safetensors"))
    (copy / "config.json").write_text((folder / "config.json").read_text())
    (root / "registry").mkdir()
    save(fingerprint(folder, hashes=False, source={"name": "tiny"}), root / "registry" / "tiny.fingerprint")
    return {"base": folder, "copy": copy, "registry": root / "registry", "root": root}


def test_shared_tokens_takes_paths_or_vocabularies():
    folder, vocab_txt = require(MINILM_DIR), require(BERT_VOCAB_TXT)
    by_path = provenance.shared_tokens(folder, str(vocab_txt))  # a model directory, a tokenizer file
    a, b = provenance.load_vocabulary(folder), provenance.load_vocabulary(vocab_txt)
    by_object = provenance.shared_tokens(a, b)
    mixed = provenance.shared_tokens(a, vocab_txt)
    assert len(by_path) == len(by_object) == len(mixed) == 30517  # BERT's 30,522 less its 5 special tokens
    for m in (by_path, mixed):
        assert m.tokens == by_object.tokens
        assert np.array_equal(m.base_ids, by_object.base_ids) and np.array_equal(m.candidate_ids, m.base_ids)


def test_shared_tokens_names_a_missing_path(tmp_path):
    with pytest.raises(CheckpointNotFoundError) as exc:
        provenance.shared_tokens(tmp_path / "nope.json", tmp_path / "other.json")
    assert str(exc.value) == f"no such tokenizer file or directory: {tmp_path / 'nope.json'}"


def test_identify_takes_a_fingerprint(pair):
    from provenance.fingerprint import fingerprint
    from provenance.identify import identify

    fp = fingerprint(pair["copy"], hashes=False)
    r = identify(fp, registry=pair["registry"], device="cpu", hashes=False)
    from_path = identify(pair["copy"], registry=pair["registry"], device="cpu", hashes=False)
    assert r.query["spec"] == from_path.query["spec"] == str(pair["copy"])
    assert r.match is not None and (r.match.name, r.match.label) == ("tiny", "identical")
    assert [(c.name, c.label, c.p_value) for c in r.candidates] == \
        [(c.name, c.label, c.p_value) for c in from_path.candidates]


def test_audit_is_public_and_returns_plain_data(pair, tmp_path):
    from provenance.audit.result import AuditResult
    from provenance.audit.runner import audit

    assert "audit" in provenance.__all__ and callable(provenance.audit)
    assert "AuditResult" in provenance.audit.__doc__
    params = list(inspect.signature(audit).parameters)
    assert list(inspect.signature(provenance.audit).parameters) == params  # the call mirrors the runner
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump([{"name": "base", "spec": str(pair["base"])},
                                        {"name": "copy", "spec": str(pair["copy"])}]))
    r = provenance.audit(manifest, tmp_path / "a.sqlite", hashes=False)
    assert isinstance(r, AuditResult) and r.to_dict()["schema"] == "provenance.audit/1"
    assert [(p.base, p.candidate, p.label) for p in r.pairs] == [("base", "copy", "identical")]
    assert r.lineage.families == [["base", "copy"]]
    assert provenance.audit.runner.audit is audit  # still a package: its modules import as before
    with pytest.raises(InvalidParameterError) as exc:
        provenance.audit(manifest, tmp_path / "b.sqlite", wrkers=2)
    assert str(exc.value).startswith("The 'options' parameter of audit must be fields of AuditOptions (executor, "
                                     "workers, ")
    assert str(exc.value).endswith("Got 'wrkers' instead.")


# ----------------------------------------------------------------------------- the registry in the package

def test_pyproject_lists_every_package_and_maps_the_registry():
    tomllib = pytest.importorskip("tomllib")
    conf = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.relative_to(REPO).parts) for p in (REPO / "provenance").rglob("*")
               if p.is_dir() and p.name != "__pycache__"} | {"provenance"}
    assert set(conf["packages"]) == on_disk | {"provenance.registry_data"}
    assert conf["package-dir"] == {"provenance.registry_data": "fingerprints"}
    assert conf["package-data"]["provenance.registry_data"] == ["*.fingerprint"]


def test_default_registry_is_the_installed_package_data(monkeypatch):
    from provenance.fingerprint.registry import default_registry

    monkeypatch.delenv("PROVENANCE_REGISTRY", raising=False)
    shipped = sorted(p.name for p in resources.files("provenance.registry_data").iterdir()
                     if p.name.endswith(".fingerprint"))
    assert shipped and shipped == sorted(p.name for p in (REPO / "fingerprints").glob("*.fingerprint"))
    if "site-packages" not in provenance.__file__:  # this checkout (editable install): fingerprints/ itself
        assert default_registry() == REPO / "fingerprints"
    monkeypatch.setenv("PROVENANCE_REGISTRY", str(REPO))
    assert default_registry() == REPO
