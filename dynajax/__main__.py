"""``python -m dynajax`` is the ``dynajax`` console script."""

import sys

from dynajax.cli import main

sys.exit(main())
