"""`provenance report RESULT.json [--html F] [--md F]`: re-render a saved comparison."""

from __future__ import annotations

import argparse

from provenance.cli.compare_cmd import print_summary, write_outputs
from provenance.cli.output import check_writable, summary_stream


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("result", help="a provenance.compare/1 JSON file")
    p.add_argument("--html", metavar="F", help="write a self-contained HTML report to F ('-': standard output)")
    p.add_argument("--md", metavar="F", help="write a Markdown report to F ('-': standard output)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from provenance.result import CompareResult

    check_writable(args.html, args.md)
    result = CompareResult.load(args.result)  # validated against the schema: a clear error, exit 2
    write_outputs(result, html_path=args.html, md_path=args.md)
    print_summary(result, summary_stream(args.html, args.md))
    return 0
