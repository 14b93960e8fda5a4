"""The audit's HTML: an index page (summary, lineage graph, families, models, pairs, stages) and one
compare report per compared pair, all self-contained like the compare report.

Model names, specs, reasons and errors come from the manifest and the checkpoints, so every one
goes through `esc`; the only links are to the pair reports this module wrote, checked to be plain
relative paths; the page's Content-Security-Policy allows no script and no fetch.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from provenance.audit.executors import Runner, Task
from provenance.audit.graph import lineage_svg, multi_families
from provenance.audit.result import AuditModel, AuditPair, AuditResult
from provenance.outfile import write_atomic
from provenance.report.html import CSP
from provenance.report.html_parts import esc, num, table
from provenance.report.style import CSS

AUDIT_CSS = """
.prov .stats { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0 6px; }
.prov .stat { background: #f3f5f9; border-radius: 8px; padding: 8px 14px; min-width: 96px; color: #3a4354; }
.prov .stat b { display: block; font-size: 24px; font-weight: 700; color: #1d2330; }
.prov .stat.bad { background: #fdecec; } .prov .stat.bad b { color: #a31515; }
.prov .v { font-weight: 650; } .prov .v-identical, .prov .v-derived { color: #a31515; }
.prov .v-independent { color: #1f6b26; } .prov .v-inconclusive { color: #8a6100; }
.prov .scroll { overflow-x: auto; } .prov .scroll table { font-size: 13px; }
.prov a { color: #2a5db0; } .prov .singletons code { margin: 0 4px 4px 0; display: inline-block; }
.prov #families td:nth-child(8), .prov #pairs td:nth-child(7), .prov #models td:nth-child(8) code {
  white-space: nowrap; overflow-wrap: normal; }
"""
LABELS = ("identical", "derived", "independent", "inconclusive")
SLUG_CHARS = 60  # per model name in a pair report's file name
_RELATIVE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")


def render_index(result: AuditResult) -> str:
    """The audit's index page as one HTML document (deterministic: no dates, stable SVG ids)."""
    body = "\n".join(part for part in (
        _header(result), _summary(result), _lineage(result), _families(result), _models(result.models),
        _pairs(result.pairs), _stages(result.stages)) if part)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>Provenance audit: {esc(result.manifest)}</title>\n<style>{CSS}{AUDIT_CSS}</style>\n</head>\n"
            f"<body>\n<main class=\"prov\">\n{body}\n</main>\n</body>\n</html>\n")


def write_reports(result: AuditResult, directory: str | Path, run: Runner | None = None) -> list[Path]:
    """Write `pairs/<slug>.html` for every compared pair with a result, then `index.html` linking them.

    Sets each pair's `report` to its page's relative path (None where no page was written). Each file
    is written atomically; the index comes last, so it never links a page that is not there yet.
    `run` (an executor's `run`) renders the pages in its workers: most of a page's time is its matplotlib
    figures, ~0.9 s a pair. The pages are the same bytes either way.
    """
    from provenance.audit.tasks import report_task

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = pair_slugs(result.pairs)
    todo: list[Task] = []
    for i, pair in enumerate(result.pairs):
        pair.report = None
        if pair.compared and pair.result is not None:
            todo.append((report_task, (i, pair.result, f"the result of {pair.base} vs {pair.candidate}")))
    pages = run(todo) if run is not None and len(todo) > 1 else (fn(*args) for fn, args in todo)
    written: dict[int, Path] = {}
    for page in pages:  # in completion order: each page is written as soon as it is rendered
        i = page["index"]
        (directory / "pairs").mkdir(exist_ok=True)
        write_atomic(directory / "pairs" / f"{names[i]}.html", page["html"])
        result.pairs[i].report = f"pairs/{names[i]}.html"
        written[i] = directory / result.pairs[i].report
    write_atomic(directory / "index.html", render_index(result))
    return [written[i] for i in sorted(written)] + [directory / "index.html"]


def slug(name: str, limit: int = SLUG_CHARS) -> str:
    """A file-name-safe form of a model name: lowercase [a-z0-9._-], no leading dot, at most `limit` long.

    >>> slug("Org/Llama-3 8B <script>"), slug("../.."), slug("模型"), len(slug("x" * 500))
    ('org-llama-3-8b-script', 'model', 'model', 60)
    """
    s = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9._-]+", "-", name.lower())).strip("-.")
    return s[:limit].strip("-.") or "model"


def pair_slugs(pairs: list[AuditPair]) -> list[str]:
    """One distinct file stem per pair, `base__candidate`; a repeat gets -2, -3, ... in the pairs' order.

    >>> pair_slugs([AuditPair("A", "b", {}, True), AuditPair("a", "B", {}, True), AuditPair("a", "b", {}, True)])
    ['a__b', 'a__b-2', 'a__b-3']
    """
    seen: set[str] = set()
    out = []
    for p in pairs:
        stem = candidate = f"{slug(p.base)}__{slug(p.candidate)}"
        k = 1
        while candidate in seen:
            k += 1
            candidate = f"{stem}-{k}"
        seen.add(candidate)
        out.append(candidate)
    return out


def safe_href(path: Any) -> str | None:
    """`path` when it is a plain relative path inside the report directory, else None (never a scheme).

    >>> safe_href("pairs/a__b.html"), safe_href("javascript:alert(1)"), safe_href("../x.html"), safe_href("//e.x")
    ('pairs/a__b.html', None, None, None)
    """
    return path if isinstance(path, str) and _RELATIVE.fullmatch(path) else None


def human_bytes(n: Any) -> str:
    """Bytes for reading, in binary units.

    >>> human_bytes(0), human_bytes(1536), human_bytes(3 * 2**30), human_bytes(None)
    ('0 B', '1.5 KiB', '3.0 GiB', '—')
    """
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        return "—"
    value, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            break
        value /= 1024
    return f"{int(n)} B" if unit == "B" else f"{value:.1f} {unit}"


def _seconds(x: Any) -> str:
    return f"{x:.2f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "—"


def _header(r: AuditResult) -> str:
    return (f"<header><h1>Provenance audit</h1><p class=\"pair\"><span class=\"side\">manifest</span> "
            f"<code>{esc(r.manifest)}</code><br><span class=\"side\">database</span> <code>{esc(r.db)}</code></p>"
            f"<p class=\"muted\">run {esc(r.run_id)}</p></header>")


def _summary(r: AuditResult) -> str:
    errors = sum(1 for m in r.models if m.error)
    facts = [(len(r.models), "models"), (len(r.pairs), "pairs screened"),
             (sum(1 for p in r.pairs if p.compared), "pairs compared"),
             (len(multi_families(r.lineage)), "families of 2 or more"), (sum(1 for p in r.pairs if p.related),
                                                                         "related pairs")]
    tiles = [f"<div class=\"stat\"><b>{num(n)}</b>{esc(what)}</div>" for n, what in facts]
    if errors:
        tiles.append(f"<div class=\"stat bad\"><b>{num(errors)}</b>{'model' if errors == 1 else 'models'} "
                     "could not be read</div>")
    return f"<section id=\"summary\"><div class=\"stats\">{''.join(tiles)}</div></section>"


def _lineage(r: AuditResult) -> str:
    svg = lineage_svg(r.lineage)
    parts = ["<section id=\"lineage\"><h2>Lineage</h2>"]
    if svg is None:
        parts.append("<p>No two models are related by their weights.</p>")
    else:
        parts.append(f"<figure id=\"lineage-graph\" class=\"plot\">{svg}<figcaption>One box per family of related "
                     "models. Arrows run from parent to child where the evidence gives a direction; grey lines join "
                     "related models it could not order. Blue: origins (no parent in this audit). Long names are "
                     "cut; the families table gives every edge in full.</figcaption></figure>")
    alone = [f[0] for f in r.lineage.families if len(f) == 1]
    if alone:
        parts.append(f"<p class=\"singletons\">Related to no other model ({num(len(alone))}): "
                     + "".join(f"<code>{esc(m)}</code>" for m in alone) + "</p>")
    return "\n".join(parts) + "</section>"


def _families(r: AuditResult) -> str:
    families = multi_families(r.lineage)
    if not families:
        return ""
    family_of = {m: i for i, fam in enumerate(families) for m in fam}
    reports = {frozenset((p.base, p.candidate)): p.report for p in r.pairs}
    rows: list[list[Any]] = []
    for i, fam in enumerate(families):
        edges = [e for e in r.lineage.edges if family_of.get(e.parent) == i]
        head = [num(i + 1), esc(", ".join(fam))]
        for k, e in enumerate(edges or [None]):
            cells = ([esc(e.parent), esc(e.child), "→" if e.directed else "—", esc(e.reason), esc(e.relation or "—"),
                      esc(num(e.p_value)), _link(reports.get(frozenset((e.parent, e.child))))]
                     if e is not None else ["—"] * 7)
            rows.append((head if k == 0 else ["", ""]) + cells)
    head = ["family", "members", "parent", "child", "direction", "reason", "relation", "p-value", "report"]
    return ("<section id=\"families\"><h2>Families</h2><div class=\"scroll\">"
            + table(head, rows, raw_cols=frozenset(range(9))) + "</div></section>")


def _link(report: str | None) -> str:
    """A link to a pair report (already-escaped markup), or why there is none."""
    href = safe_href(report)
    if href is not None:
        return f"<a href=\"{esc(href)}\">report</a>"
    return "—" if report is None else f"<span class=\"muted\">{esc(report)} (not linked)</span>"


def _models(models: list[AuditModel]) -> str:
    def row(m: AuditModel) -> list[Any]:
        s = m.summary or {}
        tok = (s.get("tokenizer") or {}).get("size") if isinstance(s.get("tokenizer"), dict) else None
        digest = f"<code>{esc(m.fingerprint_sha256[:12])}</code>" if m.fingerprint_sha256 else "—"
        return [esc(x) for x in (m.name, m.spec, m.role or "—", s.get("architecture") or "—", num(s.get("layers")),
                                 num(s.get("parameters")), num(tok))] + [
            digest, esc(human_bytes(m.bytes_read)), esc(_seconds(m.seconds)), esc(m.error or "")]

    head = ["name", "spec", "role", "architecture", "layers", "parameters", "tokenizer", "fingerprint sha256",
            "bytes read", "seconds", "error"]
    return ("<section id=\"models\"><h2>Models</h2><div class=\"scroll\">"
            + table(head, [row(m) for m in models], raw_cols=frozenset(range(11))) + "</div></section>")


def _pairs(pairs: list[AuditPair]) -> str:
    compared = sorted((p for p in pairs if p.compared),
                      key=lambda p: (p.p_value is None, p.p_value if p.p_value is not None else 1.0, p.base,
                                     p.candidate))
    screened = [p for p in pairs if not p.compared]
    head = ["base", "candidate", "screen r", "jaccard", "verdict", "relation", "p-value", "strongest evidence",
            "report"]
    rows = [[esc(p.base), esc(p.candidate), esc(num(p.screen.get("weights_r"))), esc(num(p.screen.get("jaccard"))),
             _verdict(p.label), esc(p.relation or "—"), esc(num(p.p_value)), esc(p.strongest or "—"),
             _link(p.report)] for p in compared]
    parts = ["<section id=\"pairs\"><h2>Pairs</h2>", "<div class=\"scroll\">"
             + table(head, rows, raw_cols=frozenset(range(9))) + "</div>" if rows
             else "<p>No pair passed the screen.</p>"]
    if screened:
        out = [[p.base, p.candidate, num(p.screen.get("weights_r")), num(p.screen.get("jaccard")),
                num(p.screen.get("same_vocabulary")), p.screen.get("paired_by") or "—"] for p in screened]
        parts.append(f"<details id=\"screened-out\"><summary>{num(len(screened))} "
                     f"{'pair' if len(screened) == 1 else 'pairs'} screened out (nothing worth comparing)</summary>"
                     "<div class=\"scroll\">"
                     + table(["base", "candidate", "screen r", "jaccard", "same vocabulary", "paired by"], out)
                     + "</div></details>")
    return "\n".join(parts) + "</section>"


def _verdict(label: str | None) -> str:
    if label not in LABELS:
        return esc(label or "—")
    return f"<span class=\"v v-{label}\">{esc(label)}</span>"


def _stages(stages: dict[str, dict[str, Any]]) -> str:
    if not stages:
        return ""
    rows = [[name, _seconds(s.get("seconds")), human_bytes(s.get("bytes_read")), num(s.get("computed")),
             num(s.get("reused"))] for name, s in stages.items()]
    return ("<section id=\"stages\"><h2>Stages</h2>"
            + table(["stage", "seconds", "bytes read", "computed", "reused"], rows) + "</section>")
