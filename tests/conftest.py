import os

# Subprocesses the tests start (the CLI, DDP workers) hash strings the same way on every run.
os.environ.setdefault("PYTHONHASHSEED", "0")


def pytest_collection_modifyitems(items):
    """Tests marked ``heavy`` run first: a worker that starts a two-minute test last keeps the whole run waiting."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)
