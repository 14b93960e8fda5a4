"""Run a checkpoint with transformers' own implementation — never code shipped with the model —
and capture residual-stream and MLP activations at chosen token positions through hooks.

Accepts an HF directory whose config names a model type transformers knows (custom
`auto_map` code is refused) and a GGUF file (dequantized by transformers' GGUF loader). The
hook points come from the architecture definitions (`activations/hookpoints.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from provenance.activations.base import Captured, Encoded
from provenance.activations.hookpoints import HookPlan, plan_hooks
from provenance.errors import CorruptFileError, MissingFileError, UnknownFormatError
from provenance.io.convert import resolve_device
from provenance.jsonfile import read_json


class TorchActivationModel:
    """A transformers model built from a checkpoint (no remote code), with hooks for capture."""

    def __init__(self, spec: str | Path, *, device: str = "auto", dtype: torch.dtype | None = None,
                 tokenizer: Any = None) -> None:
        self.name = str(spec)
        self.device = resolve_device(device)
        self.dtype = dtype or (torch.bfloat16 if self.device.type == "cuda" else torch.float32)
        self.model, own_tokenizer, self.tokenizer_file = load_model(Path(spec), self.dtype)
        self.model.to(self.device).eval()
        if isinstance(tokenizer, Path):
            tokenizer, self.tokenizer_file = _tokenizer_file(tokenizer), tokenizer
        self.tokenizer = tokenizer if tokenizer is not None else own_tokenizer
        if self.tokenizer is None:
            raise MissingFileError("no tokenizer.json beside the weights: activations need the text tokenized; "
                                   "pass the other model's tokenizer when the vocabularies agree", path=spec)
        self.hooks: HookPlan = plan_hooks(self.model)
        self.layers = self.hooks.layers
        self._last: tuple[int, Captured] | None = None  # the latest capture, reused for the same request

    def encode(self, texts: list[str]) -> Encoded:
        """Token ids and character offsets from the model's own (Rust `tokenizers`) tokenizer."""
        encs = self.tokenizer.encode_batch(texts)
        limit = int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)
        return Encoded([e.ids[:limit] for e in encs], [[tuple(o) for o in e.offsets[:limit]] for e in encs])

    @torch.no_grad()
    def capture(self, enc: Encoded, positions: list[list[int]], *, batch_size: int = 8) -> Captured:
        """Forward passes in batches; keep only the requested positions of every hooked tensor.

        The same request twice in a row (one base against several candidates) is served from memory.
        """
        key = hash((tuple(map(tuple, enc.input_ids)), tuple(map(tuple, positions))))
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        total = sum(len(p) for p in positions)
        store: dict[str, np.ndarray] = {}  # view -> [layers, total, width], allocated on the first batch
        picks: list[tuple[torch.Tensor, torch.Tensor, int, tuple[int, int]]] = []  # rows, tokens, offset, shape
        handles, flush = self._hooks(store, picks, total)
        tokens, offset = 0, 0
        try:
            for start in range(0, len(enc.input_ids), batch_size):
                ids = enc.input_ids[start:start + batch_size]
                pos = positions[start:start + batch_size]
                rows = torch.tensor([r for r, p in enumerate(pos) for _ in p], dtype=torch.long, device=self.device)
                cols = torch.tensor([c for p in pos for c in p], dtype=torch.long, device=self.device)
                batch, mask = pad_batch(ids, self.device)
                picks[:] = [(rows, cols, offset, tuple(batch.shape))]
                tokens += int(mask.sum())
                if len(cols):
                    self.model(input_ids=batch, attention_mask=mask)
                    flush()
                offset += len(cols)
        finally:
            for h in handles:
                h.remove()
        residual = store.pop("residual", np.zeros((len(self.layers), 0, 0), dtype=np.float32))
        mlp = {v: store[v] for v in self.hooks.views if v in store}
        self._last = (key, Captured(residual, mlp, tokens, list(self.hooks.notes), self.hooks.missing))
        return self._last[1]

    def _hooks(self, store: dict[str, np.ndarray], picks: list, total: int) -> tuple[list[Any], Callable[[], None]]:
        """Forward hooks copying the picked positions into one preallocated array per view, and `flush`,
        which writes one forward pass's MLP pieces (concatenated in slot order) into them."""
        pending: dict[tuple[str, int], list[np.ndarray | None]] = {}

        def put(view: str, layer: int, got: np.ndarray) -> None:
            if view not in store:
                store[view] = np.empty((len(self.layers), total, got.shape[-1]), dtype=np.float32)
            offset = picks[0][2]
            store[view][layer, offset:offset + len(got)] = got

        def residual(layer: int):
            def hook(_module: Any, _inputs: Any, output: Any) -> None:
                out = output[0] if isinstance(output, tuple) else output
                rows, cols, *_ = picks[0]
                put("residual", layer, out[rows, cols].float().cpu().numpy())
            return hook

        def mlp(layer: int, part: Any):
            def hook(_module: Any, inputs: Any, output: Any) -> None:
                rows, cols, _offset, shape = picks[0]
                for view, slot, got in part.read(inputs, output, rows, cols, shape):
                    pending.setdefault((view, layer), [None] * self.hooks.slots)[slot] = got
            return hook

        def flush() -> None:
            for view in self.hooks.views:
                for layer in range(len(self.layers)):
                    pieces = pending.get((view, layer), [None])
                    if any(p is None for p in pieces):
                        raise UnknownFormatError(f"a {view!r} hook point of layer {layer} never ran "
                                                 f"({self.hooks.source}): this model does not use that module")
                    put(view, layer, np.concatenate(pieces, axis=-1))
            pending.clear()

        handles = []
        for i, layer in enumerate(self.layers):
            handles.append(layer.register_forward_hook(residual(i)))
            for part in self.hooks.parts[i]:
                handles.append(part.module.register_forward_hook(mlp(i, part)))
        return handles, flush

    def close(self) -> None:
        """Free the model (and GPU memory)."""
        self.model = None  # type: ignore[assignment]
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def pad_batch(ids: list[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad a batch with id 0 and an attention mask (padding never reaches a captured position)."""
    width = max(len(x) for x in ids)
    batch = torch.zeros((len(ids), width), dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for r, x in enumerate(ids):
        batch[r, :len(x)] = torch.tensor(x, dtype=torch.long)
        mask[r, :len(x)] = 1
    return batch.to(device), mask.to(device)


def _tokenizer_file(path: Path) -> Any:
    """A tokenizer.json read by the Rust `tokenizers` library, without padding or truncation."""
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception on bad JSON
        raise CorruptFileError(f"not a tokenizers JSON file ({str(exc).splitlines()[0] if str(exc) else exc!r})",
                               path=path) from None
    tok.no_truncation()
    tok.no_padding()
    return tok


def load_model(path: Path, dtype: torch.dtype, *, causal_lm: bool = False,
               purpose: str = "activations") -> tuple[torch.nn.Module, Any, Path | None]:
    """(model, tokenizers.Tokenizer or None, its tokenizer.json or None); transformers kept quiet meanwhile.

    `causal_lm` builds the model with its language-model head (the outputs signal needs next-token
    log-probabilities); `purpose` names the caller in refusals."""
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        return _load_quietly(path, dtype, causal_lm, purpose)
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def _load_quietly(path: Path, dtype: torch.dtype, causal_lm: bool,
                  purpose: str) -> tuple[torch.nn.Module, Any, Path | None]:
    """(model, tokenizers.Tokenizer or None, its tokenizer.json or None) for an HF directory or a GGUF file."""
    import transformers

    auto = transformers.AutoModelForCausalLM if causal_lm else transformers.AutoModel
    if path.is_file() and path.suffix.lower() == ".gguf":
        try:
            model = auto.from_pretrained(str(path.parent), gguf_file=path.name, dtype=dtype, trust_remote_code=False)
            tok = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name,
                                                             trust_remote_code=False)
        except (ValueError, KeyError, TypeError, OSError, NotImplementedError) as exc:
            # transformers refuses what it cannot build from the GGUF's metadata (an unknown
            # architecture, code it would have to run): one line, not its traceback
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise UnknownFormatError(f"transformers cannot run this GGUF for {purpose} ({first}); "
                                     f"{purpose} run only transformers' own implementations", path=path) from None
        return model, tok.backend_tokenizer, None
    folder = path if path.is_dir() else path.parent
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise MissingFileError(f"no config.json: {purpose} need an HF directory with a config, or a GGUF file",
                               path=folder)
    config = read_json(config_file)
    if config.get("auto_map"):
        raise UnknownFormatError("the config asks for code shipped with the model (auto_map); provenance never "
                                 "runs code from a checkpoint", path=config_file)
    if config.get("model_type") not in transformers.CONFIG_MAPPING:
        what = "names no model_type" if "model_type" not in config else \
            f"names model type {str(config.get('model_type'))[:60]!r}, which transformers does not know"
        raise UnknownFormatError(f"the config {what}; {purpose} run only transformers' own implementations",
                                 path=config_file)
    model, info = auto.from_pretrained(str(folder), dtype=dtype, trust_remote_code=False, output_loading_info=True)
    missing = sorted(k for k in info.get("missing_keys", []) if not k.endswith(("rotary_emb.inv_freq", "position_ids")))
    if missing:  # transformers would run those weights randomly initialised: a renamed shell, say
        raise UnknownFormatError(f"{len(missing)} weights transformers' {type(model).__name__} needs are not in "
                                 f"the checkpoint under its names (e.g. {missing[0]!r}); {purpose} cannot run a "
                                 "checkpoint whose tensor names do not match its config", path=folder)
    file = folder / "tokenizer.json"
    return (model, _tokenizer_file(file), file) if file.is_file() else (model, None, None)
