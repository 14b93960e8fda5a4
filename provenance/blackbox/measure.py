"""One black-box audit: ask the endpoint, score its answers with the local base, test, and keep a record.

Every question and answer is kept by hash (prompt, request and response sha256), and every answer
is in the response cache, so an audit re-scores offline and the report lists what was asked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from provenance.blackbox import statistic as st
from provenance.blackbox.positions import Query, choose_queries

COMPLETIONS = "completions"  # or "chat" (provenance.options.OUTPUT_APIS)
TOP_K = 20  # alternatives asked for per query (OpenAI's maximum)
CHAT_INSTRUCTION = "Continue the text."  # the user's turn; the prefix is the start of the assistant's reply


@dataclass
class OutputsEvidence:
    """What the endpoint answered and how it compares with the base, query by query."""

    endpoint: dict[str, str]  # base_url, model (never a key)
    api: str
    logprobs: bool  # the endpoint returned top-k log-probabilities (else: greedy agreement only)
    probe_set: str
    probe_sha256: str
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per query (see `_row`)
    requests_sent: int = 0  # network requests (cache hits excluded)
    from_cache: int = 0

    @property
    def close(self) -> int:
        return sum(bool(r["close"]) for r in self.rows)

    @property
    def null_rate(self) -> float:
        return st.NULL_CLOSE_RATE if self.logprobs else st.NULL_AGREE_RATE

    @property
    def p_value(self) -> float:
        return st.binomial_p(self.close, len(self.rows), self.null_rate)

    @property
    def median_distance(self) -> float | None:
        ds = [r["distance"] for r in self.rows if r["distance"] is not None]
        return float(np.median(ds)) if ds else None

    @property
    def agreement(self) -> float | None:
        return sum(r["greedy_agrees"] for r in self.rows) / len(self.rows) if self.rows else None


def measure_outputs(base_path: Path, endpoint: Any, *, device: torch.device, seed: int, max_queries: int,
                    api: str, cache_path: Path | None, offline: bool = False,
                    progress: Callable[[int], Any] | None = None) -> OutputsEvidence:
    """Ask `max_queries` questions (fewer when the probe texts run out) and score every answer."""
    from provenance.activations.probes import load_probes
    from provenance.blackbox.base_model import BaseModel
    from provenance.blackbox.cache import ResponseCache
    from provenance.blackbox.client import EndpointClient

    base = BaseModel(base_path, device=device)
    try:
        probes = load_probes()
        queries = choose_queries(probes, base.encode, base.decode, max_queries, seed)
        client = EndpointClient(endpoint, max_queries=max_queries, offline=offline,
                                cache=ResponseCache(cache_path) if cache_path is not None else None)
        answers = []
        for q in queries:
            answers.append(_ask(client, api, q))
            if progress is not None:
                progress(1)
        contexts = [base.encode(q.prefix) if api == COMPLETIONS else base.chat_context(CHAT_INSTRUCTION, q.prefix)
                    for q in queries]
        firsts = base.next_logprobs(contexts)
        with_lp = sum(bool(a.top) for a in answers)
        ev = OutputsEvidence({"base_url": endpoint.base_url, "model": endpoint.model}, api,
                             logprobs=with_lp * 2 > len(answers), probe_set=probes.version, probe_sha256=probes.sha256,
                             requests_sent=client.queries, from_cache=sum(a.cached for a in answers))
        for q, a, ctx, first in zip(queries, answers, contexts, firsts):
            ev.rows.append(_row(q, a, base, ctx, first, ev.logprobs))
        return ev
    finally:
        base.close()


def _ask(client: Any, api: str, q: Query) -> Any:
    if api == COMPLETIONS:
        return client.complete(q.prefix, max_tokens=1, top_logprobs=TOP_K, temperature=0.0)
    # the prefix as the start of the assistant's reply, which the server continues (a prefill)
    return client.chat([{"role": "user", "content": CHAT_INSTRUCTION}, {"role": "assistant", "content": q.prefix}],
                       max_tokens=1, top_logprobs=TOP_K, temperature=0.0)


def _row(q: Query, a: Any, base: Any, context: list[int], first: np.ndarray, logprobs: bool) -> dict[str, Any]:
    """One query's record: where it came from, the hashes of what was sent and received, and its score."""
    top = a.top[0] if a.top else ()
    strings = [t.text for t in top]
    lp_c = np.array([t.logprob for t in top], dtype=np.float64)
    lp_b = np.array(base.string_logprobs(context, first, strings), dtype=np.float64) if strings else np.zeros(0)
    greedy = a.tokens[0] if a.tokens else a.text.encode("utf-8")
    base_greedy = base.decode([int(np.argmax(first))]).encode("utf-8")
    agrees = bool(greedy) and greedy == base_greedy
    s = st.score_query(lp_c if logprobs else None, lp_b, agrees)
    return {"index": q.index, "probe_id": q.probe_id, "category": q.category, "cut": q.cut,
            "prompt_sha256": hashlib.sha256(q.prefix.encode("utf-8")).hexdigest(),
            "request_sha256": a.request_sha256, "response_sha256": a.response_sha256, "cached": a.cached,
            "alternatives": len(top), "scored": s.scored,
            "distance": None if s.distance is None else round(s.distance, 6), "close": s.close,
            "greedy_agrees": agrees}
