"""`provenance inspect MODEL [--json F]`: format, architecture, canonical roles, tokenizer, hashes."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO

from provenance.cli import fingerprint_cmd
from provenance.cli.output import (
    check_writable,
    refuse_missing_paths,
    summary_stream,
    write_json,
)

if TYPE_CHECKING:
    from provenance.inspect import InspectResult


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="HF directory, weights file (.safetensors/.gguf/.onnx/.bin), cached model id or "
                   "fingerprint")
    p.add_argument("--json", metavar="F", help="also write the full result as JSON to F ('-': standard output, "
                   "the summary then goes to stderr)")
    p.add_argument("--all", action="store_true", help="list every role (default: globals and layer 0)")
    p.add_argument("--no-hash", action="store_true", help="skip the sha256 of every file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    refuse_missing_paths(args.model)
    from provenance.fingerprint import is_fingerprint_file
    from provenance.inspect import inspect_model

    check_writable(args.json)
    if is_fingerprint_file(args.model):
        return _inspect_fingerprint(args)
    result = inspect_model(args.model, hashes=not args.no_hash)
    if args.json:
        write_json(args.json, result.to_dict())
    print_summary(result, summary_stream(args.json), all_roles=args.all)
    return 0


def _inspect_fingerprint(args: argparse.Namespace) -> int:
    """A fingerprint file: what it was made from and what it keeps (its roles, config and statistics in --json)."""
    from provenance.fingerprint import load

    fp = load(args.model)
    if args.json:
        meta = {k: v for k, v in fp.meta.items() if k != "tensors"}
        write_json(args.json, {"schema": "provenance.fingerprint-info/1", "summary": fp.summary(), "meta": meta})
    fingerprint_cmd.print_summary(fp, args.model, summary_stream(args.json))
    return 0


def print_summary(r: InspectResult, out: TextIO, *, all_roles: bool = False) -> None:
    """Human-readable summary: header facts, then the role table."""
    lay = r.layout
    out.write(f"{r.spec}\n")
    out.write(f"  format        {r.format}  ({r.num_tensors} tensors: "
              f"{', '.join(f'{k} x{v}' for k, v in r.dtypes.items())})\n")
    out.write(f"  architecture  {r.architecture or 'unknown'} -> definition {r.definition or 'none'}\n")
    out.write(f"  roles         {r.roles_how}{' [some roles inferred]' if r.roles_inferred else ''}\n")
    out.write(f"  layers        {r.num_layers}  hidden {lay['hidden']}  heads {lay['heads']}  "
              f"kv heads {lay['kv_heads']}  head dim {lay['head_dim']}  mlp {lay['intermediate']}\n")
    out.write(f"  parameters    {r.parameters:,}\n")
    tok = r.tokenizer
    emb = tok.get("embedded")
    tok_text = (", ".join(tok["files"]) if tok["files"] else "") + (
        f"{'; ' if tok['files'] else ''}embedded {emb['model']} vocabulary, {emb['tokens']} tokens" if emb else "")
    out.write(f"  tokenizer     {tok_text or 'not found'}\n")
    canon = tok.get("canonical")
    if canon and "error" in canon:
        out.write(f"                unreadable: {canon['error']}\n")
    elif canon:
        out.write(f"                {canon['ordinary']:,} ordinary + {canon['specials']} special tokens "
                  f"({canon['model']}, read from {canon['format']}); digest {canon['digest'][:16]}\n")
    for name, digest in r.sha256.items():
        out.write(f"  sha256        {digest}  {name}\n")
    out.write("\n")
    _role_table(r, out, all_roles)
    for title, items in (("unmapped tensors", [f"{u['name']} {u['shape']} {u['dtype']}" for u in r.unmapped]),
                         ("missing roles", r.missing), ("ignored buffers", r.ignored), ("notes", r.notes)):
        if items:
            out.write(f"\n{title} ({len(items)}):\n")
            for item in items[:40]:
                out.write(f"  {item}\n")
            if len(items) > 40:
                out.write(f"  ... {len(items) - 40} more (see --json)\n")


def _role_table(r: InspectResult, out: TextIO, all_roles: bool) -> None:
    first = next((x.role.split(".")[1] for x in r.roles if x.role.startswith("layers.")), None)
    rows = [x for x in r.roles if all_roles or not x.role.startswith("layers.") or x.role.split(".")[1] == first]
    width = max((len(x.role) for x in rows), default=4)
    for x in rows:
        extra = " ".join(filter(None, [f"tied to {x.tied_to}" if x.tied_to else "", x.part or "",
                                       "inferred" if x.inferred else ""]))
        shape = "x".join(map(str, x.shape))
        out.write(f"  {x.role:<{width}}  {shape:>14}  {x.dtype:<6} {x.name}{'  (' + extra + ')' if extra else ''}\n")
    if not all_roles and r.num_layers > 1:
        out.write(f"  ... and the same roles for the other {r.num_layers - 1} layers (--all lists them)\n")

