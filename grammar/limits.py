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
SIMULATION_SECONDS = 15.0  # what verify's bounded checks are planned to spend by default (they stop there)
RUN_SECONDS = 3600.0  # what one `run`, or one instance of verify's checks, may be estimated to take (bridge.bounded)

_lifted = False


def lift() -> None:
    """``--no-limit``: every check below passes from now on in this process."""
    global _lifted
    _lifted = True


def lifted() -> bool:
    return _lifted


def simulation_budget() -> float:
    """Seconds the bounded checks are planned to spend before they stop adding instances (priced at this machine's
    measured rates, ``bridge.bounded``); unbounded under ``--no-limit``."""
    return float("inf") if _lifted else SIMULATION_SECONDS


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
    n = _finite(n)
    if n == float("inf"):
        return "more than 1e308"
    return f"{n:,.0f}" if n < 1e9 else f"{n:.2g}"


def _require(amount, limit: float, what: str, where: str | SourceLoc, hint: str, describe) -> None:
    """The one check behind every ``require_*``: ``describe(amount, limit)`` words the refusal."""
    amount = _finite(amount)
    if _lifted or amount <= limit:
        return
    raise Refused(f"{what} {describe(amount, limit)}; --no-limit runs it anyway", _loc(where), expected=hint)


def require_memory(estimate: float, what: str, where: str | SourceLoc, hint: str = "a smaller request") -> None:
    """Refuse ``what`` if its estimated memory exceeds the budget."""
    _require(estimate, memory_budget(), what, where, hint, lambda n, limit: f"needs about {human_bytes(n)} of "
             f"memory, more than this machine's limit of {human_bytes(limit)}")


def require_tokens(tokens: float, what: str, where: str | SourceLoc,
                   hint: str = "fewer or smaller instances") -> None:
    """Refuse simulations that would run more than SIMULATED_TOKENS tokens through a whole model."""
    _require(tokens, SIMULATED_TOKENS, what, where, hint, lambda n, limit: f"would simulate about "
             f"{human_count(n)} tokens, more than the limit of {human_count(limit)} (roughly an hour on a small "
             f"machine)")


def require_multiply_adds(work: float, what: str, where: str | SourceLoc,
                          hint: str = "fewer or shorter instances") -> None:
    """Refuse simulations whose arithmetic (mostly attention, quadratic in length) exceeds MULTIPLY_ADDS."""
    _require(work, MULTIPLY_ADDS, what, where, hint, lambda n, limit: f"would take about {n:.2g} multiply-adds, "
             f"more than the limit of {limit:.0e} (roughly an hour on a small machine)")


def human_seconds(seconds: float) -> str:
    if seconds == float("inf"):
        return "forever"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def require_seconds(seconds: float, what: str, where: str | SourceLoc, hint: str = "a smaller request") -> None:
    """Refuse ``what`` if it is estimated to take longer than RUN_SECONDS on this machine."""
    _require(seconds, RUN_SECONDS, what, where, hint, lambda n, limit: f"would take about {human_seconds(n)} on "
             f"this machine, more than the limit of {human_seconds(limit)}")


def require_training_steps(steps: float, what: str, where: str | SourceLoc,
                           hint: str = "fewer steps or seeds") -> None:
    """Refuse a training request (steps x runs) beyond TRAINING_STEPS: days of compute asked for by a typo."""
    _require(steps, TRAINING_STEPS, what, where, hint, lambda n, limit: f"asks for {human_count(n)} optimizer "
             f"steps in all, more than the limit of {human_count(limit)} (the paper's full grid is 1.7 million)")


def _loc(where: str | SourceLoc) -> SourceLoc:
    return where if isinstance(where, SourceLoc) else SourceLoc(str(where))
