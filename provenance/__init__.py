"""provenance: was this large language model built from another one?

>>> import provenance
>>> sorted(provenance.__all__)
['CanonicalModel', 'Checkpoint', 'InspectResult', 'inspect_model', 'open_checkpoint', 'open_model']
"""

from provenance.arch.view import CanonicalModel, open_model
from provenance.inspect import InspectResult, inspect_model
from provenance.io import Checkpoint, open_checkpoint

__version__ = "0.1.0"
__all__ = ["CanonicalModel", "Checkpoint", "InspectResult", "inspect_model", "open_checkpoint", "open_model"]
