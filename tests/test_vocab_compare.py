"""The tokenizer comparison reproduces the public lineage facts of REAL_MODELS.md, calls
independent vocabularies independent despite large overlap, and sees through disguised copies."""

from __future__ import annotations

import numpy as np
import pytest

from provenance.vocab.compare import compare_vocabularies
from provenance.vocab.model import NORMAL, Vocabulary, from_pairs
from provenance.vocab.token_map import shared_tokens
from tests.real_models import (
    BERT_VOCAB_TXT,
    CL100K_TIKTOKEN,
    DEEPSEEK_JSON,
    LLAMA3_JSON,
    MISTRAL_V1,
    MISTRAL_V2,
    MISTRAL_V3,
    MISTRAL_V7,
    O200K_GZ,
    QUICKTOK,
    QWEN36_TIKTOKEN,
    QWEN_TIKTOKEN,
    SMOLLM2_GGUF,
    TEKKEN,
)
from tests.vocab_helpers import real

REQUIRED_DETAILS = {"vocab_base", "vocab_candidate", "shared", "shared_same_id", "base_in_candidate",
                    "candidate_in_base", "id_offset", "order_agreement", "relation"}


def test_llama3_extends_cl100k_with_the_same_ids():
    c = compare_vocabularies(real(CL100K_TIKTOKEN), real(LLAMA3_JSON))
    assert (c.relation, c.direction) == ("extension", "candidate extends base")
    assert (c.vocab_base, c.vocab_candidate, c.shared, c.shared_same_id) == (100256, 128000, 100256, 100256)
    assert c.base_in_candidate == 1.0 and c.id_offset == 0 and c.order_agreement == 1.0
    assert c.explanation.endswith("and adds 27,744")
    assert REQUIRED_DETAILS <= set(c.details())


def test_qwen_derives_from_cl100k_without_multi_digit_numbers():
    c = compare_vocabularies(real(CL100K_TIKTOKEN), real(QWEN_TIKTOKEN))
    assert c.relation == "derived" and c.p_value < 1e-100 and c.score == 1.0
    assert c.shared == 100256 - 1100 and c.order_agreement == 1.0  # cl100k's order kept exactly ...
    assert c.shared_same_id_multibyte < 0.01 and c.id_offset is None  # ... under different ids
    lost = c.missing_from_candidate
    assert [(d["class"], d["missing"], d["of"], d["entire"]) for d in lost] == [("multi-digit numbers", 1100, 1100,
                                                                                True)]


def test_mistral_v1_to_v2_is_a_constant_shift_and_v3_to_v7_keep_ids():
    c = compare_vocabularies(real(MISTRAL_V1), real(MISTRAL_V2))
    assert (c.relation, c.id_offset, c.shared, c.offset_fraction) == ("shifted", 768, 31997, 1.0)
    d = compare_vocabularies(real(MISTRAL_V3), real(MISTRAL_V7))
    assert d.relation == "identical" and d.shared_same_id == 31997
    # v7 gives names to control slots that v3 left as [control_N]
    assert {"[REF]", "[/REF]", "[SYSTEM_PROMPT]"} <= set(d.specials["only_candidate"])
    assert all(t.startswith("[control_") for t in d.specials["only_base"])


@pytest.mark.slow
@pytest.mark.parametrize("base,candidate", [
    (O200K_GZ, TEKKEN), (SMOLLM2_GGUF, BERT_VOCAB_TXT), (LLAMA3_JSON, DEEPSEEK_JSON), (CL100K_TIKTOKEN, O200K_GZ),
    (MISTRAL_V1, TEKKEN), (DEEPSEEK_JSON, QWEN_TIKTOKEN), (SMOLLM2_GGUF, CL100K_TIKTOKEN),
    (QWEN36_TIKTOKEN, O200K_GZ), (MISTRAL_V1, LLAMA3_JSON),
])
def test_independent_vocabularies_are_independent_despite_overlap(base, candidate):
    c = compare_vocabularies(real(base), real(candidate))
    assert c.relation == "independent", c.explanation
    assert c.p_value > 0.01 and c.score < 0.02 and abs(c.step_concordance - 0.5) < 0.01
    assert c.shared > 10000  # the overlap is large; it is the order that is unrelated


@pytest.mark.slow
def test_siblings_from_one_ancestor_share_its_order():
    """Llama-3 and Qwen both descend from cl100k: derived (common ancestry), not independent."""
    c = compare_vocabularies(real(LLAMA3_JSON), real(QWEN_TIKTOKEN))
    assert c.relation == "derived" and c.score > 0.8
    assert compare_vocabularies(real(QUICKTOK / "qwen3.vocab"), real(QWEN36_TIKTOKEN)).relation == "derived"


# ---- disguised copies built from cl100k -------------------------------------------------------

def _rebuild(v: Vocabulary, tokens: list[bytes], ids: list[int]) -> Vocabulary:
    return from_pairs([(i, t, NORMAL) for t, i in zip(tokens, ids)], source="synthetic", format="tiktoken",
                      model="bpe")


@pytest.fixture(scope="module")
def cl100k_tokens() -> list[bytes]:
    return [t for t in real(CL100K_TIKTOKEN).tokens if t is not None]


def test_renumbered_copy_is_derived_by_its_token_set(cl100k_tokens):
    ids = np.random.default_rng(0).permutation(len(cl100k_tokens)).tolist()
    c = compare_vocabularies(real(CL100K_TIKTOKEN), _rebuild(real(CL100K_TIKTOKEN), cl100k_tokens, ids))
    assert c.relation == "derived" and c.jaccard == 1.0 and abs(c.step_concordance - 0.5) < 0.01
    assert "same token set" in c.explanation


def test_filtered_copy_with_new_ids_is_derived_by_order(cl100k_tokens):
    keep = np.random.default_rng(1).random(len(cl100k_tokens)) < 0.6
    kept = [t for t, k in zip(cl100k_tokens, keep) if k] + [b"\xf0new%d" % i for i in range(5000)]
    c = compare_vocabularies(real(CL100K_TIKTOKEN), _rebuild(real(CL100K_TIKTOKEN), kept, list(range(len(kept)))))
    assert c.relation == "derived" and c.order_agreement == 1.0 and c.base_in_candidate == pytest.approx(0.6, abs=0.01)


def test_shifted_extended_and_truncated_copies(cl100k_tokens):
    base = real(CL100K_TIKTOKEN)
    n = len(cl100k_tokens)
    shifted = compare_vocabularies(base, _rebuild(base, cl100k_tokens, [i + 1000 for i in range(n)]))
    assert (shifted.relation, shifted.id_offset) == ("shifted", 1000)
    truncated = compare_vocabularies(base, _rebuild(base, cl100k_tokens[:50000], list(range(50000))))
    assert (truncated.relation, truncated.direction) == ("extension", "base extends candidate")


def test_too_few_shared_tokens_is_inconclusive():
    a = from_pairs([(i, b"a%d" % i, NORMAL) for i in range(50)], source="a", format="t", model="bpe")
    assert compare_vocabularies(a, a).relation == "inconclusive"


def test_shared_token_map_frame_and_embedding_window():
    m = shared_tokens(real(CL100K_TIKTOKEN), real(QWEN_TIKTOKEN))
    assert len(m) == 99156 and np.all(np.diff(m.base_ids) > 0)
    frame = m.frame()
    assert list(frame.columns) == ["token", "kind", "base_id", "candidate_id"]
    assert frame.iloc[0].to_dict() == {"token": "'!'", "kind": "normal", "base_id": 0, "candidate_id": 0}
    assert len(m.within(1000, 1000)) == int(((m.base_ids < 1000) & (m.candidate_ids < 1000)).sum())


def test_same_inputs_same_numbers():
    a = compare_vocabularies(real(MISTRAL_V1), real(TEKKEN)).details()
    b = compare_vocabularies(real(MISTRAL_V1), real(TEKKEN)).details()
    assert a == b


def test_two_vocabularies_numbered_in_byte_order_are_not_called_derived():
    """Sorted ids agree in order for any two vocabularies: the order test must stand aside."""
    rng = np.random.default_rng(3)
    pool = sorted({bytes(rng.integers(97, 123, size=int(rng.integers(2, 7))).tolist()) for _ in range(60000)})
    a = [t for t in pool if rng.random() < 0.6]
    b = [t for t in pool if rng.random() < 0.6]
    va = from_pairs([(i, t, NORMAL) for i, t in enumerate(a)], source="a", format="vocab.json", model="bpe")
    vb = from_pairs([(i, t, NORMAL) for i, t in enumerate(b)], source="b", format="vocab.json", model="bpe")
    c = compare_vocabularies(va, vb)
    assert c.step_concordance == 1.0 and min(c.byte_sorted) == 1.0
    assert c.relation == "inconclusive" and "number their tokens in byte order" in c.explanation
