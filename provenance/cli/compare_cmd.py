"""`provenance compare BASE CANDIDATE`: the verdict, the strongest evidence, the layer map."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

from provenance.cli.output import (
    add_progress,
    check_writable,
    refuse_missing_paths,
    summary_stream,
    write_output,
)
from provenance.errors import InvalidParameterError

if TYPE_CHECKING:
    from provenance.result import CompareResult

LABELS = ("identical", "derived", "independent", "inconclusive")
SPECS = ("a Hugging Face model directory, a weights file (.safetensors, .gguf, .onnx, .bin/.pt), a model id in the "
         "offline HF cache (HF_HOME), a .fingerprint file, or a tokenizer alone (tokenizer.json, tokenizer.model, "
         "*.tiktoken, vocab.txt, ...; the tokenizer signal only)")


def register(p: argparse.ArgumentParser) -> None:
    # light imports: signal modules import their machinery when they measure
    from provenance.options import OUTPUT_APIS
    from provenance.signals import registry

    signals, defaults = registry.names(), registry.defaults()
    p.add_argument("base", metavar="BASE", help=f"the original model, which CANDIDATE may have been built from: {SPECS}")
    p.add_argument("candidate", metavar="CANDIDATE", help="the model under suspicion: the same kinds of spec as BASE")
    p.add_argument("--signals", default=None,
                   help=f"comma-separated subset of {','.join(signals)} (default: {','.join(defaults)}; the others "
                   "run both models or need more than files and are asked for explicitly; a tokenizer file or a "
                   "directory without weights gets the tokenizer signal only)")
    p.add_argument("--json", metavar="F", help="write the result (provenance.compare/1) to F ('-': standard output, "
                   "the summary then goes to stderr)")
    p.add_argument("--html", metavar="F", help="write a self-contained HTML report to F ('-': standard output)")
    p.add_argument("--md", metavar="F", help="write a Markdown report to F ('-': standard output)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--probes", type=int, default=64, metavar="N",
                   help="probe texts the activation signal runs through both models (8-320; default 64)")
    p.add_argument("--batch-size", type=int, default=8, help="texts per forward pass (activations)")
    p.add_argument("--max-queries", type=int, default=200, metavar="N",
                   help="requests the outputs signal may send to an endpoint (1-10000; default 200)")
    p.add_argument("--outputs-api", default="completions", choices=OUTPUT_APIS,
                   help="which endpoint API the outputs signal asks (default completions; chat for chat-only APIs)")
    p.add_argument("--response-cache", metavar="F", help="JSON-lines file of the endpoint's answers, reused by "
                   "reruns (default: ~/.cache/provenance/responses/<endpoint digest>.jsonl)")
    p.add_argument("--offline", action="store_true", help="re-score from the response cache without sending "
                   "a request (outputs signal)")
    p.add_argument("--no-hash", action="store_true", help="skip the sha256 of every file")
    p.add_argument("--fail-on", metavar="LABELS", help="exit 3 when the verdict is one of these "
                   "(comma-separated; 'derived' also matches 'identical')")
    add_progress(p)
    p.set_defaults(run=run)


def fail_labels(text: str | None, command: str = "provenance compare") -> set[str]:
    """The labels `--fail-on` names ('derived' also matches 'identical'); exit 2 on an unknown one."""
    if not text:
        return set()
    labels = {t.strip() for t in text.split(",") if t.strip()}
    bad = labels - set(LABELS)
    if bad:
        raise InvalidParameterError("--fail-on", command, f"labels from {LABELS}", sorted(bad)[0])
    return labels | ({"identical"} if "derived" in labels else set())


def run(args: argparse.Namespace) -> int:
    refuse_missing_paths(args.base, args.candidate)
    from provenance.comparison import CompareOptions, compare

    fail_on = fail_labels(args.fail_on)
    check_writable(args.json, args.html, args.md)
    signals = None if args.signals is None else tuple(s.strip() for s in args.signals.split(",") if s.strip())
    opts = CompareOptions(signals=signals, device=args.device, seed=args.seed, probe_texts=args.probes,
                          batch_size=args.batch_size, hashes=not args.no_hash, progress=args.progress,
                          max_queries=args.max_queries, outputs_api=args.outputs_api,
                          response_cache=args.response_cache, offline=args.offline)
    result = compare(args.base, args.candidate, opts)
    write_outputs(result, json_path=args.json, html_path=args.html, md_path=args.md)
    print_summary(result, summary_stream(args.json, args.html, args.md))
    label = result.verdict.label
    if label not in fail_on:
        return 0
    print(f"provenance: --fail-on {args.fail_on} matched: the verdict is {label} (exit 3)", file=sys.stderr)
    return 3


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
        write_output(path, text)


def print_summary(r: CompareResult, out: TextIO) -> None:
    v = r.verdict
    out.write(f"verdict     {v.label.upper()}" + (f" — {v.relation}" if v.relation else "") + "\n")
    from provenance.report.pvalues import at_floor, floor_text

    p = "n/a" if v.p_value is None else floor_text(v.p_value) if at_floor(v.p_value) else f"{v.p_value:.3g}"
    out.write(f"            confidence {v.confidence:.3f}, p-value {p}\n            {v.explanation}\n\nevidence\n")
    for e in r.evidence:
        stat = "" if e.statistic is None else f" [{e.statistic:.4g}]"
        out.write(f"  {e.signal:<8}{stat} {e.finding}\n")
    if r.layer_map:
        out.write("\nlayer map (base -> candidate: similarity)\n  ")
        out.write("  ".join(f"{a}->{b}:{s:.2f}" for a, b, s in r.layer_map) + "\n")
