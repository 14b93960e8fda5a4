"""Self-contained HTML report of a result dict: no script, no network, plots as inline SVG.

Everything shown comes from untrusted files, so every string goes through `esc` (HTML
escaping plus visible control characters), and the page's Content-Security-Policy forbids
scripts and any fetch: an escaping mistake still could not run code or phone home.
"""

from __future__ import annotations

from typing import Any

from provenance.aggregate import COMBINING, NUMBERS
from provenance.report import sections
from provenance.report.figures import cka_heatmap, layer_plot, to_svg, weight_heatmap
from provenance.report.html_parts import esc, kv_table, num, table
from provenance.report.style import CSS
from provenance.report.words import details_text, words

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def render_html(result: dict[str, Any]) -> str:
    """The full report as one HTML document."""
    a, b = result["base"], result["candidate"]
    body = "\n".join(part for part in (
        _header(result), _verdict(result), _signals(result), _models(a, b), _evidence(result), _weights(result),
        _tokenizer(result), _activations(result), _config(result), _reproducibility(result)) if part)
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


def _weights(r: dict[str, Any]) -> str:
    layer = sections.item(r, "weights", "layer test")
    if layer is None:
        return ""
    d = layer["details"]
    parts = ["<section id=\"weights\"><h2>Weights</h2>",
             f"<p>{esc(layer['finding'])}</p>",
             kv_table([("test", d.get("test")), ("statistic (mean best-layer profile correlation)",
                                                  num(layer["statistic"])),
                       ("null mean ± sd", f"{num(d.get('null_mean'))} ± {num(d.get('null_sd'))}"),
                       ("z", num(d.get("z"))), ("p-value", num(layer["p_value"])),
                       ("exact permutation bound", num(d.get("p_exact_bound"))),
                       ("comparable roles", num(d.get("comparable_roles")))]),
             _figure(weight_heatmap(r), "weight-heatmap",
                     "Profile correlation of every base layer (rows) with every candidate layer (columns); "
                     "matched layers outlined in red. Independent models sit near 0."),
             _figure(layer_plot(r), "layer-plot",
                     "Per candidate layer: best-match similarity, and its p-value against re-paired dimensions "
                     "(dashed: 1e-6).")]
    for kind in ("alignment", "magnitudes"):
        e = sections.item(r, "weights", kind)
        if e is not None:
            parts.append(f"<h3>{esc(kind)}</h3><p>{esc(e['finding'])}</p>"
                         + kv_table([(words(k), num(v) if isinstance(v, (int, float)) and not isinstance(v, bool)
                                      else _plain(v)) for k, v in e["details"].items()]))
    rows = [[x["candidate"], x["base"], num(x["similarity"]), num(x["p_value"])] for x in sections.weight_layers(r)]
    if rows:
        parts.append("<details><summary>per-layer table</summary>"
                     + table(["candidate layer", "best base layer", "similarity", "p-value"], rows)
                     + "</details>")
    return "\n".join(p for p in parts if p) + "</section>"


def _tokenizer(r: dict[str, Any]) -> str:
    e = sections.item(r, "tokenizer", "vocabulary")
    others = [x for x in r["evidence"] if x["signal"] == "tokenizer" and x["kind"] != "vocabulary"]
    if e is None and not others:
        return ""
    parts = ["<section id=\"tokenizer\"><h2>Tokenizer</h2>"]
    if e is not None:
        parts.append(f"<p>{esc(e['finding'])}</p>")
        parts.append(kv_table([(label, f"{v:.2%}" if label in sections.FRACTIONS and isinstance(v, float) else num(v))
                               for label, v in sections.tokenizer_facts(r)]))
        ex = sections.tokenizer_examples(r)
        names = {"shared": "shared tokens", "only_base": "only in the base", "only_candidate": "only in the candidate"}
        rows = [[names.get(k, k), " ".join(f"<code class=\"tok\">{esc(t)}</code>" for t in v) or "—"]
                for k, v in ex.items()]
        if rows:
            parts.append("<h3>Examples</h3>" + table(["", "tokens"], rows, raw_cols={1}))
        missing = sections.missing_classes(r)
        if missing:
            parts.append("<h3>Token classes missing on one side</h3>" + table(
                ["missing from", "class", "missing", "of", "entire class"],
                [[m["missing_from"], m.get("class"), num(m.get("missing")), num(m.get("total")),
                  "yes" if m.get("entire") else "no"] for m in missing]))
    parts += [f"<p>{esc(x['finding'])}</p>" for x in others]
    return "\n".join(parts) + "</section>"


def _activations(r: dict[str, Any]) -> str:
    neurons, cka = sections.item(r, "activations", "neurons"), sections.item(r, "activations", "cka")
    if neurons is None and cka is None:
        return ""
    parts = ["<section id=\"activations\"><h2>Activations</h2>"]
    if neurons is not None:
        d = neurons["details"]
        parts.append(f"<p>{esc(neurons['finding'])}</p>" + kv_table([
            ("probe set", d.get("probe_set")), ("probe sha256", d.get("probe_sha256")),
            ("aligned positions", num(d.get("positions"))), ("tests (Bonferroni)", num(d.get("tests"))),
            ("combined p-value", num(neurons["p_value"]))]))
    if cka is not None:
        parts.append(f"<p>{esc(cka['finding'])}</p>")
        parts.append(_figure(cka_heatmap(r), "cka-heatmap", "Debiased linear CKA of the residual streams, base "
                             "layers (rows) by candidate layers (columns); the layer map outlined. CKA alone is not "
                             "evidence: independent models on the same text reach 0.5."))
        for note in cka["details"].get("notes") or []:
            parts.append(f"<p class=\"muted\">{esc(note)}</p>")
    rows = [[t["candidate_layer"], t["base_layer"], num(t["in_place"]), num(t["p_in_place"]), num(t.get("agreement")),
             num(t.get("chance_agreement")), num(t.get("p_agreement"))] for t in sections.neuron_layers(r)]
    if rows:
        parts.append("<details><summary>per-layer neuron tests</summary>" + table(
            ["candidate layer", "base layer", "neurons in place", "p", "gate/up agreement", "chance", "p"], rows)
            + "</details>")
    return "\n".join(parts) + "</section>"


def _config(r: dict[str, Any]) -> str:
    e = sections.item(r, "config", "config")
    if e is None:
        return ""
    d = e["details"]
    differ = set(d.get("differ") or [])
    rows = [[words(k) + (" (differs)" if k in differ else ""), _plain(v), _plain((d.get("candidate") or {}).get(k))]
            for k, v in (d.get("base") or {}).items()]
    arch = d.get("architecture") or [None, None]
    rows.insert(0, ["architecture", _plain(arch[0]), _plain(arch[1])])
    return (f"<section id=\"config\"><h2>Config and metadata</h2><p>{esc(e['finding'])}</p>"
            + table(["field", "base", "candidate"], rows) + "</section>")


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
            + f"<p class=\"muted\">How signals are combined: {esc(COMBINING)} Result schema: "
              f"{esc(r.get('schema', ''))}.</p></section>")
