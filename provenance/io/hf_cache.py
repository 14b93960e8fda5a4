"""Resolve a Hugging Face model id to a snapshot directory in the local cache, offline.

The cache layout is huggingface_hub's own business: `scan_cache_dir` reads it, so a change of
layout in a new release is followed without code here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from provenance.errors import CheckpointNotFoundError

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def hub_cache_dir() -> Path:
    """The cache huggingface_hub uses, read at call time: HF_HUB_CACHE, else HF_HOME/hub, else its default."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def looks_like_repo_id(spec: str) -> bool:
    """'org/name' or 'name', optionally '@revision'; never a path with '..' or a leading '/'.

    >>> looks_like_repo_id("HuggingFaceTB/SmolLM2-135M"), looks_like_repo_id("../x")
    (True, False)
    """
    repo = spec.split("@", 1)[0]
    return bool(_REPO_ID.match(repo)) and ".." not in repo


def snapshot_repo(folder: Path) -> Path | None:
    """The repository folder when `folder` is a snapshot of the HF cache (`models--org--name/snapshots/<commit>`,
    beside `blobs/`), else None: a snapshot passed as a path is bounded like its model id."""
    folder = folder.absolute()
    repo = folder.parent.parent
    if folder.parent.name == "snapshots" and repo.name.startswith("models--") and (repo / "blobs").is_dir():
        return repo
    return None


def resolve_repo_id(spec: str) -> Path:
    """Snapshot directory of `org/name[@revision]` (a branch, tag or commit) in the local cache; never
    touches the network."""
    return resolve_repo(spec)[0]


def resolve_repo(spec: str) -> tuple[Path, Path]:
    """(snapshot directory, repository folder) of `org/name[@revision]` in the local cache, offline.

    Snapshot files are links to `../../blobs/...`: the repository folder bounds every file read.
    """
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    repo, _, revision = spec.partition("@")
    revision = revision or "main"
    cache = hub_cache_dir()
    not_cached = CheckpointNotFoundError(
        f"no such file or directory, and model id {repo!r} is not in the local Hugging Face cache "
        f"({cache}); provenance never downloads — fetch it first or pass a local path")
    try:
        info = scan_cache_dir(cache)
    except CacheNotFound:
        raise not_cached from None
    cached = next((r for r in info.repos if r.repo_id == repo and r.repo_type == "model"), None)
    if cached is None:
        raise not_cached
    for rev in sorted(cached.revisions, key=lambda r: r.commit_hash):
        if revision in rev.refs or rev.commit_hash == revision:
            return Path(rev.snapshot_path), Path(cached.repo_path)
    known = sorted(r.commit_hash for r in cached.revisions)
    raise CheckpointNotFoundError(
        f"revision {revision!r} of {repo!r} is not in the local cache (snapshots there: "
        f"{', '.join(known) or 'none'})", path=Path(cached.repo_path))
