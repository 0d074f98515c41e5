"""``python -m jaxlike.examples [PATH] [--seed N]``: write the example workspace."""

import sys

from ._write import main_example

if __name__ == "__main__":
    sys.exit(main_example())
