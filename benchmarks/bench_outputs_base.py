"""The base side of the outputs signal: re-scoring recorded answers with and without `logits_to_keep`.

An audit's answers are in its response cache (`blackbox.py` writes one per candidate); re-scoring them
offline runs only the local base: next-token rows for every query and teacher forcing for the
alternatives the base tokenizes into several tokens (many when the candidate has another tokenizer).
Each cache is re-scored twice in one run, on the plain path (every position's logits, then pick) and
on the fast one (the LM head at the read positions only), and the rows must agree.

    python benchmarks/bench_outputs_base.py ~/.cache/provenance-bench/blackbox/qwen-200.jsonl \\
        ~/.cache/provenance-bench/blackbox/copy_q4_1-200.jsonl
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _endpoint_of(cache: Path) -> tuple[Any, str, int]:
    """(the Endpoint the cache's answers were asked of, the API, how many answers it holds)."""
    from provenance.io.source import Endpoint

    lines = [json.loads(line) for line in cache.read_text(encoding="utf-8").splitlines() if line.strip()]
    first = lines[0]["request"]
    base_url, _, path = first["url"].rpartition("/v1/")
    api = "chat" if path.startswith("chat") else "completions"
    return Endpoint(f"{base_url}/v1", first["body"]["model"]), api, len(lines)


def rescore(base: Path, cache: Path, *, plain: bool) -> tuple[float, Any]:
    """(seconds, evidence) of one offline re-scoring of every answer in `cache`."""
    import contextlib

    import torch

    from provenance import fastpath
    from provenance.blackbox.measure import measure_outputs

    endpoint, api, n = _endpoint_of(cache)
    with fastpath.plain() if plain else contextlib.nullcontext():
        t0 = time.perf_counter()
        ev = measure_outputs(base, endpoint, device=torch.device("cpu"), seed=0, max_queries=n, api=api,
                             cache_path=cache, offline=True)
        return time.perf_counter() - t0, ev


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("caches", type=Path, nargs="+", help="response caches written by benchmarks/blackbox.py")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2: this machine's cores)")
    args = ap.parse_args()
    import numpy as np
    import torch

    from tests.smollm2_family import dequantized, with_tokenizer

    torch.set_num_threads(args.threads)
    base = with_tokenizer(dequantized())
    print("| cache | queries | multi-token alternatives | plain s | fast s | fast / plain | close (plain / fast) "
          "| max abs distance difference |")
    print("|---|---|---|---|---|---|---|---|")
    for cache in args.caches:
        t_plain, ev_plain = rescore(base, cache, plain=True)
        t_fast, ev_fast = rescore(base, cache, plain=False)
        assert ev_fast.from_cache == len(ev_fast.rows) and ev_fast.requests_sent == 0  # offline, every answer
        d = [abs(a["distance"] - b["distance"]) for a, b in zip(ev_plain.rows, ev_fast.rows)
             if a["distance"] is not None and b["distance"] is not None]
        multi = _multi_token_alternatives(base, cache)
        print(f"| {cache.name} | {len(ev_fast.rows)} | {multi} | {t_plain:.1f} | {t_fast:.1f} | "
              f"{t_fast / t_plain:.2f} | {ev_plain.close} / {ev_fast.close} | {max(d, default=float('nan')):.1e} |")
        assert [r["close"] for r in ev_plain.rows] == [r["close"] for r in ev_fast.rows], "close flags differ"
        assert np.isfinite(max(d, default=0.0))
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


def _multi_token_alternatives(base: Path, cache: Path) -> int:
    """How many of the cache's first-position alternatives the base tokenizes into more than one token (those
    are teacher forced), each answer read by the signal's own parser."""
    from tokenizers import Tokenizer

    from provenance.blackbox.responses import parse_response

    tok = Tokenizer.from_file(str(base / "tokenizer.json"))
    count = 0
    for line in cache.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        url = entry["request"]["url"]
        _, _, top = parse_response(entry["response"], url, chat="/chat/" in url)
        for alt in top[0] if top else ():
            count += len(tok.encode(alt.text.decode("utf-8", "replace"), add_special_tokens=False).ids) > 1
    return count


if __name__ == "__main__":
    main()
