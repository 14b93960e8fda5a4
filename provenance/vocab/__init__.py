"""Tokenizers in canonical form: readers for every format, the shared-token map, the comparison."""
