"""`compare` where one input or both are fingerprints: the weight, tokenizer and config signals.

A model on the other side is fingerprinted in memory first, so both sides are measured the
same way. Activations need the models themselves and are refused.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from provenance.errors import InvalidParameterError
from provenance.evidence import Evidence, weight_items
from provenance.fingerprint.build import fingerprint
from provenance.fingerprint.model import Fingerprint
from provenance.fingerprint.weights import fingerprint_weight_evidence
from provenance.io.checkpoint import file_sha256
from provenance.result import CompareResult
from provenance.signals.config import config_facts_comparison, config_finding
from provenance.vocab.token_map import shared_tokens

Spec = str | os.PathLike[str]


def compare_fingerprints(base: Spec, candidate: Spec, opts: Any, device: torch.device) -> CompareResult:
    """The `compare` result for two specs of which at least one is a fingerprint file."""
    if "activations" in (opts.signals or ()):
        raise InvalidParameterError("signals", "compare", "weights, tokenizer or config when an input is a "
                                    "fingerprint (activations run the models themselves)", ",".join(opts.signals))
    fa, fb = (fingerprint(s, device=str(device), hashes=opts.hashes) for s in (base, candidate))
    return compare_loaded(fa, fb, base, candidate, opts, device)


def compare_loaded(fa: Fingerprint, fb: Fingerprint, base: Spec, candidate: Spec, opts: Any,
                   device: torch.device) -> CompareResult:
    """`compare_fingerprints` on fingerprints already in memory (`identify` compares one query with many)."""
    from provenance.comparison import (
        DEFAULT_SIGNALS,
        MODEL_SIGNALS,
        run_environment,
        shape_facts,
        tokenizer_evidence,
        verdict_from,
    )

    alone = [fp for fp in (fa, fb) if not fp.has_weights and not fp.meta.get("facts")]
    signals = opts.signals or DEFAULT_SIGNALS
    if alone:
        needs_model = [s for s in opts.signals or () if s in MODEL_SIGNALS]
        if needs_model:
            raise InvalidParameterError("signals", "compare", "'tokenizer' when an input is a tokenizer without "
                                        f"weights ({alone[0].name})", ",".join(needs_model))
        signals = ("tokenizer",)
    evidence: list[Evidence] = []
    va, vb = fa.vocabulary, fb.vocabulary
    token_map = shared_tokens(va, vb) if va is not None and vb is not None else None
    w = tok = cmp = None
    if "weights" in signals:
        w = fingerprint_weight_evidence(fa, fb, seed=opts.seed)
        evidence += weight_items(w)
    if "tokenizer" in signals:
        tok, items = tokenizer_evidence(va, vb, token_map)
        evidence += items
    if "config" in signals:
        cmp = config_facts_comparison(fa.meta["config_facts"], fb.meta["config_facts"])
        evidence.append(Evidence("config", None, None, config_finding(cmp), cmp, kind="config"))
    shapes = shape_facts(fa.meta["facts"], fb.meta["facts"]) if w is not None else {}
    verdict = verdict_from(w, tok, shapes, None, cmp, tokenizer_ran="tokenizer" in signals,
                           tokenizer_note=next((e.finding for e in evidence if e.signal == "tokenizer"), ""))
    layer_map = [[x, y, round(s, 6)] for x, y, s in w.layer_map.pairs] if w and w.layer_map else []
    return CompareResult(fingerprint_info(fa, base, opts.hashes), fingerprint_info(fb, candidate, opts.hashes),
                         verdict, evidence, layer_map, run_environment(device, opts, base, candidate), w, tok, None)


def fingerprint_info(fp: Fingerprint, spec: Spec, hashes: bool) -> dict[str, Any]:
    """The result's model entry for one side: the fingerprinted model's facts and files, and the fingerprint's."""
    src, model = fp.meta.get("source", {}), fp.meta.get("model", {})
    info: dict[str, Any] = {
        "spec": str(spec), "path": fp.path or str(spec),
        "format": f"fingerprint of {src.get('format')}" if fp.path else str(src.get("format")),
        "architecture": model.get("architecture"), "definition": model.get("definition"),
        "roles_inferred": model.get("roles_inferred"), "layers": model.get("layers"),
        "parameters": model.get("parameters"), "dtypes": model.get("dtypes", {}),
        "tokenizer": fp.vocabulary.summary() if fp.vocabulary is not None else None,
        "sha256": dict(src.get("sha256", {})) if hashes else {}}
    if fp.path:
        info["fingerprint"] = {"file": fp.path, "sha256": file_sha256(fp.path) if hashes else None,
                               "name": src.get("name"), "source_spec": src.get("spec"),
                               "package": src.get("package"), "license": src.get("license"),
                               "lineage": src.get("lineage")}
    return info
