"""The audit's HTML index and pair pages: inert, self-contained, linked and deterministic."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from provenance.audit.executors import LocalExecutor
from provenance.audit.html import render_index, write_reports
from provenance.audit.result import AuditModel, AuditPair, AuditResult, Lineage, LineageEdge
from provenance.comparison import compare
from provenance.result import CompareResult
from tests.html_checks import Markup
from tests.real_models import MINILM_DIR, MINILM_INT8_ONNX, require

EVIL = "<script>alert(1)</script>"
EVIL2 = "\"'><img src=x onerror=alert(3)>"
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "main", "header", "section", "h1", "h2", "h3", "p", "span",
    "div", "code", "pre", "br", "ul", "li", "table", "thead", "tbody", "tr", "th", "td", "details", "summary",
    "figure", "figcaption", "a", "b",
    "svg", "defs", "g", "path", "use", "clippath", "rect", "text", "tspan", "polyline", "line", "circle", "image",
}


def inert(html: str) -> tuple[Markup, list[str]]:
    """Parse; only known tags, no handlers, no scheme in any link or source. Returns the markup and the links."""
    m = Markup()
    m.feed(html)
    m.close()
    assert {t for t, _ in m.tags} <= ALLOWED_TAGS, {t for t, _ in m.tags} - ALLOWED_TAGS
    links = []
    for tag, attrs in m.tags:
        for name, value in attrs.items():
            value = value or ""
            assert not name.startswith("on"), (tag, name)
            assert "javascript:" not in value.lower(), (tag, name, value)
            if name in ("href", "xlink:href", "src", "action", "formaction"):
                if tag == "a":
                    assert re.fullmatch(r"pairs/[a-z0-9._-]+\.html", value), value
                    links.append(value)
                else:
                    assert value.startswith("#") or value.startswith("data:image/png;base64,"), (tag, name, value)
    return m, links


@pytest.fixture(scope="module")
def pair_result() -> dict:
    """A real comparison's JSON: all-MiniLM-L6-v2 against its int8 ONNX export (a quantized copy)."""
    return compare(require(MINILM_DIR), require(MINILM_INT8_ONNX), hashes=False, device="cpu").to_dict()


def _model(name: str, error: str | None = None) -> AuditModel:
    summary = {} if error else {"architecture": "bert", "layers": 6, "parameters": 22_713_216,
                                "tokenizer": {"size": 30522}}
    return AuditModel(name, f"/models/{name}", "base" if name == "minilm" else None, {}, summary,
                      None if error else "ab12" * 16, 0 if error else 91_234_567, 1.25, error)


@pytest.fixture()
def audit(pair_result) -> AuditResult:
    """Six models: a quantized pair (directed), a hostile-named pair (undirected), a singleton, a broken one."""
    evil_result = copy.deepcopy(pair_result)
    evil_result["base"]["spec"], evil_result["candidate"]["spec"] = EVIL, EVIL2
    models = [_model(n) for n in ("minilm", "minilm-int8", EVIL, EVIL2, "solo")]
    models.append(_model("broken", error="cannot read /models/broken: not a checkpoint"))
    pairs = [
        AuditPair("minilm", "minilm-int8", {"weights_r": 0.99, "jaccard": 1.0}, True, "identical", "quantized copy",
                  1e-300, ["weights"], "weights: layer test", result=pair_result),
        AuditPair(EVIL, EVIL2, {"weights_r": 0.8, "jaccard": 0.97}, True, "derived", "derived (modified weights)",
                  2e-12, ["weights"], f"weights {EVIL}", result=evil_result),
        AuditPair("minilm", "solo", {"weights_r": 0.31, "jaccard": 0.5}, True, "inconclusive", None, 0.02, []),
        AuditPair("minilm", EVIL, {"weights_r": 0.01, "jaccard": 0.1, "paired_by": "tokens"}, False),
    ]
    lineage = Lineage([["minilm", "minilm-int8"], sorted([EVIL, EVIL2]), ["solo"]], [
        LineageEdge("minilm", "minilm-int8", True, "the int8 weights are a quantization of the fp32 ones",
                    "quantized copy", 1e-300),
        LineageEdge(EVIL, EVIL2, False, f"no evidence of direction {EVIL2}", "derived (modified weights)", 2e-12)])
    stages = {"fingerprint": {"seconds": 3.5, "bytes_read": 182_469_134, "computed": 5, "reused": 0},
              "screen": {"seconds": 0.01, "bytes_read": 0, "computed": 15, "reused": 0},
              "compare": {"seconds": 1.2, "bytes_read": 0, "computed": 3, "reused": 0}}
    return AuditResult("audit.toml", "audit.db", models, pairs, lineage, stages, run_id=7)


def test_index_is_inert_and_hostile_names_are_text(audit):
    html = render_index(audit)
    m, links = inert(html)
    text = "".join(m.text)
    assert EVIL in text and EVIL2 in text and f"no evidence of direction {EVIL2}" in text
    svg = html[html.index("<svg"):html.index("</svg>")]
    assert "&lt;script&gt;alert(1)&lt;/scrip" in svg and "<script" not in svg and "<img" not in svg
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert links == []  # render_index alone links nothing write_reports did not set


def test_index_sections_and_figures(audit):
    html = render_index(audit)
    m, _ = inert(html)
    ids = [a.get("id") for t, a in m.tags if t in ("section", "figure", "details")]
    assert ids == ["summary", "lineage", "lineage-graph", "families", "models", "pairs", "screened-out", "stages"]
    assert re.findall(r"<b>([\d,]+)</b>([a-z0-9 ]+)", html) == [
        ("6", "models"), ("4", "pairs screened"), ("3", "pairs compared"), ("2", "families of 2 or more"),
        ("2", "related pairs"), ("1", "model could not be read")]
    assert html.count("-directed\"") == 1 and html.count("-undirected\"") == 1  # one arrow, one plain line
    assert "Related to no other model (1): <code>solo</code>" in html
    text = " ".join(m.text)
    assert "minilm → minilm-int8" not in text  # the table has cells, not sentences
    assert "→" in text and "≤ 1e-300" in text and "174.0 MiB" in text and "87.0 MiB" in text
    assert "cannot read /models/broken: not a checkpoint" in text and "ab12ab12ab12" in text
    pairs = html[html.index('id="pairs"'):html.index('id="screened-out"')]
    assert pairs.index("minilm-int8") < pairs.index("alert(3)") < pairs.index("solo")  # compared, by p-value


def test_write_reports_links_only_pages_it_wrote(audit, pair_result, tmp_path):
    out = tmp_path / "html"
    written = write_reports(audit, out)
    assert [p.relative_to(out).as_posix() for p in written] == [
        "pairs/minilm__minilm-int8.html", "pairs/script-alert-1-script__img-src-x-onerror-alert-3.html", "index.html"]
    assert [p.report for p in audit.pairs] == [written[0].relative_to(out).as_posix(),
                                               written[1].relative_to(out).as_posix(), None, None]
    index = (out / "index.html").read_text(encoding="utf-8")
    _, links = inert(index)
    assert sorted(set(links)) == sorted(p.report for p in audit.pairs[:2])
    assert all((out / link).is_file() for link in links)
    assert (out / audit.pairs[0].report).read_text(encoding="utf-8") == CompareResult.from_dict(pair_result).to_html()
    evil_page = (out / audit.pairs[1].report).read_text(encoding="utf-8")
    m = Markup()
    m.feed(evil_page)
    assert not any(k.startswith("on") for _, a in m.tags for k in a) and EVIL in "".join(m.text)
    again = write_reports(audit, tmp_path / "again", run=LocalExecutor(2).run)  # pages from two worker processes
    assert [p.relative_to(tmp_path / "again") for p in again] == [p.relative_to(out) for p in written]
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in written]  # byte-identical


def test_rendering_is_deterministic(audit):
    assert render_index(audit) == render_index(copy.deepcopy(audit))


@pytest.mark.parametrize("report", ["javascript:alert(1)", "https://evil.invalid/x.html", "../../etc/passwd",
                                    "/etc/passwd", "pairs/a b.html", "//evil.invalid/x", "pairs/\"><b>x.html"])
def test_a_report_path_that_is_not_plainly_relative_is_never_a_link(audit, report):
    audit.pairs[0].report = report
    html = render_index(audit)
    m, links = inert(html)
    assert links == [] and f"{report} (not linked)" in "".join(m.text)


def test_slugs_are_safe_distinct_and_bounded(pair_result, tmp_path):
    names = ["A/B", "a b", "..", "x" * 300, "模型", "Ünïcode"]
    models = [_model(n) for n in names]
    light = {**pair_result, "evidence": [], "layer_map": []}  # pages, not evidence, are under test here
    pairs = [AuditPair(a, b, {}, True, "derived", None, 0.01, ["weights"], result=light)
             for a in names for b in names if a < b]
    audit = AuditResult("m", "d", models, pairs, Lineage([[n] for n in names], []), {}, 1)
    written = write_reports(audit, tmp_path)
    stems = [p.name for p in written[:-1]]
    assert len(set(stems)) == len(pairs) and all(re.fullmatch(r"[a-z0-9][a-z0-9._-]*\.html", s) for s in stems)
    assert max(map(len, stems)) <= 60 * 2 + 2 + 8 and all(p.parent == tmp_path / "pairs" for p in written[:-1])
    assert "No two models are related" in (tmp_path / "index.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_index_in_headless_chromium(audit, tmp_path):
    """Opens offline: no console errors, no requests, the lineage graph painted, hostile names as text."""
    from tests.browser import nonblank_fraction, open_page, require_chromium

    require_chromium()
    write_reports(audit, tmp_path)
    shown = open_page(Path(tmp_path / "index.html"), ["#summary", "#lineage-graph svg", "#families", "#pairs"])
    assert shown.console_errors == [] and shown.requests == []
    assert all(box is not None for box in shown.boxes.values()), shown.boxes
    assert shown.title == "Provenance audit: audit.toml" and EVIL in shown.text and "onerror=alert(3)" in shown.text
    x, y, w, h = shown.boxes["#lineage-graph svg"]
    assert w > 400 and h > 100
    assert nonblank_fraction(shown.screenshot, shown.boxes["#lineage-graph svg"]) > 0.05


def test_twenty_models_and_a_family_of_ten_draw_every_edge():
    """A base with nine fine-tunes (arrows) whose first three are also related (lines), and five pairs."""
    base, tunes = "llama-3-8b", [f"llama-3-8b-ft-{i}" for i in range(9)]
    edges = [LineageEdge(base, t, True, "the child moved away", "fine-tune, continued pretraining", 1e-300)
             for t in tunes]
    edges += [LineageEdge(a, b, False, "siblings", "derived (modified weights)", 1e-20)
              for i, a in enumerate(tunes[:3]) for b in tunes[i + 1:3]]
    pairs = [[f"m{i}", f"m{i}-q"] for i in range(5)]
    edges += [LineageEdge(a, b, True, "quantized from it", "quantized copy", 1e-300) for a, b in pairs]
    lineage = Lineage([sorted([base, *tunes]), *pairs], edges)
    models = [_model(n) for fam in lineage.families for n in fam]
    html = render_index(AuditResult("m", "d", models, [], lineage, {}, 1))
    m, _ = inert(html)
    svg = html[html.index("<svg"):html.index("</svg>")]
    assert svg.count("-directed\"") == 14 and svg.count("-undirected\"") == 3
    assert all(name in svg for fam in lineage.families for name in fam) and "family 6 (2 models)" in svg
    assert svg.count(">fine-tune<") == 9 and svg.count(">quantized copy<") == 5 and len(svg) < 80_000
