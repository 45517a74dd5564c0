"""The two facts about [exp] that the attention lemmas need, computed exactly (Z3 has no exp).

Over a finite format exp is a finite table; the lemmas only ever need:
- [exp(0)] = 1, and
- the threshold T: the largest value of the format with [exp(T)] = 0. Rounding is monotone, so [exp(s)] = 0 for
  every s <= T, and "score <= T" is the invariant a mismatched position must keep.
Both are decided with mpmath at 200 bits, far beyond any format here, and re-derived on every run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import mpmath

from neural.construction.fp import FPFormat


@dataclass(frozen=True)
class ExpFacts:
    exp_zero: float  # [exp(0)]
    threshold: float | None  # T, or None when even [exp(-B)] > 0
    margin_note: str


def _ceil_to_format(y: Fraction, fmt: FPFormat) -> Fraction | None:
    """The least value of the format >= y > 0, or None above B."""
    emin, sbits = fmt.emin, fmt.sbits
    e = math.floor(math.log2(y)) if y > 0 else emin
    while Fraction(2) ** (e + 1) <= y:
        e += 1
    while Fraction(2) ** e > y:
        e -= 1
    q = Fraction(2) ** (max(e, emin) - (sbits - 1))
    v = math.ceil(y / q) * q
    return v if v <= Fraction(fmt.max_value) else None


def exp_facts(ebits: int, sbits: int) -> ExpFacts:
    fmt = FPFormat(ebits, sbits)
    min_sub = Fraction(fmt.min_subnormal)
    with mpmath.workprec(200):
        limit = mpmath.log(mpmath.mpf(min_sub.numerator) / (2 * min_sub.denominator))  # exp(s) < this -> 0
        y = Fraction(mpmath.nstr(-limit, 60, min_fixed=-1, max_fixed=1))  # |limit| to 60 digits
        t = _ceil_to_format(y, fmt)
        while t is not None and mpmath.exp(-mpmath.mpf(t.numerator) / t.denominator) >= mpmath.mpf(
                min_sub.numerator) / (2 * min_sub.denominator):
            t = _ceil_to_format(t + Fraction(2) ** -(fmt.sbits + 200), fmt)  # next value up in magnitude
    threshold = None if t is None else -float(t)
    note = (f"[exp(s)] = 0 for every s <= {threshold}" if threshold is not None
            else "no value of the format has [exp] = 0: attention can never ignore a position")
    return ExpFacts(1.0, threshold, note)
