"""``python -m bridge.verify SPEC|NETLIST``: the verifier's command (``bridge.commands.verifying``), by its old name."""
import sys

from bridge.commands.verifying import main

if __name__ == "__main__":
    sys.exit(main())
