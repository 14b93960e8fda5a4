"""Markdown rendering of a compare result (a dict in the `provenance.compare/1` shape).

The same sections as the HTML report, as text to paste into a GitHub issue or a paper. Every
string in a result comes from untrusted files (model names, configs, token strings), so prose
and table cells are escaped (HTML entities, Markdown punctuation, control characters shown as
``\\xNN``), token literals go in code spans and fenced blocks use a fence no content can close.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

from provenance.aggregate import NUMBERS, combining
from provenance.report import blocks as B
from provenance.report import sections as S
from provenance.report.pvalues import at_floor, floor_text
from provenance.report.untrusted import visible
from provenance.report.words import words

RAMP = " .:-=+*#%@"  # shading from 0 (blank, also <= 0 or not measured) to 1
MATCHED = "X"
_SPACES = re.compile("[ \t\n\r\v\f\u2028\u2029]+")
_PUNCT = re.compile(r"([\\`*_\[\]()#|~!$])")


def _text(s: Any) -> str:
    """Untrusted text as one line of inert Markdown: no HTML, links, emphasis, code or table breaks."""
    s = visible(_SPACES.sub(" ", str(s)).strip())
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _PUNCT.sub(r"\\\1", s).replace("://", ":\\/\\/")


def _para(s: Any) -> str:
    """`_text` for the start of a line: a leading '- ', '+ ' or '1. ' does not open a list."""
    s = _text(s)
    m = re.match(r"\d{1,9}(?=[.)](?: |$))|[-+](?= |$|-)", s)
    return s if m is None else (s[:m.end()] + "\\" + s[m.end():] if m[0][0].isdigit() else "\\" + s)


def _code(s: Any, cell: bool = False) -> str:
    """Untrusted text in a code span no backtick run inside can close (in a table `cell`, pipes escaped)."""
    s = visible(_SPACES.sub(" ", str(s)))
    s = s.replace("|", "\\|") if cell else s
    if not s:
        return "—"
    tick = "`" * (max((len(r) for r in re.findall("`+", s)), default=0) + 1)
    pad = " " if s[0] in "` " or s[-1] in "` " else ""
    return f"{tick}{pad}{s}{pad}{tick}"


def _num(x: Any, p: bool = False) -> str:
    """None → '—'; ints with thousands separators; p-values below 1e-3 as 1.5e-12; floats to 4 digits.

    >>> _num(1234567), _num(3.2e-12, p=True), _num(0.987654), _num(None)
    ('1,234,567', '3.2e-12', '0.9877', '—')
    """
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, numbers.Integral):
        return f"{int(x):,}"
    if isinstance(x, numbers.Real):
        x = float(x)
        if math.isnan(x):
            return "NaN"
        if p and at_floor(x):  # the tests clamp p-values at 1e-300: say what is known
            return floor_text(x)
        return f"{x:.1e}" if p and 0 < x < 1e-3 else f"{x:.4g}"
    return _text(x)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A GFM table from already-escaped cells, followed by a blank line."""
    return ([f"| {' | '.join(header)} |", "|" + " --- |" * len(header)] +
            [f"| {' | '.join(r)} |" for r in rows] + [""])


def _fence(body: str, info: str = "") -> list[str]:
    """A fenced block longer than any backtick run in `body`, so nothing inside can close it."""
    body = "\n".join(visible(line) for line in body.split("\n"))
    tick = "`" * max(3, max((len(r) for r in re.findall("`+", body)), default=0) + 1)
    return [tick + info, body, tick, ""]


def heatmap(m: S.LayerMatrix) -> str:
    """One row per base layer, one character per candidate layer: RAMP shading, MATCHED on mapped pairs."""
    matched = set(m.matched)
    width = max(len(str(b)) for b in m.base_layers)
    rows = [" " * (width + 1) + " " + "".join(str(c % 10) for c in m.candidate_layers)]
    for i, b in enumerate(m.base_layers):
        cells = [MATCHED if (b, c) in matched else _shade(float(m.values[i, j]))
                 for j, c in enumerate(m.candidate_layers)]
        rows.append(f"{b:>{width}} |{''.join(cells)}|")
    return "\n".join(rows)


def _shade(v: float) -> str:
    """The RAMP character of a value in [0, 1]; blank at or below 0 and where not measured."""
    if math.isnan(v) or v <= 0:
        return RAMP[0]
    return RAMP[1 + min(len(RAMP) - 2, int(v * (len(RAMP) - 1)))]


def _matrix_section(m: S.LayerMatrix) -> list[str]:
    """The fenced heatmap and its legend."""
    legend = (f"{m.title}. Rows: base layers; columns: candidate layers (last digit). Shading `{RAMP}` "
              f"from 0 to 1 ({m.measure}; blank: ≤ 0 or not measured); `{MATCHED}`: matched pair.")
    return _fence(heatmap(m)) + [legend, ""]


def _verdict(r: dict[str, Any]) -> list[str]:
    """Title, verdict, explanation, deciding signals and disagreements."""
    v = r["verdict"]
    head = f"**Verdict: {_text(v['label'])}**" + (f" — {_text(v['relation'])}" if v.get("relation") else "")
    out = [f"# Provenance: {_text(r['candidate']['spec'])} vs {_text(r['base']['spec'])}", "",
           f"{head} (confidence {_num(v['confidence'])}, p-value {_num(v['p_value'], p=True)})", "",
           _para(v["explanation"]), "", _para(NUMBERS), "",
           "Decided by: " + (", ".join(_text(s) for s in v["decided_by"]) or "no test (nothing calibrated ran)"), ""]
    if v["disagreements"]:
        out += ["**Signals disagree:**", ""] + [f"- {_para(d)}" for d in v["disagreements"]] + [""]
    rows = [[_text(s["signal"]), _text(s["label"] or "—") + (f" ({_text(s['relation'])})" if s["relation"] else ""),
             _num(s["p_value"], p=True), _text(s["role"]), _text(s["finding"])] for s in v["signals"]]
    return out + ["## Signals", ""] + _table(["signal", "reading", "p-value", "role", "finding"], rows)


def _models(r: dict[str, Any]) -> list[str]:
    """Base and candidate side by side."""
    def tokenizer(m: dict[str, Any]) -> str:
        t = m.get("tokenizer")
        return "—" if not t else (f"{_text(t.get('format', '?'))}, {_num(t.get('size'))} tokens, "
                                  f"digest {_text(str(t.get('digest', ''))[:12] or '—')}")

    def dtypes(m: dict[str, Any]) -> str:
        return ", ".join(f"{_text(k)} {_num(n)}" for k, n in (m.get("dtypes") or {}).items()) or "—"

    a, b = r["base"], r["candidate"]
    rows = [[k, _num(a.get(k)), _num(b.get(k))] for k in ("spec", "format", "architecture", "definition",
                                                          "layers", "parameters")]
    rows += [["dtypes", dtypes(a), dtypes(b)], ["tokenizer", tokenizer(a), tokenizer(b)]]
    return ["## Models", ""] + _table(["", "base", "candidate"], rows)


def _evidence(r: dict[str, Any]) -> list[str]:
    """Every evidence item, one row each."""
    rows = [[_text(e["signal"]), _text(e["kind"]), _num(e["statistic"]), _num(e["p_value"], p=True),
             _text(e["finding"])] for e in r["evidence"]]
    return ["## Evidence", ""] + _table(["signal", "kind", "statistic", "p-value", "finding"], rows)


def _signal_sections(r: dict[str, Any]) -> list[str]:
    """Every registered signal's own section, in report order."""
    from provenance.signals import registry

    out: list[str] = []
    for signal in registry.signals():
        section = signal.section(r)
        if section is not None:
            out += [f"## {_text(section.title)}", ""] + [line for block in section.blocks for line in _block(block)]
    return out


def _cell(x: Any) -> str:
    """One value of a block, escaped: p-values as p-values, numbers formatted, text inert."""
    if isinstance(x, B.Code):
        return ", ".join(_code(t, cell=True) for t in x.items) or "—"
    return _num(x.value, p=True) if isinstance(x, B.P) else _num(x)


def _block(block: B.Block) -> list[str]:
    """The Markdown lines of one block of a signal's section."""
    if isinstance(block, B.Text):
        return [_para(block.text), ""]
    title = [f"{_para(block.title)}:", ""] if getattr(block, "title", "") else []
    if isinstance(block, B.Facts):
        return title + _table(["measure", "value"], [[_text(k), _cell(v)] for k, v in block.rows])
    if isinstance(block, B.Table):
        title = title or ([f"{_para(block.folded[:1].upper() + block.folded[1:])}:", ""] if block.folded else [])
        return title + _table([_text(h) for h in block.header], [[_cell(c) for c in row] for row in block.rows])
    if isinstance(block, B.Tokens):
        return title + [f"- {_text(label[:1].upper() + label[1:])}: " + (", ".join(_code(t) for t in tokens) or "—")
                        for label, tokens in block.rows] + [""]
    if isinstance(block, B.Plot):
        return _matrix_section(block.matrix) if block.matrix is not None else []
    raise TypeError(f"unknown report block {type(block).__name__}")


def _reproducibility(r: dict[str, Any]) -> list[str]:
    """Command, environment, input digests and how signals combine."""
    env = r["environment"]
    versions = ", ".join(f"{k} {_text(env[k])}" for k in ("provenance", "torch", "numpy", "python") if k in env)
    out = ["## Reproducibility", ""] + _fence(str(env["command"]), "sh")
    out += [(f"{versions}; platform {_text(env.get('platform', '—'))}; device {_text(env['device'])}; "
             f"seed {_num(env['seed'])}; date {_text(env['date'])}."), ""]
    options = env.get("options") or {}
    if options:
        out += ["Options: " + ", ".join(f"{_text(words(k))} = {_num(v)}" for k, v in options.items()) + ".", ""]
    files = S.inputs(r)
    if files:
        out += _table(["side", "file", "sha256"], [[f["side"], _text(f["file"]), _text(f["sha256"])] for f in files])
    return out + [combining()]


def render_markdown(result: dict[str, Any]) -> str:
    """The whole report: verdict, signals, models, evidence, per-signal sections, reproducibility."""
    parts = (_verdict, _models, _evidence, _signal_sections, _reproducibility)
    lines = [line for part in parts for line in part(result)]
    return "\n".join(lines).rstrip("\n") + "\n"
