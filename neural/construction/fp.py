"""The finite-precision arithmetic F(ebits, sbits) of the paper, on float64 carriers: a binary format with ``ebits``
exponent bits and ``sbits`` significand bits (hidden bit included, as Z3's ``FPSort`` counts), whose results
saturate instead of overflowing, because the paper's constant-precision model has no inf or NaN.

Semantics shared with ``formal.fp_theory`` (which encodes the same rules in Z3):
- round to nearest, ties to even, with IEEE subnormals, after every operation;
- then saturate to +-B (the largest finite value): no inf, no NaN; 0/0 is +0;
- sums and dot products run left to right from +0, rounding each product and each addition.

Why float64 carriers are exact: for sbits <= 25, a product of two F values is exact in float64, and a sum or
quotient rounded first to 53 bits and then to sbits bits equals the correctly rounded result (53 >= 2*sbits + 2).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from grammar.errors import ParameterError

PRODUCTS_PER_CHUNK = 1 << 22  # attention rounds its score products a block of queries at a time, within this

# The IEEE formats torch runs, as F(ebits, sbits): the same grid; IEEE overflows to inf where F saturates.
IEEE_FORMATS = {"float16": (5, 11), "bfloat16": (8, 8), "float32": (8, 24)}


@dataclass(frozen=True)
class FPFormat:
    ebits: int
    sbits: int

    def __post_init__(self):
        if not (2 <= self.ebits <= 10 and 2 <= self.sbits <= 25):
            raise ParameterError(f"F({self.ebits},{self.sbits}) is outside the supported range F(2..10, 2..25)")

    @property
    def bias(self) -> int:
        return (1 << (self.ebits - 1)) - 1

    @property
    def emin(self) -> int:
        return 1 - self.bias

    @cached_property
    def max_value(self) -> float:
        """B: the largest finite value, where results saturate."""
        return math.ldexp(2.0 - math.ldexp(1.0, 1 - self.sbits), self.bias)

    @property
    def min_subnormal(self) -> float:
        return math.ldexp(1.0, self.emin - (self.sbits - 1))

    @cached_property
    def native_dtype(self):
        """The numpy dtype that *is* this format up to saturation (float16 = F(5,11), float32 = F(8,24)), or None.

        numpy rounds float64 to these dtypes correctly (nearest, ties to even, with subnormals), so on values already
        saturated to +-B a cast gives what the generic path gives, several times faster. ``tests/test_fp.py``
        checks the two paths against each other."""
        natives = {grid: getattr(np, name) for name, grid in IEEE_FORMATS.items() if hasattr(np, name)}  # no bfloat16
        return natives.get((self.ebits, self.sbits))

    def round(self, x) -> np.ndarray:
        # Saturating first is the same as saturating after: rounding is monotone and +-B lie on the grid. It also
        # keeps the native cast out of overflow, which numpy handles an order of magnitude more slowly.
        x = np.clip(np.asarray(x, dtype=np.float64), -self.max_value, self.max_value)
        if self.native_dtype is not None:
            r = np.asarray(x.astype(self.native_dtype), dtype=np.float64)
        else:
            r = np.asarray(self.round_generic(x))  # a 0-d result may come back as a scalar
        np.copyto(r, 0.0, where=np.isnan(r))  # only 0/0 makes NaN; F defines it as +0
        return r

    def round_generic(self, x: np.ndarray) -> np.ndarray:
        """Round finite values to the grid of F(e,s) by scaling each value's quantum to 1."""
        _, e = np.frexp(x)
        quantum = np.ldexp(1.0, np.maximum(e - 1, self.emin) - (self.sbits - 1))
        return np.round(x / quantum) * quantum

    @classmethod
    def ieee(cls, dtype: str) -> "FPFormat":
        """The grid of a torch dtype (``IEEE_FORMATS``)."""
        return cls(*IEEE_FORMATS[dtype])

    @property
    def exact_integers(self) -> int:
        """2^sbits: every integer of magnitude up to this is exactly representable (if it is <= B)."""
        return 1 << self.sbits

    def is_representable(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return np.isfinite(x) & (self.round(x) == x) & (np.abs(x) <= self.max_value)

    # ---- operations, each rounded ------------------------------------------------------------------------

    def add(self, a, b):
        return self.round(np.add(a, b))

    def mul(self, a, b):
        return self.round(np.multiply(a, b))

    def div(self, a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.round(np.divide(a, b))

    def relu(self, x):
        x = np.asarray(x, dtype=np.float64)
        return np.where(x > 0, x, 0.0)

    def exp(self, x) -> np.ndarray:
        """[exp(x)]: exact exp, then one rounding. float64 exp is within 1 ulp, so only results within a few
        float64 ulps of a rounding boundary of F are recomputed with mpmath at 120 bits."""
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(over="ignore", under="ignore"):
            y = np.exp(x)
        r = self.round(y)
        up, down = self.round(y * (1 + 4e-16)), self.round(y * (1 - 4e-16))
        risky = np.flatnonzero((up != r) | (down != r))
        if risky.size:
            import mpmath

            flat = r.reshape(-1).copy()
            with mpmath.workprec(120):
                for i in risky:
                    flat[i] = self._round_mpf(mpmath.exp(mpmath.mpf(float(x.reshape(-1)[i]))))
            r = flat.reshape(r.shape)
        return r

    def _round_mpf(self, v) -> float:
        import mpmath

        if v == 0:
            return 0.0
        e = int(mpmath.floor(mpmath.log(abs(v), 2)))
        quantum = mpmath.ldexp(1, max(e, self.emin) - (self.sbits - 1))
        q = v / quantum
        n = int(mpmath.floor(q))
        frac = q - n
        if frac > 0.5 or (frac == 0.5 and n % 2):
            n += 1
        return float(np.clip(float(mpmath.ldexp(n, 0) * quantum), -self.max_value, self.max_value))

    def seq_sum(self, terms, axis: int = -1):
        """Left-to-right rounded sum along ``axis``, starting from +0."""
        terms = np.moveaxis(np.asarray(terms, dtype=np.float64), axis, 0)
        acc = np.zeros(terms.shape[1:])
        for t in terms:
            acc = self.add(acc, t)
        return acc

    def linear(self, x, weight, bias=None):
        """x (..., d) @ weight.T (m, d) + bias (m): each output is a left-to-right dot product, then + bias.

        A column of ``weight`` that is all zero adds [x*0] = +-0 to every running sum, which changes no sum bit
        for bit, so it is skipped: constructed weights are sparse and this keeps them fast.
        """
        x = np.asarray(x, dtype=np.float64)
        weight = np.asarray(weight, dtype=np.float64)
        live = np.flatnonzero(np.any(weight != 0, axis=0))
        acc = self.seq_sum(self.mul(x[..., None, live], weight[:, live]))  # products rounded first, then summed
        return acc if bias is None else self.add(acc, bias)

    def attention(self, q, k, v, scale: float = 1.0, causal_offset: int | None = 0, need_weights: bool = True):
        """One head. q (Lq, dh), k (Lk, dh), v (Lk, dv). Query i sees keys j <= i + causal_offset
        (offset None: all keys). Softmax as in the paper: no max-subtraction, w_j = [exp(s_j)], Z = sum w_j,
        out = (sum [w_j v_j]) / Z, sums left to right over j. Returns (out, w), w None unless ``need_weights``.

        Queries run in blocks whose score products fit ``PRODUCTS_PER_CHUNK``, each block reading only the keys it
        may see, so without the weights memory stays O(block * Lk), not O(Lq * Lk)."""
        q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
        rows = max(1, PRODUCTS_PER_CHUNK // max(1, k.shape[0] * q.shape[1]))  # queries whose products fit at once
        outs, weights = [], []
        for start in range(0, q.shape[0], rows):
            stop = min(q.shape[0], start + rows)
            visible = k.shape[0] if causal_offset is None else max(0, min(k.shape[0], stop + causal_offset))
            scores = self.seq_sum(self.mul(q[start:stop, None, :], k[None, :visible, :]))
            if scale != 1.0:
                scores = self.mul(scores, scale)
            w = self.exp(scores)
            if causal_offset is not None:
                allowed = np.arange(visible)[None, :] <= np.arange(start, stop)[:, None] + causal_offset
                w = np.where(allowed, w, 0.0)
            z, num = self._weighted_sums(w, v[:visible])
            outs.append(self.div(num, z[:, None]))
            if need_weights:
                weights.append(np.pad(w, ((0, 0), (0, k.shape[0] - visible))))
        out = np.concatenate(outs) if outs else np.zeros((0, v.shape[1]))
        if not need_weights:
            return out, None
        return out, (np.concatenate(weights) if weights else np.zeros((0, k.shape[0])))

    def _weighted_sums(self, w: np.ndarray, v: np.ndarray):
        """Z_i = sum_j w_ij and num_i = sum_j [w_ij v_j], left to right over j. A term with w_ij = 0 adds +-0 and
        is skipped (exact), so the loop runs over the most non-zero weights in any row, not over every key."""
        rows = np.arange(w.shape[0])
        nonzero = w != 0
        counts = nonzero.sum(axis=1)
        order = np.argsort(~nonzero, axis=1, kind="stable")  # each row: its non-zero keys first, in key order
        z = np.zeros(w.shape[0])
        num = np.zeros((w.shape[0], v.shape[1]))
        for r in range(int(counts.max(initial=0))):
            j = order[:, r]
            live = (r < counts)
            wj = np.where(live, w[rows, j], 0.0)
            z = np.where(live, self.add(z, wj), z)
            num = np.where(live[:, None], self.add(num, self.mul(wj[:, None], v[j])), num)
        return z, num
