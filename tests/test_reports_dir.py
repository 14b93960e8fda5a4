"""The example reports in reports/ are valid results, agree with the public facts, and re-render."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provenance.report.schema import validate_result
from provenance.result import CompareResult
from tests.html_checks import assert_inert

REPORTS = Path(__file__).resolve().parent.parent / "reports"
EXPECTED = {  # name -> (label, words the relation must contain)
    "minilm-l6-vs-its-int8-onnx": ("identical", "quantized copy"),
    "bge-small-vs-colbert-small": ("derived", "fine-tune"),
    "minilm-l12-reranker-vs-minilm-l6": ("derived", "layer subset"),
    "smollm2-vs-minilm-l6": ("independent", ""),
    "tokenizer-cl100k-vs-llama3": ("derived", "extension"),
    "tokenizer-cl100k-vs-qwen": ("derived", "tokenizer derived"),
    "tokenizer-mistral-v1-vs-v2": ("derived", "shifted"),
    "tokenizer-o200k-vs-tekken": ("independent", ""),
}


def test_every_example_is_listed_and_present():
    assert {p.stem for p in REPORTS.glob("*.json")} == set(EXPECTED)
    index = (REPORTS / "README.md").read_text()
    for name in EXPECTED:
        assert f"[{name}]({name}.html)" in index
        assert (REPORTS / f"{name}.html").is_file() and (REPORTS / f"{name}.md").is_file()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_is_valid_right_and_re_renders(name):
    data = json.loads((REPORTS / f"{name}.json").read_text())
    validate_result(data, name)
    label, words = EXPECTED[name]
    assert data["verdict"]["label"] == label and words in (data["verdict"]["relation"] or "")
    result = CompareResult.from_dict(data)
    html = result.to_html()
    assert_inert(html)
    assert label.upper() in html and label.upper() in (REPORTS / f"{name}.html").read_text()
    assert result.to_markdown().splitlines()[0] == (REPORTS / f"{name}.md").read_text().splitlines()[0]
