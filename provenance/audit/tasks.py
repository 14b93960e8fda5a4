"""The units of audit work, run in worker processes (local or Ray): plain data in, plain data out.

A task never touches the store: the driver writes each result as it arrives, in one
transaction, so killing a worker or the driver loses only unfinished work.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

from provenance.errors import ProvenanceError


def _read_bytes() -> int:
    """Bytes this process has read from storage so far (-1 where /proc/self/io is unavailable)."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("read_bytes:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def _files(spec: str) -> tuple[Path | None, list[Path]]:
    """(the folder the files are named relative to, the files fingerprinting reads), as `resolve` picks them;
    a spec it cannot resolve has none (the fingerprint task then reports why)."""
    from provenance.io.source import resolve

    try:
        src = resolve(spec)
    except ProvenanceError:
        return None, []
    if src.kind == "fingerprint" and src.path is not None:
        return src.path.parent, [src.path]
    picked = [*src.weights, src.index_file, src.config_file, *src.tokenizer_files.values(), src.vocab_file]
    return src.folder, sorted({f for f in picked if f is not None and f.is_file()})


def input_size(spec: str) -> int:
    """Bytes of the model's files (what fingerprinting it reads: each byte once with hashes on)."""
    return sum(f.stat().st_size for f in _files(spec)[1])


def input_key(spec: str) -> str:
    """A cheap key of a model's input files (path, size, mtime of each): unchanged key, unchanged model."""
    folder, files = _files(spec)
    h = hashlib.sha256(spec.encode())
    for f in files:
        st = f.stat()
        name = f.relative_to(folder) if folder is not None and f.is_relative_to(folder) else f.name
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def fingerprint_task(name: str, spec: str, hashes: bool, threads: int, device: str = "cpu") -> dict[str, Any]:
    """Fingerprint one model: its bytes, summary and file hashes, what was read, or the one-line error."""
    import torch

    from provenance.fingerprint import fingerprint
    from provenance.fingerprint.fileformat import to_bytes

    torch.set_num_threads(threads)
    r0, t0 = _read_bytes(), time.perf_counter()
    try:
        fp = fingerprint(spec, device=device, hashes=hashes, source={"name": name})
        data = to_bytes(fp)
        out = {"fingerprint": data, "sha256": hashlib.sha256(data).hexdigest(), "summary": fp.summary(),
               "files": dict(fp.meta.get("source", {}).get("sha256", {})), "error": None}
    except ProvenanceError as exc:
        out = {"fingerprint": None, "sha256": None, "summary": {}, "files": {}, "error": str(exc)}
    r1 = _read_bytes()
    return out | {"name": name, "bytes_read": r1 - r0 if r0 >= 0 and r1 >= 0 else -1,
                  "seconds": time.perf_counter() - t0, "pid": os.getpid()}


def _copy_unsettled(r: Any) -> bool:
    """A fingerprint comparison that found a near-copy it cannot call identical or fine-tuned without tensors."""
    from provenance import relation

    checked = [e for e in r.evidence if e.signal == "weights" and e.kind == "reproduction"]
    return (r.verdict.label == "derived" and r.verdict.relation == relation.DERIVED
            and any(e.details.get("verdict") == "not checked" for e in checked))


def _renamed(r: Any, base: str, candidate: str) -> Any:
    """`r` with the audit's model names as its two sides' specs, as a fingerprint comparison names them."""
    from dataclasses import replace

    return replace(r, base={**r.base, "spec": base}, candidate={**r.candidate, "spec": candidate})


def compare_task(base: str, candidate: str, fp_base: bytes, fp_candidate: bytes, seed: int,
                 threads: int, specs: tuple[str, str] | None = None) -> dict[str, Any]:
    """The fingerprint comparison of one pair: the verdict fields and the whole result as JSON data.

    `specs` (the two checkpoints) settle a near-copy the fingerprints cannot call identical or fine-tuned.
    """
    import torch

    from provenance.comparison import CompareOptions
    from provenance.fingerprint.compare import compare_loaded
    from provenance.fingerprint.fileformat import from_bytes
    from provenance.identify import strongest_finding

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    fa, fb = from_bytes(fp_base, base), from_bytes(fp_candidate, candidate)
    opts = CompareOptions(device="cpu", seed=seed, hashes=False)
    r = compare_loaded(fa, fb, base, candidate, opts, torch.device("cpu"))
    how = "fingerprint comparison"
    if specs is not None and _copy_unsettled(r):  # a fingerprint cannot redo a quantization: the checkpoints can
        from provenance.comparison import compare

        try:
            full = compare(specs[0], specs[1], opts)
            r, how = _renamed(full, base, candidate), "full comparison (the fingerprints could not tell a copy)"
        except ProvenanceError:
            pass
    v = r.verdict
    data = r.to_dict()
    data["environment"]["command"] = f"provenance audit ({how} of {base!r} and {candidate!r} from the audit's store)"
    return {"base": base, "candidate": candidate, "label": v.label, "relation": v.relation, "p_value": v.p_value,
            "decided_by": list(v.decided_by), "strongest": strongest_finding(r), "result": data,
            "seconds": time.perf_counter() - t0}


def report_task(index: int, result: dict[str, Any], what: str) -> dict[str, Any]:
    """One pair's HTML report, rendered from its stored result dict (`what` names it in errors)."""
    from provenance.result import CompareResult

    return {"index": index, "html": CompareResult.from_dict(result, what).to_html()}
