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


def test_the_executable_skips_teardown_but_runs_exit_handlers_and_flushes(tmp_path):
    """`entry` leaves by os._exit after main: exit handlers have run, stdout is complete, the status kept."""
    import subprocess
    import sys

    from tests.real_models import MINILM_DIR

    marker = tmp_path / "handler-ran"
    code = ("import atexit, sys; from pathlib import Path; "
            f"atexit.register(lambda: Path({str(marker)!r}).write_text('yes')); "
            f"sys.argv = ['provenance', 'inspect', {str(MINILM_DIR)!r}]; "
            "from provenance.cli.main import entry; entry()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert marker.read_text() == "yes"
    full = subprocess.run([sys.executable, "-c", code.replace("entry()", "sys.exit(__import__("
                                                              "'provenance.cli.main').cli.main.main())")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.stdout == full.stdout and proc.stdout.endswith("\n")
    bad = subprocess.run([sys.executable, "-m", "provenance", "inspect", str(tmp_path / "missing")],
                         capture_output=True, text=True, timeout=300, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("provenance: error:") and bad.stdout == ""


@pytest.mark.parametrize("argv", [["compare", "/nonexistent/base", "/nonexistent/cand"], ["inspect", "/nonexistent/m"],
                                  ["fingerprint", "/nonexistent/m", "-o", "-"], ["identify", "/nonexistent/m"]])
def test_a_missing_absolute_path_is_refused_before_torch_is_imported(argv):
    """Bad input answers at once: exit 2, resolve's one-line message, and torch never imported (2.7 s)."""
    import subprocess
    import sys

    code = ("import sys; from provenance.cli.main import main; rc = main(sys.argv[1:]); "
            "print(rc, 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120, check=False)
    assert proc.stdout.split() == ["2", "False"], proc.stdout + proc.stderr
    assert proc.stderr.strip() == f"provenance: error: no such file or directory: {argv[1]}"
