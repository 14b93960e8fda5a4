"""`compare` where one input or both are fingerprints: every signal that reads fingerprints.

A model on the other side is fingerprinted in memory first, so both sides are measured the
same way. Signals that need the models themselves (activations) are refused.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from provenance import fastpath
from provenance.fingerprint.build import fingerprint
from provenance.fingerprint.model import Fingerprint
from provenance.io.checkpoint import file_sha256
from provenance.signals import loop
from provenance.signals.base import FINGERPRINTS, TOKENIZERS
from provenance.signals.pair import Pair

if TYPE_CHECKING:
    import torch

    from provenance.io.source import ModelSource
    from provenance.options import CompareOptions
    from provenance.result import CompareResult
    from provenance.vocab.model import Vocabulary

Spec = str | os.PathLike[str]


def compare_fingerprints(base: Spec, candidate: Spec, opts: CompareOptions, device: torch.device, *,
                         sources: tuple[ModelSource, ModelSource] | None = None) -> CompareResult:
    """The `compare` result for two specs of which at least one is a fingerprint file (`sources`: both specs
    already resolved)."""
    loop.select(FINGERPRINTS, opts.signals)  # refuse signals a fingerprint cannot feed before fingerprinting
    fa, fb = (fingerprint(s, device=str(device), hashes=opts.hashes) for s in (sources or (base, candidate)))
    return compare_loaded(fa, fb, base, candidate, opts, device)


def compare_loaded(fa: Fingerprint, fb: Fingerprint, base: Spec, candidate: Spec, opts: CompareOptions,
                   device: torch.device) -> CompareResult:
    """`compare_fingerprints` on fingerprints already in memory (`identify` compares one query with many)."""
    from provenance.comparison import result_of

    alone = [fp for fp in (fa, fb) if not fp.has_weights and not fp.meta.get("facts")]
    kind = TOKENIZERS if alone else FINGERPRINTS
    selected = loop.select(kind, opts.signals, alone[0].name if alone else "")
    pair = Pair(kind, base, candidate, opts, device, fingerprints=(fa, fb))
    return result_of(pair, selected, fingerprint_info(fa, base, opts.hashes),
                     fingerprint_info(fb, candidate, opts.hashes))


def fingerprint_info(fp: Fingerprint, spec: Spec, hashes: bool) -> dict[str, Any]:
    """The result's model entry for one side: the fingerprinted model's facts and files, and the fingerprint's."""
    src, model = fp.meta.get("source", {}), fp.meta.get("model", {})
    info: dict[str, Any] = {
        "spec": str(spec), "path": fp.path or str(spec),
        "format": f"fingerprint of {src.get('format')}" if fp.path else str(src.get("format")),
        "architecture": model.get("architecture"), "definition": model.get("definition"),
        "roles_inferred": model.get("roles_inferred"), "layers": model.get("layers"),
        "parameters": model.get("parameters"), "dtypes": model.get("dtypes", {}),
        "tokenizer": vocabulary_summary(fp.vocabulary) if fp.vocabulary is not None else None,
        "sha256": dict(src.get("sha256", {})) if hashes else {}}
    if fp.path:
        info["fingerprint"] = {"file": fp.path, "sha256": file_sha256(fp.path) if hashes else None,
                               "name": src.get("name"), "source_spec": src.get("spec"),
                               "package": src.get("package"), "license": src.get("license"),
                               "lineage": src.get("lineage")}
    return info


def vocabulary_summary(v: Vocabulary) -> dict[str, Any]:
    """`v.summary()`, computed once per vocabulary (identify describes its query in every comparison). Kept
    under the file it names: copies of one tokenizer share their memo (`provenance.vocab.cache`)."""
    if not fastpath.enabled():
        return v.summary()
    return dict(v.memo(f"summary of {v.source}", v.summary))
