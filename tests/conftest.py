import os

# Subprocesses the tests start (the CLI, DDP workers) hash strings the same way on every run.
os.environ.setdefault("PYTHONHASHSEED", "0")

