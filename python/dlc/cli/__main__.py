"""`python -m dlc.cli ...` runs the `dlc` command line."""

import sys

from . import main

sys.exit(main())
