import os
import tempfile
from pathlib import Path

# Subprocesses the tests start (the CLI, DDP workers) hash strings the same way on every run.
os.environ.setdefault("PYTHONHASHSEED", "0")
# One torch (OpenMP) thread per process: xdist already runs one worker per core, and the workers' own subprocesses
# on top of torch's default of a thread per core oversubscribed the cores (a 5 s fixture took 105 s in the suite).
os.environ.setdefault("OMP_NUM_THREADS", "1")

SLURM_ERROR = "COTPROOF_TEST_SLURM_ERROR"  # why the tests' cluster could not start, for the tests that need it


def _wants_slurm(config) -> bool:
    """The cluster tests are among those asked for: a whole directory, or test_slurm.py itself."""
    args = [a.split("::")[0] for a in config.args] or ["tests"]
    return any(Path(a).is_dir() or "test_slurm" in a for a in args)


def pytest_configure(config):
    """One private Slurm cluster for the whole run, started here in the controlling process so that every
    xdist worker (which inherits SLURM_CONF) submits to it, and stopped in pytest_unconfigure."""
    if hasattr(config, "workerinput") or not _wants_slurm(config):
        return
    import slurm_cluster

    root = tempfile.mkdtemp(prefix="cotproof-slurm-")
    try:
        cluster = slurm_cluster.up(root)
    except slurm_cluster.ClusterUnavailable as err:
        os.environ[SLURM_ERROR] = str(err)
        return
    os.environ["SLURM_CONF"] = str(cluster.conf)
    config._cotproof_slurm = root


def pytest_unconfigure(config):
    root = getattr(config, "_cotproof_slurm", None)
    if root:
        import shutil
        import subprocess

        import slurm_cluster

        subprocess.run(["scancel", "--user", str(os.getuid())], capture_output=True, timeout=60)  # what tests left
        slurm_cluster.down(root)
        shutil.rmtree(root, ignore_errors=True)


# ---- scheduling the suite over the cores ---------------------------------------------------------------------------

# The cluster tests spend most of their minutes waiting on Slurm (its one-minute time limit, its 30 s limit checks,
# job starts): started first, their waits overlap the CPU-bound tests instead of ending the run alone.
STARTS_FIRST = ("tests/test_slurm.py",)


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: not item.nodeid.startswith(STARTS_FIRST))  # stable: the rest keep their order


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: a worker per core, and one more, which runs while the cluster tests wait."""
    return (os.cpu_count() or 1) + 1
