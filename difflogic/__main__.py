"""``python -m difflogic ...`` = the ``difflogic`` console script."""
import sys

from .cli import main

sys.exit(main())
