"""`python -m dlc ...` runs the `dlc` command line (as `python -m dlc.cli` does)."""

import sys

from .cli import main

sys.exit(main())
