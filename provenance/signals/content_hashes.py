"""Exact reuse: candidate tensors whose stored bytes are the base's, whatever their names.

A shell maker can rename every tensor, drop the config and the tokenizer and save one file;
bytes copied unchanged keep their sha256. The digests come from the reads the file hashes
use (`Checkpoint.tensor_digests`), so the check costs no second pass over the files.

Only tensors of at least `MIN_ELEMENTS` elements whose bytes do not repeat one element count:
norms at init (all ones), zero biases and small tables match between independent models.
The p-value is a bound, not a model of training: identical bytes of ≥ 4,096 non-constant
elements are taken to arise by chance under independence with probability at most 2^-128 per
tensor (a generous bound: a sha256 collision alone is 2^-128 for 2^64 tensors), so k matched
tensors give 2^-128k, clamped at the tool's floor 1e-300.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from provenance import fastpath, relation
from provenance.evidence import Evidence, Verdict, confidence
from provenance.io.base import TensorInfo, is_buffer
from provenance.io.read_hashes import TensorDigest

if TYPE_CHECKING:
    from provenance.io.checkpoint import Checkpoint
    from provenance.signals.pair import Pair

KIND = "exact reuse"  # the weight signal's evidence item
MIN_ELEMENTS = 4096  # smaller tensors are not evidence by themselves
DECISIVE_SHARE = 0.5  # byte-identical share of the candidate's weight bytes that decides alone ...
DECISIVE_COUNT = 8  # ... with at least this many large non-constant tensors
LOG2_BOUND_PER_TENSOR = -128
P_FLOOR = 1e-300
BOUND = ("2^-128 per byte-identical tensor of >= 4096 non-constant elements (chance identity under independence "
         "taken as no likelier than a hash collision), clamped at 1e-300")


@dataclass
class Reuse:
    """What the per-tensor digests found: (base name, candidate name) pairs of large byte-identical tensors."""

    checked: bool
    why_not: str = ""  # when not checked
    pairs: list[tuple[str, str]] = field(default_factory=list)  # candidate order
    candidate_large: int = 0  # candidate tensors of >= MIN_ELEMENTS non-constant elements
    base_large: int = 0
    base_matched: int = 0  # base large tensors with a twin in the candidate
    candidate_bytes: int = 0  # every candidate weight tensor's stored bytes (buffers excluded)
    matched_bytes: int = 0
    small_or_constant: int = 0  # candidate tensors identical to a base tensor but too small or constant to count
    renamed: bool = False

    @property
    def matched(self) -> int:
        return len(self.pairs)

    @property
    def share(self) -> float:
        return self.matched_bytes / self.candidate_bytes if self.candidate_bytes else 0.0

    @property
    def decisive(self) -> bool:
        return self.matched >= DECISIVE_COUNT and self.share >= DECISIVE_SHARE

    @property
    def complete(self) -> bool:
        """Every large tensor of either side has its byte-identical twin on the other."""
        return self.decisive and self.matched == self.candidate_large and self.base_matched == self.base_large

    @property
    def p_value(self) -> float | None:
        return max(P_FLOOR, 2.0 ** (LOG2_BOUND_PER_TENSOR * self.matched)) if self.matched else None


def _large(info: TensorInfo, d: TensorDigest) -> bool:
    return info.numel >= MIN_ELEMENTS and not d.constant and not is_buffer(info)


def exact_reuse(base: tuple[dict[str, TensorInfo], dict[str, TensorDigest]],
                candidate: tuple[dict[str, TensorInfo], dict[str, TensorDigest]], *, same_format: bool) -> Reuse:
    """Pair the candidate's large non-constant tensors with the base's by sha256 (names play no part).

    >>> from pathlib import Path
    >>> i = {"w": TensorInfo("w", (64, 64), "F32", Path("a"), 16384)}
    >>> d = {"w": TensorDigest("ab" * 32, False)}
    >>> r = exact_reuse((i, d), ({"x": TensorInfo("x", (64, 64), "F32", Path("b"), 16384)}, {"x": d["w"]}),
    ...                 same_format=True)
    >>> r.pairs, r.share, r.renamed
    ([('w', 'x')], 1.0, True)
    """
    (ia, da), (ib, db) = base, candidate
    index: dict[str, str] = {}
    for name, d in da.items():
        if name in ia and _large(ia[name], d) and d.sha256 is not None:
            index.setdefault(d.sha256, name)
    anywhere = {d.sha256 for d in da.values() if d.sha256 is not None}
    r = Reuse(True, base_large=sum(1 for n, d in da.items() if n in ia and _large(ia[n], d)))
    for name, info in ib.items():
        if is_buffer(info):
            continue
        r.candidate_bytes += info.nbytes
        d = db.get(name)
        if d is None:
            continue
        if not _large(info, d):
            r.small_or_constant += d.sha256 is not None and d.sha256 in anywhere
            continue
        r.candidate_large += 1
        if d.sha256 is not None and d.sha256 in index:
            r.pairs.append((index[d.sha256], name))
            r.matched_bytes += info.nbytes
    r.base_matched = len({a for a, _ in r.pairs})
    r.renamed = same_format and any(a != b and not a.endswith("." + b) and not b.endswith("." + a) for a, b in r.pairs)
    return r


def tensors_to_hash(a: Checkpoint, b: Checkpoint) -> tuple[set[str] | None, set[str] | None]:
    """Which tensors of each side need a whole sha256: those whose sampled bytes (`tensor_probes`) some tensor
    of the other side shares; the rest cannot be byte-identical to any. (None, None): hash them all (the plain
    path, or a side whose reader gives no byte spans). A fine-tuned pair then hashes none: SmolLM2's 1 GB of
    per-tensor sha256 was ~0.9 CPU-s beside the file hashes."""
    if not fastpath.enabled():
        return None, None
    pa, pb = a.tensor_probes(), b.tensor_probes()
    if pa is None or pb is None:
        return None, None
    ka, kb = set(pa.values()), set(pb.values())
    return {n for n, k in pa.items() if k in kb}, {n for n, k in pb.items() if k in ka}


def measure(pair: Pair) -> Reuse:
    """The exact reuse of a pair of checkpoints; not checked when hashes are off."""
    if not pair.opts.hashes:
        return Reuse(False, "per-tensor hashes are off (--no-hash / hashes=False)")
    if pair.models is None:
        return Reuse(False, "a fingerprint keeps no per-tensor hashes")
    a, b = (m.checkpoint for m in pair.models)
    return exact_reuse((a.tensors, a.tensor_digests()), (b.tensors, b.tensor_digests()),
                       same_format=a.format == b.format)


def item(r: Reuse) -> Evidence:
    """The evidence item: what was found, or that nothing was looked for."""
    if not r.checked:
        return Evidence("weights", None, None, f"Byte-identical tensors were not looked for: {r.why_not}.",
                        {"checked": False, "why_not": r.why_not}, kind=KIND)
    small = (f"; {r.small_or_constant} more are identical but small (< {MIN_ELEMENTS:,} elements) or constant "
             "(all ones, all zeros), which independent models share, and are not counted" if r.small_or_constant else "")
    bar = (" This decides alone." if r.decisive else
           f" Below the bar for deciding alone (≥ {DECISIVE_COUNT} tensors and ≥ {DECISIVE_SHARE:.0%} of the bytes)."
           if r.matched else "")
    finding = (f"{r.matched} of {r.candidate_large} candidate tensors of ≥ {MIN_ELEMENTS:,} non-constant elements "
               f"are byte-identical to a base tensor, whatever their names ({r.share:.1%} of the candidate's weight "
               f"bytes){small}.{bar}")
    details = {"checked": True, "matched": r.matched, "candidate_large_tensors": r.candidate_large,
               "base_large_tensors": r.base_large, "base_matched": r.base_matched,
               "share_of_bytes": round(r.share, 6), "matched_bytes": r.matched_bytes,
               "candidate_bytes": r.candidate_bytes, "small_or_constant_identical": r.small_or_constant,
               "min_elements": MIN_ELEMENTS, "decisive": r.decisive, "renamed": r.renamed, "p_bound": BOUND,
               "pairs": [{"base": a, "candidate": b} for a, b in r.pairs]}
    return Evidence("weights", round(r.share, 6), r.p_value, finding, details, kind=KIND)


def overrule(v: Verdict, r: Reuse) -> Verdict:
    """The weight verdict given exact reuse: decisive reuse names the label (identical when every large tensor
    has its twin, else derived); a few identical tensors forbid `independent`; nothing found changes nothing."""
    if not r.checked or not r.matched:
        return v
    if not r.decisive:
        if v.label != "independent":
            return v
        return Verdict("inconclusive", None, 0.0, v.p_value,
                       f"{v.explanation} Yet {r.matched} large tensors are byte-identical to the base's, which "
                       "independent training does not produce: part of the base was reused.")
    label = "identical" if r.complete else "derived"
    rel = relation.reuse_relation(r.matched, r.candidate_large, r.share, complete=r.complete, renamed=r.renamed)
    tags = rel.tags
    if label == "derived" and v.label == "derived" and v.relation:  # the profiles name what changed in the rest
        tags = [t for t in v.relation.split(", ") if t not in rel.tags] + rel.tags
    p = r.p_value
    return Verdict(label, ", ".join(tags), confidence(label, p), p, f"{rel.text} Weight profiles: {v.explanation}")
