"""The CLI tunes its process: OpenMP threads sleep, not spin, while they wait; large freed blocks are reused."""

from __future__ import annotations

import os

import pytest

from provenance.cli.main import main


def test_the_cli_sets_a_passive_wait_policy(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with pytest.raises(SystemExit):
        main(["--version"])
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


def test_a_wait_policy_in_the_environment_wins(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    with pytest.raises(SystemExit):
        main(["--version"])
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_large_blocks_stay_in_the_heap_except_on_the_plain_path(monkeypatch):
    """On glibc the CLI keeps large freed blocks for reuse (no page faults per temporary); PROVENANCE_PLAIN=1
    leaves malloc alone."""
    import platform

    from provenance.cli.tuning import tune_process

    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.setenv("PROVENANCE_PLAIN", "1")
    assert tune_process()["malloc"] is False
    monkeypatch.delenv("PROVENANCE_PLAIN")
    glibc = platform.libc_ver()[0] == "glibc"
    assert tune_process()["malloc"] is glibc
