"""`Pair`: the two sides of one comparison, as every signal reads them.

A pair is of one kind: two checkpoints (opened models), a fingerprint on at least one side
(both fingerprinted, so both are measured the same way), or a tokenizer without weights on at
least one side. What several signals share (the vocabularies, the shared-token map, the shape
facts) is computed once, on first use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from provenance import fastpath
from provenance.errors import ProvenanceError
from provenance.progress import bar as progress_bar
from provenance.signals.base import CHECKPOINTS, ENDPOINTS, FINGERPRINTS, TOKENIZERS
from provenance.signals.facts import model_facts, shape_facts

if TYPE_CHECKING:
    import torch

    from provenance.arch.view import CanonicalModel
    from provenance.fingerprint.model import Fingerprint
    from provenance.io.source import ModelSource
    from provenance.options import CompareOptions
    from provenance.vocab.model import Vocabulary
    from provenance.vocab.token_map import TokenMap

Spec = str | os.PathLike[str]
_UNSET: Any = object()


@dataclass
class Pair:
    """Both sides of a comparison and what the signals share about them."""

    kind: str  # CHECKPOINTS | FINGERPRINTS | TOKENIZERS | ENDPOINTS
    base: Spec  # as the user gave it (reports and the reproducing command show it)
    candidate: Spec
    opts: CompareOptions
    device: torch.device
    sources: tuple[ModelSource, ModelSource] | None = None  # both specs resolved once (provenance.io.source)
    models: tuple[CanonicalModel, CanonicalModel] | None = None  # CHECKPOINTS
    fingerprints: tuple[Fingerprint, Fingerprint] | None = None  # FINGERPRINTS (and tokenizer-only fingerprints)
    tokenizers: tuple[Vocabulary, Vocabulary] | None = None  # TOKENIZERS read from files
    unreadable: list[str] = field(default_factory=list)  # tokenizer files beside weights that could not be read
    _vocab: Any = field(default=_UNSET, repr=False)
    _map: Any = field(default=_UNSET, repr=False)

    def vocabularies(self) -> tuple[Vocabulary | None, Vocabulary | None]:
        """Each side's vocabulary (None where a side has none, or its tokenizer could not be read)."""
        if self._vocab is _UNSET:
            if self.tokenizers is not None:
                self._vocab = self.tokenizers
            elif self.fingerprints is not None:
                self._vocab = tuple(fp.vocabulary for fp in self.fingerprints)
            else:
                self._vocab = tuple(self._readable(m, side, self.unreadable)
                                    for m, side in zip(self.models or (), ("base", "candidate")))
        return self._vocab

    def read_vocabularies(self) -> tuple[Vocabulary | None, Vocabulary | None]:
        """The vocabularies if a signal read them, else (None, None) (nothing is read here)."""
        return (None, None) if self._vocab is _UNSET else self._vocab

    def token_map(self) -> TokenMap | None:
        """Token id pairs with the same bytes on both sides (None without two vocabularies)."""
        if self._map is _UNSET:
            from provenance.vocab.cache import cached_map
            from provenance.vocab.token_map import shared_tokens

            va, vb = self.vocabularies()
            if va is None or vb is None:
                self._map = None
            elif fastpath.enabled():
                self._map = cached_map(va, vb, lambda: shared_tokens(va, vb))
            else:
                self._map = shared_tokens(va, vb)
        return self._map

    def facts(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """`model_facts` of both sides (kept inside a fingerprint)."""
        if self.fingerprints is not None:
            return self.fingerprints[0].meta["facts"], self.fingerprints[1].meta["facts"]
        if self.models is None:
            raise ValueError("a tokenizer pair has no model facts")
        return model_facts(self.models[0]), model_facts(self.models[1])

    def shapes(self) -> dict[str, Any]:
        """(base, candidate) sizes and flags for the relation wording."""
        return shape_facts(*self.facts())

    def bar(self, total: int, what: str, unit: str) -> Any:
        """A progress bar on stderr when the options ask for one (a no-op otherwise)."""
        return progress_bar(total, what, unit, self.opts.progress)

    @staticmethod
    def _readable(m: CanonicalModel, side: str, problems: list[str]) -> Vocabulary | None:
        """The model's tokenizer; a broken tokenizer file beside good weights is reported, not fatal."""
        from provenance.vocab.load import vocabulary_of

        try:
            return vocabulary_of(m.checkpoint)
        except ProvenanceError as exc:
            problems.append(f"The {side}'s tokenizer could not be read: {exc}")
            return None


__all__ = ["Pair", "CHECKPOINTS", "ENDPOINTS", "FINGERPRINTS", "TOKENIZERS"]
