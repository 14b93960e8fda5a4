"""Token strings by id, from whatever tokenizer a checkpoint carries — enough to pair embedding rows.

The weight signal pairs rows of two embedding matrices by token *string*, so that a
re-ordered or extended vocabulary still lines up. Sources, in order: tokenizer.json
(BPE / WordPiece / Unigram, plus added tokens), vocab.json, vocab.txt, a GGUF's own list.
"""

from __future__ import annotations

import json
from pathlib import Path

from provenance.errors import CorruptFileError
from provenance.io.checkpoint import Checkpoint


def token_strings(ckpt: Checkpoint) -> list[str | None] | None:
    """Token string for every id (None for ids without one), or None if no vocabulary is found."""
    files = ckpt.tokenizer_files
    if "tokenizer.json" in files:
        return _from_tokenizer_json(files["tokenizer.json"])
    if "vocab.json" in files:
        return _from_mapping(_load(files["vocab.json"]), files["vocab.json"])
    if "vocab.txt" in files:
        return files["vocab.txt"].read_text(encoding="utf-8").splitlines()
    if ckpt.embedded_tokenizer and ckpt.embedded_tokenizer.get("tokens"):
        return list(ckpt.embedded_tokenizer["tokens"])
    return None


def shared_token_pairs(a: list[str | None], b: list[str | None], *, rows_a: int,
                       rows_b: int) -> tuple[list[int], list[int]]:
    """Ids (in a, in b) of tokens both vocabularies hold, in a's id order, within the embedding rows."""
    index_b = {t: i for i, t in enumerate(b[:rows_b]) if t is not None}
    ia, ib = [], []
    for i, t in enumerate(a[:rows_a]):
        j = index_b.get(t) if t is not None else None
        if j is not None:
            ia.append(i)
            ib.append(j)
    return ia, ib


def _from_tokenizer_json(path: Path) -> list[str | None]:
    data = _load(path)
    model = data.get("model") or {}
    vocab = model.get("vocab")
    if isinstance(vocab, dict):
        out = _from_mapping(vocab, path)
    elif isinstance(vocab, list):  # Unigram: [[piece, score], ...]
        out = [v[0] if isinstance(v, list) and v else None for v in vocab]
    else:
        raise CorruptFileError("tokenizer.json has no model.vocab", path=path)
    for tok in data.get("added_tokens") or []:
        i, content = tok.get("id"), tok.get("content")
        if isinstance(i, int) and i >= 0:
            out.extend([None] * (i + 1 - len(out)))
            out[i] = content
    return out


def _from_mapping(vocab: dict, path: Path) -> list[str | None]:
    if not vocab:
        return []
    if not all(isinstance(v, int) and v >= 0 for v in vocab.values()):
        raise CorruptFileError("vocabulary ids must be non-negative integers", path=path)
    out: list[str | None] = [None] * (max(vocab.values()) + 1)
    for token, i in vocab.items():
        out[i] = token
    return out


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(f"not valid JSON ({exc})", path=path) from None
