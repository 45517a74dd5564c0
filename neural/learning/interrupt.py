"""A stop asked for by a signal, taken at the next step boundary.

A scheduler warns a job before it ends it (Slurm sends ``--signal`` before the time limit, or on preemption). A
handler that saved the model at that instant could catch an optimiser step half done, so ``deferred`` only notes
the request; the training loop asks ``requested()`` after every step, saves every run it holds at that step and
raises ``Interrupted``; whoever installed the deferral then delivers the signal to the handler it displaced (for
submitit: checkpoint, requeue, exit). ``checkpoint_on`` is the milder request: save at the next boundary and go
on. Nothing is installed in a process that calls neither, so local training never stops or saves this way.
"""
from __future__ import annotations

import contextlib
import signal

_pending: list[int] = []  # signals that ask for a stop
_save_asked: list[int] = []  # signals that ask for a checkpoint, training going on


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


def take_save_request() -> bool:
    """Whether a checkpoint was asked for since the last call (``checkpoint_on``)."""
    asked = bool(_save_asked)
    _save_asked.clear()
    return asked


@contextlib.contextmanager
def checkpoint_on(signum: int):
    """Within the block, ``signum`` asks the training loop for a checkpoint at the next step boundary, and training
    goes on. Slurm sends SIGTERM when a task is cancelled or preempted and SIGKILL a grace period later: what the
    grace period allows is saved, and whatever comes next (a requeue, a resubmission) resumes from there."""
    displaced = signal.getsignal(signum)
    signal.signal(signum, lambda number, frame: _save_asked.append(number))
    try:
        yield
    finally:
        signal.signal(signum, displaced)
        _save_asked.clear()


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
