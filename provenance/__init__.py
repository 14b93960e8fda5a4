"""provenance: was this large language model built from another one?

>>> import provenance
>>> sorted(provenance.__all__)  # doctest: +NORMALIZE_WHITESPACE
['CanonicalModel', 'Checkpoint', 'CompareOptions', 'CompareResult', 'InspectResult', 'TokenMap', 'VocabComparison',
 'Vocabulary', 'compare', 'compare_vocabularies', 'inspect_model', 'load_vocabulary', 'open_checkpoint', 'open_model',
 'shared_tokens']
"""

__version__ = "0.1.0"

from provenance.arch.view import CanonicalModel, open_model  # noqa: E402
from provenance.compare import CompareOptions, CompareResult, compare  # noqa: E402
from provenance.inspect import InspectResult, inspect_model  # noqa: E402
from provenance.io import Checkpoint, open_checkpoint  # noqa: E402
from provenance.vocab.compare import VocabComparison, compare_vocabularies  # noqa: E402
from provenance.vocab.load import load_vocabulary  # noqa: E402
from provenance.vocab.model import Vocabulary  # noqa: E402
from provenance.vocab.token_map import TokenMap, shared_tokens  # noqa: E402

__all__ = ["CanonicalModel", "Checkpoint", "CompareOptions", "CompareResult", "InspectResult", "TokenMap",
           "VocabComparison", "Vocabulary", "compare", "compare_vocabularies", "inspect_model", "load_vocabulary",
           "open_checkpoint", "open_model", "shared_tokens"]
