"""Field names of a result (`p_exact_bound`, `kv_heads`) as the words a report shows a reader."""

from __future__ import annotations

from typing import Any

from provenance.report.html_parts import num

WORDS = {
    # the weight signal's layer test and magnitudes
    "z": "z-score", "p_value": "p-value", "p_exact_bound": "exact permutation bound",
    "null_mean": "mean under independence", "null_sd": "spread under independence (sd)",
    "comparable_roles": "comparable tensor roles", "per_layer": "per layer", "similarity_matrix": "similarity matrix",
    "identity": "identity map", "matched": "matched layers", "base_layers": "base layers",
    "candidate_layers": "candidate layers", "order_preserved": "layer order kept",
    "duplicated_base_layers": "base layers matched twice", "unmatched_base_layers": "base layers without a match",
    "unmatched_candidate_layers": "candidate layers without a match", "values": "values",
    "matched_dims": "matched residual dimensions", "tokens": "tokens", "paired_by": "embedding rows paired by",
    "heldout_median_r": "held-out median correlation", "sign_flips": "sign flips", "scale": "scale",
    "direct_cosine": "cosine, tensors as stored", "matched_cosine": "cosine, after matching dimensions",
    "relative_change": "relative change", "neurons_in_place": "neurons in place",
    "sketches_compared": "sketches compared", "max_abs_log_scale": "largest rescaling (|log|)",
    "base_constant_norms": "base norm weights constant", "candidate_constant_norms": "candidate norm weights constant",
    "only_in": "only in", "notes": "notes", "base": "base", "candidate": "candidate", "similarity": "similarity",
    "rotated": "residual stream rotated",
    # the weight signal's neuron tests
    "same_cosine": "same-neuron cosine", "chance_cosine": "cosine by chance",
    "base_share": "base's merge share", "effect": "effect", "role": "rows compared", "views": "views",
    "decoy_agreement": "same partner by chance (decoys)",
    "neurons": "neurons tested",
    # the tokenizer signal
    "vocab_base": "base vocabulary", "vocab_candidate": "candidate vocabulary", "shared": "shared tokens",
    "shared_same_id": "shared tokens with the same id", "shared_same_id_multibyte": "same id among multi-byte tokens",
    "base_in_candidate": "base tokens in the candidate", "candidate_in_base": "candidate tokens in the base",
    "jaccard": "Jaccard overlap", "id_offset": "constant id offset", "offset_fraction": "share at that offset",
    "order_agreement": "shared tokens in one increasing run", "step_concordance": "neighbour steps that increase",
    "score": "order score", "merges": "merges",
    "specials": "special tokens", "rules": "pre-tokenizer and normalizer rules",
    "missing_from_candidate": "missing from the candidate", "missing_from_base": "missing from the base",
    "relation": "relation", "direction": "direction", "explanation": "explanation", "examples": "examples",
    "only_base": "only in the base", "only_candidate": "only in the candidate", "class": "token class",
    "missing": "missing", "total": "of", "entire": "entire class", "recorded": "recorded", "same_id": "same id",
    "pretokenizer_same": "same pre-tokenizer", "normalizer_same": "same normalizer",
    "chat_template_same": "same chat template", "byte_sorted": "share sorted by bytes (base, candidate)",
    # the activation signal
    "test": "test", "tests": "tests (Bonferroni)", "probe_set": "probe set", "probe_sha256": "probe sha256",
    "positions": "aligned positions", "carried_by": "layer pairs that carry the verdict", "cka": "CKA",
    "layer_map": "layer map", "base_layer": "base layer", "candidate_layer": "candidate layer",
    "in_place": "neurons in place", "p_in_place": "p (in place)", "agreement": "gate/up agreement",
    "chance_agreement": "agreement by chance", "p_agreement": "p (agreement)", "pairs_tried": "layer pairs tried",
    # config and model facts
    "architecture": "architecture", "differ": "fields that differ", "hidden": "hidden size", "layers": "layers",
    "heads": "attention heads", "kv_heads": "key/value heads", "head_dim": "head size",
    "intermediate": "MLP size", "vocab": "vocabulary size", "roles_inferred": "roles inferred from structure",
    "definition": "architecture definition", "parameters": "parameters", "format": "format", "spec": "spec",
}


def words(key: object) -> str:
    """A result's field name as words: the table's, else underscores as spaces.

    >>> words("p_exact_bound"), words("kv_heads"), words("some_new_field"), words(3)
    ('exact permutation bound', 'key/value heads', 'some new field', '3')
    """
    text = str(key)
    return WORDS.get(text, text.replace("_", " "))


def details_text(details: dict[str, Any], limit: int = 24) -> str:
    """An evidence item's details as indented lines of words and values (long lists cut; the JSON has them whole).

    >>> print(details_text({"null_sd": 0.01, "per_layer": [{"base": 0, "p_value": 2e-300}], "notes": ["a", "b"]}))
    spread under independence (sd): 0.01
    per layer:
      - base 0, p-value ≤ 2e-300
    notes: a; b
    """
    return "\n".join(_lines(details, 0, limit))


def _lines(d: dict[str, Any], depth: int, limit: int) -> list[str]:
    pad, out = "  " * depth, []
    for k, v in d.items():
        if isinstance(v, dict):
            out += [f"{pad}{words(k)}:"] + _lines(v, depth + 1, limit)
        elif isinstance(v, list) and any(isinstance(x, (dict, list)) for x in v):
            out.append(f"{pad}{words(k)}:" + (f" ({len(v)} rows)" if isinstance(v[0], list) else ""))
            out += [f"{pad}  - {_inline(x, limit)}" for x in v[:limit]]
            out += [f"{pad}  … {len(v) - limit} more"] if len(v) > limit else []
        else:
            out.append(f"{pad}{words(k)}: {_inline(v, limit)}")
    return out


def _inline(x: Any, limit: int) -> str:
    """A value on one line: dicts as 'key value' pairs, lists joined, numbers as reports print them."""
    if isinstance(x, dict):
        return ", ".join(f"{words(k)} {_inline(v, limit)}" for k, v in x.items())
    if isinstance(x, list):
        shown = "; ".join(_inline(v, limit) for v in x[:limit]) if any(isinstance(v, str) for v in x) else \
            ", ".join(_inline(v, limit) for v in x[:limit])
        return (shown or "none") + (f" … {len(x) - limit} more" if len(x) > limit else "")
    return num(x)
