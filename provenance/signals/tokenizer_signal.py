"""The tokenizer signal: shared tokens, their id order, specials and rules; decides only without a model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from provenance.evidence import Evidence
from provenance.report.blocks import Code, Facts, P, Section, Table, Text, Tokens
from provenance.signals.base import (
    CHECKPOINTS,
    FALLBACK_TEST,
    FINGERPRINTS,
    TOKENIZERS,
    Reading,
)

if TYPE_CHECKING:
    from provenance.signals.pair import Pair

NAME = "tokenizer"
_EXAMPLES = {"shared": "shared", "only_base": "only in base", "only_candidate": "only in candidate"}


class TokenizerSignal:
    """How the two vocabularies relate (identical, extension, shifted, derived, independent)."""

    name = NAME
    order = 20
    role = FALLBACK_TEST
    default = True
    reads = frozenset({CHECKPOINTS, FINGERPRINTS, TOKENIZERS})
    refusal = ""
    kinds = ("vocabulary", "missing tokens", "rules", "unreadable", "coverage")
    details = {"vocabulary": {
        "required": ["vocab_base", "vocab_candidate", "shared", "shared_same_id", "jaccard", "order_agreement",
                     "step_concordance", "score", "p_value", "relation", "examples", "missing_from_candidate",
                     "missing_from_base", "specials", "rules"],
        "properties": {"examples": {"type": "object",
                                    "additionalProperties": {"type": "array", "items": {"type": "string"}}}}}}
    title = "Tokenizer"

    def measure(self, pair: Pair) -> Reading:
        from provenance.signals.tokenizer import tokenizer_items, tokenizer_verdict
        from provenance.vocab.compare import compare_vocabularies

        va, vb = pair.vocabularies()
        items = [Evidence(NAME, None, None, u, kind="unreadable") for u in pair.unreadable]
        if va is None or vb is None:
            side = "either model" if va is None and vb is None else "the base" if va is None else "the candidate"
            items.append(Evidence(NAME, None, None, f"Not compared: no tokenizer found for {side}.", kind="coverage"))
            return Reading(NAME, items, None, finding=items[0].finding)
        tok = compare_vocabularies(va, vb, pair.token_map())
        items += tokenizer_items(tok)
        return Reading(NAME, items, tokenizer_verdict(tok), finding=items[0].finding, raw=tok)

    def section(self, result: dict[str, Any]) -> Section | None:
        from provenance.report import sections as S

        e = S.item(result, NAME, "vocabulary")
        others = [x for x in result["evidence"] if x["signal"] == NAME and x["kind"] != "vocabulary"]
        if e is None and not others:
            return None
        blocks: list[Any] = []
        if e is not None:
            blocks.append(Text(e["finding"]))
            blocks.append(Facts([(label, _fact(label, v)) for label, v in S.tokenizer_facts(result)]))
            examples = [(_EXAMPLES.get(k, k), list(v)) for k, v in S.tokenizer_examples(result).items()]
            if examples:
                blocks.append(Tokens(examples, title="Examples"))
            missing = S.missing_classes(result)
            if missing:
                blocks.append(Table(["missing from", "class", "missing", "of", "entire class", "examples"],
                                    [[m["missing_from"], m.get("class"), m.get("missing"), m.get("of"),
                                      bool(m.get("entire")), Code([repr(t) for t in m.get("examples") or []])]
                                     for m in missing], title="Token classes missing on one side"))
        blocks += [Text(x["finding"]) for x in others]
        rules = S.item(result, NAME, "rules")
        specials = (rules["details"].get("specials") or {}) if rules is not None else {}
        only = [(f"special tokens only in {side}", [repr(t) for t in specials[f"only_{side}"]])
                for side in ("base", "candidate") if specials.get(f"only_{side}")]
        if only:
            blocks.append(Tokens(only))
        return Section(NAME, self.title, blocks)


def _fact(label: str, value: Any) -> Any:
    """Fractions as percentages, the order test's p-value as a p-value, the rest as they are."""
    from provenance.report.sections import FRACTIONS

    if label in FRACTIONS and isinstance(value, float):
        return f"{value:.2%}"
    return P(value) if "p-value" in label else value


SIGNAL = TokenizerSignal()
