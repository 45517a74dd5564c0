"""``python -m bridge.cli``: the ``cotproof`` command (``bridge.commands.main``), as ``torchrun -m`` needs a module."""
import sys

from bridge.commands.main import main

if __name__ == "__main__":
    sys.exit(main())
