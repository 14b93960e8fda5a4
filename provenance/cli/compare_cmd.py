"""`provenance compare BASE CANDIDATE`: the verdict, the strongest evidence, the layer map."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from provenance.cli.output import check_writable, write_atomic
from provenance.comparison import (
    AVAILABLE_SIGNALS,
    CompareOptions,
    CompareResult,
    compare,
)
from provenance.errors import InvalidParameterError

LABELS = ("identical", "derived", "independent", "inconclusive")


def register(sub: Any) -> None:
    p = sub.add_parser("compare", help="was CANDIDATE built from BASE? (weight and tokenizer evidence with p-values)")
    p.add_argument("base")
    p.add_argument("candidate")
    p.add_argument("--signals", default=None,
                   help=f"comma-separated subset of {','.join(AVAILABLE_SIGNALS)} (default: weights,tokenizer,config; "
                   "activations run both models and are asked for explicitly; a tokenizer file or a directory "
                   "without weights gets the tokenizer signal only)")
    p.add_argument("--json", metavar="F", help="write the result (provenance.compare/1) to F")
    p.add_argument("--html", metavar="F", help="write a self-contained HTML report to F")
    p.add_argument("--md", metavar="F", help="write a Markdown report to F")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--probes", type=int, default=64, metavar="N",
                   help="probe texts the activation signal runs through both models (8-320; default 64)")
    p.add_argument("--batch-size", type=int, default=8, help="texts per forward pass (activations)")
    p.add_argument("--no-hash", action="store_true", help="skip the sha256 of every file")
    p.add_argument("--fail-on", metavar="LABELS", help="exit 3 when the verdict is one of these "
                   "(comma-separated; 'derived' also matches 'identical')")
    p.set_defaults(run=run)


def fail_labels(text: str | None, command: str = "provenance compare") -> set[str]:
    if not text:
        return set()
    labels = {t.strip() for t in text.split(",") if t.strip()}
    bad = labels - set(LABELS)
    if bad:
        raise InvalidParameterError("--fail-on", command, f"labels from {LABELS}", sorted(bad)[0])
    return labels | ({"identical"} if "derived" in labels else set())


def run(args: argparse.Namespace) -> int:
    fail_on = fail_labels(args.fail_on)
    check_writable(args.json, args.html, args.md)
    signals = None if args.signals is None else tuple(s.strip() for s in args.signals.split(",") if s.strip())
    opts = CompareOptions(signals=signals, device=args.device, seed=args.seed, probe_texts=args.probes,
                          batch_size=args.batch_size, hashes=not args.no_hash, progress=True)
    result = compare(args.base, args.candidate, opts)
    write_outputs(result, json_path=args.json, html_path=args.html, md_path=args.md)
    print_summary(result, sys.stdout)
    return 3 if result.verdict.label in fail_on else 0


def write_outputs(result: CompareResult, *, json_path: str | None = None, html_path: str | None = None,
                  md_path: str | None = None) -> None:
    """Render every asked-for output first, then write each atomically (no half-written report set)."""
    check_writable(json_path, html_path, md_path)
    outputs = []
    if json_path:
        outputs.append((json_path, result.to_json()))
    if html_path:
        outputs.append((html_path, result.to_html()))
    if md_path:
        outputs.append((md_path, result.to_markdown()))
    for path, text in outputs:
        write_atomic(path, text)


def print_summary(r: CompareResult, out: TextIO) -> None:
    v = r.verdict
    out.write(f"verdict     {v.label.upper()}" + (f" — {v.relation}" if v.relation else "") + "\n")
    p = "n/a" if v.p_value is None else f"{v.p_value:.3g}"
    out.write(f"            confidence {v.confidence:.3f}, p-value {p}\n            {v.explanation}\n\nevidence\n")
    for e in r.evidence:
        stat = "" if e.statistic is None else f" [{e.statistic:.4g}]"
        out.write(f"  {e.signal:<8}{stat} {e.finding}\n")
    if r.layer_map:
        out.write("\nlayer map (base -> candidate: similarity)\n  ")
        out.write("  ".join(f"{a}->{b}:{s:.2f}" for a, b, s in r.layer_map) + "\n")
