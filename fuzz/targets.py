"""One target per reader: write the bytes under the name the reader expects, call its public entry point."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fuzz import archive_edit, gguf_edit, proto_edit, records_edit, structure
from fuzz.mutate import BYTE_MUTATORS, Mutator, mutate, token_inserter


def read_checkpoint(path: Path, reads: int = 3) -> None:
    """Open a weights file, list its tensors, read a few (the first as float32), and its own vocabulary."""
    from provenance.io import open_checkpoint
    from provenance.vocab.load import vocabulary_of

    with open_checkpoint(path) as ckpt:
        ckpt.parameter_count()
        for i, name in enumerate(list(ckpt.tensors)[:reads]):
            ckpt.get(name, dtype="float32" if i == 0 else None)
        vocab = vocabulary_of(ckpt)
        if vocab is not None:
            vocab.summary()


def read_vocabulary(path: Path) -> None:
    """Load a tokenizer file and compute what reports show of it."""
    from provenance.vocab.load import load_vocabulary

    vocab = load_vocabulary(path)
    vocab.summary()
    vocab.merges_digest()


def read_fingerprint(path: Path) -> None:
    """Load and verify a whole fingerprint file."""
    from provenance.fingerprint import load

    load(path).summary()


def read_manifest(path: Path) -> None:
    """Read an audit manifest by a relative name, as `provenance audit manifest.yaml` does."""
    from provenance.audit.manifest import read_manifest as read

    here = os.getcwd()
    os.chdir(path.parent)
    try:
        read(path.name)
    finally:
        os.chdir(here)


@dataclass(frozen=True)
class Target:
    """A reader under test: the file name it is given, how it is read, and how its inputs are mutated."""

    name: str
    filename: str
    read: Callable[[Path], None]
    structured: Sequence[Mutator] = ()
    tokens: Sequence[bytes] = ()  # syntax worth inserting (text formats)
    companion: tuple[str, str, str] | None = None  # (target, seed, file name) written beside every input
    fixed_seeds: dict[str, bytes] | None = None  # seeds of its own instead of the built ones (canaries)
    max_inputs: int | None = None  # a cap on --inputs (a canary needs only one)
    mutators: Sequence[Mutator] = field(init=False, default=())

    def __post_init__(self) -> None:
        extra = (token_inserter(self.tokens),) * 2 if self.tokens else ()
        object.__setattr__(self, "mutators", BYTE_MUTATORS + extra)

    def path(self, folder: Path) -> Path:
        """Where an input of this target is written inside its work folder."""
        return folder / self.filename

    def input(self, seeds: dict[str, bytes], seed: int, index: int) -> bytes:
        """Input `index` of a run with `seed`: a seed mutated by a generator seeded from (seed, target, index)."""
        rng = random.Random(f"{seed}:{self.name}:{index}")
        name = rng.choice(sorted(seeds))
        others = [data for n, data in sorted(seeds.items()) if n != name] or [seeds[name]]
        return mutate(seeds[name], rng, others, self.mutators, self.structured)

    def run(self, data: bytes, folder: Path) -> None:
        """Write `data` as this target's file in `folder` and read it."""
        path = self.path(folder)
        path.write_bytes(data)
        self.read(path)


_JSON = (b"{", b"}", b"[", b"]", b'"', b",", b":", b"null", b"true", b"1e999", b"-", b"\\u0000", b"\\ud800",
         b"NaN", b"[" * 40, b"\xff", b"\xc3", b'{"a":' * 20)
_YAML = (b"&a ", b"*a", b"!!python/object/apply:os.system ", b"<<: ", b"? ", b"- ", b": ", b"{", b"[",
         b"!!binary ", b"!!set ", b"---\n", b"\t", b"|\n", b'"', b"'", b"\n  ", b"%TAG ", b"!!int ", b".nan", b"~",
         b"!!timestamp ", b"@")
_CSV = (b'"', b",", b"\n", b"\r", b"\x00", b'""', b"\r\n", b";", b"\t", b"\xff")
_LINES = (b" ", b"\n", b"=", b"==", b"\r", b"\x00", b"-1", b" 0", b"+", b"/", b"\xff", b"\t", b"\r\n")
_WORDS = (b"\n", b"\r", b"##", b"[UNK]", b"\xff", b"\xc3", b"\x00", b"\r\n", "\u2581".encode(), b"[PAD]", b" ")

TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("safetensors", "model.safetensors", read_checkpoint, (structure.safetensors_header,)),
    Target("gguf", "model.gguf", read_checkpoint, (gguf_edit.gguf_header,)),
    Target("onnx", "model.onnx", read_checkpoint,
           (proto_edit.onnx_model, proto_edit.onnx_model, proto_edit.proto_fields, proto_edit.deep_graph)),
    Target("torch", "pytorch_model.bin", read_checkpoint, (archive_edit.zip_member, archive_edit.pickle_values)),
    Target("tokenizer_json", "tokenizer.json", read_vocabulary, (structure.json_document,), _JSON),
    Target("vocab_json", "vocab.json", read_vocabulary, (structure.json_document,), _JSON),
    Target("vocab_txt", "vocab.txt", read_vocabulary, (), _WORDS),
    Target("sentencepiece", "tokenizer.model", read_vocabulary, (proto_edit.proto_fields,)),
    Target("tiktoken", "cl100k_base.tiktoken", read_vocabulary, (), _LINES),
    Target("tiktoken_gz", "o200k_base.tiktoken.gz", read_vocabulary,
           (archive_edit.gzip_content,) * 4 + (archive_edit.gzip_bomb,)),
    Target("tekken", "tekken.json", read_vocabulary, (structure.json_document,), _JSON),
    Target("quicktok", "cl100k.vocab", read_vocabulary, (records_edit.quicktok_vocab,)),
    Target("quicktok_special", "cl100k.special", lambda p: read_vocabulary(p.with_suffix(".vocab")),
           (records_edit.quicktok_special,), companion=("quicktok", "cl100k", "cl100k.vocab")),
    Target("fingerprint", "model.fingerprint", read_fingerprint, (structure.safetensors_header,)),
    Target("manifest_yaml", "manifest.yaml", read_manifest, (structure.yaml_document, structure.yaml_bomb), _YAML),
    Target("manifest_csv", "manifest.csv", read_manifest, (structure.csv_document,), _CSV),
)}


def _crash(path: Path) -> None:
    raise IndexError("canary: an exception that is not a ProvenanceError")


def _hang(path: Path) -> None:
    time.sleep(3600)


def _hog(path: Path) -> None:
    block = bytearray(400 * 2**20)
    block[::4096] = b"\x01" * (len(block) // 4096)  # touched: resident


def _die(path: Path) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


# Readers that break the rule on purpose, so a test can check the harness notices each way (never in `all`).
CANARIES: dict[str, Target] = {t.name: t for t in (
    Target(f"canary_{name}", "canary.bin", read, fixed_seeds={"canary": b"canary"}, max_inputs=1)
    for name, read in (("crash", _crash), ("hang", _hang), ("memory", _hog), ("die", _die)))}


def get(name: str) -> Target:
    """A target or canary by name."""
    return TARGETS.get(name) or CANARIES[name]
