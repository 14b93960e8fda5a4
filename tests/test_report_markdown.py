"""The Markdown report: sections, text heatmaps, number formats, and inertness of hostile strings."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import numpy as np
import pytest

from provenance.report.markdown import _num, heatmap, render_markdown
from provenance.report.schema import validate_result
from provenance.report.sections import LayerMatrix, weight_matrix

SIGNALS = ("weights", "tokenizer", "activations", "config")
HASH = "ab" * 32
SIMILARITY = [[0.99, 0.5, 0.0, -0.2], [0.3, 0.05, 0.97, None], [1.0, 0.2, 0.6, 0.95]]
LAYER_MAP = [[0, 0, 0.99], [1, 2, 0.97], [2, 3, 0.95]]


def _model(spec: str, layers: int) -> dict[str, Any]:
    return {"spec": spec, "format": "safetensors", "architecture": "llama", "definition": "llama", "layers": layers,
            "parameters": 1234567, "dtypes": {"BF16": 30},
            "tokenizer": {"file": "tokenizer.json", "format": "tokenizer.json", "model": "bpe", "size": 32000,
                          "ordinary": 31990, "specials": 10, "merges": 31000, "digest": "0123456789ab" + "c" * 52},
            "sha256": {"model.safetensors": HASH}}


def _evidence(signal: str, kind: str, statistic: float | None, p: float | None, details: dict) -> dict[str, Any]:
    return {"signal": signal, "kind": kind, "statistic": statistic, "p_value": p,
            "finding": f"{signal} {kind} finding.", "details": details}


def _items(signal: str) -> list[dict[str, Any]]:
    """Realistic evidence items of one signal (3 base layers, 4 candidate layers)."""
    if signal == "weights":
        per_layer = [{"base": a, "candidate": b, "similarity": s, "p_value": 1e-300} for a, b, s in LAYER_MAP]
        return [_evidence("weights", "layer test", 0.987654, 3.2e-12, {
            "test": "joint permutation", "z": 50.1, "per_layer": per_layer,
            "similarity_matrix": {"base_layers": [0, 1, 2], "candidate_layers": [0, 1, 2, 3], "values": SIMILARITY}})]
    if signal == "tokenizer":
        specials = {"recorded": True, "base": 3, "candidate": 4, "same_id": 3, "only_base": [],
                    "only_candidate": ["<|im_start|>"]}
        rules = {"pretokenizer_same": True, "normalizer_same": None, "chat_template_same": False}
        vocab = {"vocab_base": 31990, "vocab_candidate": 32000, "shared": 31990, "shared_same_id": 31990,
                 "jaccard": 0.9997, "order_agreement": 1.0, "step_concordance": 0.98, "score": 0.99,
                 "p_value": 1e-300, "relation": "extension", "id_offset": 0,
                 "examples": {"shared": ["' the'"], "only_base": [], "only_candidate": ["'<|im_start|>'"]},
                 "missing_from_candidate": [], "missing_from_base": [
                     {"class": "CJK", "missing": 10, "of": 10, "entire": True, "examples": ["中"]}],
                 "specials": specials, "rules": rules}
        return [_evidence("tokenizer", "vocabulary", 0.99, 1e-300, vocab),
                _evidence("tokenizer", "rules", None, None, {"specials": specials, "rules": rules, "merges": None})]
    if signal == "activations":
        per_layer = [{"base_layer": a, "candidate_layer": b, "in_place": 0.9993, "p_in_place": 1e-300,
                      "agreement": 0.5, "chance_agreement": 0.01, "p_agreement": 0.0123, "pairs_tried": 1}
                     for a, b, _ in LAYER_MAP]
        cka = [[0.9, 0.1, 0.1, 0.1], [0.1, 0.2, 0.8, 0.1], [0.1, 0.1, 0.1, 0.7]]
        return [_evidence("activations", "neurons", 0.98, 2e-200, {
                    "probe_set": "provenance-probes/1[16 of 320]", "probe_sha256": HASH, "positions": 1024,
                    "per_layer": per_layer, "tests": 3}),
                _evidence("activations", "cka", 0.8, None, {"cka": cka, "layer_map": LAYER_MAP, "null_sd": 0.001})]
    fields = {"hidden": 64, "layers": 3, "vocab": 32000}
    return [_evidence("config", "config", None, None, {
        "architecture": ["llama", "llama"], "base": fields, "candidate": {**fields, "layers": 4, "vocab": None},
        "differ": ["layers"]})]


def make_result(signals: tuple[str, ...] = SIGNALS) -> dict[str, Any]:
    """A small valid `provenance.compare/1` result with evidence from the given signals."""
    readings = [{"signal": s, "label": "derived", "relation": "fine-tune", "p_value": 1e-300,
                 "role": "decides" if s == "weights" else "agrees", "finding": f"{s} says derived."} for s in signals]
    result = {
        "schema": "provenance.compare/1", "base": _model("org/base", 3), "candidate": _model("org/candidate", 4),
        "verdict": {"label": "derived", "relation": "fine-tune", "confidence": 0.999999, "p_value": 3.2e-12,
                    "explanation": "3 of 4 candidate layers match.", "decided_by": ["weights"] if signals else [],
                    "signals": readings, "disagreements": []},
        "evidence": [e for s in signals for e in _items(s)],
        "layer_map": LAYER_MAP if "weights" in signals else [],
        "environment": {"provenance": "0.1.0", "torch": "2.13.0", "numpy": "2.4.6", "python": "3.11.7",
                        "platform": "Linux", "device": "cpu", "seed": 0, "date": "2026-01-02T03:04:05+00:00",
                        "command": "provenance compare org/base org/candidate --seed 0", "options": {"seed": 0}},
    }
    validate_result(result)
    return result


def _headings(md: str) -> list[str]:
    return [line for line in md.splitlines() if line.startswith("#")]


def _fenced(md: str) -> list[str]:
    """Bodies of the fenced blocks (fence = a line of 3+ backticks, optional info; closed by the same run)."""
    blocks, lines, i = [], md.split("\n"), 0
    while i < len(lines):
        m = re.fullmatch(r"(`{3,})[^`]*", lines[i])
        if m is None:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if re.fullmatch(f"`{{{len(m[1])},}}", lines[j]))
        blocks.append("\n".join(lines[i + 1:end]))
        i = end + 1
    return blocks


def _unescaped_pipes(line: str) -> int:
    return re.sub(r"\\.", "", line).count("|")


def test_all_sections_in_order() -> None:
    md = render_markdown(make_result())
    assert _headings(md) == ["# Provenance: org/candidate vs org/base", "## Signals", "## Models", "## Evidence",
                             "## Weights", "## Tokenizer", "## Activations", "## Config", "## Reproducibility"]
    assert "**Verdict: derived** — fine-tune (confidence 1, p-value 3.2e-12)" in md
    assert "Decided by: weights" in md
    assert "- Only in candidate: `'<|im_start|>'`" in md
    assert "- Special tokens only in candidate: `'<|im_start|>'`" in md
    assert "| base | CJK | 10 | 10 | yes | `'中'` |" in md
    assert "| layers | 3 | 4 | ≠ |" in md and "| vocabulary size | 32,000 | — |  |" in md
    assert f"Probe set provenance-probes/1\\[16 of 320\\] \\(sha256 {HASH}\\), 1,024 aligned positions." in md
    assert "| 2 | 1 | 0.9993 | ≤ 1e-300 | 0.5 | 0.01 | 0.0123 |" in md
    assert f"| base | model.safetensors | {HASH} |" in md
    assert "Bonferroni bound" in md and "never decides" in md


@pytest.mark.parametrize("signals", [(), ("weights",), ("tokenizer", "config"), ("activations",)])
def test_sections_only_for_signals_present(signals: tuple[str, ...]) -> None:
    md = render_markdown(make_result(signals))
    present = {s.capitalize() for s in signals}
    assert {h[3:] for h in _headings(md) if h[3:] in {"Weights", "Tokenizer", "Activations", "Config"}} == present
    assert "## Reproducibility" in md and "## Evidence" in md
    assert ("Signals disagree" in md) is False


def test_disagreements_listed() -> None:
    result = make_result()
    result["verdict"]["disagreements"] = ["The tokenizer says independent."]
    assert "**Signals disagree:**\n\n- The tokenizer says independent.\n" in render_markdown(result)


def test_heatmap_marks_matched_cells_with_exact_shading() -> None:
    m = weight_matrix(make_result())
    assert heatmap(m) == "   0123\n0 |X+  |\n1 |-.X |\n2 |@:*X|"
    md = render_markdown(make_result())
    assert heatmap(m) in _fenced(md)
    assert "   0123\n0 |X...|\n1 |.:X.|\n2 |...X|" in _fenced(md)  # the CKA matrix and its own layer map


def test_heatmap_one_character_per_cell_for_big_models() -> None:
    n = 80
    values = np.eye(n) * 0.5
    m = LayerMatrix(values, list(range(n)), list(range(n)), [(i, i) for i in range(0, n, 2)], "t", "m")
    rows = heatmap(m).split("\n")
    assert len(rows) == n + 1 and rows[0] == "    " + "0123456789" * 8
    cells = [re.fullmatch(r" ?\d+ \|(.*)\|", r)[1] for r in rows[1:]]
    assert all(len(c) == n for c in cells)
    assert cells[0] == "X" + " " * (n - 1) and cells[1] == " +" + " " * (n - 2)


def _hostile() -> dict[str, Any]:
    r = make_result()
    r["base"]["spec"] = "<script>alert(1)</script>"
    r["candidate"]["spec"] = "evil`name` **bold** [x](http://evil) ![i](http://evil/i.png)"
    r["verdict"]["explanation"] = "line1\n\n# Heading\n- list\n<img src=x onerror=alert(1)>"
    r["verdict"]["disagreements"] = ["- nested [x](http://evil) ~~gone~~"]
    r["evidence"][0]["finding"] = "a | b\nc\t[x](http://evil) <b>x</b> _em_ \\"
    tok = next(e for e in r["evidence"] if e["kind"] == "vocabulary")["details"]
    tok["examples"]["shared"] = ["'a`b'", "'|'", "'```'", "'<script>'", "b'\\xe4\\xb8'", "'\x07'", "'\ud800'"]
    tok["missing_from_base"][0]["examples"] = ["\x00x", "a\nb", "`|`"]
    config = next(e for e in r["evidence"] if e["kind"] == "config")["details"]
    config["architecture"] = ["x|y", "<b>z</b>"]
    config["base"]["hidden"] = "64\n| a | b |"
    r["environment"]["command"] = "provenance compare 'a```b' '````'\n```\nrm -rf \x1b[31m"
    r["environment"]["platform"] = "Linux\x1b[31m\u202e"
    r["base"]["sha256"] = {"evil|name`.json\n": HASH}
    validate_result(r)
    return r


def test_hostile_strings_stay_inert_in_the_raw_text() -> None:
    md = render_markdown(_hostile())
    md.encode("utf-8")  # lone surrogates shown, not emitted
    assert "<script" not in md.replace("`'<script>'`", "") and "<img" not in md and "<b>" not in md
    assert "&lt;script&gt;alert\\(1\\)&lt;/script&gt;" in md
    assert not re.search(r"(?<!\\)\]\(", re.sub(r"\\\\", "", md))
    assert all(unicodedata.category(c) != "Cc" for c in md.replace("\n", ""))
    assert "\\x1b" in md and "\\ud800" in md and "\\u202e" in md and "\\x07" in md
    for block in md.split("\n\n"):
        rows = [line for line in block.split("\n") if line.startswith("|")]
        assert len({_unescaped_pipes(row) for row in rows}) <= 1, rows
    command = [b for b in _fenced(md) if b.startswith("provenance compare")]
    assert command == ["provenance compare 'a```b' '````'\n```\nrm -rf \\x1b[31m"]


def test_hostile_strings_stay_inert_when_rendered() -> None:
    markdown_it = pytest.importorskip("markdown_it")
    md = render_markdown(_hostile())
    tokens = markdown_it.MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).parse(md)
    html = markdown_it.MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(md)
    assert not re.search(r"<(script|img|a |b>|em>|s>)", html) and "Heading</h" not in html
    assert html.count("<h1>") == 1 and html.count("<strong>") == 2 and html.count("<ul>") == 3
    assert "<code>'```'</code>" in html and "<code>'|'</code>" in html and "<code>'`|`'</code>" in html
    widths, cells = [], 0
    for t in tokens:
        if t.type == "tr_open":
            cells = 0
        elif t.type in ("td_open", "th_open"):
            cells += 1
        elif t.type == "tr_close":
            widths.append(cells)
    # signals, models, evidence, weights (facts, per layer), tokenizer facts, missing classes, neurons (facts,
    # per layer), config, inputs
    assert widths == ([5] * 5 + [3] * 9 + [5] * 7 + [2] * 8 + [4] * 4 + [2] * 11 + [6] * 2 + [2] * 3 + [7] * 4
                      + [4] * 5 + [3] * 3)
    fences = [t.content for t in tokens if t.type == "fence" and t.info == "sh"]
    assert fences == ["provenance compare 'a```b' '````'\n```\nrm -rf \\x1b[31m\n"]


def test_numbers() -> None:
    assert [_num(x) for x in (None, 1234567, 0, True, 0.987654, 1.0, 12345.678, float("nan"))] == \
        ["—", "1,234,567", "0", "yes", "0.9877", "1", "1.235e+04", "NaN"]
    assert [_num(x, p=True) for x in (3.2e-12, 1e-300, 0.000999, 0.001, 0.0123, 0.0, None)] == \
        ["3.2e-12", "≤ 1e-300", "1.0e-03", "0.001", "0.0123", "0", "—"]
    assert _num(np.int64(30522)) == "30,522" and _num(np.float32(0.5)) == "0.5"
    md = render_markdown(make_result())
    assert "| parameters | 1,234,567 | 1,234,567 |" in md
    assert "| weights | layer test | 0.9877 | 3.2e-12 | weights layer test finding. |" in md
    assert "| tokenizer | rules | — | — |" in md
