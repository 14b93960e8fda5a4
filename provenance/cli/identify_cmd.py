"""`provenance identify MODEL [--registry DIR] [--top K]`: the most likely base(s) among known fingerprints."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO

from provenance.cli.output import (
    add_progress,
    check_writable,
    refuse_missing_paths,
    summary_stream,
    write_output,
)
from provenance.identify import SHORTLIST

if TYPE_CHECKING:
    from provenance.identify import IdentifyResult


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model, tokenizer file or fingerprint")
    p.add_argument("--registry", metavar="DIR", default=None,
                   help="directory of .fingerprint files (default: $PROVENANCE_REGISTRY, else the registry "
                   "installed with provenance)")
    p.add_argument("--top", type=int, default=5, metavar="K", help="candidates to list (default 5)")
    p.add_argument("--shortlist", type=int, default=SHORTLIST, metavar="N",
                   help=f"entries per screen compared in full (default {SHORTLIST}; entries the screen flags "
                   "are always compared)")
    p.add_argument("--json", metavar="F", help="write the result (provenance.identify/1) to F ('-': standard "
                   "output, the summary then goes to stderr)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-hash", action="store_true", help="skip the sha256 of the model's files")
    add_progress(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    refuse_missing_paths(args.model)
    from provenance.identify import identify

    check_writable(args.json)
    result = identify(args.model, registry=args.registry, top=args.top, shortlist=args.shortlist,
                      device=args.device, seed=args.seed, hashes=not args.no_hash, progress=args.progress)
    if args.json:
        write_output(args.json, result.to_json())
    print_summary(result, summary_stream(args.json))
    return 0


def _p(p: float | None, *, prose: bool = False) -> str:
    """A p-value for the terminal (a table cell, or 'p = …' in prose): at the tests' floor it is a bound."""
    from provenance.report.pvalues import at_floor, floor_text, p_phrase

    if prose:
        return p_phrase(p)
    return "n/a" if p is None else floor_text(p) if at_floor(p) else f"{p:.3g}"


def print_summary(r: IdentifyResult, out: TextIO) -> None:
    t = r.timings
    out.write(f"query       {r.query['spec']}\n")
    out.write(f"registry    {r.registry}: {r.scanned} entries screened in {t['scan'] + t['screen']:.2f} s, "
              f"{r.shortlisted} compared in full in {t['compare']:.2f} s (query fingerprint {t['query']:.2f} s)\n\n")
    width = max([len(c.name) for c in r.candidates] + [5])
    out.write(f"{'rank':<5} {'entry':<{width}}  {'verdict':<12} {'p-value':<9} evidence\n")
    for c in r.candidates:
        out.write(f"{c.rank:<5} {c.name:<{width}}  {c.label.upper():<12} {_p(c.p_value):<9} "
                  f"{'+'.join(c.decided_by) or '-'}: {c.relation or '-'}\n")
        out.write(f"{'':<5} {'':<{width}}  {c.strongest}\n")
    out.write("\n")
    m = r.match
    if m is not None:
        out.write(f"most likely base: {m.name} ({m.label}, {_p(m.p_value, prose=True)}, {m.relation})\n")
    elif r.query.get("layers"):
        out.write("no confident match: no registry entry's weights are related to this model's\n")
    for c in r.tokenizer_matches:
        out.write(f"related tokenizer: {c.name} ({c.relation}, {_p(c.p_value, prose=True)})"
                  + (" — this alone does not make it the base\n" if r.query.get("layers") else "\n"))
    if not r.query.get("layers") and not r.tokenizer_matches:
        out.write("no confident match: no registry tokenizer is related to this one\n")
