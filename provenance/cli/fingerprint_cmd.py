"""`provenance fingerprint MODEL -o FILE`: a compact, weight-free stand-in for later comparisons."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, TextIO

from provenance.cli.output import (
    add_progress,
    check_writable,
    is_stdout,
    refuse_missing_paths,
    summary_stream,
    write_output,
)
from provenance.errors import ProvenanceError

if TYPE_CHECKING:
    from provenance.fingerprint import Fingerprint


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model (HF directory, weights file, cached model id), tokenizer file, or fingerprint")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="where to write it (e.g. NAME.fingerprint; '-': standard output, the summary then goes "
                   "to stderr)")
    p.add_argument("--name", help="the model's public name, recorded in the fingerprint")
    p.add_argument("--license", help="its license, recorded in the fingerprint")
    p.add_argument("--lineage", action="append", metavar="FACT", help="a public lineage fact (repeatable)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--no-hash", action="store_true", help="skip the sha256 of the model's files")
    add_progress(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    refuse_missing_paths(args.model)
    from provenance.fingerprint import fingerprint
    from provenance.fingerprint.fileformat import to_bytes
    from provenance.progress import bar

    check_writable(args.output)
    if is_stdout(args.output) and sys.stdout.isatty():
        raise ProvenanceError("a fingerprint is binary: redirect standard output to a file or pipe, or pass -o FILE")
    source = {k: v for k, v in (("name", args.name), ("license", args.license), ("lineage", args.lineage)) if v}
    with bar(None, "fingerprinting", "tensor", args.progress) as b:
        fp = fingerprint(args.model, device=args.device, hashes=not args.no_hash, source=source or None,
                         progress=b.update)
    data = to_bytes(fp)
    write_output(args.output, data)
    print_summary(fp, "standard output" if is_stdout(args.output) else args.output, summary_stream(args.output),
                  size=len(data))
    return 0


def print_summary(fp: Fingerprint, path: str, out: TextIO, *, size: int | None = None) -> None:
    """What the fingerprint holds (`size`: its bytes, else the size of the file at `path`)."""
    s = fp.summary()
    size = os.path.getsize(path) if size is None else size
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
