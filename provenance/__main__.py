"""`python -m provenance` runs the command line."""

import sys

from provenance.cli.main import main

sys.exit(main())
