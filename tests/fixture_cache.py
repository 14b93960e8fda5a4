"""Expensive deterministic fixtures cached on disk between runs, each keyed by its recipe.

A cached entry lives in `cache_dir() / f"{name}-{key}"`, where `key = recipe_key(...)` hashes what
builds it: the source of the building function (and of the tests/ functions it calls), its
arguments and captured values (tensors by dtype, shape and a sample of their values). An unchanged
recipe is reused across runs; a changed one gets a new key and is rebuilt, alone. Entries are
written into a private `.partial-*` directory and renamed into place, so a crash or a concurrent
run never leaves a half-written one. `cache_dir() / name` is a symlink to the entry used last, for
the benchmarks that read what the tests built.
"""

from __future__ import annotations

import dis
import hashlib
import inspect
import json
import linecache
import os
import re
import shutil
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch

STALE_DAYS = 7
"""Entries of the same name under another key, unused this long, are deleted when a new one is built."""

_KEYED = re.compile(r"-[0-9a-f]{12}$")
_SAMPLE = 4096  # values read from each tensor for its digest


def cache_dir() -> Path:
    """Where expensive deterministic fixtures live between runs (PROVENANCE_TEST_CACHE to move it)."""
    root = Path(os.environ.get("PROVENANCE_TEST_CACHE", Path.home() / ".cache" / "provenance-tests"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def recipe_key(*parts: object) -> str:
    """12 hex digits of a sha256 over `parts`: a function by its source, defaults, captured values and what
    it names in tests/ (functions, recursively, and data constants); a tensor by dtype, shape, sum and
    sampled values; a container by its items; anything else by `repr`."""
    h = hashlib.sha256()
    seen: set[int] = set()
    for part in parts:
        _feed(h, part, seen)
    return h.hexdigest()[:12]


def cached(name: str, key: str, write: Callable[[Path], None]) -> Path:
    """`cache_dir() / f"{name}-{key}"`, calling `write(folder)` on a fresh private folder only when no
    entry is there yet; `name` may hold one parent folder (`"families/tiny-permuted"`)."""
    parent, _, leaf = name.rpartition("/")
    if not leaf or leaf.startswith(".") or "/" in parent or parent.startswith("."):
        raise ValueError(f"The 'name' parameter of cached must be a plain name, or one folder and a name. "
                         f"Got {name!r} instead.")
    root = cache_dir() / parent
    target = root / f"{leaf}-{key}"
    if not target.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=root))
        tmp.chmod(0o755)  # mkdtemp's 0o700 would hide the entry from other users of a shared cache
        try:
            write(tmp)
            (tmp / "recipe.json").write_text(json.dumps({"name": leaf, "key": key}))
            try:
                tmp.rename(target)
            except OSError:  # another run finished the same entry first: keep theirs
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _prune(root, leaf, keep=target)
    os.utime(target / "recipe.json")  # last use, for `_prune`
    _point(root / leaf, target)
    return target


def _point(link: Path, target: Path) -> None:
    """Make `link` a symlink to `target` (atomically; a real directory left by an older layout is removed)."""
    if link.is_symlink() and os.readlink(link) == target.name:
        return
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link, ignore_errors=True)
    tmp = link.with_name(f".{link.name}.link-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target.name)
    tmp.replace(link)


def _prune(root: Path, leaf: str, keep: Path) -> None:
    """Delete entries of `leaf` under other keys that no run has used for STALE_DAYS, and partial ones
    a killed run left behind more than a day ago."""
    now = time.time()
    for other in root.glob(f"{leaf}-*"):
        stamp = other / "recipe.json"
        if other == keep or other.is_symlink() or not _KEYED.search(other.name[len(leaf):]):
            continue
        if stamp.is_file() and json.loads(stamp.read_text()).get("name") == leaf \
                and stamp.stat().st_mtime < now - STALE_DAYS * 86400:
            shutil.rmtree(other, ignore_errors=True)
    for orphan in root.glob(f".{leaf}-*.partial-*"):
        if orphan.stat().st_mtime < now - 86400:
            shutil.rmtree(orphan, ignore_errors=True)


# ----------------------------------------------------------------------------- what a key covers

def _feed(h: hashlib._Hash, obj: object, seen: set[int]) -> None:
    if isinstance(obj, (str, int, float, bool, type(None), torch.dtype)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, torch.Tensor):
        _feed_tensor(h, obj)
    elif isinstance(obj, dict):
        h.update(f"dict{len(obj)}(".encode())
        for k in sorted(obj, key=repr):
            _feed(h, k, seen)
            _feed(h, obj[k], seen)
        h.update(b")")
    elif isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        h.update(f"{type(obj).__name__}{len(obj)}(".encode())
        for item in items:
            _feed(h, item, seen)
        h.update(b")")
    elif isinstance(obj, types.ModuleType):
        h.update(f"module:{obj.__name__};".encode())
    elif callable(obj) and isinstance(inspect.unwrap(obj), types.FunctionType):
        _feed_function(h, inspect.unwrap(obj), seen)
    else:
        h.update(f"{type(obj).__qualname__}:{obj!r};".encode())


def _feed_tensor(h: hashlib._Hash, t: torch.Tensor) -> None:
    """dtype, shape, up to _SAMPLE evenly spaced values and the float64 sum: cheap, and any change of the
    data a fixture is built from (another base checkpoint, another dequantizer) shows in it."""
    flat = t.detach().cpu().reshape(-1)
    sample = flat[:: max(1, flat.numel() // _SAMPLE)].contiguous()
    total = flat.sum(dtype=torch.float64 if flat.is_floating_point() else torch.int64).item() if flat.numel() else 0
    h.update(f"tensor:{t.dtype}:{tuple(t.shape)}:{total!r}:".encode())
    h.update(sample.view(torch.uint8).numpy().tobytes())


def _feed_function(h: hashlib._Hash, fn: types.FunctionType, seen: set[int]) -> None:
    """Its source (a lambda: the expression alone), defaults and captured values, then what it names in
    tests/: functions, once each (so a helper's edit reaches the recipes that call it), and data constants."""
    if id(fn) in seen:
        h.update(f"again:{fn.__module__}.{fn.__qualname__};".encode())
        return
    seen.add(id(fn))
    h.update(f"function:{_source(fn)};".encode())
    _feed(h, fn.__defaults__, seen)
    _feed(h, fn.__kwdefaults__, seen)
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        h.update(f"captured:{name}=".encode())
        _feed(h, cell.cell_contents, seen)
    for name, obj in _named(fn):
        h.update(f"named:{name}=".encode())
        _feed(h, obj, seen)


def _source(fn: types.FunctionType) -> str:
    """`inspect.getsource`, except that a lambda gives only its expression: the text around it (the rest
    of a dict of recipes, the call it is passed to) is not part of the recipe. Without source (a REPL),
    the bytecode stands in for it."""
    code = fn.__code__
    lines = linecache.getlines(code.co_filename)
    spans = [p for p in (i.positions for i in dis.get_instructions(code))  # RESUME, RETURN_VALUE: empty spans
             if p and p.lineno and p.col_offset is not None
             and (p.end_lineno, p.end_col_offset) > (p.lineno, p.col_offset)]
    if code.co_name == "<lambda>" and spans and lines:
        l0, c0 = min((p.lineno, p.col_offset) for p in spans)
        l1, c1 = max((p.end_lineno, p.end_col_offset) for p in spans)
        if l0 == l1:
            return lines[l0 - 1][c0:c1]
        return lines[l0 - 1][c0:] + "".join(lines[l0:l1 - 1]) + lines[l1 - 1][:c1]
    try:
        return inspect.getsource(fn)
    except OSError:
        return f"{code.co_code.hex()}{code.co_consts!r}{code.co_names!r}"


_DATA = (str, int, float, bool, tuple, list, dict, set, frozenset, torch.Tensor, torch.dtype)


def _named(fn: types.FunctionType) -> list[tuple[str, object]]:
    """(name, object) for what `fn` names among the globals of its module and of the tests/ modules it
    uses: functions defined in tests/ and data constants (a config dict, a corpus), sorted by name."""
    names: list[str] = []
    stack = [fn.__code__]
    while stack:
        code = stack.pop()
        names += code.co_names
        stack += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    names = sorted(set(names))
    modules = [m for m in map(fn.__globals__.get, names)
               if isinstance(m, types.ModuleType) and m.__name__.startswith("tests.")]
    found: dict[str, object] = {}
    for space in [fn.__globals__] + [vars(m) for m in modules]:
        for name in names:
            obj = space.get(name)
            target = inspect.unwrap(obj) if callable(obj) else obj
            is_ours = isinstance(target, types.FunctionType) and target.__module__.startswith("tests.")
            if is_ours or (isinstance(obj, _DATA) and not name.startswith("__")):
                found.setdefault(name, target)
    return sorted(found.items())
