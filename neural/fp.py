"""The finite-precision arithmetic F(ebits, sbits) of DESIGN.md, on float64 carriers.

Semantics shared with ``formal.fp`` (which encodes the same rules in Z3):
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


@dataclass(frozen=True)
class FPFormat:
    ebits: int
    sbits: int

    def __post_init__(self):
        if not (2 <= self.ebits <= 10 and 2 <= self.sbits <= 25):
            raise ValueError(f"F({self.ebits},{self.sbits}) is outside the supported range F(2..10, 2..25)")

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

    def round(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        _, e = np.frexp(x)
        quantum = np.ldexp(1.0, np.maximum(e - 1, self.emin) - (self.sbits - 1))
        with np.errstate(invalid="ignore", over="ignore"):
            r = np.round(x / quantum) * quantum
        r = np.where(np.isnan(r), 0.0, r)
        return np.clip(r, -self.max_value, self.max_value)

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
        acc = np.zeros(x.shape[:-1] + (weight.shape[0],))
        for i in np.flatnonzero(np.any(weight != 0, axis=0)):
            acc = self.add(acc, self.mul(x[..., i:i + 1], weight[:, i]))
        return acc if bias is None else self.add(acc, bias)

    def attention(self, q, k, v, scale: float = 1.0, causal_offset: int | None = 0):
        """One head. q (Lq, dh), k (Lk, dh), v (Lk, dv). Query i sees keys j <= i + causal_offset
        (offset None: all keys). Softmax as in the paper: no max-subtraction, w_j = [exp(s_j)], Z = sum w_j,
        out = (sum [w_j v_j]) / Z, sums left to right over j. Returns (out, w)."""
        q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
        scores = np.zeros((q.shape[0], k.shape[0]))
        for d in range(q.shape[1]):
            scores = self.add(scores, self.mul(q[:, d:d + 1], k[None, :, d]))
        if scale != 1.0:
            scores = self.mul(scores, scale)
        w = self.exp(scores)
        if causal_offset is not None:
            allowed = np.arange(k.shape[0])[None, :] <= np.arange(q.shape[0])[:, None] + causal_offset
            w = np.where(allowed, w, 0.0)
        z, num = self._weighted_sums(w, v)
        return self.div(num, z[:, None]), w

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
