"""How much work one command may start without being asked twice, and the check every command makes first.

Every command that can be asked for enormous work (a model of a billion layers, 10^14 simulated circuits, an
endless input file) estimates it before starting and refuses above these limits, with the estimate, exit status 2.
``--no-limit`` lifts them for the process (``lift``). The limits fit the machine: memory is a share of the smaller
of physical memory and the process's address-space limit, so a job that would be killed is refused instead.
"""
from __future__ import annotations

import os

from grammar.errors import Refused, SourceLoc

INPUT_BYTES = 64 << 20  # a spec, netlist, vector file or JSON document: EPFL's largest designs are a few MiB
MEMORY_SHARE = 0.6  # of the smaller of physical memory and RLIMIT_AS
SIMULATED_TOKENS = 30_000_000  # tokens the bounded checks may run through a whole model: about an hour on 2 cores
TRAINING_STEPS = 20_000_000  # optimizer steps, summed over the runs of one command: the full grid is 1.7 million
MULTIPLY_ADDS = 1e13  # their attention and unembedding work (it grows with the square of the sequence length)

_lifted = False


def lift() -> None:
    """``--no-limit``: every check below passes from now on in this process."""
    global _lifted
    _lifted = True


def lifted() -> bool:
    return _lifted


def memory_budget() -> int:
    """Bytes a command may plan to allocate: a share of physical memory, or of the address-space limit if lower."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        physical = 8 << 30
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            physical = min(physical, soft)
    except (ImportError, ValueError, OSError):
        pass
    return int(physical * MEMORY_SHARE)


def _finite(x) -> float:
    """An estimate as a float; an integer too large for one (an override of 10**400) is infinite, not a crash."""
    try:
        return float(x)
    except OverflowError:
        return float("inf")


def human_bytes(n: float) -> str:
    if n == float("inf"):
        return "more than anything"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"


def human_count(n: float) -> str:
    if n == float("inf"):
        return "more than 1e308"
    return f"{n:,.0f}" if n < 1e9 else f"{n:.2g}"


def require_memory(estimate: float, what: str, where: str | SourceLoc, hint: str = "") -> None:
    """Refuse ``what`` if its estimated memory exceeds the budget."""
    estimate = _finite(estimate)
    budget = memory_budget()
    if _lifted or estimate <= budget:
        return
    raise Refused(f"{what} needs about {human_bytes(estimate)} of memory, more than this machine's limit of "
                  f"{human_bytes(budget)}; --no-limit runs it anyway", _loc(where),
                  expected=hint or "a smaller request")


def require_tokens(tokens: float, what: str, where: str | SourceLoc, hint: str = "") -> None:
    """Refuse simulations that would run more than SIMULATED_TOKENS tokens through a whole model."""
    tokens = _finite(tokens)
    if _lifted or tokens <= SIMULATED_TOKENS:
        return
    raise Refused(f"{what} would simulate about {human_count(tokens)} tokens, more than the limit of "
                  f"{human_count(SIMULATED_TOKENS)} (roughly an hour on a small machine); --no-limit runs it anyway",
                  _loc(where), expected=hint or "fewer or smaller instances")


def require_multiply_adds(work: float, what: str, where: str | SourceLoc, hint: str = "") -> None:
    """Refuse simulations whose arithmetic (mostly attention, quadratic in length) exceeds MULTIPLY_ADDS."""
    work = _finite(work)
    if _lifted or work <= MULTIPLY_ADDS:
        return
    raise Refused(f"{what} would take about {work:.2g} multiply-adds, more than the limit of {MULTIPLY_ADDS:.0e} "
                  f"(roughly an hour on a small machine); --no-limit runs it anyway", _loc(where),
                  expected=hint or "fewer or shorter instances")


def require_training_steps(steps: float, what: str, where: str | SourceLoc, hint: str = "") -> None:
    """Refuse a training request (steps x runs) beyond TRAINING_STEPS: days of compute asked for by a typo."""
    steps = _finite(steps)
    if _lifted or steps <= TRAINING_STEPS:
        return
    raise Refused(f"{what} asks for {human_count(steps)} optimizer steps in all, more than the limit of "
                  f"{human_count(TRAINING_STEPS)} (the paper's full grid is 1.7 million); --no-limit runs it anyway",
                  _loc(where), expected=hint or "fewer steps or seeds")


def _loc(where: str | SourceLoc) -> SourceLoc:
    return where if isinstance(where, SourceLoc) else SourceLoc(str(where))
