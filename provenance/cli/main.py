"""`provenance` command line: parse, dispatch to one module per command, map errors to exit codes.

Exit status: 0 done; 2 bad input (one line on stderr, nothing written); 1 an internal error
(traceback only with PROVENANCE_DEBUG=1).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from provenance import __version__
from provenance.cli import (
    audit_cmd,
    compare_cmd,
    fingerprint_cmd,
    identify_cmd,
    inspect_cmd,
    report_cmd,
)
from provenance.errors import ProvenanceError

COMMANDS = (inspect_cmd, compare_cmd, fingerprint_cmd, identify_cmd, audit_cmd, report_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="provenance",
                                     description="Was this large language model built from another one?")
    parser.add_argument("--version", action="version", version=f"provenance {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except ProvenanceError as exc:
        print(f"provenance: error: {_one_line(str(exc))}", file=sys.stderr)
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
        print(f"provenance: internal error: {type(exc).__name__}: {_one_line(str(exc))} "
              "(set PROVENANCE_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
