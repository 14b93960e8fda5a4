"""Fuzzing harness for every reader of untrusted files: `python -m fuzz run` (see fuzz/README.md).

The rule under test: on any bytes, each reader returns or raises a one-line `ProvenanceError`,
never hangs, and never holds more than 10 x the input size + 200 MB beyond its baseline.
"""
