"""Fingerprints: compact, weight-free stand-ins for models, and the registry `identify` searches."""

from provenance.fingerprint.build import fingerprint
from provenance.fingerprint.fileformat import is_fingerprint_file, load, save
from provenance.fingerprint.model import Fingerprint

__all__ = ["Fingerprint", "fingerprint", "is_fingerprint_file", "load", "save"]
