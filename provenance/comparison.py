"""`compare(base, candidate)`: was the candidate built from the base? Plain data in, plain data out.

One options object (`CompareOptions`) is shared by the CLI, the Python API and notebooks.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from provenance import __version__
from provenance.aggregate import SignalVerdict, aggregate
from provenance.arch.view import CanonicalModel, open_model
from provenance.errors import InvalidParameterError, ProvenanceError
from provenance.evidence import (
    Evidence,
    Verdict,
    decide,
    storage_tolerance,
    weight_items,
)
from provenance.fingerprint.compare import compare_fingerprints
from provenance.fingerprint.fileformat import is_fingerprint_file
from provenance.io.checkpoint import file_sha256
from provenance.io.convert import resolve_device
from provenance.progress import bar as progress_bar
from provenance.relation import tensors_renamed
from provenance.result import CompareResult
from provenance.signals.activations import (
    ACTIVATION_STEPS,
    ActivationEvidence,
    activation_items,
    activation_verdict,
    run_activations,
)
from provenance.signals.config import config_comparison, config_finding
from provenance.signals.profiles import PROFILE_KEYS
from provenance.signals.tokenizer import tokenizer_items, tokenizer_verdict
from provenance.signals.weights import WeightEvidence, weight_evidence
from provenance.vocab.compare import VocabComparison, compare_vocabularies
from provenance.vocab.load import is_tokenizer_only, load_vocabulary, vocabulary_of
from provenance.vocab.model import Vocabulary
from provenance.vocab.token_map import shared_tokens

SCHEMA = "provenance.compare/1"
AVAILABLE_SIGNALS = ("weights", "tokenizer", "activations", "config")
DEFAULT_SIGNALS = ("weights", "tokenizer", "config")  # activations run the models: asked for explicitly
MODEL_SIGNALS = ("weights", "activations", "config")  # need weights on both sides
PLANNED_SIGNALS: tuple[str, ...] = ()


@dataclass(frozen=True)
class CompareOptions:
    """Options of one comparison (CLI flags map onto these one to one)."""

    signals: tuple[str, ...] | None = None  # None: every signal the two inputs allow
    device: str = "auto"
    seed: int = 0
    hashes: bool = True
    progress: bool | None = False  # bars on stderr; None: when stderr is a terminal
    probe_texts: int = 64  # probe texts the activation signal runs (of the 320 shipped)
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.signals is not None and not self.signals:
            raise InvalidParameterError("signals", "compare", f"a non-empty subset of {AVAILABLE_SIGNALS}", "")
        for s in self.signals or ():
            if s in PLANNED_SIGNALS:
                raise InvalidParameterError("signals", "compare", f"a subset of {AVAILABLE_SIGNALS} "
                                            f"({s!r} evidence is not implemented yet)", s)
            if s not in AVAILABLE_SIGNALS:
                raise InvalidParameterError("signals", "compare", f"a subset of {AVAILABLE_SIGNALS}", s)
        if not 8 <= self.probe_texts <= 320:
            raise InvalidParameterError("probe_texts", "compare", "between 8 and 320", self.probe_texts)


def _model_info(m: CanonicalModel, hashes: bool, vocab: Vocabulary | None = None) -> dict[str, Any]:
    ck, rm = m.checkpoint, m.roles
    return {"spec": ck.spec, "path": str(ck.root), "format": ck.format,
            "architecture": ck.config.get("model_type"), "definition": rm.definition,
            "roles_inferred": rm.inferred, "layers": rm.num_layers, "parameters": ck.parameter_count(),
            "dtypes": dict(Counter(s.dtype for s in rm.roles.values()).most_common()),
            "tokenizer": vocab.summary() if vocab is not None else None, "sha256": ck.sha256() if hashes else {}}


def model_facts(m: CanonicalModel) -> dict[str, Any]:
    """What the relation wording needs to know about one model (a fingerprint keeps the same facts)."""
    def dim(role_suffix: str, axis: int) -> int | None:
        """A size read off the first role with this suffix (configs can be missing or wrong)."""
        src = next((s for r, s in m.roles.roles.items() if r == role_suffix or r.endswith("." + role_suffix)), None)
        return src.shape[axis] if src is not None and len(src.shape) > axis else None

    common = Counter(s.dtype for s in m.roles.roles.values()).most_common(1)
    return {"format": m.checkpoint.format, "hidden": dim("embed", 1), "intermediate": dim("mlp.up", 0),
            "vocab": dim("embed", 0), "inferred": m.roles.inferred,
            "role_tensors": {r: s.tensor for r, s in m.roles.roles.items()},
            "dtype": common[0][0] if common else None,
            "quantized": any(i.quantized for i in m.checkpoint.tensors.values()),
            "tolerance": storage_tolerance({s.dtype for r, s in m.roles.roles.items() if r.startswith("layers.")})}


def shape_facts(fa: dict[str, Any], fb: dict[str, Any]) -> dict[str, Any]:
    """(base, candidate) sizes and flags the relation wording needs, from two `model_facts`."""
    return {"hidden": (fa["hidden"], fb["hidden"]), "intermediate": (fa["intermediate"], fb["intermediate"]),
            "vocab": (fa["vocab"], fb["vocab"]), "renamed": tensors_renamed(fa, fb),
            "quantized": bool(fa["quantized"] or fb["quantized"]), "dtypes_differ": fa["dtype"] != fb["dtype"],
            "tolerance": fa["tolerance"] + fb["tolerance"]}


def run_environment(device: torch.device, opts: CompareOptions, base: Any, candidate: Any) -> dict[str, Any]:
    """Versions, device, seed, date, and the command line that reproduces the run."""
    return {"provenance": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "device": str(device),
            "seed": opts.seed, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": command_line(base, candidate, opts),
            "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(opts).items()
                        if k != "progress"}}


def command_line(base: Any, candidate: Any, opts: CompareOptions) -> str:
    """`provenance compare ...` with every option that changes the numbers."""
    args = ["provenance", "compare", str(base), str(candidate)]
    if opts.signals is not None:
        args += ["--signals", ",".join(opts.signals)]
    args += ["--device", opts.device, "--seed", str(opts.seed)]
    if "activations" in (opts.signals or ()):
        args += ["--probes", str(opts.probe_texts), "--batch-size", str(opts.batch_size)]
    if not opts.hashes:
        args.append("--no-hash")
    return shlex.join(args)


def _progress_bar(a: CanonicalModel, b: CanonicalModel, show: bool | None) -> Any:
    total = sum(1 for m in (a, b) for i in m.roles.layers for k in PROFILE_KEYS if f"layers.{i}.{k}" in m.roles.roles)
    return progress_bar(total, "comparing weights", "tensor", show)


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
    if is_fingerprint_file(base) or is_fingerprint_file(candidate):
        return compare_fingerprints(base, candidate, opts, device)
    alone = [str(s) for s in (base, candidate) if is_tokenizer_only(s)]
    if alone:
        needs_model = [s for s in opts.signals or () if s in MODEL_SIGNALS]
        if needs_model:
            raise InvalidParameterError("signals", "compare", "'tokenizer' when an input is a tokenizer without "
                                        f"weights ({alone[0]})", ",".join(needs_model))
        return _compare_tokenizers(base, candidate, opts, device)
    signals = opts.signals or DEFAULT_SIGNALS
    with open_model(base) as a, open_model(candidate) as b:
        if opts.hashes:  # the file hashes come from the weight stream's reads: each file is read once
            a.checkpoint.hash_reads()
            b.checkpoint.hash_reads()
        evidence: list[Evidence] = []
        va, vb, tok, unreadable = None, None, None, []
        if "tokenizer" in signals or "weights" in signals:
            va, vb = (_readable_vocabulary(m, side, unreadable) for m, side in ((a, "base"), (b, "candidate")))
        token_map = shared_tokens(va, vb) if va is not None and vb is not None else None
        w = None
        if "weights" in signals:
            with _progress_bar(a, b, opts.progress) as tensors:
                w = weight_evidence(a, b, device=str(device), seed=opts.seed, token_map=token_map,
                                    progress=tensors.update)
            evidence += weight_items(w)
        if "tokenizer" in signals:
            tok, items = tokenizer_evidence(va, vb, token_map)
            evidence += [Evidence("tokenizer", None, None, u, kind="unreadable") for u in unreadable] + items
        act = None
        if "activations" in signals:
            with progress_bar(ACTIVATION_STEPS, "comparing activations", "step", opts.progress) as steps:
                act = run_activations(base, candidate, device=str(device), seed=opts.seed,
                                      probe_texts=opts.probe_texts, batch_size=opts.batch_size, progress=steps.update)
            evidence += activation_items(act)
        cmp = None
        if "config" in signals:
            cmp = config_comparison(a, b)
            evidence.append(Evidence("config", None, None, config_finding(cmp), cmp, kind="config"))
        verdict = verdict_from(w, tok, shape_facts(model_facts(a), model_facts(b)) if w is not None else {}, act, cmp,
                           tokenizer_ran="tokenizer" in signals,
                           tokenizer_note=next((e.finding for e in evidence if e.signal == "tokenizer"), ""))
        if w and w.layer_map:
            layer_map = [[x, y, round(s, 6)] for x, y, s in w.layer_map.pairs]
        else:
            layer_map = [[x, y, round(s, 6)] for x, y, s in act.layer_map] if act else []
        return CompareResult(_model_info(a, opts.hashes, va), _model_info(b, opts.hashes, vb), verdict, evidence,
                             layer_map, run_environment(device, opts, base, candidate), w, tok, act)


def _readable_vocabulary(m: CanonicalModel, side: str, problems: list[str]) -> Vocabulary | None:
    """The model's tokenizer; a broken tokenizer file beside good weights is reported, not fatal."""
    try:
        return vocabulary_of(m.checkpoint)
    except ProvenanceError as exc:
        problems.append(f"The {side}'s tokenizer could not be read: {exc}")
        return None


def tokenizer_evidence(va: Vocabulary | None, vb: Vocabulary | None,
                        token_map: Any) -> tuple[VocabComparison | None, list[Evidence]]:
    if va is None or vb is None:
        side = "either model" if va is None and vb is None else "the base" if va is None else "the candidate"
        return None, [Evidence("tokenizer", None, None, f"Not compared: no tokenizer found for {side}.",
                               kind="coverage")]
    tok = compare_vocabularies(va, vb, token_map)
    return tok, tokenizer_items(tok)


def verdict_from(w: WeightEvidence | None, tok: VocabComparison | None, shapes: dict[str, Any],
             act: ActivationEvidence | None = None, config: dict[str, Any] | None = None, *,
             tokenizer_ran: bool = True, tokenizer_note: str = "") -> Verdict:
    """Each signal's own verdict, then one verdict over them (`provenance.aggregate`)."""
    readings = [SignalVerdict("weights", decide(w, shapes) if w is not None else None, ran=w is not None),
                SignalVerdict("activations", activation_verdict(act) if act is not None else None,
                              ran=act is not None),
                SignalVerdict("tokenizer", tokenizer_verdict(tok) if tok is not None else None, tokenizer_note,
                              ran=tok is not None or tokenizer_ran),
                SignalVerdict("config", None, config_finding(config) if config is not None else "",
                              ran=config is not None)]
    return aggregate(readings)


def _compare_tokenizers(base: str | os.PathLike[str], candidate: str | os.PathLike[str], opts: CompareOptions,
                        device: torch.device) -> CompareResult:
    """Tokenizer-only comparison: one of the inputs has no weights."""
    va, vb = load_vocabulary(base), load_vocabulary(candidate)
    tok = compare_vocabularies(va, vb)
    env = run_environment(device, opts, base, candidate)
    return CompareResult(_tokenizer_info(base, va, opts.hashes), _tokenizer_info(candidate, vb, opts.hashes),
                         verdict_from(None, tok, {}), tokenizer_items(tok), [], env, None, tok)


def _tokenizer_info(spec: str | os.PathLike[str], v: Vocabulary, hashes: bool) -> dict[str, Any]:
    src = Path(v.source)
    return {"spec": str(spec), "path": str(src), "format": f"tokenizer ({v.format})", "architecture": None,
            "definition": None, "roles_inferred": None, "layers": None, "parameters": None, "dtypes": {},
            "tokenizer": v.summary(), "sha256": {src.name: file_sha256(src)} if hashes and src.is_file() else {}}
