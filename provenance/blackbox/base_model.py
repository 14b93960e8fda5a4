"""The base side of the black-box signal: the local model's log-probability of what the endpoint said.

The base runs through transformers' own implementation (never code from the checkpoint). A
candidate's alternative is scored as text, not as a token id: log P_base(bytes | context), with
the bytes tokenized by the base, so a candidate with another tokenizer is scored on the same
footing (a multi-token string is scored by teacher forcing).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import torch

from provenance import fastpath
from provenance.errors import MissingFileError

_BATCH = 16  # sequences per forward pass when scoring multi-token strings
_MAX_TEMPLATE = 1 << 20  # bytes of a chat_template.jinja read (real ones are a few KiB)


class BaseModel:
    """A causal LM with its tokenizer, answering next-token and string log-probabilities."""

    def __init__(self, path: Path, *, device: torch.device) -> None:
        from provenance.activations.torch_runner import load_model

        self.device = device
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        self.model, self.tokenizer, _ = load_model(path, dtype, causal_lm=True, purpose="the outputs signal")
        if self.tokenizer is None:
            raise MissingFileError("no tokenizer.json beside the base's weights: the outputs signal tokenizes its "
                                   "probe texts with the base's tokenizer", path=path)
        self.model.to(device).eval()
        self.chat_template = _chat_template(path)
        self._specials = {t.content: i for i, t in self.tokenizer.get_added_tokens_decoder().items()}
        params = inspect.signature(self.model.forward).parameters
        self._keeps_logits = "logits_to_keep" in params
        # the key/value cache's argument and output field: `cache` from transformers 5.25 (its old name,
        # `past_key_values`, goes in 5.40); None: the forward takes neither, and strings are forced plainly
        self._cache_arg = next((name for name in ("cache", "past_key_values") if name in params), None)

    def encode(self, text: str) -> list[int]:
        """The base's token ids of `text` (no special tokens added)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=False))

    @torch.no_grad()
    def next_logprobs(self, contexts: list[list[int]]) -> np.ndarray:
        """[len(contexts), vocab] log-probabilities of the token after each context (float32)."""
        order = sorted(range(len(contexts)), key=lambda i: len(contexts[i]))  # similar lengths batched: less padding
        out: np.ndarray | None = None
        for i in range(0, len(order), _BATCH):
            picks = order[i:i + _BATCH]
            seqs = [contexts[k] for k in picks]
            keep = sorted({len(s) - 1 for s in seqs})
            logits = self._logits_at(seqs, keep)
            rows = logits[torch.arange(len(seqs)), torch.tensor([keep.index(len(s) - 1) for s in seqs])]
            rows = rows.log_softmax(-1).float().cpu().numpy()
            if out is None:
                out = np.zeros((len(contexts), rows.shape[1]), np.float32)
            out[picks] = rows
        return out if out is not None else np.zeros((0, 0), np.float32)

    @torch.no_grad()
    def string_logprobs(self, context: list[int], first: np.ndarray, strings: list[bytes]) -> list[float]:
        """log P_base(s | context) for each byte string: `first` (the next-token row) for a one-token string,
        teacher forcing for longer ones; NaN for a string the base cannot represent (not UTF-8, empty)."""
        out: list[float] = [float("nan")] * len(strings)
        longer: list[tuple[int, list[int]]] = []
        for k, s in enumerate(strings):
            special = self._specials.get(s.decode("utf-8", "replace"))
            if special is not None:
                out[k] = float(first[special])
                continue
            try:
                ids = self.encode(s.decode("utf-8"))
            except UnicodeDecodeError:
                continue
            if len(ids) == 1:
                out[k] = float(first[ids[0]])
            elif ids:
                longer.append((k, ids))
        if longer:
            forced = self._forced_after_cache(context, longer) if fastpath.enabled() else None
            if forced is None:
                forced = self._forced_batched(context, longer)
            for (k, ids), rest in zip(longer, forced):
                out[k] = float(first[ids[0]]) + rest
        return out

    @torch.no_grad()
    def _forced_batched(self, context: list[int], longer: list[tuple[int, list[int]]]) -> list[float]:
        """log P(ids[1:] | context + ids[0]) of each string by teacher forcing, the context run again for each
        (the plain path: sequences of `_BATCH` at a time)."""
        out: list[float] = []
        for i in range(0, len(longer), _BATCH):
            chunk = longer[i:i + _BATCH]
            seqs = [context + ids[:-1] for _, ids in chunk]
            keep = list(range(len(context), max(len(s) for s in seqs)))  # where ids[0], ids[1], ... sit
            logits = self._logits_at(seqs, keep).log_softmax(-1).float().cpu().numpy()
            out += [_forced(logits[row], ids) for row, (_, ids) in enumerate(chunk)]
        return out

    @torch.no_grad()
    def _forced_after_cache(self, context: list[int], longer: list[tuple[int, list[int]]]) -> list[float] | None:
        """`_forced_batched`'s numbers with the context run once: the strings' tokens, right-padded into one
        batch, continue the context's key/value cache repeated per row. A pass reads every weight whatever
        its length, so one pass per query replaces one per `_BATCH` strings, each over the whole context.
        None when the model takes or returns no cache, or its cache cannot be repeated per row."""
        import copy

        from provenance.activations.torch_runner import pad_batch

        if self._cache_arg is None:
            return None
        ctx = torch.tensor([context], dtype=torch.long, device=self.device)
        extra = {"logits_to_keep": 1} if self._keeps_logits else {}
        past = getattr(self.model(input_ids=ctx, use_cache=True, **extra), self._cache_arg, None)
        if past is None or not callable(getattr(past, "batch_repeat_interleave", None)):
            return None
        out: list[float] = []
        for i in range(0, len(longer), _BATCH):  # at most _BATCH rows of cache at once, as on the plain path
            chunk = longer[i:i + _BATCH]
            rows = copy.deepcopy(past) if len(longer) > _BATCH else past
            try:
                rows.batch_repeat_interleave(len(chunk))
            except NotImplementedError:  # a cache kind transformers cannot repeat per row: the plain path
                return None
            tails, mask = pad_batch([ids[:-1] for _, ids in chunk], self.device)
            mask = torch.cat([torch.ones((len(chunk), len(context)), dtype=mask.dtype, device=self.device), mask], 1)
            logits = self.model(input_ids=tails, attention_mask=mask, use_cache=True, **{self._cache_arg: rows}).logits
            lp = logits.log_softmax(-1).float().cpu().numpy()
            out += [_forced(lp[r], ids) for r, (_, ids) in enumerate(chunk)]
        return out

    def chat_context(self, user: str, reply_start: str) -> list[int]:
        """The base's own chat template around a user message and the start of the assistant's reply, cut
        right after that start (no end-of-turn): the context in which the reply continues."""
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        plain = self.encode(f"{user}\n{reply_start}")
        if not self.chat_template:
            return plain
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": reply_start}]
        try:  # sandboxed: a template is untrusted text; one the sandbox refuses leaves the messages bare
            text = env.from_string(self.chat_template).render(messages=messages, add_generation_prompt=False,
                                                              bos_token="", eos_token="")
        except Exception:  # noqa: BLE001 - jinja raises many types (syntax, security, undefined names)
            return plain
        end = text.rfind(reply_start)
        return self.encode(text[:end + len(reply_start)]) if end >= 0 else plain

    def _logits_at(self, seqs: list[list[int]], keep: list[int]) -> torch.Tensor:
        """[len(seqs), len(keep), vocab] logits at positions `keep` of right-padded sequences (padding masked,
        so each row equals its unpadded pass). The LM head runs on those positions only where the model's
        forward takes transformers' `logits_to_keep`: over a 49k vocabulary it is most of a pass's work.
        The plain path (`provenance.fastpath.plain`) computes every position's logits and picks."""
        from provenance.activations.torch_runner import pad_batch

        ids, mask = pad_batch(seqs, self.device)
        if self._keeps_logits and fastpath.enabled():
            at = torch.tensor(keep, dtype=torch.long, device=self.device)
            return self.model(input_ids=ids, attention_mask=mask, logits_to_keep=at).logits
        return self.model(input_ids=ids, attention_mask=mask).logits[:, keep]

    def close(self) -> None:
        del self.model


def _forced(lp: np.ndarray, ids: list[int]) -> float:
    """log P(ids[1:] | context + ids[0]) from the log-probability rows of a string's positions: row j is
    read where ids[j] sits, so it predicts ids[j + 1]."""
    return float(sum(lp[j, ids[j + 1]] for j in range(len(ids) - 1)))


def _chat_template(path: Path) -> str | None:
    """The base's chat template: tokenizer_config.json's or chat_template.jinja beside an HF directory, or a
    GGUF's `tokenizer.chat_template` (None when it has none)."""
    from provenance.jsonfile import read_json

    if path.is_file() and path.suffix.lower() == ".gguf":
        from provenance.vocab.load import load_vocabulary

        return load_vocabulary(path).chat_template
    folder = path if path.is_dir() else path.parent
    jinja = folder / "chat_template.jinja"
    if jinja.is_file() and not jinja.is_symlink() and jinja.stat().st_size <= _MAX_TEMPLATE:
        return jinja.read_text(encoding="utf-8", errors="replace")
    cfg = folder / "tokenizer_config.json"
    template: Any = read_json(cfg).get("chat_template") if cfg.is_file() else None
    return template if isinstance(template, str) else None
