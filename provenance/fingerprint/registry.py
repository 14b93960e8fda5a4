"""A registry: a directory of `.fingerprint` files, screened cheaply before any full comparison.

Screening reads each file's header and its few small pre-filter vectors (each verified
against the checksums in the header); the full fingerprint is loaded only for the shortlist.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from provenance.errors import ProvenanceError
from provenance.fingerprint.anchors import BY_IDS, BY_TOKENS, TAG_OF
from provenance.fingerprint.fileformat import SUFFIX, load_screens
from provenance.fingerprint.model import Fingerprint
from provenance.fingerprint.screen import embedding_score, jaccard_estimate

MIN_SCREEN_ANCHORS = 16


@dataclass
class Entry:
    """One registry file: its verified metadata and pre-filter vectors."""

    path: Path
    meta: dict[str, Any]
    screens: dict[str, np.ndarray]

    @property
    def name(self) -> str:
        src = self.meta.get("source", {})
        return str(src.get("name") or self.path.stem)

    @property
    def has_weights(self) -> bool:
        return "facts" in self.meta


@dataclass
class Screen:
    """How one registry entry looks against the query before the full comparison."""

    weights_r: float | None  # correlation of the anchor-token cosine structures (None: not comparable)
    anchors: int  # anchor tokens both hold
    paired_by: str | None
    jaccard: float | None  # MinHash estimate of the ordinary-token overlap
    same_vocabulary: bool


def default_registry() -> Path:
    """`$PROVENANCE_REGISTRY`, else the registry installed with the package: `provenance.registry_data`,
    which is the repository's `fingerprints/` directory (pyproject.toml maps it; wheels ship its files)."""
    env = os.environ.get("PROVENANCE_REGISTRY")
    return Path(env) if env else Path(str(resources.files("provenance.registry_data")))


def registry_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The `.fingerprint` files of a registry directory, sorted by name."""
    d = Path(directory)
    if not d.is_dir():
        raise ProvenanceError(f"registry {d} is not a directory (pass --registry DIR, or build one with "
                              "`python fingerprints/build.py`)")
    files = sorted(p for p in d.iterdir() if p.suffix == SUFFIX and p.is_file())
    if not files:
        raise ProvenanceError(f"registry {d} holds no {SUFFIX} files")
    return files


def _slim(meta: dict[str, Any]) -> dict[str, Any]:
    """What ranking and reporting need of an entry's metadata (config, roles and statistics stay on disk)."""
    out = {"source": meta.get("source", {}), "tokenizer": {"digest": meta.get("tokenizer", {}).get("digest")}}
    if "facts" in meta:
        out["facts"] = meta["facts"]
    return out


def scan(directory: str | os.PathLike[str]) -> list[Entry]:
    """Every entry's metadata and pre-filter vectors; a damaged file stops the scan with its name."""
    entries = []
    for p in registry_files(directory):
        meta, screens = load_screens(p)
        entries.append(Entry(p, _slim(meta), screens))
    return entries


def _vectors(screens: dict[str, np.ndarray], mode: str) -> tuple[np.ndarray, np.ndarray] | None:
    tag = TAG_OF[mode]
    return (screens[tag], screens[tag + ".anchors"]) if tag in screens and tag + ".anchors" in screens else None


def screen(query: Fingerprint, entry: Entry) -> Screen:
    """Pre-filter scores of one registry entry against the query."""
    qd = query.meta.get("tokenizer", {}).get("digest") if query.vocabulary is None else query.vocabulary.digest()
    return screen_vectors(query.screens, entry.screens, qd, entry.meta.get("tokenizer", {}).get("digest"))


def screen_vectors(a: dict[str, np.ndarray], b: dict[str, np.ndarray], digest_a: str | None,
                   digest_b: str | None) -> Screen:
    """Pre-filter scores from two fingerprints' screen vectors: the embedding screen by token strings,
    else by id; the MinHash overlap; whether the vocabularies are the same."""
    r, n, paired = None, 0, None
    for mode in (BY_TOKENS, BY_IDS):
        va, vb = _vectors(a, mode), _vectors(b, mode)
        if va is None or vb is None:
            continue
        score, common = embedding_score(va, vb)
        if common >= MIN_SCREEN_ANCHORS:
            r, n, paired = score, common, mode
            break
    jac = jaccard_estimate(a["minhash"], b["minhash"]) if "minhash" in a and "minhash" in b else None
    return Screen(r, n, paired, jac, digest_a is not None and digest_a == digest_b)
