"""Markdown rendering of a compare result (a dict in the `provenance.compare/1` shape)."""

from __future__ import annotations

from typing import Any


def _fmt(x: Any) -> str:
    """A table cell: numbers rounded, text on one line with pipes escaped (names come from untrusted files)."""
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.3g}" if abs(x) < 1e-3 and x != 0 else f"{x:.4f}".rstrip("0").rstrip(".")
    return " ".join(str(x).split()).replace("|", "\\|")


def render_markdown(result: dict[str, Any]) -> str:
    """Verdict, models, evidence table and layer map, ready to paste into an issue."""
    v, a, b = result["verdict"], result["base"], result["candidate"]
    lines = [f"# Provenance: {b['spec']} vs {a['spec']}", "",
             f"**Verdict: {v['label']}**" + (f" — {v['relation']}" if v.get("relation") else ""),
             f"(confidence {_fmt(v['confidence'])}, p-value {_fmt(v['p_value'])})", "", v.get("explanation", ""), "",
             "| | base | candidate |", "| --- | --- | --- |"]
    for key in ("format", "architecture", "definition", "layers", "parameters"):
        lines.append(f"| {key} | {_fmt(a.get(key))} | {_fmt(b.get(key))} |")
    lines += ["", "## Evidence", "", "| signal | statistic | p-value | finding |", "| --- | --- | --- | --- |"]
    for e in result["evidence"]:
        lines.append(f"| {e['signal']} | {_fmt(e['statistic'])} | {_fmt(e['p_value'])} | {_fmt(e['finding'])} |")
    if result["layer_map"]:
        lines += ["", "## Layer map", "", "| base layer | candidate layer | similarity |", "| --- | --- | --- |"]
        lines += [f"| {x} | {y} | {_fmt(s)} |" for x, y, s in result["layer_map"]]
    env = result["environment"]
    lines += ["", "## Reproducibility", "",
              f"provenance {env['provenance']}, torch {env['torch']}, device {env['device']}, seed {env['seed']}, "
              f"{env['date']}."]
    for side, m in (("base", a), ("candidate", b)):
        for name, digest in (m.get("sha256") or {}).items():
            lines.append(f"- {side} `{name}` sha256 `{digest}`")
    return "\n".join(lines) + "\n"
