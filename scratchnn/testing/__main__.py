"""``python -m scratchnn.testing``: the equivalence report (see :mod:`scratchnn.testing.report`)."""
import sys

from .report import main

if __name__ == "__main__":
    sys.exit(main())
