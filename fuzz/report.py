"""The table a run prints: per target, inputs, rate, findings by kind, peak RSS."""

from __future__ import annotations

from fuzz.runner import Summary

_MIB = 2**20


def table(summary: Summary, workers: int) -> str:
    """A plain-text table; inputs/s is per worker (inputs over the worker time they took)."""
    head = ("target", "inputs", "inputs/s", "crashes", "hangs", "over-budget", "peak RSS MiB", "growth MiB",
            "slowest s")
    rows = []
    for name, s in summary.stats.items():
        rate = s.inputs / s.seconds if s.seconds else 0.0
        rows.append((name, f"{s.inputs:,}", f"{rate:,.0f}", str(s.crashes), str(s.hangs), str(s.over),
                     f"{s.peak / _MIB:,.0f}", f"{s.growth / _MIB:,.1f}", f"{s.slowest:.2f}"))
    total = sum(s.inputs for s in summary.stats.values())
    rows.append(("all", f"{total:,}", f"{total / summary.wall if summary.wall else 0:,.0f} (wall, {workers} workers)",
                 str(sum(s.crashes for s in summary.stats.values())), str(sum(s.hangs for s in summary.stats.values())),
                 str(sum(s.over for s in summary.stats.values())),
                 f"{max((s.peak for s in summary.stats.values()), default=0) / _MIB:,.0f}", "", ""))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = "  ".join("-" * w for w in widths)
    def fmt(row: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    out = [fmt(head), line, *(fmt(r) for r in rows[:-1]), line, fmt(rows[-1]),
           f"wall time {summary.wall:,.0f} s; workers recycled for memory creep: {summary.recycled}"]
    if summary.findings:
        out.append("findings (deduplicated by target, kind, exception type, location):")
        for f in summary.findings:
            mark = {True: "confirmed", False: "NOT reproduced", None: "unconfirmed"}[f.confirmed]
            out.append(f"  {f.target} {f.kind} {f.type} at {f.where} x{f.hits} ({mark}): {f.message[:120]}")
            out.append(f"    {f.path}")
    for problem in summary.problems:
        out.append(f"HARNESS PROBLEM: {problem}")
    return "\n".join(out)
