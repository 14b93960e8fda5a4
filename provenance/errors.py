"""Every error `provenance` raises on purpose.

Each class also inherits the matching built-in, so callers can catch `FileNotFoundError`
or `ValueError` as usual, and carries the file, tensor or field it is about. Messages say
what was wrong, what was received and, where there is one, the fix. The CLI turns any
`ProvenanceError` into a one-line message and exit status 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class ProvenanceError(Exception):
    """Base class: bad input that the user can fix (exit status 2 on the command line)."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.message = f"{self.path}: {message}" if self.path is not None else message
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return self.message


class CheckpointNotFoundError(ProvenanceError, FileNotFoundError):
    """The model spec names no file, directory, cached model id or fingerprint."""


class MissingFileError(ProvenanceError, FileNotFoundError):
    """A file the checkpoint refers to (a shard, external ONNX data) is not there."""


class UnknownFormatError(ProvenanceError, ValueError):
    """The file is not a weights format `provenance` reads."""


class CorruptFileError(ProvenanceError, ValueError):
    """The file is truncated or its header contradicts itself."""


class UnsafePickleError(ProvenanceError, ValueError):
    """A pickle asks to run code; we only read plain tensors (`weights_only=True`)."""


class UnsafePathError(ProvenanceError, ValueError):
    """An index or manifest points outside the model directory."""


class EndpointSpecError(ProvenanceError, ValueError):
    """An endpoint spec (openai+http://HOST:PORT/PATH#MODEL) is malformed."""


class EndpointError(ProvenanceError, RuntimeError):
    """An endpoint could not be reached, refused the request, ran out of budget or answered garbage."""


class SourceKindError(ProvenanceError, ValueError):
    """The spec names a kind of source the task cannot use: an endpoint or a fingerprint where weights are needed."""


class TensorNotFoundError(ProvenanceError, KeyError):
    """A tensor or canonical role that the checkpoint does not have."""

    def __init__(self, name: str, known: Iterable[str], *, path: str | Path | None = None,
                 what: str = "tensor") -> None:
        self.name = name
        hint = did_you_mean(name, known)
        super().__init__(f"no {what} named {name!r}.{hint}", path=path)


class DefinitionError(ProvenanceError, ValueError):
    """An architecture definition file is malformed."""


class IncomparableError(ProvenanceError, ValueError):
    """The two inputs share too little for a signal to compare them (e.g. no common text spans)."""


class InvalidParameterError(ProvenanceError, ValueError):
    """A parameter of a public function or CLI option is out of its domain."""

    def __init__(self, param: str, func: str, expected: str, got: object) -> None:
        self.param = param
        super().__init__(f"The {param!r} parameter of {func} must be {expected}. Got {got!r} instead.")


def did_you_mean(name: str, known: Iterable[str], *, n: int = 3) -> str:
    """A ' Did you mean ...?' suffix naming the closest known names, or '' if none is close.

    >>> did_you_mean("layers.0.attn.qq", ["layers.0.attn.q", "layers.0.attn.k", "embed"])
    " Did you mean 'layers.0.attn.q' or 'layers.0.attn.k'?"
    """
    close = difflib.get_close_matches(name, list(known), n=n, cutoff=0.6)
    if not close:
        return ""
    quoted = [repr(c) for c in close]
    joined = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f" Did you mean {joined}?"
