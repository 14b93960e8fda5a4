"""`provenance audit MANIFEST --db FILE`: many models, one lineage map, resumable."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from provenance.audit.executors import EXECUTORS
from provenance.audit.options import COMPARE
from provenance.cli.compare_cmd import LABELS, fail_labels
from provenance.cli.main import one_line
from provenance.cli.output import (
    add_progress,
    check_writable,
    summary_stream,
    write_output,
)
from provenance.errors import ProvenanceError

if TYPE_CHECKING:
    from provenance.audit.result import AuditPair, AuditResult

MAX_REASONS = 10  # pairs named on stderr when --fail-on matches


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", help="YAML or CSV: name, spec, optional role (base|candidate) and facts")
    p.add_argument("--db", default="audit.sqlite", metavar="FILE",
                   help="results store (SQLite, created or resumed; default audit.sqlite)")
    p.add_argument("--html", metavar="DIR", help="write index.html (lineage graph, tables) and one report per pair")
    p.add_argument("--json", metavar="F", help="write the result (provenance.audit/1) to F ('-': standard output, "
                   "the summary then goes to stderr)")
    p.add_argument("--executor", choices=EXECUTORS, default="local", help="local worker processes or Ray")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="parallel tasks (default 1)")
    p.add_argument("--compare", choices=COMPARE, default="screened",
                   help="which pairs get the fingerprint comparison (default: those the screen flags)")
    p.add_argument("--device", default="auto", help="where fingerprinting runs: auto | cpu | cuda[:N]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-hash", action="store_true",
                   help="skip the sha256 of every model file (for ONNX and PyTorch files, one read less)")
    p.add_argument("--fail-on", metavar="LABELS", help=f"exit 3 when any pair's verdict is one of {LABELS} "
                   "(comma-separated; 'derived' also matches 'identical'); a model that cannot be read exits 2 "
                   "first")
    add_progress(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from provenance.audit.runner import AuditOptions, audit

    fail_on = fail_labels(args.fail_on, "provenance audit")
    check_writable(args.json)
    check_output_dir(args.html)
    opts = AuditOptions(executor=args.executor, workers=args.workers, address=args.address, hashes=not args.no_hash,
                        device=args.device, seed=args.seed, compare=args.compare, progress=args.progress)
    result = audit(args.manifest, args.db, opts, html=args.html)
    if args.json:
        write_output(args.json, result.to_json())
    print_summary(result, summary_stream(args.json))
    unread = [m for m in result.models if m.error]
    for m in unread:
        print(f"provenance: error: model {m.name!r} of {result.manifest} could not be read: {one_line(m.error or '')}",
              file=sys.stderr)
    hits = [p for p in result.pairs if p.label in fail_on and p.related]
    explain_fail_on(hits, args.fail_on, sys.stderr)
    return 2 if unread else 3 if hits else 0


def check_output_dir(path: str | None) -> None:
    """The report folder may be new, but its parent must exist (no folders made up to the root)."""
    if path is None:
        return
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise ProvenanceError(f"cannot write reports into {target}: it is not a directory")
    if not target.exists() and not target.absolute().parent.is_dir():
        raise ProvenanceError(f"cannot write reports into {target}: directory {target.absolute().parent} "
                              "does not exist")


def explain_fail_on(hits: list[AuditPair], labels: str | None, out: TextIO) -> None:
    """One line per pair that matched `--fail-on` (the first MAX_REASONS), so a CI log says why it failed."""
    from provenance.report.pvalues import p_phrase

    for p in hits[:MAX_REASONS]:
        pv = "" if p.p_value is None else f", {p_phrase(p.p_value)}"
        out.write(f"provenance: --fail-on {labels} matched {p.base} -> {p.candidate}: {p.label} "
                  f"({p.relation or 'relation not named'}{pv})\n")
    if len(hits) > MAX_REASONS:
        out.write(f"provenance: --fail-on {labels} matched {len(hits) - MAX_REASONS} more pairs "
                  "(see --json or the store)\n")


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def print_summary(r: AuditResult, out: TextIO) -> None:
    out.write(f"audit       {r.manifest} -> {r.db} (run {r.run_id})\n")
    out.write(f"{'stage':<12} {'seconds':>8} {'read':>10} {'computed':>9} {'reused':>7}\n")
    for name, s in r.stages.items():
        out.write(f"{name:<12} {s['seconds']:>8.2f} {_size(s['bytes_read']):>10} {s['computed']:>9} "
                  f"{s['reused']:>7}\n")
    errors = [m for m in r.models if m.error]
    for m in errors:
        out.write(f"not read    {m.name}: {m.error}\n")
    related = [p for p in r.pairs if p.related]
    out.write(f"\n{len(r.models)} models, {len(r.pairs)} pairs screened, {sum(p.compared for p in r.pairs)} compared, "
              f"{len(related)} related\n\nfamilies\n")
    for i, fam in enumerate(f for f in r.lineage.families if len(f) > 1):
        out.write(f"  {i + 1}. {', '.join(fam)}\n")
        for e in r.lineage.edges:
            if e.parent in fam:
                arrow = "->" if e.directed else "--"
                out.write(f"       {e.parent} {arrow} {e.child}: {e.reason}\n")
    alone = [f[0] for f in r.lineage.families if len(f) == 1]
    if alone:
        out.write(f"  unrelated to every other model: {', '.join(alone)}\n")
