"""A stop asked for by a signal, taken at the next step boundary.

A scheduler warns a job before it ends it (Slurm sends ``--signal`` before the time limit, or on preemption). A
handler that saved the model at that instant could catch an optimiser step half done, so ``deferred`` only notes
the request; the training loop asks ``requested()`` after every step, saves every run it holds at that step and
raises ``Interrupted``; whoever installed the deferral then delivers the signal to the handler it displaced (for
submitit: checkpoint, requeue, exit). Nothing is installed in a process that never calls ``deferred``, so local
training never stops this way.
"""
from __future__ import annotations

import contextlib
import signal

_pending: list[int] = []


class Interrupted(Exception):
    """Raised at a step boundary once a stop was requested, after the state at that boundary was saved."""

    def __init__(self, step: int | None = None):
        super().__init__(f"stopped on request at step {step}" if step is not None else "stopped on request")
        self.step = step


def requested() -> bool:
    return bool(_pending)


def raise_if_requested(step: int | None = None) -> None:
    if _pending:
        raise Interrupted(step)


@contextlib.contextmanager
def deferred(signum: int):
    """Within the block, ``signum`` is noted instead of handled. Yields a function that hands a noted signal to the
    handler that was installed before (it may not return: submitit's requeues and exits)."""
    displaced = signal.getsignal(signum)

    def note(number, frame):
        _pending.append(number)

    def deliver() -> None:
        if _pending and callable(displaced):
            displaced(_pending[-1], None)

    signal.signal(signum, note)
    try:
        yield deliver
    finally:
        signal.signal(signum, displaced)
        _pending.clear()
