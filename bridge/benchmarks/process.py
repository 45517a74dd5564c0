"""Timing for the benchmarks: the best of a few calls in this process, or one command in its own process with
that process's own peak RSS (``wait4`` reports each child's)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass


def timed(fn, repeats: int = 3):
    """(fn's last result, the best of ``repeats`` wall times): the least-disturbed run on a noisy machine."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


@dataclass(frozen=True)
class Finished:
    argv: list[str]
    returncode: int
    seconds: float
    peak_rss_mib: float
    stdout: str
    stderr: str


def run_command(*args: str, cwd: str | None = None) -> Finished:
    """``python -m bridge.cli ARGS`` (or ``python -m MODULE ...`` when the first argument is ``-m``)."""
    argv = [sys.executable, *(args if args[:1] == ("-m",) else ("-m", "bridge.cli", *args))]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, text=True, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)  # reaped here, not by Popen, to read this child's rusage
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        return Finished(argv, proc.returncode, seconds, usage.ru_maxrss / 1024, out.read(), err.read())
