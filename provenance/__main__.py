"""`python -m provenance` runs the command line."""

from provenance.cli.main import entry

entry()
