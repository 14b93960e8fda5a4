"""Tokenizers and token maps are computed once per content: a copy is a hit, an edit is not, plain reads."""

from __future__ import annotations

import json
import shutil

import pytest

from provenance import fastpath
from provenance.vocab import cache
from provenance.vocab.load import read_tokenizer_file
from provenance.vocab.token_map import shared_tokens
from tests.real_models import DEEPSEEK_JSON, MINILM_DIR


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def test_a_copied_file_is_a_hit_named_for_its_own_path(tmp_path) -> None:
    copy = tmp_path / "tokenizer.json"
    shutil.copyfile(MINILM_DIR / "tokenizer.json", copy)
    first = read_tokenizer_file(MINILM_DIR / "tokenizer.json")
    second = read_tokenizer_file(copy)
    assert second.tokens is first.tokens  # not parsed again
    assert second.source == str(copy) and first.source == str(MINILM_DIR / "tokenizer.json")
    with fastpath.plain():
        plain = read_tokenizer_file(copy)
    assert plain.tokens is not first.tokens and plain == second


def test_an_edited_file_is_read_again(tmp_path) -> None:
    path = tmp_path / "tokenizer.json"
    data = json.loads((MINILM_DIR / "tokenizer.json").read_text())
    path.write_text(json.dumps(data))
    before = read_tokenizer_file(path)
    data["model"]["vocab"]["[unused0]"], data["model"]["vocab"]["[unused1]"] = (
        data["model"]["vocab"]["[unused1]"], data["model"]["vocab"]["[unused0]"])
    path.write_text(json.dumps(data))
    after = read_tokenizer_file(path)
    assert after.tokens is not before.tokens and after.tokens != before.tokens


def test_the_token_map_is_computed_once_per_pair_of_contents() -> None:
    a, b = read_tokenizer_file(MINILM_DIR / "tokenizer.json"), read_tokenizer_file(DEEPSEEK_JSON)
    calls = []

    def compute():
        calls.append(1)
        return shared_tokens(a, b)

    first, again = cache.cached_map(a, b, compute), cache.cached_map(a, b, compute)
    assert again is first and len(calls) == 1
    assert first.base_ids.tolist() == shared_tokens(a, b).base_ids.tolist()
    assert cache.cached_map(b, a, compute) is not first and len(calls) == 2  # the other direction is another map
