"""provenance: was this large language model built from another one?

>>> import provenance
>>> sorted(provenance.__all__)
['CanonicalModel', 'Checkpoint', 'CompareOptions', 'CompareResult', 'InspectResult', 'compare', 'inspect_model', 'open_checkpoint', 'open_model']
"""

__version__ = "0.1.0"

from provenance.arch.view import CanonicalModel, open_model  # noqa: E402
from provenance.compare import CompareOptions, CompareResult, compare  # noqa: E402
from provenance.inspect import InspectResult, inspect_model  # noqa: E402
from provenance.io import Checkpoint, open_checkpoint  # noqa: E402

__all__ = ["CanonicalModel", "Checkpoint", "CompareOptions", "CompareResult", "InspectResult", "compare",
           "inspect_model", "open_checkpoint", "open_model"]
