"""HTML reports and the JSON schema on a real comparison; untrusted strings never become markup."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest

from provenance.comparison import compare
from provenance.report.html import render_html
from provenance.report.schema import compare_schema, validate_result
from provenance.signals import registry
from provenance.result import CompareResult
from tests.html_checks import assert_inert
from tests.real_models import BGE_ONNX, COLBERT_ONNX, require
from tests.tiny_models import tiny_llama_state, write_hf_dir

EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def real_result() -> CompareResult:
    """bge-small vs colbert-small (a fine-tune), every signal, 8 probe texts."""
    return compare(require(BGE_ONNX), require(COLBERT_ONNX), signals="weights,tokenizer,activations,config",
                   probe_texts=8, device="cpu")


@pytest.mark.slow
def test_the_schema_is_valid_and_a_real_result_matches_it(real_result):
    jsonschema.Draft202012Validator.check_schema(compare_schema())
    kinds = compare_schema()["$defs"]["evidence"]["properties"]["kind"]["enum"]
    assert sorted(kinds) == sorted({k for ks in registry.evidence_kinds().values() for k in ks})  # from the registry
    data = json.loads(real_result.to_json())
    validate_result(data)
    assert data["verdict"]["label"] == "derived" and data["verdict"]["decided_by"] == ["weights", "activations"]
    kinds = {(e["signal"], e["kind"]) for e in data["evidence"]}
    assert {("weights", "layer test"), ("tokenizer", "vocabulary"), ("activations", "cka"),
            ("activations", "neurons"), ("config", "config")} <= kinds
    assert data["environment"]["command"].startswith("provenance compare ")
    assert "--probes 8" in data["environment"]["command"]


@pytest.mark.slow
@pytest.mark.parametrize("edit, where", [
    (lambda d: d["verdict"].update(label="probably"), "verdict/label"),
    (lambda d: d["evidence"][0].update(p_value=1.5), "evidence/0/p_value"),
    (lambda d: d["base"]["sha256"].update({"x": "not-a-digest"}), "base/sha256/x"),
    (lambda d: next(e for e in d["evidence"] if e["kind"] == "layer test")["details"].pop("similarity_matrix"),
     "evidence/0/details"),
])
def test_schema_violations_are_named(real_result, edit, where):
    data = real_result.to_dict()
    edit(data)
    with pytest.raises(Exception, match=f"at {where}"):
        validate_result(data, "r.json")


@pytest.mark.slow
def test_html_report_of_a_real_comparison(real_result):
    html = real_result.to_html()
    m = assert_inert(html)
    ids = {a.get("id") for _, a in m.tags}
    assert {"verdict", "signals", "models", "evidence", "weights", "weight-heatmap", "layer-plot", "tokenizer",
            "activations", "cka-heatmap", "config", "reproducibility"} <= ids
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert sum(1 for t, _ in m.tags if t == "svg") == 3
    text = " ".join(m.text)
    assert "DERIVED" in text and "provenance-probes/1[8 of 320]" in text
    assert real_result.candidate["sha256"]["model.onnx"] in text
    assert html == real_result.to_html()  # deterministic, SVG included


@pytest.mark.slow
def test_saved_result_re_renders_identically_and_the_cli_writes_both_reports(real_result, tmp_path):
    saved = tmp_path / "r.json"
    real_result.save(saved)
    loaded = CompareResult.load(saved)
    assert loaded.to_dict() == json.loads(saved.read_text())
    assert loaded.to_html() == real_result.to_html()
    assert loaded.evidence_frame().equals(real_result.evidence_frame())
    out = subprocess.run([sys.executable, "-m", "provenance", "report", str(saved), "--html", str(tmp_path / "r.html"),
                          "--md", str(tmp_path / "r.md")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "r.html").read_text() == real_result.to_html()
    assert (tmp_path / "r.md").read_text() == real_result.to_markdown()
    assert out.stdout.startswith("verdict     DERIVED")


@pytest.mark.slow
@pytest.mark.parametrize("content, message", [
    (None, "cannot read"),
    (b"{not json", "not valid JSON"),
    (b'{"schema": "provenance.compare/1", "base": NaN}', "NaN is not JSON"),
    (b'{"schema": "provenance.inspect/1"}', "is not 'provenance.compare/1'"),
    (b'{"schema": "provenance.compare/1", "evidence": []}', "'base' is a required property"),
    (b"[1, 2]", "a JSON object is expected"),
])
def test_report_cli_rejects_bad_results_with_one_line_and_writes_nothing(tmp_path, content, message):
    src = tmp_path / "r.json"
    if content is not None:
        src.write_bytes(content)
    out = subprocess.run([sys.executable, "-m", "provenance", "report", str(src), "--html", str(tmp_path / "o.html")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "o.html").exists()


@pytest.mark.slow
def test_notebook_views(real_result):
    assert list(real_result.evidence_frame().columns) == ["signal", "kind", "statistic", "p_value", "finding"]
    assert real_result.signals_frame().set_index("signal").loc["config", "role"] == "context"
    assert real_result.similarity_frame().shape == (12, 12)
    assert real_result.similarity_frame("activations").shape == (12, 12)
    assert len(real_result.weight_layers_frame()) == 12 and len(real_result.neurons_frame()) == 12
    assert "shared tokens" in set(real_result.tokenizer_frame()["measure"])
    for fig in (real_result.weight_heatmap(), real_result.cka_heatmap(), real_result.layer_plot()):
        assert fig is not None and fig.axes
        assert fig._repr_png_().startswith(b"\x89PNG")  # shows in Jupyter without pyplot or %matplotlib
    assert real_result.neurons_frame()["carries"].all()  # every bge -> colbert layer carries the neuron verdict
    facts = real_result.tokenizer_frame().set_index("measure")["value"]
    assert facts["shared tokens"] == 30517 and isinstance(facts["shared tokens"], int)
    assert repr(real_result).startswith("<CompareResult derived (fine-tune") and len(repr(real_result)) < 400
    summary = real_result._repr_html_()
    assert "DERIVED" in summary and "<svg" in summary
    assert_inert(summary)


def _byte_level(raw: bytes) -> str:
    """GPT-2's byte-to-unicode spelling of raw bytes (how tokenizer.json stores byte-level BPE pieces)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, map(chr, cs)))
    return "".join(table[b] for b in raw)


def _tokenizer_json(extra: list[bytes]) -> dict:
    pieces = [bytes([b]) for b in range(256)] + extra
    vocab = {_byte_level(p): i for i, p in enumerate(pieces)}
    return {"version": "1.0", "added_tokens": [], "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True},
            "model": {"type": "BPE", "vocab": vocab, "merges": []}}


EVIL_TOKENS = [EVIL.encode(), b"\"'><img src=x onerror=alert(2)>", b"\x07bell\x1b[31m", b"\xff\xfe<b>",
               "\u202egnp.exe".encode(), b"`code` | pipe"]


@pytest.fixture(scope="module")
def evil_pair(tmp_path_factory) -> CompareResult:
    """Two tiny models in directories named like markup, the candidate's tokenizer full of hostile tokens."""
    root = tmp_path_factory.mktemp("evil")
    state, config = tiny_llama_state(seed=3)
    base = write_hf_dir(root / EVIL, state, config)
    cand = write_hf_dir(root / "\"'><img src=x onerror=alert(3)>", state, config)
    (base / "tokenizer.json").write_text(json.dumps(_tokenizer_json([])))
    (cand / "tokenizer.json").write_text(json.dumps(_tokenizer_json(EVIL_TOKENS)))
    return compare(base, cand, device="cpu")


def test_hostile_names_and_tokens_are_shown_as_text_never_as_markup(evil_pair):
    data = evil_pair.to_dict()
    validate_result(data)
    only = data["evidence"][[e["kind"] for e in data["evidence"]].index("vocabulary")]["details"]["examples"]
    assert len(only["only_candidate"]) == len(EVIL_TOKENS)  # the hostile tokens reach the report
    data["base"]["architecture"] = "<img src=x onerror=alert(4)>"
    data["verdict"]["explanation"] += " </p><script>alert(5)</script>\x00\u202e"
    data["environment"]["command"] += " '</pre><iframe src=http://evil.invalid>'"
    data["evidence"][0]["details"]["note"] = "</pre><script>alert(6)</script>"
    html = render_html(data)
    html.encode("utf-8")  # no lone surrogates
    m = assert_inert(html)
    text = "".join(m.text)
    for shown in (EVIL, "onerror=alert(3)", "<img src=x onerror=alert(4)>", "</p><script>alert(5)</script>",
                  "<iframe src=http://evil.invalid>", "</pre><script>alert(6)</script>"):
        assert shown in text, shown  # visible as text
    assert "\\x07bell\\x1b[31m" in text and "\\u202e" in text and "\\x00" in text  # controls made visible
    assert "\x07" not in html and "\u202e" not in html and "\x00" not in html
    assert "b'\\xff\\xfe<b>'" in text  # invalid UTF-8 shown as its bytes


@pytest.mark.slow
def test_real_report_in_headless_chromium(real_result, tmp_path):
    """The acceptance check: opens offline, no console errors, no requests, verdict and heatmaps drawn."""
    from tests.browser import nonblank_fraction, open_page, require_chromium

    require_chromium()
    page = tmp_path / "report.html"
    page.write_text(real_result.to_html(), encoding="utf-8")
    shown = open_page(page, ["#verdict", "#weight-heatmap svg", "#cka-heatmap svg", "#layer-plot svg"])
    assert shown.console_errors == [] and shown.requests == []
    assert shown.text.lstrip().startswith("Provenance report") and "DERIVED" in shown.text
    assert all(shown.boxes[s] is not None for s in shown.boxes), shown.boxes
    verdict_box = shown.boxes["#verdict"]
    assert verdict_box[1] < 400  # the verdict is at the top, above the fold
    for sel in ("#weight-heatmap svg", "#cka-heatmap svg"):
        x, y, w, h = shown.boxes[sel]
        assert w > 250 and h > 250, (sel, shown.boxes[sel])
        assert nonblank_fraction(shown.screenshot, shown.boxes[sel]) > 0.3, sel  # the heatmap really is painted
    assert nonblank_fraction(shown.screenshot) > 0.02


@pytest.mark.slow
def test_hostile_report_in_headless_chromium(evil_pair, tmp_path):
    """Markup in names and tokens stays text in a real browser: nothing runs, nothing is fetched."""
    from tests.browser import open_page, require_chromium

    require_chromium()
    page = tmp_path / "evil.html"
    page.write_text(evil_pair.to_html(), encoding="utf-8")
    shown = open_page(page, ["#verdict", "#tokenizer"])
    assert shown.console_errors == [] and shown.requests == []
    assert EVIL in shown.title and "onerror=alert(3)" in shown.text
    assert shown.boxes["#verdict"] is not None and shown.boxes["#tokenizer"] is not None


@pytest.mark.slow
def test_deep_heatmap_is_one_inline_png_and_the_page_still_paints_it(real_result, tmp_path):
    """Over 24 layers the heatmap cells become one data: PNG (CSP img-src data:), not thousands of paths."""
    import numpy as np

    from tests.browser import nonblank_fraction, open_page, require_chromium

    data = real_result.to_dict()
    layers = 64
    sim = np.clip(0.3 * np.random.default_rng(0).random((layers, layers)) + 0.7 * np.eye(layers), -1, 1)
    layer = next(e for e in data["evidence"] if e["kind"] == "layer test")
    layer["details"]["similarity_matrix"] = {"base_layers": list(range(layers)), "candidate_layers": list(range(layers)),
                                             "values": sim.round(4).tolist()}
    data["layer_map"] = [[i, i, float(sim[i, i])] for i in range(layers)]
    html = render_html(data)
    assert_inert(html)
    heatmap = html[html.index('id="weight-heatmap"'):html.index("</figure>", html.index('id="weight-heatmap"'))]
    assert heatmap.count("data:image/png;base64,") == 1 and len(heatmap) < 200_000
    require_chromium()
    page = tmp_path / "deep.html"
    page.write_text(html, encoding="utf-8")
    shown = open_page(page, ["#weight-heatmap svg"])
    assert shown.console_errors == [] and shown.requests == []
    assert nonblank_fraction(shown.screenshot, shown.boxes["#weight-heatmap svg"]) > 0.3
