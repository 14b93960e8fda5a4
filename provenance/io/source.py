"""Model spec -> `ModelSource`: what a spec names and which files every signal reads, decided once.

One rule for every consumer (weights, tokenizer, activations, fingerprints, inspect): a model
folder, a single file, a model id in the local Hugging Face cache, a fingerprint file, or a
model behind an OpenAI-compatible endpoint. Resolving reads directory listings and a few header
bytes, never tensors, and never touches the network. Every file picked from a folder is a
regular file inside `root` (`guard.member`): a FIFO would block, a symlink could reach outside.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from provenance.errors import (
    CheckpointNotFoundError,
    CorruptFileError,
    EndpointSpecError,
    MissingFileError,
    ProvenanceError,
    UnknownFormatError,
    UnsafePathError,
)
from provenance.io.guard import member, open_file
from provenance.io.hf_cache import looks_like_repo_id, resolve_repo, snapshot_repo
from provenance.jsonfile import read_json

Kind = Literal["checkpoint", "tokenizer", "fingerprint", "endpoint"]

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
    "vocab.txt", "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja",
    "chat_template.json", "tekken.json", "tokenizer.tiktoken", "qwen.tiktoken",
)
# The file a folder's vocabulary is read from, in the order we trust them: the fullest description first.
VOCAB_FILES = ("tokenizer.json", "tekken.json", "tokenizer.model", "tokenizer.tiktoken", "qwen.tiktoken",
               "vocab.json", "vocab.txt")
TORCH_SUFFIXES = (".bin", ".pt", ".pth")
WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".onnx", *TORCH_SUFFIXES)
TOKENIZER_SUFFIXES = (".tiktoken", ".model", ".vocab", ".txt", ".json", ".gz")
FINGERPRINT_SUFFIX = ".fingerprint"
FINGERPRINT_FORMAT = "provenance.fingerprint"  # provenance.fingerprint.model.FORMAT (a test keeps them equal)
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
NO_WEIGHTS = "no weights found (looked for *.safetensors, a shard index, pytorch_model*.bin, *.gguf, *.onnx)"
_MAX_HEADER = 64 * 1024 * 1024  # a fingerprint's safetensors header is far smaller
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SCHEMES = {"openai+http": "http", "openai+https": "https"}
_HOST = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BLANK = re.compile(r"[\x00-\x20\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SHAPE = "openai+http://HOST[:PORT]/PATH#MODEL (or openai+https://...)"


@dataclass(frozen=True)
class Endpoint:
    """A model behind an OpenAI-compatible API: where it answers, which model, and which variable holds the key.

    Only the NAME of the environment variable is kept (`api_key_env`), never the key, so a source can
    be printed, logged and written to reports.
    """

    base_url: str  # http(s)://host[:port][/path], e.g. http://127.0.0.1:8080/v1
    model: str
    api_key_env: str = DEFAULT_KEY_ENV


@dataclass(frozen=True)
class ModelSource:
    """A resolved model spec: its kind and exactly the files each signal reads (see `resolve`)."""

    spec: str
    kind: Kind
    path: Path | None = None  # the folder or file the spec resolved to (a cached id: its snapshot folder)
    root: Path | None = None  # bounds every file read: the model folder, a file's parent, a cached repo folder
    weights: tuple[Path, ...] = ()  # every weight file, one format, in read order (shards from an index)
    weights_format: str | None = None  # "safetensors", "torch", "gguf", "onnx"
    index_file: Path | None = None  # the shard index the weights came from
    config_file: Path | None = None
    tokenizer_files: dict[str, Path] = field(default_factory=dict, hash=False)
    vocab_file: Path | None = None  # the file the vocabulary is read from (a tokenizer file or a GGUF)
    endpoint: Endpoint | None = None

    @property
    def folder(self) -> Path | None:
        """The directory the files were looked up in: the spec's folder, or the folder of the file it names."""
        if self.path is None:
            return None
        return self.path if self.path.is_dir() else self.path.parent

    def what(self) -> str:
        """The kind in words, for messages."""
        return {"checkpoint": f"a {self.weights_format} checkpoint", "tokenizer": "a tokenizer without weights",
                "fingerprint": "a provenance fingerprint", "endpoint": "a model behind an API endpoint"}[self.kind]


def resolve(spec: str | os.PathLike[str] | ModelSource) -> ModelSource:
    """Decide once what `spec` names and pick its files; a `ModelSource` passes through unchanged.

    In order: an `openai+http(s)://` URL (an endpoint), a folder, a file (a fingerprint, a weights
    file, else a tokenizer file), an `org/name[@revision]` id in the local HF cache. A one-line
    `ProvenanceError` on anything else.
    """
    if isinstance(spec, ModelSource):
        return spec
    text = os.fspath(spec)
    path = Path(text).expanduser()
    if _URL.match(text) and not path.exists():
        return ModelSource(text, "endpoint", endpoint=parse_endpoint(text))
    if path.is_dir():
        return _directory(text, path, snapshot_repo(path) or path)
    if path.is_file():
        return _file(text, path)
    if is_repo_id(text):
        snapshot, repo = resolve_repo(text)  # snapshot files link to ../../blobs: the repo folder bounds them
        return _directory(text, snapshot, repo)
    raise CheckpointNotFoundError(f"no such file or directory: {text}")


def is_repo_id(spec: str) -> bool:
    """True when a spec that names no file would be looked up in the HF cache (`org/name[@rev]`, relative)."""
    return not os.path.isabs(spec) and looks_like_repo_id(spec)


def _file(spec: str, path: Path) -> ModelSource:
    """A single file: a fingerprint, weights (with the config and tokenizer files beside it), else a tokenizer."""
    folder = path.parent
    if is_fingerprint_path(path):
        return ModelSource(spec, "fingerprint", path=path, root=folder)
    fmt = file_format(path)
    root = snapshot_repo(folder) or folder
    config_file, tokenizer_files = _beside(folder, root)
    if fmt is None or gguf_tensor_count(path) == 0:  # not weights, or llama.cpp's vocab-only GGUF
        return ModelSource(spec, "tokenizer", path=path, root=root, config_file=config_file,
                           tokenizer_files={**tokenizer_files, path.name: path}, vocab_file=path)
    return ModelSource(spec, "checkpoint", path=path, root=root, weights=(path,), weights_format=fmt,
                       config_file=config_file, tokenizer_files=tokenizer_files,
                       vocab_file=_vocab_file(tokenizer_files) or (path if fmt == "gguf" else None))


def _directory(spec: str, folder: Path, boundary: Path) -> ModelSource:
    """A model folder: its weights by `directory_weights`; without any, its tokenizer files."""
    weights, fmt, index = directory_weights(folder, boundary)
    config_file, tokenizer_files = _beside(folder, boundary)
    vocab = _vocab_file(tokenizer_files)
    if fmt == "gguf" and gguf_tensor_count(weights[0]) == 0:  # a vocab-only GGUF holds no weights
        return ModelSource(spec, "tokenizer", path=folder, root=boundary, config_file=config_file,
                           tokenizer_files=tokenizer_files, vocab_file=vocab or weights[0])
    if weights:
        return ModelSource(spec, "checkpoint", path=folder, root=boundary, weights=weights, weights_format=fmt,
                           index_file=index, config_file=config_file, tokenizer_files=tokenizer_files,
                           vocab_file=vocab or (weights[0] if fmt == "gguf" else None))
    if vocab is not None:
        return ModelSource(spec, "tokenizer", path=folder, root=boundary, config_file=config_file,
                           tokenizer_files=tokenizer_files, vocab_file=vocab)
    raise MissingFileError(f"{NO_WEIGHTS}, and no tokenizer found (looked for {', '.join(VOCAB_FILES)})",
                           path=folder)


def _beside(folder: Path, boundary: Path) -> tuple[Path | None, dict[str, Path]]:
    """config.json and the tokenizer files in `folder`, each a regular file inside `boundary`."""
    config = folder / "config.json"
    config_file = member(boundary, config) if config.is_file() else None
    return config_file, {n: member(boundary, folder / n) for n in TOKENIZER_FILES if (folder / n).is_file()}


def _vocab_file(tokenizer_files: dict[str, Path]) -> Path | None:
    return next((tokenizer_files[n] for n in VOCAB_FILES if n in tokenizer_files), None)


def directory_weights(root: Path, boundary: Path) -> tuple[tuple[Path, ...], str | None, Path | None]:
    """(weight files, format, shard index) of a folder: a shard index, *.safetensors, torch pickles,
    one *.gguf, one *.onnx or onnx/model.onnx, in that order; ((), None, None) when there are none."""
    for index_name, fmt in (("model.safetensors.index.json", "safetensors"), ("pytorch_model.bin.index.json", "torch")):
        index = root / index_name
        if index.is_file():
            weight_map = read_shard_index(member(boundary, index))
            shards = tuple(member(boundary, safe_join(root, s, index)) for s in dict.fromkeys(weight_map.values()))
            for shard in shards:
                if not shard.is_file():
                    raise MissingFileError(f"shard {shard.name} listed in {index_name} is missing; "
                                           "download every shard", path=shard)
            return shards, fmt, index
    found = sorted(root.glob("*.safetensors"))
    if found:
        return tuple(member(boundary, p) for p in found), "safetensors", None
    found = sorted(p for p in root.iterdir() if p.suffix in TORCH_SUFFIXES and p.is_file())
    if found:
        return tuple(member(boundary, p) for p in found), "torch", None
    for pattern in ("*.gguf", "*.onnx", "onnx/model.onnx"):
        found = sorted(root.glob(pattern))
        if len(found) == 1:
            path = member(boundary, found[0])
            return (path,), file_format(path), None
        if len(found) > 1:
            raise UnknownFormatError(f"{len(found)} {pattern} files ({', '.join(p.name for p in found[:4])}); "
                                     "pass the one you mean as the model spec", path=root)
    return (), None, None


def file_format(path: Path) -> str | None:
    """The weights format of one file by its magic bytes first, its suffix second; None if not weights."""
    with open_file(path) as f:
        head = f.read(8)
    suffix = path.suffix.lower()
    if head[:4] == b"GGUF" or suffix == ".gguf":
        return "gguf"
    if suffix == ".safetensors":
        return "safetensors"
    pickled = head[:2] == b"PK" or head[:1] == b"\x80"  # a torch zip archive or a legacy pickle
    if suffix in TORCH_SUFFIXES or (pickled and suffix not in TOKENIZER_SUFFIXES):
        return "torch"
    if suffix == ".onnx":
        return "onnx"
    return None


def gguf_tensor_count(path: Path) -> int:
    """The tensor count in a GGUF header (magic, u32 version, u64 tensors; little-endian); -1 if not GGUF."""
    with open_file(path) as f:
        head = f.read(16)
    return int.from_bytes(head[8:16], "little") if len(head) == 16 and head[:4] == b"GGUF" else -1


def read_shard_index(index: Path) -> dict[str, str]:
    """The `weight_map` of a shard index, checked to be tensor name -> relative file name."""
    data = read_json(index)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CorruptFileError("shard index has no 'weight_map' object of tensor -> file name", path=index)
    return weight_map


def safe_join(root: Path, relative: str, source: Path) -> Path:
    """`root / relative`, refusing absolute paths and `..` escapes (a shard index is untrusted)."""
    normalized = os.path.normpath(relative.replace("\\", "/"))
    if (os.path.isabs(relative) or relative.startswith(("/", "\\")) or (len(relative) > 1 and relative[1] == ":")
            or normalized == ".." or normalized.startswith("../") or "\x00" in relative):
        raise UnsafePathError(f"refers to {relative!r}, outside the model directory; refusing to read it",
                              path=source)
    return root / normalized


def is_fingerprint_path(path: str | os.PathLike[str]) -> bool:
    """True for a regular `.fingerprint` file, or a safetensors file whose header metadata names the
    fingerprint format (reads the header only)."""
    p = Path(path)
    if not p.is_file():
        return False
    if p.suffix == FINGERPRINT_SUFFIX:
        return True
    meta = _safetensors_metadata(p)
    return meta is not None and meta.get("format") == FINGERPRINT_FORMAT


def _safetensors_metadata(path: Path) -> dict | None:
    """The `__metadata__` object of a safetensors header, or None when the file has none."""
    head = safetensors_header(path)
    meta = head.get("__metadata__") if head is not None else None
    return meta if isinstance(meta, dict) else None


def safetensors_header(path: Path) -> dict | None:
    """The JSON header of a safetensors file (at most 64 MiB), or None when the file is not one."""
    try:
        with open_file(path) as f:
            first = f.read(8)
            n = int.from_bytes(first, "little") if len(first) == 8 else 0
            if n <= 0 or n > _MAX_HEADER:
                return None
            raw = f.read(n)
    except OSError as exc:
        raise ProvenanceError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) < n or not raw.lstrip().startswith(b"{"):
        return None
    try:
        head = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return head if isinstance(head, dict) else None


def parse_endpoint(spec: str) -> Endpoint:
    """`openai+http(s)://HOST[:PORT]/PATH[?key_env=NAME]#MODEL` -> `Endpoint`; no network access.

    A malformed spec raises `EndpointSpecError` naming the part that is wrong; messages never repeat
    the whole spec, which might hold a secret the user pasted by mistake.
    """
    if _BLANK.search(spec):
        raise EndpointSpecError("endpoint spec holds a space or a control character; "
                                f"write it as {_SHAPE}, percent-encoding the model name")
    try:
        parts = urlsplit(spec)
    except ValueError:  # an unbalanced '[' of an IPv6 host
        raise EndpointSpecError(f"endpoint spec has a malformed host (an IPv6 address goes in brackets, "
                                f"[::1]): {_SHAPE}") from None
    if parts.scheme not in _SCHEMES:
        raise EndpointSpecError(f"unsupported URL scheme {parts.scheme!r}: a model behind an OpenAI-compatible "
                                f"API is named {_SHAPE}; local models are paths or cached model ids")
    if "@" in parts.netloc:
        raise EndpointSpecError("endpoint spec holds credentials (user:key@host); put the API key in an "
                                f"environment variable ({DEFAULT_KEY_ENV}, or name another with ?key_env=NAME)")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise EndpointSpecError(f"endpoint port {parts.netloc.rpartition(':')[2]!r} is not a number from 1 to "
                                f"65535: {_SHAPE}")
    if not parts.hostname or not _valid_host(parts.hostname):
        raise EndpointSpecError(f"endpoint spec has no valid host name or address: {_SHAPE}")
    model = unquote(parts.fragment).strip()
    if not model or _CONTROL.search(model):
        raise EndpointSpecError("endpoint spec names no model (or one with a control character): end it with "
                                f"#MODEL, as in {_SHAPE}")
    return Endpoint(f"{_SCHEMES[parts.scheme]}://{parts.netloc}{parts.path.rstrip('/')}", model,
                    _key_env(parts.query))


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOST.match(host))


def _key_env(query: str) -> str:
    """The API key's variable name from `key_env=NAME`, the only query parameter accepted."""
    if not query:
        return DEFAULT_KEY_ENV
    pairs = parse_qsl(query, keep_blank_values=True)
    if len(pairs) != 1 or pairs[0][0] != "key_env":
        raise EndpointSpecError("endpoint spec takes one query parameter, key_env=NAME (the environment "
                                "variable that holds the API key); no other parameters, and never the key itself")
    if not _ENV_NAME.match(pairs[0][1]):
        raise EndpointSpecError("key_env must name an environment variable (letters, digits and _, not starting "
                                "with a digit); the key itself goes in that variable, never in the spec")
    return pairs[0][1]
