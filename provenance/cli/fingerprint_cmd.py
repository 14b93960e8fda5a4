"""`provenance fingerprint MODEL -o FILE`: a compact, weight-free stand-in for later comparisons."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

from provenance.cli.output import check_writable
from provenance.fingerprint import Fingerprint, fingerprint, save


def register(sub: Any) -> None:
    p = sub.add_parser("fingerprint", help="write a fingerprint (a few MB) that compare and identify accept "
                       "in place of the model")
    p.add_argument("model", help="model (HF directory, weights file, cached model id), tokenizer file, or fingerprint")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write it (e.g. NAME.fingerprint)")
    p.add_argument("--name", help="the model's public name, recorded in the fingerprint")
    p.add_argument("--license", help="its license, recorded in the fingerprint")
    p.add_argument("--lineage", action="append", metavar="FACT", help="a public lineage fact (repeatable)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--no-hash", action="store_true", help="skip the sha256 of the model's files")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_writable(args.output)
    source = {k: v for k, v in (("name", args.name), ("license", args.license), ("lineage", args.lineage)) if v}
    fp = fingerprint(args.model, device=args.device, hashes=not args.no_hash, source=source or None,
                     progress=None)
    save(fp, args.output)
    print_summary(fp, args.output, sys.stdout)
    return 0


def print_summary(fp: Fingerprint, path: str, out: TextIO) -> None:
    s = fp.summary()
    size = os.path.getsize(path)
    out.write(f"fingerprint {path} ({size / 1e6:.2f} MB)\n")
    out.write(f"  of          {s['spec']} ({s['format']})\n")
    if fp.has_weights:
        out.write(f"  weights     {s['architecture'] or 'unnamed architecture'}, {s['layers']} layers, hidden "
                  f"{s['hidden']}, {s['parameters']:,} parameters; anchors "
                  + ", ".join(f"{n} by {mode}" for mode, n in s["anchors"].items()) + "\n")
    else:
        out.write("  weights     none (a tokenizer fingerprint)\n")
    tok = s["tokenizer"]
    out.write(f"  tokenizer   {tok['ordinary']:,} ordinary + {tok['specials']} special tokens ({tok['format']}), "
              f"digest {tok['digest'][:16]}\n" if tok else "  tokenizer   none found\n")
    for note in fp.meta.get("notes", []):
        out.write(f"  note        {note}\n")
