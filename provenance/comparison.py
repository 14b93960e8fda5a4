"""`compare(base, candidate)`: was the candidate built from the base? Plain data in, plain data out.

One options object (`CompareOptions`) is shared by the CLI, the Python API and notebooks; the
signals that run are the registered ones (`provenance.signals.registry`), through one loop.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from provenance import __version__
from provenance.arch.view import CanonicalModel, open_model
from provenance.errors import InvalidParameterError, SourceKindError
from provenance.fingerprint.compare import compare_fingerprints
from provenance.io.checkpoint import file_sha256
from provenance.io.convert import resolve_device
from provenance.io.source import ModelSource, resolve
from provenance.options import CompareOptions, reproduce_command
from provenance.result import CompareResult
from provenance.signals import loop, registry
from provenance.signals.base import CHECKPOINTS, ENDPOINTS, TOKENIZERS
from provenance.signals.content_hashes import tensors_to_hash
from provenance.signals.facts import model_facts, shape_facts
from provenance.signals.pair import Pair
from provenance.vocab.load import load_vocabulary
from provenance.vocab.model import Vocabulary

SCHEMA = "provenance.compare/1"
__all__ = ["CompareOptions", "compare", "model_facts", "shape_facts", "available_signals", "default_signals",
           "run_environment", "result_of"]


def available_signals() -> tuple[str, ...]:
    """Every registered signal's name."""
    return registry.names()


def default_signals() -> tuple[str, ...]:
    """The signals run when none are asked for."""
    return registry.defaults()


def _model_info(m: CanonicalModel, hashes: bool, vocab: Vocabulary | None = None) -> dict[str, Any]:
    ck, rm = m.checkpoint, m.roles
    return {"spec": ck.spec, "path": str(ck.root), "format": ck.format,
            "architecture": ck.config.get("model_type"), "definition": rm.definition,
            "roles_inferred": rm.inferred, "layers": rm.num_layers, "parameters": ck.parameter_count(),
            "dtypes": dict(Counter(s.dtype for s in rm.roles.values()).most_common()),
            "tokenizer": vocab.summary() if vocab is not None else None, "sha256": ck.sha256() if hashes else {}}


def run_environment(device: torch.device, opts: CompareOptions, base: Any, candidate: Any) -> dict[str, Any]:
    """Versions, device, seed, date, and the command line that reproduces the run."""
    return {"provenance": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "device": str(device),
            "seed": opts.seed, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": reproduce_command(base, candidate, opts),
            "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(opts).items()
                        if k != "progress"}}


def compare(base: str | os.PathLike[str], candidate: str | os.PathLike[str],
            options: CompareOptions | None = None, **overrides: Any) -> CompareResult:
    """Compare two specs (models, or tokenizers alone); returns a CompareResult (never prints or writes).

    Options come as a `CompareOptions`, or as its fields by keyword:
    `compare(a, b, signals=("weights", "activations"), device="cpu")`.
    """
    if isinstance(overrides.get("signals"), str):
        overrides["signals"] = tuple(s.strip() for s in overrides["signals"].split(",") if s.strip())
    try:
        opts = replace(options or CompareOptions(), **overrides)
    except TypeError as exc:
        raise InvalidParameterError("options", "compare", f"fields of CompareOptions ({exc})", "") from None
    device = resolve_device(opts.device)
    sa, sb = resolve(base), resolve(candidate)
    kinds = {sa.kind, sb.kind}
    if "endpoint" in kinds:
        return _compare_endpoint(base, candidate, sa, sb, opts, device)
    if "fingerprint" in kinds:
        return compare_fingerprints(base, candidate, opts, device, sources=(sa, sb))
    alone = [s.spec for s in (sa, sb) if s.kind == "tokenizer"]
    if alone:
        selected = loop.select(TOKENIZERS, opts.signals, alone[0])
        va, vb = load_vocabulary(sa), load_vocabulary(sb)
        pair = Pair(TOKENIZERS, base, candidate, opts, device, sources=(sa, sb), tokenizers=(va, vb))
        return result_of(pair, selected, _tokenizer_info(base, va, opts.hashes),
                         _tokenizer_info(candidate, vb, opts.hashes))
    selected = loop.select(CHECKPOINTS, opts.signals)
    with open_model(sa) as a, open_model(sb) as b:
        if opts.hashes:  # the file hashes come from the weight stream's reads: each file is read once
            wanted_a, wanted_b = tensors_to_hash(a.checkpoint, b.checkpoint)
            a.checkpoint.hash_reads(wanted_a)
            b.checkpoint.hash_reads(wanted_b)
        pair = Pair(CHECKPOINTS, base, candidate, opts, device, sources=(sa, sb), models=(a, b))
        outcome = loop.run(pair, selected)
        va, vb = pair.read_vocabularies()
        return _result(pair, outcome, _model_info(a, opts.hashes, va), _model_info(b, opts.hashes, vb))


def _compare_endpoint(base: Any, candidate: Any, sa: ModelSource, sb: ModelSource, opts: CompareOptions,
                      device: torch.device) -> CompareResult:
    """A candidate behind an API: only signals that read endpoints run; each opens what it needs of the base."""
    if sa.kind == "endpoint":
        raise SourceKindError(f"{sa.spec}: the base is a model behind an API endpoint; the base must be a checkpoint "
                              "or a fingerprint you hold (only the candidate may be an endpoint)")
    selected = loop.select(ENDPOINTS, opts.signals, sb.spec)
    pair = Pair(ENDPOINTS, base, candidate, opts, device, sources=(sa, sb))
    return result_of(pair, selected, source_info(sa), source_info(sb))


def source_info(src: ModelSource) -> dict[str, Any]:
    """A side described from its resolved source alone (no weights read): what an endpoint pair reports."""
    where = src.endpoint.base_url if src.endpoint is not None else str(src.path)
    return {"spec": src.spec, "path": where, "format": src.kind if src.kind == "endpoint" else str(src.weights_format),
            "architecture": None, "definition": None, "roles_inferred": None, "layers": None, "parameters": None,
            "dtypes": {}, "tokenizer": None, "sha256": {},
            **({"endpoint": {"base_url": src.endpoint.base_url, "model": src.endpoint.model,
                             "api_key_env": src.endpoint.api_key_env}} if src.endpoint is not None else {})}


def result_of(pair: Pair, selected: tuple[Any, ...], base_info: dict[str, Any],
              candidate_info: dict[str, Any]) -> CompareResult:
    """Run the selected signals on the pair and wrap their outcome with both sides' descriptions."""
    return _result(pair, loop.run(pair, selected), base_info, candidate_info)


def _result(pair: Pair, outcome: loop.Outcome, base_info: dict[str, Any],
            candidate_info: dict[str, Any]) -> CompareResult:
    raw = outcome.raw
    return CompareResult(base_info, candidate_info, outcome.verdict, outcome.evidence, outcome.layer_map,
                         run_environment(pair.device, pair.opts, pair.base, pair.candidate), raw.get("weights"),
                         raw.get("tokenizer"), raw.get("activations"), measurements=raw)


def _tokenizer_info(spec: str | os.PathLike[str], v: Vocabulary, hashes: bool) -> dict[str, Any]:
    src = Path(v.source)
    return {"spec": str(spec), "path": str(src), "format": f"tokenizer ({v.format})", "architecture": None,
            "definition": None, "roles_inferred": None, "layers": None, "parameters": None, "dtypes": {},
            "tokenizer": v.summary(), "sha256": {src.name: file_sha256(src)} if hashes and src.is_file() else {}}
