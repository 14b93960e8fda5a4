"""Resolve a Hugging Face model id to a snapshot directory in the local cache, offline."""

from __future__ import annotations

import os
import re
from pathlib import Path

from provenance.errors import CheckpointNotFoundError

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def hub_cache_dir() -> Path:
    """The cache huggingface_hub itself would use: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface")
    return Path(hf_home) / "hub"


def looks_like_repo_id(spec: str) -> bool:
    """'org/name' or 'name', optionally '@revision'; never a path with '..' or a leading '/'.

    >>> looks_like_repo_id("HuggingFaceTB/SmolLM2-135M"), looks_like_repo_id("../x")
    (True, False)
    """
    repo = spec.split("@", 1)[0]
    return bool(_REPO_ID.match(repo)) and ".." not in repo


def resolve_repo_id(spec: str) -> Path:
    """Snapshot directory of `org/name[@revision]` in the local cache; never touches the network."""
    repo, _, revision = spec.partition("@")
    revision = revision or "main"
    cache = hub_cache_dir()
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    if not repo_dir.is_dir():
        raise CheckpointNotFoundError(
            f"no such file or directory, and model id {repo!r} is not in the local Hugging Face cache "
            f"({cache}); provenance never downloads — fetch it first or pass a local path")
    commit = revision
    ref = repo_dir / "refs" / revision
    if ref.is_file():
        commit = ref.read_text().strip()
    snapshot = repo_dir / "snapshots" / commit
    if not re.fullmatch(r"[\w.-]+", commit) or not snapshot.is_dir():
        known = sorted(p.name for p in (repo_dir / "snapshots").glob("*")) if (repo_dir / "snapshots").is_dir() else []
        raise CheckpointNotFoundError(
            f"revision {revision!r} of {repo!r} is not in the local cache (snapshots there: "
            f"{', '.join(known) or 'none'})", path=repo_dir)
    return snapshot
