"""Seed tokenizer files cut from the real ones to their first few hundred entries."""

from __future__ import annotations

import gzip
import io
import json
import struct
from pathlib import Path
from typing import Any

from fuzz import real_files
from fuzz.wire import LEN, fields

KEEP = 400  # entries kept from each real tokenizer


def _dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def _cut_tokenizer_json(path: Path, keep: int = KEEP) -> bytes:
    """tokenizer.json with ids below `keep`, its first merges, and up to 8 added tokens renumbered after them."""
    data = json.loads(path.read_text(encoding="utf-8"))
    model = data["model"]
    model["vocab"] = {p: i for p, i in model["vocab"].items() if i < keep}
    if isinstance(model.get("merges"), list):
        model["merges"] = model["merges"][:keep]
    added = data.get("added_tokens") or []
    low = [t for t in added if t["id"] < keep]
    high = [dict(t, id=keep + n) for n, t in enumerate(t for t in added if t["id"] >= keep)]
    data["added_tokens"] = (low + high)[:8]
    return _dumps(data)


def tokenizer_json_seeds() -> dict[str, bytes]:
    """WordPiece (MiniLM), byte-level BPE with a Split regex (Llama 3), DeepSeek's Sequence of Splits."""
    return {"minilm-wordpiece": _cut_tokenizer_json(real_files.MINILM_DIR / "tokenizer.json"),
            "llama3-bpe": _cut_tokenizer_json(real_files.LLAMA3_JSON),
            "deepseek-bpe": _cut_tokenizer_json(real_files.DEEPSEEK_JSON, 300)}


def vocab_json_seeds() -> dict[str, bytes]:
    """GPT-2 style vocab.json maps (piece -> id)."""
    llama = json.loads(real_files.LLAMA3_JSON.read_text(encoding="utf-8"))["model"]["vocab"]
    deepseek = json.loads(real_files.DEEPSEEK_JSON.read_text(encoding="utf-8"))["model"]["vocab"]
    return {"llama3": _dumps({p: i for p, i in llama.items() if i < KEEP}),
            "deepseek": _dumps({p: i for p, i in deepseek.items() if 200 <= i < 500})}


def vocab_txt_seeds() -> dict[str, bytes]:
    """BERT's vocab.txt: specials and unused slots, then ordinary words and ## pieces."""
    lines = (real_files.MINILM_DIR / "vocab.txt").read_bytes().split(b"\n")
    return {"minilm-head": b"\n".join(lines[:KEEP]) + b"\n",
            "minilm-words": b"\n".join(lines[:104] + lines[2000:2300] + lines[29000:29100]) + b"\n"}


def _cut_sentencepiece(path: Path, keep: range) -> bytes:
    """A ModelProto with the pieces whose index is in `keep` and every other top-level field as it was."""
    buf = path.read_bytes()
    out, index = bytearray(), -1
    for f in fields(buf):
        if f.number == 1 and f.wire == LEN:
            index += 1
            if index not in keep and index >= 40:
                continue
        out += buf[f.key_start:f.end]
    return bytes(out)


def sentencepiece_seeds() -> dict[str, bytes]:
    """Mistral v1 (Llama-style SentencePiece with byte pieces) and v3 (its first 40 control tokens, then
    ordinary pieces)."""
    return {"mistral-v1": _cut_sentencepiece(real_files.MISTRAL_V1, range(KEEP)),
            "mistral-v3": _cut_sentencepiece(real_files.MISTRAL_V3, range(1030, 1330))}


def _head_lines(raw: bytes, keep: int = KEEP) -> bytes:
    return b"\n".join(raw.split(b"\n", keep)[:keep]) + b"\n"


def tiktoken_seeds() -> dict[str, bytes]:
    """cl100k and Qwen rank files, first lines."""
    return {"cl100k": _head_lines(real_files.CL100K_TIKTOKEN.read_bytes()),
            "qwen": _head_lines(real_files.QWEN_TIKTOKEN.read_bytes(), 300)}


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as g:
        g.write(data)
    return buf.getvalue()


def tiktoken_gz_seeds() -> dict[str, bytes]:
    """o200k (gzipped as shipped) and cl100k, recompressed after the cut (mtime 0: reproducible)."""
    with gzip.open(real_files.O200K_GZ) as g:
        o200k = g.read(64 << 10)
    return {"o200k": _gzip(_head_lines(o200k)),
            "cl100k": _gzip(_head_lines(real_files.CL100K_TIKTOKEN.read_bytes(), 200))}


def tekken_seeds() -> dict[str, bytes]:
    """Tekken 240911 cut to its first ranks; the same with a special_tokens list."""
    data = json.loads(real_files.TEKKEN.read_text(encoding="utf-8"))
    data["vocab"] = data["vocab"][:KEEP]
    data.pop("image", None)
    cut = dict(data, config=dict(data["config"], num_vocab_tokens=KEEP, default_vocab_size=1000 + KEEP - 100))
    names = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
             "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]", "[IMG_END]"]
    specials = [{"rank": i, "token_str": s, "is_control": True} for i, s in enumerate(names)]
    small = dict(data, vocab=data["vocab"][:300], special_tokens=specials,
                 config=dict(data["config"], num_vocab_tokens=300, default_num_special_tokens=20,
                             default_vocab_size=320))
    return {"tekken-240911": _dumps(cut), "tekken-specials": _dumps(small)}


def _quicktok_records(path: Path, keep: int) -> list[tuple[int, bytes]]:
    buf = path.read_bytes()
    pos, out = 4, []
    for _ in range(keep):
        (size,) = struct.unpack_from("<H", buf, pos)
        token = buf[pos + 2:pos + 2 + size]
        (rank,) = struct.unpack_from("<I", buf, pos + 2 + size)
        out.append((rank, token))
        pos += 2 + size + 4
    return out


def _quicktok_vocab(records: list[tuple[int, bytes]]) -> bytes:
    out = bytearray(struct.pack("<I", len(records)))
    for rank, token in records:
        out += struct.pack("<H", len(token)) + token + struct.pack("<I", rank)
    return bytes(out)


def quicktok_seeds() -> dict[str, bytes]:
    """cl100k and Llama 3 quicktok vocabularies, first records."""
    return {"cl100k": _quicktok_vocab(_quicktok_records(real_files.QUICKTOK / "cl100k.vocab", KEEP)),
            "llama3": _quicktok_vocab(_quicktok_records(real_files.QUICKTOK / "llama3.vocab", 300))}


def quicktok_special_seeds() -> dict[str, bytes]:
    """Real .special files with their ids moved after the seed vocabulary (ids below KEEP + 64)."""
    out = {}
    for name in ("cl100k", "llama3"):
        buf = (real_files.QUICKTOK / f"{name}.special").read_bytes()
        (count,) = struct.unpack_from("<I", buf, 0)
        pos, records = 4, bytearray()
        kept = 0
        for i in range(count):
            (size,) = struct.unpack_from("<H", buf, pos + 4)
            if kept < 24:
                records += struct.pack("<IH", KEEP + i, size) + buf[pos + 6:pos + 6 + size]
                kept += 1
            pos += 6 + size
        out[name] = struct.pack("<I", kept) + bytes(records)
    return out
