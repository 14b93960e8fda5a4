"""`python -m fuzz run|replay|seeds|targets`: see fuzz/README.md."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from fuzz import seeds as seed_store
from fuzz.checks import FINDINGS
from fuzz.findings import DEFAULT_DIR
from fuzz.targets import CANARIES, TARGETS


def _targets(value: str) -> list[str]:
    names = list(TARGETS) if value == "all" else [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in TARGETS and n not in CANARIES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown target {unknown[0]!r}; one of: all, {', '.join(TARGETS)}")
    return names


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fuzz", description="Fuzz every reader of untrusted files.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="fuzz targets with mutated seeds")
    r.add_argument("--target", type=_targets, default=list(TARGETS), help="a target, a comma list, or all")
    r.add_argument("--inputs", type=int, default=None, help="inputs per target (default 1000 without --seconds)")
    r.add_argument("--seconds", type=float, default=None, help="stop handing out inputs after this long")
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--seed", type=int, default=0, help="the run's inputs are a function of this seed")
    r.add_argument("--timeout", type=float, default=10.0, help="seconds one input may take before it is a hang")
    r.add_argument("--batch", type=int, default=20, help="inputs per request to a worker")
    r.add_argument("--findings", type=Path, default=DEFAULT_DIR, help="where findings are written")
    r.add_argument("--seeds-dir", type=Path, default=seed_store.DEFAULT_DIR)
    r.add_argument("--no-confirm", action="store_true", help="do not replay findings in fresh workers")
    r.add_argument("--progress", type=float, default=60.0, help="seconds between progress lines (0: none)")
    r.add_argument("--first", type=int, default=0, help="index of each target's first input (resume, or split a run)")
    r.add_argument("--summary", type=Path, default=None, help="JSON file kept up to date with the counters")
    q = sub.add_parser("replay", help="run files through their target in a fresh worker")
    q.add_argument("files", nargs="+", type=Path)
    q.add_argument("--target", default=None, help="default: the folder name (findings/<target>/, corpus/<target>/)")
    q.add_argument("--timeout", type=float, default=10.0)
    q.add_argument("--seeds-dir", type=Path, default=seed_store.DEFAULT_DIR)
    sub.add_parser("seeds", help="build the seed cache and list it")
    sub.add_parser("targets", help="list the targets")
    return p


def _run(a: argparse.Namespace) -> int:
    from fuzz.report import table
    from fuzz.runner import Options, run

    inputs = a.inputs if a.inputs is not None or a.seconds is not None else 1000
    summary = run(Options(a.target, inputs, a.seconds, a.workers, a.seed, a.timeout, a.batch, a.findings,
                          a.seeds_dir, not a.no_confirm, a.progress, a.first, a.summary))
    print(table(summary, a.workers))
    return 1 if summary.findings or summary.problems else 0


def _replay(a: argparse.Namespace) -> int:
    from fuzz.runner import replay_file

    seeds_dir = seed_store.ensure(a.seeds_dir)
    bad = 0
    with tempfile.TemporaryDirectory(prefix="provenance-replay-") as tmp:
        for n, path in enumerate(a.files):
            target = a.target or path.resolve().parent.name
            if target not in TARGETS and target not in CANARIES:
                print(f"{path}: cannot tell the target from its folder; pass --target", file=sys.stderr)
                return 2
            m = replay_file(seeds_dir, 0, target, path, a.timeout, Path(tmp) / str(n))
            bad += m.get("kind") in FINDINGS
            where = f" at {m['where']}" if m.get("where") else ""
            detail = f" {m.get('type', '')}{where}: {m.get('message', '')}" if m.get("type") else ""
            print(f"{path}: {m.get('kind')}{detail}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run it; the exit status is 1 when something was found."""
    a = _parser().parse_args(argv)
    if a.command == "run":
        return _run(a)
    if a.command == "replay":
        return _replay(a)
    if a.command == "seeds":
        folder = seed_store.ensure()
        for target in TARGETS:
            print(target, {name: len(data) for name, data in seed_store.load(folder, target).items()})
        return 0
    for name, t in TARGETS.items():
        print(f"{name:18} {t.filename}")
    print(f"harness self-test targets (never in 'all'): {', '.join(CANARIES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
