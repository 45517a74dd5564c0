"""Worker processes for the grid and the ablations (``neural.learning.reproduce``, ``neural.learning.ablations``):
each holds one device for its life, and plans its groups into its share of that device's memory."""
from __future__ import annotations

import os
import threading
import time

_WORKER_DEVICE: str | None = None
PARENT_POLL_SECONDS = 1.0  # how often a worker looks whether the command that started it is still there


def worker_devices(device: str, jobs: int | None) -> list[str]:
    """The device of each worker process: ``jobs`` of them (default: one per visible GPU, or one on a CPU), dealt
    out over every visible GPU when ``device`` is ``cuda``."""
    devices = [device]
    if device == "cuda":
        import torch

        devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return [devices[i % len(devices)] for i in range(jobs or len(devices))]


def worker_pool(devices: list[str]):
    """A pool of ``len(devices)`` spawned worker processes, each holding one of ``devices`` for its life (read it
    with ``worker_device``); on a CPU each gets cores / workers threads."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")
    handed_out = ctx.Queue()
    for d in devices:
        handed_out.put(d)
    threads = None if devices[0].startswith("cuda") else max(1, (os.cpu_count() or 1) // len(devices))
    return ProcessPoolExecutor(len(devices), mp_context=ctx, initializer=_start_worker,
                               initargs=(handed_out, threads, os.getpid()))


def worker_device() -> str | None:
    """The device this worker process holds (None outside a ``worker_pool``)."""
    return _WORKER_DEVICE


def _start_worker(handed_out, threads: int | None, parent: int) -> None:
    """Each worker takes one device for its whole life, so the workers spread over every visible GPU."""
    global _WORKER_DEVICE
    # first, so that a worker whose command died while it was starting ends too
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="exit-with-parent").start()
    _WORKER_DEVICE = handed_out.get()
    if threads:  # a COTPROOF_THREADS the user set wins
        os.environ.setdefault("COTPROOF_THREADS", str(threads))


def _exit_with_parent(parent: int) -> None:
    """A worker ends when the command that started it (``parent``: its pid, passed in, since by the time this
    runs the command may be gone already) is gone. A command killed by a signal it does not catch
    (``kill``, a session's end) cannot stop its pool, and its workers would go on training, untracked, into run
    directories the next command resumes from. Ending at once is safe: checkpoints are written atomically, so the
    next command resumes from the last one, as after a kill."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


def device_memory(device: str, jobs: int) -> float:
    """The bytes one worker may plan its groups into: half of the device's memory (or of the machine's available
    memory on a CPU), shared by the workers on it."""
    import torch

    if device.startswith("cuda"):
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return free / 2 / max(1, jobs)
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        available = 4 << 30
    return available / 2 / max(1, jobs)
