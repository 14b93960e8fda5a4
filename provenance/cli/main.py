"""`provenance` command line: parse, dispatch to one module per command, map errors to exit codes.

Only the module of the command being run is imported, and command modules import torch and the
analysis code inside `run`: `--version`, `--help` and argument errors answer at once.

Exit status: 0 done; 2 bad input (one line on stderr, nothing written); 3 a `--fail-on` label
matched; 1 an internal error (traceback only with PROVENANCE_DEBUG=1).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence

from provenance import __version__, fastpath
from provenance.cli.tuning import tune_process
from provenance.errors import ProvenanceError

# command -> (module, one-line summary shown by `provenance --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "inspect": ("provenance.cli.inspect_cmd", "describe a checkpoint: format, architecture, canonical roles, hashes"),
    "compare": ("provenance.cli.compare_cmd",
                "was CANDIDATE built from BASE? (weight and tokenizer evidence with p-values)"),
    "fingerprint": ("provenance.cli.fingerprint_cmd",
                    "write a fingerprint (a few MB) that compare and identify accept in place of the model"),
    "identify": ("provenance.cli.identify_cmd",
                 "rank known bases (a registry of fingerprints) for MODEL, with evidence"),
    "audit": ("provenance.cli.audit_cmd", ("audit many models: fingerprint each once, screen every pair, compare "
                                           "the flagged ones, draw the lineage (resumable)")),
    "report": ("provenance.cli.report_cmd", "render a saved result (compare --json) as HTML and/or Markdown"),
}


def command_of(argv: Sequence[str]) -> str | None:
    """The command named on the line: the first word that is not an option (the top level takes no values)."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported (to add its arguments), the others are listed by name."""
    parser = argparse.ArgumentParser(prog="provenance",
                                     description="Was this large language model built from another one?")
    parser.add_argument("--version", action="version", version=f"provenance {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        p = sub.add_parser(name, help=summary, description=summary)
        if name == command:
            importlib.import_module(module).register(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    tune_process()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(command_of(argv)).parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except ProvenanceError as exc:
        print(f"provenance: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("provenance: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `provenance inspect M | head`: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug, not bad input: say so briefly
        if os.environ.get("PROVENANCE_DEBUG"):
            raise
        print(f"provenance: internal error: {type(exc).__name__}: {one_line(str(exc))} "
              "(set PROVENANCE_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


def entry() -> None:
    """The `provenance` executable: `main`, then leave without tearing the interpreter down.

    By the time `main` returns, every output is written, flushed and closed (outfile renames finished files
    into place), so what is left is interpreter finalisation: freeing every module and torch's C++ state,
    0.5-0.8 s of a 4 s comparison on 2 cores. Exit handlers still run (they remove temporary folders and stop
    worker pools); only that teardown is skipped. The plain path (`PROVENANCE_PLAIN=1`) exits normally.
    """
    code = main()
    if not fastpath.enabled():
        sys.exit(code)
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)  # CPython's own; absent elsewhere: exit normally
    if run_exit_handlers is None:
        sys.exit(code)
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken pipe: nothing more to say
            stream.flush()
    os._exit(code)


def one_line(text: str) -> str:
    """Collapse whitespace so a message is one line on stderr."""
    return " ".join(text.split())


if __name__ == "__main__":
    entry()
