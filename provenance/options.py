"""`CompareOptions`: the options of one comparison, validated where they are made.

The CLI, the Python API, `identify` and `audit` build the same object; a value out of its domain
is refused here with one line (exit status 2 through the CLI), never deep inside a run. Each
field names the flag that sets it, so the command that reproduces a run is written from the
fields alone.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field, fields
from typing import Any

from provenance.errors import InvalidParameterError

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d{1,3})?")
MAX_SEED = 2**32 - 1
OUTPUT_APIS = ("completions", "chat")  # the endpoint APIs the outputs signal can ask  # numpy, torch and the permutation nulls all take it


def _flag(name: str, *, only_with: str | None = None, switch: str | None = None) -> dict[str, Any]:
    """Field metadata: the CLI flag, the signal it matters to (written only then), or a boolean switch."""
    return {"flag": name, "only_with": only_with, "switch": switch}


@dataclass(frozen=True)
class CompareOptions:
    """Options of one comparison (CLI flags map onto these one to one)."""

    signals: tuple[str, ...] | None = field(default=None, metadata=_flag("--signals"))  # None: the defaults
    device: str = field(default="auto", metadata=_flag("--device"))
    seed: int = field(default=0, metadata=_flag("--seed"))
    hashes: bool = field(default=True, metadata=_flag("", switch="--no-hash"))
    progress: bool | None = False  # bars on stderr; None: when stderr is a terminal (never changes a number)
    probe_texts: int = field(default=64, metadata=_flag("--probes", only_with="activations"))
    batch_size: int = field(default=8, metadata=_flag("--batch-size", only_with="activations"))
    max_queries: int = field(default=200, metadata=_flag("--max-queries", only_with="outputs"))
    outputs_api: str = field(default="completions", metadata=_flag("--outputs-api", only_with="outputs"))
    response_cache: str | None = field(default=None, metadata=_flag("--response-cache", only_with="outputs"))
    offline: bool = field(default=False, metadata=_flag("", only_with="outputs", switch="--offline"))

    def __post_init__(self) -> None:
        from provenance.signals import registry

        known = registry.names()
        if isinstance(self.signals, str) or (self.signals is not None and not self.signals):
            raise InvalidParameterError("signals", "compare", f"a non-empty subset of {known}", self.signals or "")
        for s in self.signals or ():
            if s not in known:
                raise InvalidParameterError("signals", "compare", f"a subset of {known}", s)
        if not isinstance(self.device, str) or not _DEVICE.fullmatch(self.device):
            raise InvalidParameterError("device", "compare", "'auto', 'cpu' or 'cuda[:N]'", self.device)
        _int_in("seed", self.seed, 0, MAX_SEED)
        _int_in("probe_texts", self.probe_texts, 8, 320)
        _int_in("batch_size", self.batch_size, 1, 4096)
        _int_in("max_queries", self.max_queries, 1, 10_000)
        if self.outputs_api not in OUTPUT_APIS:
            raise InvalidParameterError("outputs_api", "compare", "'completions' or 'chat'", self.outputs_api)
        if self.response_cache is not None and (not isinstance(self.response_cache, str) or not self.response_cache):
            raise InvalidParameterError("response_cache", "compare", "a file path", self.response_cache)
        if not isinstance(self.offline, bool):
            raise InvalidParameterError("offline", "compare", "True or False", self.offline)
        if not isinstance(self.hashes, bool):
            raise InvalidParameterError("hashes", "compare", "True or False", self.hashes)


def _int_in(name: str, value: Any, low: int, high: int) -> None:
    """Refuse anything but an int (bool included) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidParameterError(name, "compare", f"between {low} and {high}", value)


def reproduce_command(base: Any, candidate: Any, opts: CompareOptions) -> str:
    """`provenance compare BASE CANDIDATE ...` with every option that changes the numbers."""
    args, switches = ["provenance", "compare", str(base), str(candidate)], []
    for f in fields(opts):
        flag, value = f.metadata.get("flag"), getattr(opts, f.name)
        other_signal = f.metadata.get("only_with") and f.metadata["only_with"] not in (opts.signals or ())
        if flag is None or (other_signal and value == f.default):  # a signal's option: when it runs or was set
            continue
        if f.metadata["switch"]:
            switches += [f.metadata["switch"]] if value != f.default else []
        elif value is not None:
            args += [flag, ",".join(value) if isinstance(value, tuple) else str(value)]
    return shlex.join(args + switches)
