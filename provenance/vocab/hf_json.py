"""Hugging Face tokenizer files -> `Vocabulary`: tokenizer.json, vocab.json + merges.txt, vocab.txt.

tokenizer.json decides its own spelling: a ByteLevel pre-tokenizer or decoder means GPT-2
byte pieces, a Metaspace step (or a "▁" replace) SentencePiece pieces, WordPiece its ``##``
prefix. Special tokens come from ``added_tokens``; the chat template from the
tokenizer_config.json / chat_template.jinja beside the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from provenance.errors import CorruptFileError, UnknownFormatError
from provenance.io import guard
from provenance.jsonfile import read_json
from provenance.vocab.model import ADDED, BYTE, NORMAL, SPECIAL, Vocabulary, from_pairs
from provenance.vocab.pieces import (
    METASPACE,
    byte_fallback_value,
    byte_level_bytes,
    metaspace_bytes,
    wordpiece_bytes,
)

BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
Speller = Callable[[str], bytes | None]


def read_tokenizer_json(path: Path, data: Any = None) -> Vocabulary:
    """A `tokenizer.json` (BPE, WordPiece, Unigram or WordLevel) in canonical form."""
    data = read_json(path) if data is None else data
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or "vocab" not in model:
        raise CorruptFileError("tokenizer.json has no 'model' object with a 'vocab'", path=path)
    kind = str(model.get("type") or ("Unigram" if isinstance(model["vocab"], list) else "BPE"))
    speller = _speller(data, model, kind)
    added = _added_tokens(data.get("added_tokens"), path)
    added_ids = {i for i, _, _ in added}
    pairs, unspellable = [], 0
    for i, piece in _vocab_pieces(model["vocab"], kind, path):
        if i in added_ids:
            continue
        value = byte_fallback_value(piece) if model.get("byte_fallback") else None
        if value is not None:
            pairs.append((i, value, BYTE))
            continue
        spelled = speller(piece)
        if spelled is None:
            unspellable += 1
            spelled = piece.encode("utf-8")
        pairs.append((i, spelled, NORMAL))
    pairs += added
    vocab = from_pairs(pairs, source=str(path), format="tokenizer.json", model=kind.lower(),
                       merges=_merges(model.get("merges"), speller, path) if kind == "BPE" else None,
                       pretokenizer=_pretokenizer(data.get("pre_tokenizer")),
                       normalizer=_describe(data.get("normalizer")),
                       chat_template=chat_template_beside(path))
    if unspellable:
        vocab.notes.append(f"{unspellable} pieces are not valid byte-level spellings; kept as UTF-8 text")
    return vocab


def read_vocab_txt(path: Path) -> Vocabulary:
    """A BERT `vocab.txt` (one WordPiece piece per line, id = line number)."""
    try:
        lines = guard.read_bytes(path).decode("utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise CorruptFileError(f"vocab.txt is not UTF-8 text ({exc.reason} at byte {exc.start})", path=path) from None
    if lines and lines[-1] == "":
        lines.pop()
    specials = set(_declared_specials(path.parent)) or set(BERT_SPECIALS)
    pairs = [(i, p.encode("utf-8"), SPECIAL) if p in specials else (i, wordpiece_bytes(p), NORMAL)
             for i, p in enumerate(line.rstrip("\r") for line in lines)]
    return from_pairs(pairs, source=str(path), format="vocab.txt", model="wordpiece",
                      chat_template=chat_template_beside(path))


def read_vocab_json(path: Path) -> Vocabulary:
    """A GPT-2 style `vocab.json` (+ `merges.txt` beside it): byte-level BPE."""
    vocab = read_json(path)
    if not isinstance(vocab, dict):
        raise CorruptFileError("vocab.json must map token -> id", path=path)
    merges_file = path.parent / "merges.txt"
    merges = None
    if merges_file.is_file():
        lines = guard.read_bytes(merges_file).decode("utf-8", errors="strict").splitlines()
        merges = _merges([m for m in lines if m and not m.startswith("#version")], byte_level_bytes, merges_file)
    specials = set(_declared_specials(path.parent))
    pairs = [(i, p.encode("utf-8"), SPECIAL) if p in specials else (i, byte_level_bytes(p) or p.encode(), NORMAL)
             for i, p in _vocab_pieces(vocab, "BPE", path)]
    return from_pairs(pairs, source=str(path), format="vocab.json", model="bpe", merges=merges,
                      chat_template=chat_template_beside(path))


def chat_template_beside(path: Path) -> str | None:
    """The chat template in tokenizer_config.json / chat_template.jinja / .json next to `path`."""
    folder = path.parent
    if (folder / "chat_template.jinja").is_file():
        return guard.read_bytes(folder / "chat_template.jinja").decode("utf-8", errors="replace")
    for name in ("chat_template.json", "tokenizer_config.json"):
        f = folder / name
        if f.is_file():
            cfg = read_json(f)
            tpl = cfg.get("chat_template") if isinstance(cfg, dict) else None
            if isinstance(tpl, list):  # named templates: [{"name": ..., "template": ...}]
                tpl = "\n".join(str(t.get("template", "")) for t in tpl if isinstance(t, dict))
            if isinstance(tpl, str):
                return tpl
    return None


def _speller(data: dict, model: dict, kind: str) -> Speller:
    """How this file spells bytes: byte-level, metaspace, WordPiece prefix, or plain UTF-8."""
    steps = json.dumps([data.get("pre_tokenizer"), data.get("decoder"), data.get("normalizer")])
    if kind == "WordPiece":
        prefix = str(model.get("continuing_subword_prefix") or "##")
        return lambda p: wordpiece_bytes(p, prefix)
    if '"ByteLevel"' in steps:
        return byte_level_bytes
    if '"Metaspace"' in steps or METASPACE in steps:
        return metaspace_bytes
    return lambda p: p.encode("utf-8")


def _vocab_pieces(vocab: Any, kind: str, path: Path) -> list[tuple[int, str]]:
    """(id, piece) pairs from a piece -> id mapping or a Unigram [[piece, score], ...] list."""
    if isinstance(vocab, dict):
        if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 1 << 24 for i in vocab.values()):
            raise CorruptFileError("vocabulary ids must be integers in [0, 2^24)", path=path)
        return [(i, p) for p, i in vocab.items()]
    if isinstance(vocab, list) and all(isinstance(v, list) and v and isinstance(v[0], str) for v in vocab):
        return [(i, v[0]) for i, v in enumerate(vocab)]
    raise CorruptFileError(f"{kind} vocab must be a piece -> id object or a [[piece, score], ...] list", path=path)


def _added_tokens(added: Any, path: Path) -> list[tuple[int, bytes, str]]:
    if added is None:
        return []
    if not isinstance(added, list) or not all(isinstance(t, dict) for t in added):
        raise CorruptFileError("'added_tokens' must be a list of objects", path=path)
    out = []
    for t in added:
        i, content = t.get("id"), t.get("content")
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < 1 << 24 or not isinstance(content, str):
            raise CorruptFileError(f"added token {str(t)[:80]!r} needs an integer 'id' and a string 'content'",
                                   path=path)
        out.append((i, content.encode("utf-8"), SPECIAL if t.get("special") else ADDED))
    return out


def _merges(merges: Any, speller: Speller, path: Path) -> list[tuple[bytes, bytes]] | None:
    """Ranked merges as canonical byte pairs ("a b" strings or [a, b] lists)."""
    if merges is None:
        return None
    if not isinstance(merges, list):
        raise CorruptFileError("'merges' must be a list", path=path)
    out = []
    for m in merges:
        pair = m.split(" ", 1) if isinstance(m, str) else m
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise CorruptFileError(f"merge {str(m)[:60]!r} is not a pair of pieces", path=path)
        a, b = speller(pair[0]), speller(pair[1])
        out.append((a if a is not None else pair[0].encode(), b if b is not None else pair[1].encode()))
    return out


def _pretokenizer(pre: Any) -> str | None:
    """The split patterns of a pre-tokenizer (regexes verbatim, other steps by type)."""
    if not isinstance(pre, dict):
        return None
    if pre.get("type") == "Sequence":
        steps = pre.get("pretokenizers")
        parts = [_pretokenizer(p) for p in steps] if isinstance(steps, list) else []
        return " → ".join(p for p in parts if p) or None
    pattern = pre.get("pattern")
    if isinstance(pattern, dict):
        return f"{pre.get('type')}({pattern.get('Regex') or pattern.get('String')!r})"
    extra = {k: v for k, v in pre.items() if k in ("individual_digits", "prepend_scheme", "use_regex")}
    return f"{pre.get('type')}{extra if extra else ''}"


def _describe(step: Any) -> str | None:
    """A normalizer as a compact, comparable string."""
    return None if step is None else json.dumps(step, sort_keys=True, ensure_ascii=False)


def _declared_specials(folder: Path) -> list[str]:
    """Special token texts named by special_tokens_map.json / tokenizer_config.json in `folder`."""
    out: list[str] = []
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        f = folder / name
        if not f.is_file():
            continue
        cfg = read_json(f)
        if not isinstance(cfg, dict):
            continue
        for key, value in cfg.items():
            if key.endswith("_token") or key == "additional_special_tokens":
                for v in value if isinstance(value, list) else [value]:
                    text = v.get("content") if isinstance(v, dict) else v
                    if isinstance(text, str):
                        out.append(text)
        for v in (cfg.get("added_tokens_decoder") or {}).values():
            if isinstance(v, dict) and v.get("special") and isinstance(v.get("content"), str):
                out.append(v["content"])
    return out


def is_tokenizer_json(data: Any) -> bool:
    """True for a parsed tokenizer.json (has a 'model' object)."""
    return isinstance(data, dict) and isinstance(data.get("model"), dict)


def not_a_tokenizer(path: Path) -> UnknownFormatError:
    return UnknownFormatError("JSON file is not a tokenizer (expected tokenizer.json with 'model', "
                              "a vocab.json token -> id map, or a Tekken file with 'config' and 'vocab')", path=path)
