"""``python -m gantk`` is the ``gantk`` console script."""

import sys

from gantk.cli import main

sys.exit(main())
