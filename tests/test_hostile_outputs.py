"""Outputs never destroy what they point at: devices, FIFOs, process substitutions and symlinks are
written through and stay what they were; a missing parent folder is refused before any work."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from provenance.cli.main import main
from tests.real_models import BERT_VOCAB_TXT, require

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="device and FIFO semantics are Linux's")


def _compare_to(out: str) -> list[str]:
    vocab = str(require(BERT_VOCAB_TXT))
    return ["compare", vocab, vocab, "--json", out]


def test_dev_null_stays_a_character_device() -> None:
    before = os.lstat("/dev/null")
    assert main(_compare_to("/dev/null")) == 0
    after = os.lstat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_a_fifo_is_written_through_and_stays_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "result.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    assert main(_compare_to(str(fifo))) == 0
    reader.join(timeout=60)
    assert not reader.is_alive() and json.loads(got[0])["verdict"]["label"] == "identical"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_symlink_is_written_through_and_stays_a_link(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    assert main(_compare_to(str(link))) == 0
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert json.loads(real.read_text())["schema"] == "provenance.compare/1"


@pytest.mark.slow
def test_process_substitution_and_dev_stdout_through_a_shell(tmp_path: Path) -> None:
    """`--json >(cat > F)` and `--json /dev/stdout` as a user's shell passes them (a subprocess is the point)."""
    vocab = str(require(BERT_VOCAB_TXT))
    sink = tmp_path / "from-pipe.json"
    script = (f'"{sys.executable}" -m provenance compare "{vocab}" "{vocab}" --json >(cat > "{sink}") >/dev/null; '
              "rc=$?; wait; exit $rc")
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert json.loads(sink.read_text())["verdict"]["label"] == "identical"
    proc = subprocess.run([sys.executable, "-m", "provenance", "compare", vocab, vocab, "--json", "/dev/stdout"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and json.loads(proc.stdout)["verdict"]["label"] == "identical", proc.stderr[-500:]
    assert os.path.islink("/dev/stdout") or not os.path.exists("/dev/stdout") or \
        not stat.S_ISREG(os.lstat("/dev/stdout").st_mode)


def test_audit_reports_into_a_missing_parent_are_refused_first(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "audit.yaml"
    manifest.write_text(f"models:\n  - {{name: a, spec: {require(BERT_VOCAB_TXT)}}}\n")
    target = tmp_path / "nowhere" / "deeper" / "reports"
    rc = main(["audit", str(manifest), "--db", str(tmp_path / "a.sqlite"), "--html", str(target)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "does not exist" in err[0], err
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "a.sqlite").exists()
