"""`python -m bellman` runs the command line."""

import sys

from bellman.cli import main

sys.exit(main())
