"""Command-line conventions: `--json -` leaves stdout to the JSON alone, progress bars only on stderr,
/dev/stdout written and never replaced, exit statuses that say why, help on compare's arguments, and
`--version`/`--help` that import no analysis code."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from safetensors.torch import save_file

from provenance import progress
from provenance.cli.main import main
from provenance.cli.output import write_atomic


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `provenance ARGS` in this process; argparse's exits as their status."""
    capsys.readouterr()
    try:
        rc = main([str(a) for a in args])
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err


def lines(err: str) -> list[str]:
    """stderr's message lines (progress bars redraw on carriage returns)."""
    return [x for x in err.splitlines() if x.strip() and "\r" not in x]


@pytest.fixture(scope="module")
def models(tiny_llama, tmp_path_factory) -> dict[str, Path]:
    """The tiny Llama, an exact copy of it, a manifest of the two, and a registry holding its fingerprint."""
    folder, state = tiny_llama
    root = tmp_path_factory.mktemp("conventions")
    copy = root / "copy"
    copy.mkdir()
    save_file(state, str(copy / "model.safetensors"))
    (copy / "config.json").write_text((folder / "config.json").read_text())
    manifest = root / "m.yaml"
    manifest.write_text(yaml.safe_dump({"models": [{"name": "base", "spec": str(folder)},
                                                   {"name": "copy", "spec": str(copy)}]}))
    (root / "registry").mkdir()
    assert main(["fingerprint", str(folder), "-o", str(root / "registry" / "tiny.fingerprint"), "--no-hash",
                 "--name", "tiny"]) == 0
    return {"base": folder, "copy": copy, "manifest": manifest, "registry": root / "registry", "root": root}


# ----------------------------------------------------------------------------- --json - and /dev/stdout

def test_compare_json_dash_is_all_of_stdout_even_with_progress(models):
    """What `provenance compare A B --json - | jq` reads: the JSON and nothing else (bars and summary on stderr)."""
    proc = subprocess.run([sys.executable, "-m", "provenance", "compare", str(models["base"]), str(models["copy"]),
                           "--json", "-", "--no-hash", "--progress"], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["schema"] == "provenance.compare/1" and data["verdict"]["label"] == "identical"
    assert proc.stdout.endswith("}\n")
    assert "comparing weights" in proc.stderr
    assert proc.stderr.startswith("verdict     IDENTICAL") or "\nverdict     IDENTICAL" in proc.stderr


@pytest.mark.parametrize("command,schema", [
    ("inspect", "provenance.inspect/1"),
    ("identify", "provenance.identify/1"),
    ("audit", "provenance.audit/1"),
])
def test_every_json_option_takes_dash(models, tmp_path, capsys, command, schema):
    args = {"inspect": [models["base"], "--no-hash"],
            "identify": [models["copy"], "--registry", models["registry"], "--no-hash", "--device", "cpu"],
            "audit": [models["manifest"], "--db", tmp_path / "a.sqlite", "--no-hash", "--device", "cpu"]}[command]
    rc, out, err = run(capsys, command, *args, "--json", "-")
    assert rc == 0, err
    assert json.loads(out)["schema"] == schema
    first = {"inspect": str(models["base"]), "identify": "query ", "audit": "audit "}[command]
    assert err.startswith(first), err


def test_fingerprint_to_stdout_is_the_file_bytes(models, capsysbinary):
    from provenance.fingerprint.fileformat import from_bytes

    capsysbinary.readouterr()
    assert main(["fingerprint", str(models["base"]), "-o", "-", "--no-hash"]) == 0
    out, err = capsysbinary.readouterr()
    assert from_bytes(out, "stdout").summary()["layers"] == 3
    assert err.decode().startswith("fingerprint standard output (")


def test_fingerprint_is_not_written_to_a_terminal(models, tmp_path, monkeypatch, capsys):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdout", Terminal())
    rc = main(["fingerprint", str(models["base"]), "-o", "-", "--no-hash"])
    assert rc == 2 and sys.stdout.getvalue() == ""
    assert capsys.readouterr().err == ("provenance: error: a fingerprint is binary: redirect standard output to a "
                                       "file or pipe, or pass -o FILE\n")


def test_dev_stdout_is_written_not_replaced(models, capfd):
    link = os.readlink("/dev/stdout")
    assert main(["compare", str(models["base"]), str(models["copy"]), "--no-hash", "--json", "/dev/stdout"]) == 0
    out, err = capfd.readouterr()
    assert json.loads(out)["verdict"]["label"] == "identical"
    assert err.startswith("verdict     IDENTICAL")
    assert os.path.islink("/dev/stdout") and os.readlink("/dev/stdout") == link


def test_write_atomic_writes_through_fifos_and_symlinks(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    write_atomic(fifo, '{"a": 1}\n')
    reader.join(timeout=30)
    assert got == [b'{"a": 1}\n'] and fifo.is_fifo()
    target, link = tmp_path / "r.json", tmp_path / "latest.json"
    target.write_text("old")
    link.symlink_to(target)
    write_atomic(link, "new")
    assert link.is_symlink() and target.read_text() == "new"


def test_only_one_output_can_be_stdout(models, tmp_path, capsys):
    rc, out, err = run(capsys, "compare", models["base"], models["copy"], "--json", "-", "--md", "-")
    assert (rc, out) == (2, "")
    assert err == ("provenance: error: only one output can go to standard output ('-'); give the others a "
                   "file name\n")


# ----------------------------------------------------------------------------- progress

def test_progress_follows_the_terminal_unless_asked(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert (progress.enabled(None), progress.enabled(True), progress.enabled(False)) == (False, True, False)
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert (progress.enabled(None), progress.enabled(True), progress.enabled(False)) == (True, True, False)


@pytest.mark.parametrize("command,bar", [
    ("compare", "comparing weights"),
    ("fingerprint", "fingerprinting"),
    ("identify", "comparing with the registry"),
    ("audit", "fingerprinting"),
])
def test_progress_bars_draw_on_stderr_only_when_asked(models, tmp_path, capsys, command, bar):
    args = {"compare": [models["base"], models["copy"]],
            "fingerprint": [models["base"], "-o", tmp_path / "x.fingerprint"],
            "identify": [models["copy"], "--registry", models["registry"], "--device", "cpu"],
            "audit": [models["manifest"], "--device", "cpu"]}[command]
    db = ["--db", tmp_path / "quiet.sqlite"] if command == "audit" else []
    rc, out, err = run(capsys, command, *args, *db, "--no-hash")  # stderr is not a terminal here: no bars
    assert rc == 0 and bar not in err, err
    db = ["--db", tmp_path / "shown.sqlite"] if command == "audit" else []  # a fresh store: work to show
    rc, out, err = run(capsys, command, *args, *db, "--no-hash", "--progress")
    assert rc == 0 and bar in err, err
    assert bar not in out and "\r" not in out


# ----------------------------------------------------------------------------- exit statuses that say why

def test_compare_fail_on_says_why_it_exits_3(models, capsys):
    rc, out, err = run(capsys, "compare", models["base"], models["copy"], "--no-hash", "--fail-on", "derived")
    assert rc == 3 and out.startswith("verdict     IDENTICAL")
    assert lines(err) == ["provenance: --fail-on derived matched: the verdict is identical (exit 3)"]


def test_audit_fail_on_names_the_pair(models, tmp_path, capsys):
    rc, out, err = run(capsys, "audit", models["manifest"], "--db", tmp_path / "a.sqlite", "--no-hash",
                       "--device", "cpu", "--fail-on", "derived")
    assert rc == 3 and "2 models, 1 pairs screened, 1 compared, 1 related" in out, err
    [line] = lines(err)
    assert line.startswith("provenance: --fail-on derived matched base -> copy: identical ("), line


def test_audit_exits_2_naming_a_model_it_cannot_read(models, tmp_path, capsys):
    ghost = tmp_path / "nonexistent"
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({"models": [{"name": "base", "spec": str(models["base"])},
                                                   {"name": "copy", "spec": str(models["copy"])},
                                                   {"name": "ghost", "spec": str(ghost)}]}))
    unread = (f"provenance: error: model 'ghost' of {manifest} could not be read: no such file or directory: "
              f"{ghost}")
    rc, out, err = run(capsys, "audit", manifest, "--db", tmp_path / "a.sqlite", "--no-hash", "--device", "cpu")
    assert rc == 2 and lines(err) == [unread], err
    assert "not read    ghost" in out  # the audit of the others still ran and was stored
    rc, out, err = run(capsys, "audit", manifest, "--db", tmp_path / "a.sqlite", "--no-hash", "--device", "cpu",
                       "--fail-on", "derived")
    assert rc == 2, err
    assert lines(err)[0] == unread and lines(err)[1].startswith("provenance: --fail-on derived matched base -> copy")


# ----------------------------------------------------------------------------- help and laziness

def test_compare_help_says_what_base_and_candidate_accept(capsys):
    from provenance.signals import registry

    rc, out, err = run(capsys, "compare", "--help")
    assert rc == 0 and err == ""
    text = " ".join(out.split())
    for words in ("BASE the original model, which CANDIDATE may have been built from: a Hugging Face model directory",
                  "a model id in the offline HF cache (HF_HOME), a .fingerprint file, or a tokenizer alone",
                  "CANDIDATE the model under suspicion: the same kinds of spec as BASE"):
        assert words in text, text
    assert f"comma-separated subset of {','.join(registry.names())}" in text


LAZY = """
import json, sys
from provenance.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = ("torch", "transformers", "numpy", "scipy", "pandas", "onnx", "safetensors", "tqdm", "provenance.comparison")
cmds = [m for m in sys.modules if m.startswith("provenance.cli.") and m.endswith("_cmd")]
print(json.dumps({"heavy": [m for m in heavy if m in sys.modules], "commands": sorted(cmds)}), file=sys.stderr)
"""


@pytest.mark.parametrize("args,commands", [
    (["--version"], []),
    (["--help"], []),
    (["bogus"], []),
    (["compare", "--help"], ["provenance.cli.compare_cmd"]),
    (["compare", "only-one-spec"], ["provenance.cli.compare_cmd"]),
    (["audit", "--help"], ["provenance.cli.audit_cmd", "provenance.cli.compare_cmd"]),
    (["identify", "--help"], ["provenance.cli.identify_cmd"]),
    (["inspect", "--help"], ["provenance.cli.fingerprint_cmd", "provenance.cli.inspect_cmd"]),
])
def test_version_help_and_usage_errors_import_no_analysis_code(args, commands):
    proc = subprocess.run([sys.executable, "-c", LAZY, *args], capture_output=True, text=True, timeout=120,
                          check=False)
    found = json.loads(proc.stderr.splitlines()[-1])
    assert found == {"heavy": [], "commands": commands}, proc.stderr
