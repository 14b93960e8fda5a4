"""The on-disk fixture cache: keys follow the recipe (source, parameters, captured data, helpers), entries
are written once and atomically, the name's link follows the entry used last, stale entries go."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import time
import types
from pathlib import Path

import pytest
import torch

from tests.fixture_cache import STALE_DAYS, cached, recipe_key


def _module(path: Path, source: str) -> types.ModuleType:
    """`source` imported from `path` as a module of tests/ (so its functions count as helpers)."""
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"tests._recipes_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_key_follows_the_parameters_and_captured_values():
    state = {"w": torch.arange(10_000, dtype=torch.float32)}
    other = {"w": torch.arange(10_000, dtype=torch.float32)}
    other["w"][7_777] += 1  # one value the sample skips: the sum still sees it
    key = recipe_key(lambda: torch.flip(state["w"], [0]), 3)
    assert len(key) == 12 and int(key, 16) >= 0
    assert recipe_key(lambda: torch.flip(state["w"], [0]), 3) == key  # spelled again: the same recipe
    assert recipe_key(lambda: torch.flip(state["w"], [0]), 4) != key
    assert recipe_key(lambda: torch.flip(state["w"], [-1]), 3) != key
    state = other  # the lambdas below capture the changed tensor
    assert recipe_key(lambda: torch.flip(state["w"], [0]), 3) != key
    assert recipe_key({"a": 1, "b": [1.0, None]}) == recipe_key({"b": [1.0, None], "a": 1})
    assert recipe_key(torch.zeros(2, dtype=torch.float16)) != recipe_key(torch.zeros(2, dtype=torch.bfloat16))


def test_a_lambda_is_keyed_by_its_expression_not_the_text_around_it():
    recipes = {"one": lambda: min(1, 2), "two": lambda: min(1, 3)}
    assert recipe_key(recipes["one"]) == recipe_key(lambda: min(1, 2))
    assert recipe_key(recipes["two"]) != recipe_key(recipes["one"])


def test_an_edited_helper_changes_the_key_of_the_recipes_that_call_it(tmp_path):
    body = "SCALE = {scale}\n\ndef helper(x):\n    return x * SCALE\n\ndef recipe():\n    return helper({x})\n\n" \
           "def unrelated():\n    return 0\n"
    first = _module(tmp_path / "a.py", body.format(scale=2, x=1))
    assert first.recipe() == 2
    same = _module(tmp_path / "b.py", body.format(scale=2, x=1))
    rescaled = _module(tmp_path / "c.py", body.format(scale=3, x=1))
    edited = _module(tmp_path / "d.py", body.format(scale=2, x=1).replace("x * SCALE", "SCALE * x"))
    assert recipe_key(first.recipe) == recipe_key(same.recipe)
    assert recipe_key(first.recipe) != recipe_key(rescaled.recipe)  # a data constant it names
    assert recipe_key(first.recipe) != recipe_key(edited.recipe)  # the source of a function it calls
    assert recipe_key(first.unrelated) == recipe_key(edited.unrelated)


def test_an_entry_is_written_once_into_place(tmp_path, monkeypatch):
    monkeypatch.setenv("PROVENANCE_TEST_CACHE", str(tmp_path))
    calls: list[Path] = []

    def write(folder: Path) -> None:
        calls.append(folder)
        assert folder.parent == tmp_path / "group" and ".partial-" in folder.name and folder.is_dir()
        (folder / "data.txt").write_text("built")

    legacy = tmp_path / "group" / "thing"  # a directory left by the unkeyed layout: becomes the link
    legacy.mkdir(parents=True)
    (legacy / "stale.txt").write_text("old")
    entry = cached("group/thing", "0123456789ab", write)
    assert entry == tmp_path / "group" / "thing-0123456789ab" and len(calls) == 1
    assert cached("group/thing", "0123456789ab", write) == entry and len(calls) == 1
    assert (entry / "data.txt").read_text() == "built"
    assert json.loads((entry / "recipe.json").read_text()) == {"name": "thing", "key": "0123456789ab"}
    assert os.readlink(tmp_path / "group" / "thing") == entry.name
    assert sorted(p.name for p in (tmp_path / "group").iterdir()) == ["thing", "thing-0123456789ab"]


def test_a_failed_build_leaves_nothing_and_a_lost_race_keeps_the_winner(tmp_path, monkeypatch):
    monkeypatch.setenv("PROVENANCE_TEST_CACHE", str(tmp_path))

    def crash(folder: Path) -> None:
        (folder / "half.txt").write_text("half")
        raise RuntimeError("killed while writing")

    with pytest.raises(RuntimeError, match="killed while writing"):
        cached("thing", "aaaaaaaaaaaa", crash)
    assert list(tmp_path.iterdir()) == []

    def race(folder: Path) -> None:  # another run finishes the same entry while this one writes
        (tmp_path / "thing-bbbbbbbbbbbb").mkdir()
        (tmp_path / "thing-bbbbbbbbbbbb" / "winner.txt").write_text("theirs")
        (tmp_path / "thing-bbbbbbbbbbbb" / "recipe.json").write_text("{}")
        (folder / "winner.txt").write_text("ours")

    entry = cached("thing", "bbbbbbbbbbbb", race)
    assert (entry / "winner.txt").read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thing", "thing-bbbbbbbbbbbb"]


def test_entries_of_other_recipes_go_once_stale(tmp_path, monkeypatch):
    monkeypatch.setenv("PROVENANCE_TEST_CACHE", str(tmp_path))
    old = cached("thing", "000000000000", lambda folder: None)
    recent = cached("thing", "111111111111", lambda folder: None)
    other_name = cached("thing-else", "222222222222", lambda folder: None)
    long_ago = time.time() - (STALE_DAYS + 1) * 86400
    for entry in (old, other_name):
        os.utime(entry / "recipe.json", (long_ago, long_ago))
    legacy = tmp_path / "thing-legacy"  # not a keyed entry: never touched
    legacy.mkdir()
    killed, fresh = tmp_path / ".thing-444444444444.partial-x1", tmp_path / ".thing-555555555555.partial-x2"
    for partial in (killed, fresh):
        partial.mkdir()
    os.utime(killed, (long_ago, long_ago))  # left by a run killed while writing; `fresh` may still be written
    cached("thing", "333333333333", lambda folder: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["thing", "thing-333333333333", "thing-else", "thing-else-222222222222", "thing-legacy", recent.name,
         fresh.name])
    assert os.readlink(tmp_path / "thing") == "thing-333333333333"


def test_a_name_that_would_leave_the_cache_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("PROVENANCE_TEST_CACHE", str(tmp_path))
    for name in ("../x", "a/b/c", ".hidden", "group/"):
        expected = rf"The 'name' parameter of cached must be .* Got {re.escape(repr(name))} instead\."
        with pytest.raises(ValueError, match=expected):
            cached(name, "0123456789ab", lambda folder: None)
