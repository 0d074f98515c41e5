"""``python -m jaxlike``: the jaxlike command line (see :mod:`jaxlike.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
