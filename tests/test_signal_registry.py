"""The Signal protocol: the registry, one loop for every entry point, options refused where they are made,
and a new signal that is one module (it reaches the verdict, the JSON schema and both reports untouched)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from provenance.comparison import CompareOptions, compare
from provenance.errors import InvalidParameterError
from provenance.evidence import Evidence, Verdict
from provenance.report.blocks import Facts, Section, Text
from provenance.report.html import render_html
from provenance.report.markdown import render_markdown
from provenance.report.schema import compare_schema, validate_result
from provenance.signals import registry
from provenance.signals.base import CHECKPOINTS, ENDPOINTS, MODEL_TEST, ROLES, Reading


class LayerCount:
    """A toy calibrated test: 'derived' when both sides have the same number of layers (p = 1e-9)."""

    name = "layercount"
    order = 35
    role = MODEL_TEST
    default = False
    reads = frozenset({CHECKPOINTS})
    refusal = "it counts layers of checkpoints"
    kinds = ("count",)
    details = {"count": {"required": ["base", "candidate"]}}
    title = "Layer count"

    def measure(self, pair: Any) -> Reading:
        a, b = (m.roles.num_layers for m in pair.models)
        same = a == b
        verdict = Verdict("derived" if same else "independent", "same depth" if same else None, 0.0,
                          1e-9 if same else 0.5, f"{a} and {b} layers.")
        item = Evidence(self.name, float(a == b), verdict.p_value, f"Layers: {a} vs {b}.", {"base": a, "candidate": b},
                        kind="count")
        return Reading(self.name, [item], verdict)

    def section(self, result: dict[str, Any]) -> Section | None:
        items = [e for e in result["evidence"] if e["signal"] == self.name]
        if not items:
            return None
        d = items[0]["details"]
        return Section(self.name, self.title, [Text(items[0]["finding"]), Facts([("base", d["base"]),
                                                                                  ("candidate", d["candidate"])])])


@pytest.fixture
def with_toy_signal(monkeypatch: pytest.MonkeyPatch):
    """The registry as if `provenance/signals/layercount_signal.py` existed."""
    found = registry.signals() + (LayerCount(),)
    monkeypatch.setattr(registry, "signals", lambda: tuple(sorted(found, key=lambda s: (s.order, s.name))))
    compare_schema.cache_clear()
    yield
    compare_schema.cache_clear()


def test_the_registry_lists_the_shipped_signals_in_report_order():
    assert registry.names() == ("weights", "tokenizer", "activations", "outputs", "config")
    assert registry.defaults() == ("weights", "tokenizer", "config")
    assert registry.model_tests() == ("weights", "activations", "outputs") and registry.fallback_tests() == ("tokenizer",)
    assert all(s.role in ROLES and s.kinds and s.title for s in registry.signals())
    assert compare_schema()["$defs"]["signal"]["enum"] == list(registry.names())


def test_a_new_signal_is_one_module(with_toy_signal, tiny_llama):
    folder, _ = tiny_llama
    r = compare(folder, folder, signals=("config", "layercount"), hashes=False)
    assert [s["signal"] for s in r.verdict.signals] == ["weights", "activations", "layercount", "outputs", "tokenizer",
                                                           "config"]
    roles = {s["signal"]: s["role"] for s in r.verdict.signals}
    assert roles["layercount"] == "decides" and roles["weights"] == "not run" and roles["config"] == "context"
    assert r.verdict.label == "derived" and r.verdict.relation == "same depth" and r.verdict.p_value == 1e-9
    data = json.loads(r.to_json())
    validate_result(data)  # the schema's enums and rules now include the new signal
    data["evidence"][0]["details"] = {}
    with pytest.raises(Exception, match="required"):
        validate_result(data)
    assert "## Layer count" in render_markdown(r.to_dict())
    assert '<section id="layercount"><h2>Layer count</h2>' in render_html(r.to_dict())
    assert "then layercount" in registry.combining_text()


def test_signals_that_cannot_read_the_pair_are_refused_in_one_line(tiny_llama):
    from tests.real_models import DEEPSEEK_JSON, require

    tok = str(require(DEEPSEEK_JSON))
    with pytest.raises(InvalidParameterError, match=r"must be 'tokenizer' when an input is a tokenizer without "
                                                    r"weights .* Got 'weights,config' instead"):
        compare(tok, tiny_llama[0], signals=("weights", "tokenizer", "config"))
    assert compare(tok, tok).verdict.decided_by == ["tokenizer"]  # the defaults that can read it


@pytest.mark.parametrize("field,value,message", [
    ("seed", -5, "The 'seed' parameter of compare must be between 0 and 4294967295. Got -5 instead."),
    ("seed", True, "The 'seed' parameter of compare must be between 0 and 4294967295. Got True instead."),
    ("batch_size", 0, "The 'batch_size' parameter of compare must be between 1 and 4096. Got 0 instead."),
    ("device", "banana", "The 'device' parameter of compare must be 'auto', 'cpu' or 'cuda[:N]'. Got 'banana'"),
    ("probe_texts", 4, "The 'probe_texts' parameter of compare must be between 8 and 320. Got 4 instead."),
    ("signals", (), "The 'signals' parameter of compare must be a non-empty subset of"),
    ("signals", ("weights", "colour"), "must be a subset of ('weights', 'tokenizer', 'activations', 'outputs', 'config')"),
])
def test_options_are_checked_where_they_are_made(field, value, message):
    with pytest.raises(InvalidParameterError) as info:
        CompareOptions(**{field: value})
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_reproducing_command_is_written_from_the_options():
    from provenance.options import reproduce_command

    opts = CompareOptions(signals=("weights", "activations"), seed=3, probe_texts=16, hashes=False)
    assert reproduce_command("a", "b c", opts) == ("provenance compare a 'b c' --signals weights,activations "
                                                   "--device auto --seed 3 --probes 16 --batch-size 8 --no-hash")
    assert reproduce_command("a", "b", CompareOptions()) == "provenance compare a b --device auto --seed 0"


def test_no_layer_below_the_cli_imports_it():
    import pathlib
    import re

    root = pathlib.Path(registry.__file__).resolve().parents[1]
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py") if "cli" not in p.relative_to(root).parts[:1]
                 and re.search(r"^\s*(from provenance\.cli|import provenance\.cli)", p.read_text(), re.M)
                 and p.name != "__main__.py"]
    assert offenders == []


class EndpointName:
    """A toy signal that reads an endpoint pair without any network: it reports the served model's name."""

    name = "servedname"
    order = 50
    role = MODEL_TEST
    default = False
    reads = frozenset({ENDPOINTS})
    refusal = "it reads endpoints"
    kinds = ("name",)
    details: dict[str, Any] = {}
    title = "Served name"

    def measure(self, pair: Any) -> Reading:
        base, candidate = pair.sources
        served = candidate.endpoint.model
        verdict = Verdict("inconclusive", None, 0.0, None, f"The endpoint serves {served!r}.")
        return Reading(self.name, [Evidence(self.name, None, None, f"{base.kind} vs {served}", kind="name")], verdict)

    def section(self, result: dict[str, Any]) -> Section | None:
        return None


ENDPOINT = "openai+http://127.0.0.1:9/v1#smollm2-disguised"


def test_an_endpoint_candidate_reaches_the_signals_that_read_endpoints(monkeypatch, tiny_llama, provenance_cli):
    rc, out, err = provenance_cli("compare", tiny_llama[0], ENDPOINT)  # outputs, by default: it needs the tokenizer
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "the outputs signal tokenizes its probe texts with the base's tokenizer" in err
    rc, out, err = provenance_cli("compare", ENDPOINT, tiny_llama[0])
    assert rc == 2 and "only the candidate may be an endpoint" in err

    found = registry.signals() + (EndpointName(),)
    monkeypatch.setattr(registry, "signals", lambda: tuple(sorted(found, key=lambda s: (s.order, s.name))))
    compare_schema.cache_clear()
    try:
        r = compare(tiny_llama[0], ENDPOINT, hashes=False, signals=("servedname",))
        assert [e.finding for e in r.evidence] == ["checkpoint vs smollm2-disguised"]
        assert r.candidate["endpoint"] == {"base_url": "http://127.0.0.1:9/v1", "model": "smollm2-disguised",
                                           "api_key_env": "OPENAI_API_KEY"}
        validate_result(json.loads(r.to_json()))
        with pytest.raises(InvalidParameterError, match="must be outputs or servedname when the candidate is endpoint"):
            compare(tiny_llama[0], ENDPOINT, signals=("weights",))
    finally:
        compare_schema.cache_clear()
