"""Build a fingerprint from a model or tokenizer spec: one streamed pass over the weights.

What is kept (sizes for a 7B model, hidden 4096, 32 layers):
- residual profiles of every profiled role over *all* hidden dims (~1.8 MB): the layer test
  later picks the dims the alignment matched, exactly as on the full checkpoint;
- embedding rows of anchor tokens chosen by token string, plus some chosen by id (~3 MB):
  the residual alignment;
- for q, gate and up, the weights projected on 64 anchor embeddings, which no residual
  permutation, sign flip, rotation or rescaling changes, keeping the 128 rows of largest
  norm with their neuron ids (~1.5 MB): the magnitudes (how far weights moved, whether
  neurons sit in place);
- per-role statistics, config, roles, file hashes, the full canonical vocabulary.
"""

from __future__ import annotations

import os
import platform
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from provenance import __version__, fastpath
from provenance.arch.view import CanonicalModel, open_model
from provenance.errors import ProvenanceError, SourceKindError
from provenance.fingerprint import anchors as anc
from provenance.fingerprint.fileformat import as_stored, load
from provenance.fingerprint.model import Fingerprint, Sketch
from provenance.fingerprint.screen import embedding_screen, minhash
from provenance.io.checkpoint import file_sha256
from provenance.io.convert import resolve_device
from provenance.io.source import resolve
from provenance.signals.config import config_facts
from provenance.signals.profiles import (
    INFERRED_SKETCH_KEYS,
    PROFILE_KEYS,
    SKETCH_KEYS,
    compute_profiles,
)
from provenance.vocab.load import load_vocabulary, vocabulary_of
from provenance.vocab.model import Vocabulary

ANCHOR_VALUES = 1 << 19  # anchor rows x hidden kept for the alignment (1 MiB as float16)
MIN_ANCHORS, MAX_ANCHORS = 256, 4096
# Sketch size per pairing mode: (anchor columns, rows of largest norm). Rows of largest norm are found
# again in a permuted copy; PROBE_ROWS rows at fixed neuron ids tell whether neurons sit in place.
# The id-paired sketches of a model with a tokenizer are only a fallback (the other model has no
# tokenizer), so they are kept smaller.
SKETCH_SIZE = {"primary": (64, 96), "fallback": (32, 64)}
PROBE_ROWS = 32
MIN_TOKEN_ANCHORS = 64  # fewer shared tokens than this: the weight signal pairs rows by id
STAT_SAMPLE = 1 << 18  # elements per tensor the moment statistics are taken over (evenly strided)


def fingerprint(spec: str | os.PathLike[str], *, device: str = "auto", hashes: bool = True,
                source: dict[str, Any] | None = None, progress: Callable[[int], None] | None = None) -> Fingerprint:
    """The fingerprint of a model, tokenizer or fingerprint file (`source` adds name, package, license, lineage)."""
    src = resolve(spec)
    if src.kind == "fingerprint":
        fp = load(src.path)
        if source:
            fp.meta["source"] = {**fp.meta.get("source", {}), **source}
        return fp
    if src.kind == "tokenizer":
        return from_vocabulary(load_vocabulary(src), spec=src.spec, hashes=hashes, source=source)
    if src.kind == "endpoint":
        raise SourceKindError(f"{src.spec}: a model behind an API endpoint has no weights or tokenizer files to "
                              "fingerprint; fingerprint the checkpoint you hold")
    with open_model(src) as m:
        try:
            vocab = vocabulary_of(m.checkpoint)
            broken = None
        except ProvenanceError as exc:  # a broken tokenizer beside good weights: keep the weights
            vocab, broken = None, str(exc)
        fp = from_model(m, vocab, device=device, hashes=hashes, source=source, progress=progress)
        if broken:
            fp.meta["notes"].append(f"the tokenizer could not be read: {broken}")
        return fp


def _base_meta(spec: str, fmt: str, files: dict[str, str], source: dict[str, Any] | None) -> dict[str, Any]:
    return {"source": {"spec": spec, "format": fmt, "sha256": files, "name": None, "package": None,
                       "license": None, "lineage": None, **(source or {})},
            "created_by": {"provenance": __version__, "torch": torch.__version__, "numpy": np.__version__,
                           "python": platform.python_version()},
            "notes": []}


def from_vocabulary(v: Vocabulary, *, spec: str, hashes: bool = True,
                    source: dict[str, Any] | None = None) -> Fingerprint:
    """A tokenizer-only fingerprint: the canonical vocabulary and its MinHash."""
    path = v.source
    files = {os.path.basename(path): file_sha256(path)} if hashes and os.path.isfile(path) else {}
    meta = _base_meta(spec, f"tokenizer ({v.format})", files, source)
    keys, _ = anc.token_keys(v)
    return Fingerprint(meta=meta, vocabulary=v, screens={"minhash": minhash(anc.priorities(keys))})


def _role_stats(w: torch.Tensor) -> dict[str, float]:
    """Moments of a strided sample of the tensor: std, excess kurtosis, |max| (training leaves traces here)."""
    flat = w.reshape(-1)
    step = max(1, flat.numel() // STAT_SAMPLE)
    x = flat[::step].double()
    mean, std = float(x.mean()), float(x.std())
    kurt = float(((x - mean) ** 4).mean() / std ** 4 - 3.0) if std > 0 else 0.0
    return {"mean": round(mean, 8), "std": round(std, 8), "kurtosis": round(kurt, 6),
            "abs_max": round(float(x.abs().max()), 6)}


def from_model(m: CanonicalModel, vocab: Vocabulary | None, *, device: str = "auto", hashes: bool = True,
               source: dict[str, Any] | None = None, progress: Callable[[int], None] | None = None) -> Fingerprint:
    """Fingerprint of an opened model: one pass over its profiled roles."""
    from provenance.signals.facts import model_facts

    ck, rm = m.checkpoint, m.roles
    # file hashes from the weight stream's own reads (one pass); a fingerprint keeps no per-tensor sha256
    streamed = hashes and ck.hash_reads(set() if fastpath.enabled() else None)
    meta = _base_meta(ck.spec, ck.format, ck.sha256() if hashes and not streamed else {}, source)
    meta["model"] = {"architecture": ck.config.get("model_type"), "definition": rm.definition,
                     "roles_inferred": rm.inferred, "layers": rm.num_layers, "parameters": ck.parameter_count(),
                     "dtypes": dict(Counter(s.dtype for s in rm.roles.values()).most_common()), "norm": rm.norm,
                     "config": ck.config}
    meta["roles"] = {r: [s.tensor, list(s.shape), s.dtype] for r, s in rm.roles.items()}
    meta["facts"] = model_facts(m)
    meta["config_facts"] = config_facts(m)
    fp = Fingerprint(meta=meta, vocabulary=vocab, layers=list(rm.layers))
    if vocab is not None:
        keys, _ = anc.token_keys(vocab)
        fp.screens["minhash"] = minhash(anc.priorities(keys))
    if "embed" not in rm.roles or len(rm.roles["embed"].shape) != 2:
        meta["notes"].append("no embedding: the weights cannot be aligned with another model")
        meta["weights"] = {"hidden": None}
    else:
        _weights(fp, m, vocab, str(resolve_device(device)), progress)
    if streamed:
        meta["source"]["sha256"] = ck.sha256()
    return as_stored(fp)


def _exact_rows(w: torch.Tensor, x: torch.Tensor, ids: np.ndarray) -> np.ndarray:
    """The kept rows of w @ x.T recomputed in float64: the float16 values stored do not depend on the
    order a BLAS sums in (a float32 product flipped ~1 in 400 of them between two summation orders)."""
    rows = w[torch.from_numpy(ids).to(w.device)].double()
    return (rows @ x.double().T).cpu().numpy()


def _weights(fp: Fingerprint, m: CanonicalModel, vocab: Vocabulary | None, device: str,
             progress: Callable[[int], None] | None) -> None:
    rm = m.roles
    embed = m.tensor("embed", device=device, dtype="float32")
    rows, hidden = embed.shape
    k = int(np.clip(ANCHOR_VALUES // max(hidden, 1), MIN_ANCHORS, MAX_ANCHORS))
    if vocab is not None:
        keys, ids = anc.token_keys(vocab, rows)
        if len(keys) >= MIN_TOKEN_ANCHORS:
            fp.anchors[anc.BY_TOKENS] = anc.lowest(anc.BY_TOKENS, keys, ids, anc.priorities(keys), k)
    fp.anchors[anc.BY_IDS] = anc.by_ids(rows, k // 2 if fp.anchors else k)
    for mode, a in fp.anchors.items():
        fp.anchor_rows[mode] = embed[torch.from_numpy(a.ids).to(embed.device)].cpu().numpy()
        fp.screens[anc.TAG_OF[mode]], fp.screens[anc.TAG_OF[mode] + ".anchors"] = embedding_screen(
            fp.anchor_rows[mode], anc.priorities(a.keys))
    xs, top_rows = {}, {}  # mode -> [m, hidden]: the anchor embeddings sketches project on; rows kept
    for i, (mode, a) in enumerate(fp.anchors.items()):
        cols, top_rows[mode] = SKETCH_SIZE["primary" if i == 0 else "fallback"]
        fp.sketch_anchors[mode] = min(len(a), cols)
        xs[mode] = embed[torch.from_numpy(a.ids[:cols]).to(embed.device)]
        fp.sketches[mode] = {}
    del embed
    stats: dict[str, dict[str, float]] = {}

    def visit(role: str, key: str, w: torch.Tensor, g: torch.Tensor | None) -> None:
        stats[role] = _role_stats(w)
        keys = INFERRED_SKETCH_KEYS if rm.roles[role].inferred else SKETCH_KEYS
        if key not in keys:
            return
        wf = w.float()
        layer = int(role.split(".")[1])
        probes = anc.probe_neurons(int(w.shape[0]), PROBE_ROWS)
        for mode, x in xs.items():
            x = x * g if g is not None else x
            proj = wf @ x.T  # [n_out, m]: unchanged by any residual permutation, flip or rotation
            top = torch.argsort(-proj.norm(dim=1), stable=True)[:top_rows[mode]].cpu().numpy().astype(np.int64)
            ids = np.concatenate([top, probes])
            fp.sketches[mode][(layer, key)] = Sketch(_exact_rows(w, x, ids), ids, int(w.shape[0]), len(top))

    prof = compute_profiles(m, np.arange(hidden), np.ones(hidden), device=device, progress=progress,
                            sketches=False, visit=visit)
    fp.sketches = {mode: dict(sorted(sk.items())) for mode, sk in fp.sketches.items()}  # the file's order
    fp.profiles = prof.values.astype(np.float32)
    fp.meta["weights"] = {"hidden": int(hidden), "profile_keys": list(PROFILE_KEYS), "problems": prof.problems,
                          "constant_norms": prof.constant_norms, "tensors_read": prof.tensors, "stats": stats}
