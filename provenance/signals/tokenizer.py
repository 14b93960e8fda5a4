"""The tokenizer signal: evidence items and a tokenizer-only verdict from a `VocabComparison`."""

from __future__ import annotations

from provenance.evidence import Evidence, Verdict, confidence
from provenance.vocab.compare import VocabComparison

_LABEL = {"identical": "identical", "extension": "derived", "shifted": "derived", "derived": "derived",
          "independent": "independent", "inconclusive": "inconclusive"}


def tokenizer_items(c: VocabComparison) -> list[Evidence]:
    """The relation with its statistic, then what differs around the vocabulary (specials, rules, merges)."""
    rel = c.relation + (f" ({c.direction})" if c.direction else "")
    items = [Evidence("tokenizer", round(c.score, 6), c.p_value, f"Tokenizers: {rel}: {c.explanation}.",
                      c.details(), kind="vocabulary")]
    lost = [f"all {d['class']} ({d['missing']:,})" for d in c.missing_from_candidate if d["entire"]]
    if lost and c.relation != "independent":
        items.append(Evidence("tokenizer", None, None, "The candidate lacks " + ", ".join(lost) + " of the base.",
                              {"classes": c.missing_from_candidate}, kind="missing tokens"))
    around = _around(c)
    if around:
        items.append(Evidence("tokenizer", None, None, around, {"specials": c.specials,
                                                                 "rules": c.rules, "merges": c.merges},
                              kind="rules"))
    return items


def tokenizer_verdict(c: VocabComparison) -> Verdict:
    """A verdict about the tokenizers alone (when no weights were compared)."""
    label = _LABEL[c.relation]
    relation = None if label in ("independent", "inconclusive") else \
        f"tokenizer {c.relation}" + (f" ({c.direction})" if c.direction else "")
    caveat = " A shared tokenizer does not by itself mean shared weights." if label in ("identical", "derived") else ""
    return Verdict(label, relation, round(confidence(label, c.p_value), 6), c.p_value,
                   f"{c.explanation[:1].upper()}{c.explanation[1:]}.{caveat}")


def _around(c: VocabComparison) -> str:
    """One sentence on specials, split rules, chat template and merges; '' when nothing is known."""
    parts = []
    s = c.specials
    if s["recorded"]:
        extra = len(s["only_base"] or []) + len(s["only_candidate"] or [])
        parts.append(f"special tokens {s['same_id']} of {max(s['base'], s['candidate'])} identical"
                     + (f", {extra} only on one side" if extra else ""))
    else:
        parts.append("special tokens not recorded in one format")
    names = {"pretokenizer_same": "pre-tokenizer", "normalizer_same": "normalizer",
             "chat_template_same": "chat template"}
    for key, name in names.items():
        same = c.rules[key]
        if same is not None:
            parts.append(f"{name} {'identical' if same else 'differs'}")
    m = c.merges
    if m is not None:
        parts.append("merges identical" if m["identical"] else "merges differ (one side keeps only their digest)"
                     if m["shared"] is None else
                     f"{m['shared']:,} merges shared, rank agreement {m['rank_agreement']:.1%}")
    return ("Around the vocabulary: " + "; ".join(parts) + ".") if parts else ""
