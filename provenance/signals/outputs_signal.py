"""The outputs signal: a candidate behind an OpenAI-compatible API, tested against a local base.

The endpoint is asked for its next token (with top-k log-probabilities where it gives them) after
text prefixes; the base scores the same strings; the count of queries on which the two agree is
tested against a bound measured on independently trained models (`provenance.blackbox.statistic`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provenance.errors import SourceKindError
from provenance.report.blocks import Facts, P, Section, Table, Text
from provenance.signals.base import ENDPOINTS, MODEL_TEST, Reading

if TYPE_CHECKING:
    from provenance.signals.pair import Pair

NAME = "outputs"


class OutputsSignal:
    """Black-box: the endpoint's next-token distributions against the base's."""

    name = NAME
    order = 35
    role = MODEL_TEST
    default = False  # reads endpoints only; chosen there as the one signal that can
    reads = frozenset({ENDPOINTS})
    refusal = "the outputs signal queries a model behind an API"
    kinds = ("outputs",)
    details = {"outputs": {"required": ["test", "null", "endpoint", "api", "logprobs", "queries", "close",
                                        "null_rate", "probe_set", "probe_sha256", "per_query"]}}
    title = "Outputs (black-box)"

    def measure(self, pair: Pair) -> Reading:
        from provenance.blackbox.measure import measure_outputs
        from provenance.blackbox.verdict import outputs_items, outputs_verdict

        base, candidate = pair.sources or (None, None)
        if base is None or candidate is None or candidate.endpoint is None:
            raise SourceKindError(f"{pair.candidate}: the outputs signal needs the candidate behind an endpoint")
        if base.kind != "checkpoint" or base.path is None:
            raise SourceKindError(f"{base.spec}: the outputs signal runs the base itself; give its checkpoint (a "
                                  f"{base.kind} holds no next-token distributions)")
        opts = pair.opts
        cache = Path(opts.response_cache) if opts.response_cache else default_cache(candidate.endpoint)
        model_path = base.weights[0] if base.weights_format == "gguf" and base.weights else base.path
        with pair.bar(opts.max_queries, "asking the endpoint", "query") as bar:
            ev = measure_outputs(model_path, candidate.endpoint, device=pair.device, seed=opts.seed,
                                 max_queries=opts.max_queries, api=opts.outputs_api, cache_path=cache,
                                 offline=opts.offline, progress=bar.update)
        return Reading(NAME, outputs_items(ev), outputs_verdict(ev), raw=ev)

    def section(self, result: dict[str, Any]) -> Section | None:
        from provenance.report.sections import item

        e = item(result, NAME, "outputs")
        if e is None:
            return None
        d = e["details"]
        facts = [("endpoint", f"{d['endpoint'].get('model')} at {d['endpoint'].get('base_url')}"), ("API", d["api"]),
                 ("log-probabilities", "returned" if d["logprobs"] else "not returned (greedy agreement only)"),
                 ("queries", d["queries"]), ("close" if d["logprobs"] else "agreeing", d["close"]),
                 ("null rate (bound)", d["null_rate"]), ("p-value", P(e["p_value"])),
                 ("probe set", f"{d['probe_set']} (sha256 {d['probe_sha256']})"),
                 ("requests sent / from cache", f"{d.get('requests_sent')} / {d.get('from_cache')}")]
        rows = [[r["index"], r["probe_id"], r["category"], r["prompt_sha256"][:16], r["response_sha256"][:16],
                 r["distance"], "yes" if r["close"] else "no"] for r in d["per_query"]]
        return Section(NAME, self.title, [
            Text(e["finding"]), Facts(facts), Text(d["null"], muted=True),
            Table(["query", "probe", "category", "prompt sha256", "response sha256", "distance (nats)", "close"],
                  rows, folded="every query, by hash")])


def default_cache(endpoint: Any) -> Path:
    """~/.cache/provenance/responses/<digest of URL and model>.jsonl ($XDG_CACHE_HOME respected)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "provenance" / "responses"
    digest = hashlib.sha256(f"{endpoint.base_url}#{endpoint.model}".encode()).hexdigest()[:16]
    return root / f"{digest}.jsonl"


SIGNAL = OutputsSignal()
