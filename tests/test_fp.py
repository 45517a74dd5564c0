"""neural.construction.fp: F(e,s) arithmetic, exhaustively on small formats and against torch's own casts where they
coincide."""
from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
import torch

from neural.construction.fp import FPFormat


def all_values(fmt: FPFormat) -> np.ndarray:
    """Every finite value of the format, built from its definition (not from fmt.round)."""
    vals = {0.0}
    for e in range(fmt.emin, fmt.bias + 1):
        for m in range(1 << (fmt.sbits - 1)):
            vals.add(float(Fraction(2) ** e * (1 + Fraction(m, 1 << (fmt.sbits - 1)))))
    for m in range(1, 1 << (fmt.sbits - 1)):  # subnormals
        vals.add(float(Fraction(2) ** fmt.emin * Fraction(m, 1 << (fmt.sbits - 1))))
    vals = np.array(sorted(vals))
    return np.concatenate([-vals[::-1], vals[1:]])


def reference_round(fmt: FPFormat, x: Fraction, grid: np.ndarray) -> float:
    """Round to nearest, ties to the value with an even last significand bit, then saturate: by search."""
    B = fmt.max_value
    if x >= B:
        return B
    if x <= -B:
        return -B
    i = int(np.searchsorted(grid, float(x)))
    lo, hi = Fraction(grid[max(i - 1, 0)]), Fraction(grid[min(i, len(grid) - 1)])
    if lo == x or hi == x:
        return float(x)
    dlo, dhi = x - lo, hi - x
    if dlo != dhi:
        return float(lo if dlo < dhi else hi)
    return float(lo if _last_bit_even(fmt, lo) else hi)


def _last_bit_even(fmt: FPFormat, v: Fraction) -> bool:
    if v == 0:
        return True
    e = max(abs(v).numerator.bit_length() - abs(v).denominator.bit_length(), fmt.emin)
    while Fraction(2) ** (e + 1) <= abs(v):
        e += 1
    while e > fmt.emin and Fraction(2) ** e > abs(v):
        e -= 1
    significand = abs(v) / Fraction(2) ** (e - (fmt.sbits - 1))
    assert significand.denominator == 1
    return significand.numerator % 2 == 0


def reference_round_exact(fmt: FPFormat, x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``reference_round`` over an array of values that float64 holds exactly (sums and products of two values of
    a format of few bits): the nearest grid value by search, ties to the even one, then saturation."""
    even = np.array([_last_bit_even(fmt, Fraction(v)) for v in grid])
    i = np.clip(np.searchsorted(grid, x), 1, len(grid) - 1)
    lo, hi = grid[i - 1], grid[i]
    below, above = x - lo, hi - x  # exact: every operand has a few significant bits, near in exponent
    pick_lo = (below < above) | ((below == above) & even[i - 1])
    out = np.where(x == hi, hi, np.where(pick_lo, lo, hi))
    return np.clip(out, -fmt.max_value, fmt.max_value)


@pytest.mark.parametrize("ebits,sbits", [(3, 3), (4, 4), (3, 5)])
def test_operations_exhaustive_on_small_formats(ebits, sbits):
    fmt = FPFormat(ebits, sbits)
    grid = all_values(fmt)
    assert fmt.is_representable(grid).all() and grid.max() == fmt.max_value
    a, b = np.meshgrid(grid, grid)
    a, b = a.ravel(), b.ravel()
    for op, exact in ((fmt.add, np.add), (fmt.mul, np.multiply)):
        got, values = op(a, b), exact(a, b)
        assert all(Fraction(v) == exact(Fraction(x), Fraction(y)) for v, x, y in zip(values, a, b))  # float64: exact
        assert np.array_equal(got, reference_round_exact(fmt, values, grid)), op.__name__
    pairs = np.random.default_rng(ebits * 10 + sbits).choice(len(a), 300, replace=False)  # the scalar reference too
    want = [reference_round(fmt, Fraction(x) + Fraction(y), grid) for x, y in zip(a[pairs], b[pairs])]
    assert np.array_equal(fmt.add(a[pairs], b[pairs]), np.array(want))
    nz = b != 0
    got = fmt.div(a[nz], b[nz])
    want = [reference_round(fmt, Fraction(x) / Fraction(y), grid) for x, y in zip(a[nz], b[nz])]
    assert np.array_equal(got, np.array(want))


def test_never_inf_or_nan():
    fmt = FPFormat(4, 4)
    B = fmt.max_value
    assert fmt.add(B, B) == B and fmt.mul(-B, B) == -B and fmt.div(1.0, 0.0) == B and fmt.div(0.0, 0.0) == 0.0
    assert np.isfinite(fmt.exp(np.array([B, -B, 0.0]))).all()


@pytest.mark.parametrize("fmt,dtype", [(FPFormat(5, 11), torch.float16), (FPFormat(8, 8), torch.bfloat16)])
def test_rounding_matches_torch_casts_in_range(fmt, dtype):
    """float32 inputs: torch rounds float32 -> float16/bfloat16 once. (Its float64 -> float16 cast goes through
    float32 and so rounds twice; about 1 value in 10^4 then differs from a correct rounding, ours included.)"""
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(50_000) * 10.0 ** rng.integers(-8, 4, 50_000),
                        rng.uniform(-fmt.max_value, fmt.max_value, 10_000)]).astype(np.float32)
    want = torch.tensor(x).to(dtype).to(torch.float64).numpy()
    assert np.array_equal(fmt.round(x), want)


@pytest.mark.parametrize("fmt,grid_dtype", [(FPFormat(5, 11), np.float16), (FPFormat(8, 24), np.float32)])
def test_native_rounding_path_equals_the_generic_one(fmt, grid_dtype):
    """Formats that are a numpy dtype round by casting; the generic quantum path is the definition. Inputs: every
    midpoint between neighbouring values (exact ties, and a hair either side), subnormals, values past B, noise."""
    rng = np.random.default_rng(3)
    if grid_dtype is np.float16:
        grid = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float64)  # every finite value >= 0
    else:
        grid = np.sort(np.abs(rng.standard_normal(200_000) * 10.0 ** rng.integers(-45, 38, 200_000))
                       .astype(np.float32)).astype(np.float64)
    mid = (grid[:-1] + grid[1:]) / 2
    x = np.concatenate([grid, mid, np.nextafter(mid, 0), np.nextafter(mid, np.inf), fmt.max_value * (1 + 2.0 **
                        -np.arange(1, 30)), rng.standard_normal(100_000) * 10.0 ** rng.integers(-50, 50, 100_000)])
    x = np.concatenate([x, -x])
    assert fmt.native_dtype is grid_dtype
    want = fmt.round_generic(np.clip(x, -fmt.max_value, fmt.max_value))
    assert np.array_equal(fmt.round(x), want)


def test_sequential_sum_is_left_to_right():
    fmt = FPFormat(5, 4)  # 1 + 1/16 rounds back to 1 in 4 significand bits
    terms = np.array([1.0] + [1 / 16] * 8)
    assert fmt.seq_sum(terms) == 1.0
    assert fmt.seq_sum(terms[::-1]) == 1.5


def test_exp_is_correctly_rounded():
    import mpmath

    fmt = FPFormat(5, 11)
    xs = FPFormat(5, 11).round(np.linspace(-20, 11, 4001))
    got = fmt.exp(xs)
    with mpmath.workprec(200):
        want = [fmt._round_mpf(mpmath.exp(mpmath.mpf(float(x)))) for x in xs]
    assert np.array_equal(got, want)
    assert fmt.exp(-fmt.max_value) == 0.0 and fmt.exp(0.0) == 1.0


def test_linear_and_attention_match_definitions():
    fmt = FPFormat(5, 6)
    rng = np.random.default_rng(2)
    x, w, b = fmt.round(rng.standard_normal((3, 5))), fmt.round(rng.standard_normal((4, 5))), fmt.round(
        rng.standard_normal(4))
    want = np.array([[fmt.add(fmt.seq_sum(fmt.mul(x[i], w[o])), b[o]) for o in range(4)] for i in range(3)])
    assert np.array_equal(fmt.linear(x, w, b), want)
    q, k, v = (fmt.round(rng.standard_normal((4, 3))) for _ in range(3))
    out, wts = fmt.attention(q, k, v)
    for i, j in itertools.product(range(4), range(3)):
        s = fmt.seq_sum(fmt.mul(q[i][None, :], k[: i + 1]), axis=-1)
        e = fmt.exp(s)
        assert out[i, j] == fmt.div(fmt.seq_sum(fmt.mul(e, v[: i + 1, j])), fmt.seq_sum(e))
