"""The default registry of `provenance identify`: installed as the package `provenance.registry_data`
(pyproject.toml maps it here), so wheels ship these .fingerprint files; build.py rebuilds them."""
