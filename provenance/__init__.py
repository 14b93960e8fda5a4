"""provenance: was this large language model built from another one?"""

__version__ = "0.1.0"
