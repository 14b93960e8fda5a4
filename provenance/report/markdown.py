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

from provenance.aggregate import COMBINING, NUMBERS
from provenance.report import sections as S
from provenance.report.pvalues import at_floor, floor_text
from provenance.report.untrusted import visible
from provenance.report.words import words

RAMP = " .:-=+*#%@"  # shading from 0 (blank, also <= 0 or not measured) to 1
MATCHED = "X"
_SPACES = re.compile("[ \t\n\r\v\f\u2028\u2029]+")
_PUNCT = re.compile(r"([\\`*_\[\]()#|~!$])")
_EXAMPLES = {"shared": "Shared", "only_base": "Only in base", "only_candidate": "Only in candidate"}


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


def _weights(r: dict[str, Any]) -> list[str]:
    """The weight heatmap and the per-layer matches."""
    m, layers = S.weight_matrix(r), S.weight_layers(r)
    if m is None and not layers:
        return []
    rows = [[_num(x["candidate"]), _num(x["base"]), _num(x["similarity"]), _num(x["p_value"], p=True)] for x in layers]
    return (["## Weights", ""] + (_matrix_section(m) if m else []) +
            _table(["candidate layer", "best base layer", "similarity", "p-value"], rows))


def _tokenizer(r: dict[str, Any]) -> list[str]:
    """Vocabulary figures, token examples, missing token classes, specials and rules."""
    facts = S.tokenizer_facts(r)
    if not facts:
        return []
    out = ["## Tokenizer", ""] + _table(["measure", "value"], [[_text(k), _num(v, p="p-value" in k)]
                                                                  for k, v in facts])
    for key, tokens in S.tokenizer_examples(r).items():
        out.append(f"- {_EXAMPLES.get(key) or _text(key)}: " + (", ".join(_code(t) for t in tokens) or "—"))
    out.append("")
    missing = [[c["missing_from"], _text(c.get("class")), _num(c.get("missing")), _num(c.get("of")),
                _num(c.get("entire")), ", ".join(_code(repr(t), cell=True) for t in c.get("examples") or [])]
               for c in S.missing_classes(r)]
    if missing:
        out += ["Token classes missing on one side:", ""]
        out += _table(["missing from", "class", "missing", "of", "entire", "examples"], missing)
    rules = S.item(r, "tokenizer", "rules")
    if rules is not None:
        specials = rules["details"].get("specials") or {}
        out += [_para(rules["finding"]), ""] + [
            f"- Special tokens only in {side}: " + ", ".join(_code(repr(t)) for t in specials[f"only_{side}"])
            for side in ("base", "candidate") if specials.get(f"only_{side}")] + [""]
    return out


def _activations(r: dict[str, Any]) -> list[str]:
    """Probe set, the CKA heatmap and the matched-neuron table."""
    neurons, m = S.item(r, "activations", "neurons"), S.cka_matrix(r)
    if neurons is None and m is None:
        return []
    out = ["## Activations", ""]
    if neurons is not None:
        d = neurons["details"]
        out += [(f"Probe set {_text(d.get('probe_set'))} (sha256 {_text(d.get('probe_sha256'))}), "
                 f"{_num(d.get('positions'))} aligned positions."), ""]
    out += _matrix_section(m) if m else []
    rows = [[_num(x.get("candidate_layer")), _num(x.get("base_layer")), _num(x.get("in_place")),
             _num(x.get("p_in_place"), p=True), _num(x.get("agreement")), _num(x.get("chance_agreement")),
             _num(x.get("p_agreement"), p=True)] for x in S.neuron_layers(r)]
    head = ["candidate layer", "base layer", "in place", "p", "gate/up agreement", "chance", "p"]
    return out + (_table(head, rows) if rows else [])


def _config(r: dict[str, Any]) -> list[str]:
    """Config fields side by side, differing ones marked."""
    e = S.item(r, "config", "config")
    if e is None:
        return []
    d = e["details"]
    a, b = d.get("base") or {}, d.get("candidate") or {}
    arch = list(d.get("architecture") or [None, None]) + [None, None]
    rows = [["architecture", _num(arch[0]), _num(arch[1]), ""]]
    differ = set(d.get("differ") or [])
    for f in list(a) + [k for k in b if k not in a]:
        rows.append([_text(words(f)), _num(a.get(f)), _num(b.get(f)), "≠" if f in differ else ""])
    return ["## Config", "", _para(e["finding"]), ""] + _table(["field", "base", "candidate", "differs"], rows)


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
    return out + [COMBINING]


def render_markdown(result: dict[str, Any]) -> str:
    """The whole report: verdict, signals, models, evidence, per-signal sections, reproducibility."""
    parts = (_verdict, _models, _evidence, _weights, _tokenizer, _activations, _config, _reproducibility)
    lines = [line for part in parts for line in part(result)]
    return "\n".join(lines).rstrip("\n") + "\n"
