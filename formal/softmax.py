"""The softmax lemmas: once every score is exactly 0 (the match) or <= T (where [exp] is 0), the head returns the
matched value exactly, however the softmax is computed.

They hold for any weights, so they depend only on the format and T (``exp_table``). Three ways of computing it:
- *paper*: w_j = [exp(s_j)], Z = sum w_j, out = [(sum [w_j v_j]) / Z], each sum left to right (the paper, and
  ``neural.construction.fp``);
- *torch*: subtract the row max m first, p_j = [w_j / Z], out = sum [p_j v_j] (``torch.softmax``, then
  ``weights @ v``);
- *online*: one key at a time, m' = max(m, s), alpha = [exp(m - m')], l' = [[l alpha] + [exp(s - m')]],
  acc' = [[acc alpha] + [[exp(s - m')] v]], out = [acc / l]: the running rescaling of flash-style kernels.

Each is an induction over key positions: a state invariant, one query per kind of step, and one for the output.
Two cases: a single match holding value v_p (every head's query names one position), and many matches all holding
0 (CVP's NA id, which names every non-CoT token). Z3 has no exp, so [exp(x)] for x <= 0 is a fresh value with the
facts the table gives: 1 at x = 0, 0 at x <= T, and in [0, 1] otherwise (rounding is monotone).
"""
from __future__ import annotations

import z3

from formal.fp_theory import Z3Format
from formal.query import Query
from formal.witness import Kind

LEMMA = "retrieval"


def softmax_queries(fmt: Z3Format, T, ieee: bool) -> list[Query]:
    """The paper's softmax always; in IEEE arithmetic also torch's and the online rescaling."""
    items = _paper(fmt)
    if ieee:
        items += _torch(fmt, T) + _online(fmt, T)
    return items


def _q(name: str, formula, witness=None) -> Query:
    return Query(f"retrieval.softmax_{name}", LEMMA, formula, witness or {}, kind=Kind.SOFTMAX)


def _paper(fmt: Z3Format) -> list[Query]:
    Z, num, vp, vj = (fmt.var(n) for n in ("Z", "numerator", "matched_value", "other_value"))
    seen = z3.Bool("matched_seen")
    fin = z3.And(*[fmt.finite(x) for x in (Z, num, vp, vj)])

    def inv(Z, num, seen):
        return z3.If(seen, z3.And(fmt.eq(Z, fmt.one), fmt.eq(num, vp)),
                     z3.And(fmt.eq(Z, fmt.zero), fmt.eq(num, fmt.zero)))

    def step(w, v):
        return fmt.add(Z, w), fmt.add(num, fmt.mul(w, v))

    z0, n0 = step(fmt.zero, vj)
    z1, n1 = step(fmt.one, vp)
    return [
        _q("skip", z3.And(fin, inv(Z, num, seen), z3.Not(inv(z0, n0, seen)))),
        _q("match", z3.And(fin, inv(Z, num, seen), z3.Not(seen), z3.Not(inv(z1, n1, z3.BoolVal(True))))),
        _q("output", z3.And(fin, inv(Z, num, z3.BoolVal(True)), z3.Not(fmt.eq(fmt.div(num, Z), vp)))),
        *_zero_values(fmt, "paper"),
    ]


def _zero_values(fmt: Z3Format, how: str) -> list[Query]:
    """Many matches, every value 0: the numerator stays 0 and Z >= 1 after the first match, so the output is 0.
    The weight is anything in [0, 1]: [exp(0)] = 1 for the paper, [1 / Z] for torch's normalised weights."""
    Z, num, w = fmt.var("Z"), fmt.var("numerator"), fmt.var("weight")
    seen = z3.Bool("matched_seen")

    def inv(Z, num, seen):  # Z <= L = 2^sbits, a fixed point of [L + 1]: Z never overflows, however many matches
        return z3.And(fmt.eq(num, fmt.zero), fmt.finite(Z), z3.fpGEQ(Z, fmt.zero),
                      z3.fpLEQ(Z, fmt.val(fmt.exact_count)), z3.Implies(seen, z3.fpGEQ(Z, fmt.one)))

    w_ok = z3.And(fmt.finite(w), z3.fpGEQ(w, fmt.zero), z3.fpLEQ(w, fmt.one))
    z2, n2 = fmt.add(Z, w), fmt.add(num, fmt.mul(w, fmt.zero))
    seen2 = z3.Or(seen, fmt.eq(w, fmt.one))
    return [
        _q(f"zero_values[{how}]", z3.And(inv(Z, num, seen), w_ok, z3.Not(inv(z2, n2, seen2)))),
        _q(f"zero_output[{how}]", z3.And(inv(Z, num, z3.BoolVal(True)), z3.Not(fmt.eq(fmt.div(num, Z), fmt.zero)))),
    ]


def _torch(fmt: Z3Format, T) -> list[Query]:
    """torch.softmax subtracts the row max m. With a match present m = 0 (the match scores 0, the rest <= T < 0), so
    s - m = s exactly and w_j is the paper's; Z is the paper's sum; then p_j = [w_j / Z] with Z = 1 is w_j itself,
    and sum [p_j v_j] is the paper's numerator induction with those weights (queries ``skip`` and ``match``)."""
    s, w = fmt.var("score"), fmt.var("weight")
    score_ok = z3.Or(fmt.eq(s, fmt.zero), z3.And(fmt.finite(s), z3.fpLEQ(s, T)))
    row_max = fmt.max(fmt.zero, s)  # the max of a row holding the match (0) and this score
    return [
        _q("row_max[torch]", z3.And(score_ok, z3.Not(fmt.eq(row_max, fmt.zero)))),
        _q("shift[torch]", z3.And(score_ok, z3.Not(z3.And(fmt.eq(fmt.sub(s, fmt.zero), s),
                                                          fmt.finite(fmt.sub(s, fmt.zero)))))),
        _q("normalise[torch]", z3.And(fmt.in_set(w, (0.0, 1.0)), z3.Not(fmt.eq(fmt.div(w, fmt.one), w)))),
        *_zero_values(fmt, "torch"),
    ]


def _exp_of(fmt: Z3Format, T, x, name: str):
    """A fresh e standing for [exp(x)], x <= 0 finite, with the facts the exp table proves."""
    e = fmt.var(name)
    facts = z3.And(fmt.finite(e), z3.Implies(fmt.eq(x, fmt.zero), fmt.eq(e, fmt.one)),
                   z3.Implies(z3.fpLEQ(x, T), fmt.eq(e, fmt.zero)), z3.fpGEQ(e, fmt.zero), z3.fpLEQ(e, fmt.one))
    return e, z3.And(fmt.finite(x), z3.fpLEQ(x, fmt.zero), facts)


def _online(fmt: Z3Format, T) -> list[Query]:
    """The per-key recurrence. Before the match: m <= T and 0 <= l, |acc| <= L = 2^sbits (a fixed point:
    [L + 1] = L, so the bound holds whatever the context length). At the match alpha = [exp(m)] = 0 wipes both, and
    from then on (m, l, acc) = (0, 1, v_p); with many zero-valued matches, (0, l in [1, L], 0)."""
    m, l, acc, s, v, vp = (fmt.var(n) for n in ("running_max", "running_sum", "running_acc", "score", "value",
                                                  "matched_value"))
    L = fmt.val(fmt.exact_count)
    fin = z3.And(*[fmt.finite(x) for x in (m, l, acc, s, v, vp)])
    small = z3.And(z3.fpGEQ(v, -fmt.one), z3.fpLEQ(v, fmt.one))

    def pre_parts(m, l, acc):  # the invariant before the match, one part per state variable
        return {"running_max": z3.And(fmt.finite(m), z3.fpLEQ(m, T)),
                "running_sum": z3.And(fmt.finite(l), z3.fpGEQ(l, fmt.zero), z3.fpLEQ(l, L)),
                "running_acc": z3.And(fmt.finite(acc), z3.fpLEQ(acc, L), z3.fpGEQ(acc, -L))}

    def pre(m, l, acc):
        return z3.And(*pre_parts(m, l, acc).values())

    def post(m, l, acc, value):
        return z3.And(fmt.eq(m, fmt.zero), fmt.eq(l, fmt.one), fmt.eq(acc, value))

    def post0(m, l, acc):
        return z3.And(fmt.eq(m, fmt.zero), z3.fpGEQ(l, fmt.one), z3.fpLEQ(l, L), fmt.eq(acc, fmt.zero))

    def step(m, l, acc, s, v):
        m2 = fmt.max(m, s)
        alpha, a_ok = _exp_of(fmt, T, fmt.sub(m, m2), "alpha")
        beta, b_ok = _exp_of(fmt, T, fmt.sub(s, m2), "beta")
        l2 = fmt.add(fmt.mul(l, alpha), beta)
        acc2 = fmt.add(fmt.mul(acc, alpha), fmt.mul(beta, v))
        return (m2, l2, acc2), z3.And(a_ok, b_ok)

    mismatch = z3.And(fmt.finite(s), z3.fpLEQ(s, T))
    match = fmt.eq(s, fmt.zero)
    first = (s, fmt.one, fmt.mul(fmt.one, v))  # the first key: m = s, l = [exp(0)] = 1, acc = [1 v]
    pre_mis, ok1 = step(m, l, acc, s, v)
    pre_match, ok2 = step(m, l, acc, s, vp)
    post_mis, ok3 = step(fmt.zero, fmt.one, vp, s, v)
    zero_match, ok4 = step(m, l, fmt.zero, s, fmt.zero)
    return [
        _q("first_key[online]", z3.And(fin, small, z3.Or(mismatch, match), z3.Not(
            z3.If(match, post(*first, v), pre(*first))))),
        # one query per part of the invariant after the step: each holds only the products it reads, and in
        # float32 the three take about half the time of the whole (2.8 s)
        *[_q(f"before_match[online] {part}", z3.And(fin, small, ok1, pre(m, l, acc), mismatch, z3.Not(after)))
          for part, after in pre_parts(*pre_mis).items()],
        _q("match[online]", z3.And(fin, ok2, pre(m, l, acc), match, z3.Not(post(*pre_match, vp)))),
        _q("after_match[online]", z3.And(fin, small, ok3, mismatch, z3.Not(post(*post_mis, vp)))),
        _q("output[online]", z3.And(fin, post(m, l, acc, vp), z3.Not(fmt.eq(fmt.div(acc, l), vp)))),
        _q("zero_values[online]", z3.And(fin, ok4, post0(m, l, fmt.zero), z3.Or(mismatch, match),
                                         z3.Not(post0(*zero_match)))),
        _q("zero_output[online]", z3.And(fin, post0(m, l, acc), z3.Not(fmt.eq(fmt.div(acc, l), fmt.zero)))),
    ]
