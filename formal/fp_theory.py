"""F(ebits, sbits) in Z3's floating-point theory: the semantics of ``neural.construction.fp``, for proofs. The format's
constants (B, the smallest subnormal) come from ``neural.construction.fp.FPFormat``, so both sides speak of one format.

Two arithmetics over one grid:
- *paper* (the default): RNE after every operation, then +-inf clamps to +-B; 0/0 (the only NaN that can arise)
  is +0.
- *ieee*: what torch's float16, bfloat16 and float32 do: RNE, overflow to +-inf, NaN from inf - inf, 0 * inf and
  0/0, and NaN compares false. Claims in this arithmetic say "finite" explicitly.
- Sums are left to right from +0. A term whose weight is the constant 0 adds +-0 and changes no sum, so it is left
  out (``neural.construction.fp`` skips the same terms); only the sign of a zero can differ, and every claim
  compares with IEEE equality, where -0 = +0.

The operations build their terms through Z3's C API (``z3.Z3_mk_*``) rather than z3py's operators: the terms are
the same (Z3 shares equal terms, and a test compares the two builds term for term), but z3py re-checks and coerces
the sorts of every argument, which made building a lemma's queries take twice as long as solving them. Every
intermediate term is held by a z3py object, so Z3's reference counts keep it alive.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Iterable, Sequence

import z3

from grammar.errors import ParameterError
from neural.construction.fp import FPFormat

TACTIC = ("simplify", "fpa2bv", "simplify", "bit-blast", "sat")


class Z3Format:
    def __init__(self, ebits: int, sbits: int, ieee: bool = False):
        if ebits < 3 or sbits < 3:
            raise ParameterError(f"Z3 needs ebits >= 3 and sbits >= 3; F({ebits},{sbits}) is too small")
        self.ebits, self.sbits, self.ieee = ebits, sbits, ieee
        self.sort = z3.FPSort(ebits, sbits)
        self.rm = z3.RNE()
        grid = FPFormat(ebits, sbits)
        self.max_value = grid.max_value
        self.exact_count = float(grid.exact_integers)  # 2^sbits: [2^sbits + 1] = 2^sbits
        self.ctx = self.sort.ctx
        self._values: dict[str, z3.FPNumRef] = {}
        self.B = self.val(self.max_value)
        self.neg_B = -self.B  # the term fpNeg(B), as z3py wrote it: the same queries, term for term
        self.zero = self.val(0.0)
        self.one = self.val(1.0)

    # ---- values -------------------------------------------------------------------------------------------

    def val(self, x: float) -> z3.FPNumRef:
        """The numeral ``x`` rounds to, made once per format (keyed by its hex form, so -0.0 and +0.0 differ)."""
        key = float(x).hex()
        if key not in self._values:
            self._values[key] = z3.FPVal(float(x), self.sort)
        return self._values[key]

    def var(self, name: str) -> z3.FPRef:
        return z3.FP(name, self.sort)

    def in_set(self, x, values: Iterable[float]) -> z3.BoolRef:
        """x is exactly one of the values (structural equality: +0 and -0 differ here, on purpose)."""
        return z3.Or(*[x == self.val(v) for v in values])

    @staticmethod
    def eq(a, b) -> z3.BoolRef:
        """IEEE equality (-0 = +0): what every claim about a computed value uses."""
        return z3.fpEQ(a, b)

    def finite(self, x) -> z3.BoolRef:
        return z3.Not(z3.Or(z3.fpIsNaN(x), z3.fpIsInf(x)))

    @staticmethod
    def to_fraction(ref) -> Fraction | None:
        """An FP numeral (from a model or ``simplify``) as an exact rational; None for NaN/inf."""
        ref = z3.simplify(ref)
        if z3.is_fp_value(ref) and (ref.isNaN() or ref.isInf()):
            return None
        r = z3.simplify(z3.fpToReal(ref))
        return Fraction(r.numerator_as_long(), r.denominator_as_long())

    def to_float(self, ref) -> float:
        f = self.to_fraction(ref)
        return float("nan") if f is None else float(f)

    # ---- operations, each rounded and clamped ------------------------------------------------------------

    def _fp(self, ast) -> z3.FPRef:
        return z3.FPRef(ast, self.ctx)

    def _bool(self, ast) -> z3.BoolRef:
        return z3.BoolRef(ast, self.ctx)

    def _rounded(self, make, a, b) -> z3.FPRef:
        return self._fp(make(self.ctx.ref(), self.rm.as_ast(), a.as_ast(), b.as_ast()))

    def _ite(self, condition, then, otherwise) -> z3.FPRef:
        return self._fp(z3.Z3_mk_ite(self.ctx.ref(), condition.as_ast(), then.as_ast(), otherwise.as_ast()))

    def clamp(self, r):
        """``If(isInf(r), If(isPositive(r), B, -B), r)``: the paper's saturation; IEEE keeps the infinity."""
        if self.ieee:
            return r
        c = self.ctx.ref()
        positive = self._bool(z3.Z3_mk_fpa_is_positive(c, r.as_ast()))
        infinite = self._bool(z3.Z3_mk_fpa_is_infinite(c, r.as_ast()))
        return self._ite(infinite, self._ite(positive, self.B, self.neg_B), r)

    def add(self, a, b):
        return self.clamp(self._rounded(z3.Z3_mk_fpa_add, a, b))

    def mul(self, a, b):
        return self.clamp(self._rounded(z3.Z3_mk_fpa_mul, a, b))

    def sub(self, a, b):
        return self.clamp(self._rounded(z3.Z3_mk_fpa_sub, a, b))

    def div(self, a, b):
        r = self._rounded(z3.Z3_mk_fpa_div, a, b)
        if self.ieee:
            return r
        return self._ite(self._bool(z3.Z3_mk_fpa_is_nan(self.ctx.ref(), r.as_ast())), self.zero, self.clamp(r))

    def max(self, a, b):
        """torch.maximum on finite values (every use here compares finite scores)."""
        return self._ite(self._bool(z3.Z3_mk_fpa_geq(self.ctx.ref(), a.as_ast(), b.as_ast())), a, b)

    def relu(self, x):
        return self._ite(self._bool(z3.Z3_mk_fpa_gt(self.ctx.ref(), x.as_ast(), self.zero.as_ast())), x, self.zero)

    def seq_sum(self, terms: Sequence):
        acc = self.zero
        for t in terms:
            acc = self.add(acc, t)
        return acc

    def dot(self, xs: Sequence, weights: Sequence[float], bias: float | None = None):
        """[...[[0 + [x0 w0]] + [x1 w1]] ... + bias], skipping constant-zero weights (see module doc)."""
        acc = self.seq_sum([self.mul(x, self.val(w)) for x, w in zip(xs, weights) if w != 0])
        return acc if bias is None else self.add(acc, self.val(bias))

    def simplify_value(self, expr) -> float:
        return self.to_float(z3.simplify(expr))


def model_format(model, ieee: bool = False) -> Z3Format:
    """The arithmetic a lemma about ``model`` is stated in: its format, saturating (paper) or IEEE."""
    return Z3Format(model.fmt.ebits, model.fmt.sbits, ieee)


def make_solver(timeout_s: float):
    """Z3 decides QF_FP by bit-blasting after fpa2bv; plain bit-blast answers unknown on FP terms."""
    solver = z3.Then(*TACTIC).solver()
    solver.set("timeout", max(1, int(timeout_s * 1000)))
    return solver
