"""Self-contained HTML report of a result dict: no script, no network, plots as inline SVG.

Everything shown comes from untrusted files, so every string goes through `esc` (HTML
escaping plus visible control characters), and the page's Content-Security-Policy forbids
scripts and any fetch: an escaping mistake still could not run code or phone home.
"""

from __future__ import annotations

from typing import Any

from provenance.aggregate import NUMBERS, combining
from provenance.report import blocks as B
from provenance.report import sections
from provenance.report.figures import cka_heatmap, to_svg, weight_heatmap
from provenance.report.html_parts import esc, kv_table, num, table
from provenance.report.style import CSS
from provenance.report.words import details_text, words

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def render_html(result: dict[str, Any]) -> str:
    """The full report as one HTML document."""
    a, b = result["base"], result["candidate"]
    body = "\n".join(part for part in (
        _header(result), _verdict(result), _signals(result), _models(a, b), _evidence(result),
        _signal_sections(result), _reproducibility(result)) if part)
    title = f"Provenance: {esc(b['spec'])} vs {esc(a['spec'])}"
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main class=\"prov\">\n"
            f"{body}\n</main>\n</body>\n</html>\n")


def render_summary(result: dict[str, Any]) -> str:
    """A fragment for Jupyter: verdict, signals, evidence and the main heatmap (styles scoped to .prov)."""
    fig = weight_heatmap(result) or cka_heatmap(result)
    plot = f"<figure class=\"plot\">{to_svg(fig, 'summary')}</figure>" if fig is not None else ""
    parts = (_verdict(result), _signals(result), _evidence(result, details=False), plot)
    return f"<style>{CSS}</style><div class=\"prov\">{''.join(p for p in parts if p)}</div>"


def _header(r: dict[str, Any]) -> str:
    return (f"<header><h1>Provenance report</h1><p class=\"pair\"><span class=\"side\">candidate</span> "
            f"<code>{esc(r['candidate']['spec'])}</code><br><span class=\"side\">base</span> "
            f"<code>{esc(r['base']['spec'])}</code></p>"
            f"<p class=\"muted\">{esc(r['environment'].get('date', ''))} · provenance "
            f"{esc(r['environment'].get('provenance', ''))}</p></header>")


def _verdict(r: dict[str, Any]) -> str:
    v = r["verdict"]
    label = v["label"] if v["label"] in ("identical", "derived", "independent", "inconclusive") else "inconclusive"
    rel = f"<span class=\"relation\">{esc(v['relation'])}</span>" if v.get("relation") else ""
    decided = ", ".join(esc(s) for s in v.get("decided_by") or []) or "no calibrated test"
    out = [f"<section id=\"verdict\" class=\"verdict verdict-{label}\">",
           f"<div class=\"label\">{esc(label.upper())}</div>{rel}",
           f"<p class=\"figures\">confidence {num(v['confidence'])} · p-value {esc(num(v['p_value']))} · "
           f"decided by {decided}</p>",
           f"<p class=\"explanation\">{esc(v['explanation'])}</p>",
           f"<p class=\"muted\">{esc(NUMBERS)}</p>"]
    if v.get("disagreements"):
        out.append("<div class=\"disagreements\"><h3>Signals disagree</h3><ul>"
                   + "".join(f"<li>{esc(d)}</li>" for d in v["disagreements"]) + "</ul></div>")
    return "\n".join(out) + "</section>"


def _signals(r: dict[str, Any]) -> str:
    rows = [[s["signal"], s["label"] or "—", s.get("relation"), num(s["p_value"]), s["role"], s["finding"]]
            for s in r["verdict"].get("signals") or []]
    if not rows:
        return ""
    return ("<section id=\"signals\"><h2>Signals</h2>"
            + table(["signal", "reading", "relation", "p-value", "role", "finding"], rows)
            + "</section>")


def _models(a: dict[str, Any], b: dict[str, Any]) -> str:
    def tok(m: dict[str, Any]) -> str:
        t = m.get("tokenizer")
        if not t:
            return "—"
        return f"{t.get('format')} · {t.get('size', 0):,} tokens · {str(t.get('digest', ''))[:12]}"

    rows = [[words(key), _plain(a.get(key)), _plain(b.get(key))]
            for key in ("spec", "format", "architecture", "definition", "roles_inferred", "layers", "parameters")]
    rows += [["dtypes", _dtypes(a), _dtypes(b)], ["tokenizer", tok(a), tok(b)]]
    return "<section id=\"models\"><h2>Models</h2>" + table(["", "base", "candidate"], rows) + "</section>"


def _plain(x: Any) -> str:
    return "—" if x is None else f"{x:,}" if isinstance(x, int) and not isinstance(x, bool) else str(x)


def _dtypes(m: dict[str, Any]) -> str:
    return ", ".join(f"{k} ×{v}" for k, v in (m.get("dtypes") or {}).items()) or "—"


def _evidence(r: dict[str, Any], details: bool = True) -> str:
    head = ["signal", "kind", "statistic", "p-value", "finding"]
    rows = []
    for e in r["evidence"]:
        finding = esc(e["finding"])
        if details and e.get("details"):
            finding += (f"<details><summary>details</summary><pre>{esc(details_text(e['details']), multiline=True)}"
                        "</pre></details>")
        rows.append([e["signal"], e["kind"], num(e["statistic"]), num(e["p_value"]), finding])
    return ("<section id=\"evidence\"><h2>Evidence</h2>" + table(head, rows, raw_cols={4})
            + "</section>")


def _figure(fig: Any, ident: str, caption: str) -> str:
    if fig is None:
        return ""
    return (f"<figure id=\"{ident}\" class=\"plot\">{to_svg(fig, ident)}<figcaption>{esc(caption)}</figcaption>"
            "</figure>")


def _signal_sections(r: dict[str, Any]) -> str:
    """Every registered signal's own section, in report order."""
    from provenance.signals import registry

    out = []
    for signal in registry.signals():
        section = signal.section(r)
        if section is not None:
            body = "\n".join(p for p in (_block(block, r) for block in section.blocks) if p)
            out.append(f"<section id=\"{esc(section.ident)}\"><h2>{esc(section.title)}</h2>\n{body}</section>")
    return "\n".join(out)


def _cell(x: Any) -> str:
    """One value of a block as plain text (escaped by the table helpers)."""
    if isinstance(x, B.Code):
        return " ".join(x.items) or "—"
    return num(x.value) if isinstance(x, B.P) else num(x) if isinstance(x, (int, float)) else _plain(x)


def _block(block: B.Block, r: dict[str, Any]) -> str:
    """The HTML of one block of a signal's section."""
    if isinstance(block, B.Text):
        return ("<p class=\"muted\">" if block.muted else "<p>") + f"{esc(block.text)}</p>"
    title = f"<h3>{esc(block.title)}</h3>" if getattr(block, "title", "") else ""
    if isinstance(block, B.Facts):
        return title + kv_table([(k, _cell(v)) for k, v in block.rows])
    if isinstance(block, B.Table):
        html = table(block.header, [[_cell(c) for c in row] for row in block.rows])
        return title + (f"<details><summary>{esc(block.folded)}</summary>{html}</details>" if block.folded else html)
    if isinstance(block, B.Tokens):
        rows = [[label, " ".join(f"<code class=\"tok\">{esc(t)}</code>" for t in tokens) or "—"]
                for label, tokens in block.rows]
        return title + table(["", "tokens"], rows, raw_cols={1})
    if isinstance(block, B.Plot):
        return _figure(block.draw(r), block.ident, block.caption)
    raise TypeError(f"unknown report block {type(block).__name__}")


def _reproducibility(r: dict[str, Any]) -> str:
    env = r["environment"]
    keys = ("provenance", "torch", "numpy", "python", "platform", "device", "seed", "date")
    inputs = sections.inputs(r)
    rows = [[x["side"], x["file"], f"<code>{esc(x['sha256'])}</code>"] for x in inputs]
    return ("<section id=\"reproducibility\"><h2>Reproducibility</h2>"
            f"<p>Command:</p><pre class=\"command\">{esc(env.get('command', ''))}</pre>"
            + kv_table([(k, _plain(env.get(k))) for k in keys])
            + ("<h3>Inputs</h3>" + table(["side", "file", "sha256"], rows, raw_cols={2}) if rows
               else "<p class=\"muted\">File hashes were not computed (--no-hash).</p>")
            + f"<p class=\"muted\">How signals are combined: {esc(combining())} Result schema: "
              f"{esc(r.get('schema', ''))}.</p></section>")
