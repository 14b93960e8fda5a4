"""`provenance audit MANIFEST --db FILE`: many models, one lineage map, resumable."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from provenance.audit.executors import EXECUTORS
from provenance.audit.result import AuditResult
from provenance.audit.runner import COMPARE, AuditOptions, audit
from provenance.cli.compare_cmd import LABELS, fail_labels
from provenance.cli.output import check_writable, write_atomic


def register(sub: Any) -> None:
    p = sub.add_parser("audit", help="audit many models: fingerprint each once, screen every pair, compare the "
                       "flagged ones, draw the lineage (resumable)")
    p.add_argument("manifest", help="YAML or CSV: name, spec, optional role (base|candidate) and facts")
    p.add_argument("--db", default="audit.sqlite", metavar="FILE",
                   help="results store (SQLite, created or resumed; default audit.sqlite)")
    p.add_argument("--html", metavar="DIR", help="write index.html (lineage graph, tables) and one report per pair")
    p.add_argument("--json", metavar="F", help="write the result (provenance.audit/1) to F")
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
                   "(comma-separated; 'derived' also matches 'identical')")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    fail_on = fail_labels(args.fail_on, "provenance audit")
    check_writable(args.json)
    opts = AuditOptions(executor=args.executor, workers=args.workers, address=args.address, hashes=not args.no_hash,
                        device=args.device, seed=args.seed, compare=args.compare, progress=True)
    result = audit(args.manifest, args.db, opts, html=args.html)
    if args.json:
        write_atomic(args.json, result.to_json())
    print_summary(result, sys.stdout)
    hit = any(p.label in fail_on and p.related for p in result.pairs)
    return 3 if hit else 0


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
