"""Run the command line as ``python -m otbench.cli``."""

import sys

from . import main

sys.exit(main())
