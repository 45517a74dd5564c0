"""Training batches drawn ahead in worker processes, so that an accelerator does not wait for numpy.

A batch is a function of (task, setting, seed, step, rank) alone (``default_rng([seed, step, rank])``), so it can
be drawn anywhere, in any order, and come out the same. Drawing one takes 0.5-15 ms of Python-bound numpy (cvp at
16 gates is the slowest); a group of G members needs G of them per step, which on a GPU can cost more than the
step itself. Workers draw the next ``depth`` steps of every member while the device trains on this one. On a CPU
the cores are busy training, so there the batches are drawn inline (``workers=0``).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from neural.learning.tasks import FoldTask, make_task


@lru_cache(maxsize=None)
def _task(kind: str, params: tuple) -> FoldTask:
    return make_task(kind, **dict(params))


def draw(kind: str, params: tuple, setting: str, seed: int, step: int, rank: int, size: int):
    """(tokens, labels) of one member's batch at one step: what ``FoldTask.batch`` gives a run alone."""
    b = _task(kind, params).batch(np.random.default_rng([seed, step, rank]), size, setting)
    return b.tokens, b.labels


class Batches:
    """Each member's batch at each step; ``request`` names the members and step wanted now, and the steps after
    it are drawn ahead."""

    def __init__(self, workers: int = 0, depth: int = 4):
        self.depth = depth
        self.pool = None
        self.pending: dict[tuple, object] = {}
        if workers > 0:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def request(self, members: list[tuple], step: int, rank: int, size: int, last_step: int) -> list[tuple]:
        """``members``: (kind, params, setting, seed) each. Returns [(tokens, labels)] in their order."""
        if self.pool is None:
            return [draw(*m, step, rank, size) for m in members]
        wanted = set(members)  # two members with one stream share its batches
        for ahead in range(step, max(step + 1, min(step + self.depth, last_step))):
            for m in wanted:
                if (m, ahead) not in self.pending:
                    self.pending[(m, ahead)] = self.pool.submit(draw, *m, ahead, rank, size)
        now = {m: self.pending.pop((m, step)).result() for m in wanted}
        for key in [k for k in self.pending if k[1] < step or k[0] not in wanted]:  # a member that left
            self.pending.pop(key).cancel()
        return [now[m] for m in members]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None
