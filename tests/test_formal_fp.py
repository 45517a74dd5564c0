"""The Z3 encoding of F(e,s) against neural.construction.fp, bit for bit: table-driven, >= 10,000 operations per
format."""
from __future__ import annotations

import numpy as np
import pytest
import z3

from formal.exp_table import exp_facts
from formal.fp_theory import Z3Format
from neural.construction.fp import FPFormat

FORMATS = [(4, 4), (5, 5), (5, 11), (8, 8)]


def random_values(fmt: FPFormat, rng, n: int) -> np.ndarray:
    """Values spread over the whole format: random exponents (subnormals included), plus 0, +-B and tiny values."""
    mant = rng.random(n) + 1.0
    exps = rng.integers(fmt.emin - fmt.sbits, fmt.bias + 1, n)
    x = fmt.round(np.where(rng.random(n) < 0.5, -1, 1) * mant * np.exp2(exps.astype(float)))
    specials = np.array([0.0, fmt.max_value, -fmt.max_value, fmt.min_subnormal, 1.0, -1.0])
    x[rng.integers(0, n, n // 20)] = rng.choice(specials, n // 20)
    return x


@pytest.mark.parametrize("ebits,sbits", FORMATS)
def test_z3_matches_neural_fp_bit_for_bit(ebits, sbits):
    fmt, zf = FPFormat(ebits, sbits), Z3Format(ebits, sbits)
    rng = np.random.default_rng(ebits * 100 + sbits)
    n_binary, n_dot = 2400, 400  # 3 ops x 2400 + relu 600 + 400 dot products of 4 (8 ops each) = 11,000 ops
    a, b = random_values(fmt, rng, n_binary), random_values(fmt, rng, n_binary)
    table = [("add", fmt.add, zf.add), ("mul", fmt.mul, zf.mul), ("div", fmt.div, zf.div)]
    mismatches = []
    for name, ours, theirs in table:
        want = ours(a, b)
        for x, y, w in zip(a, b, want):
            got = zf.simplify_value(theirs(zf.val(x), zf.val(y)))
            if got != w:
                mismatches.append((name, x, y, w, got))
    for x in a[:600]:
        if zf.simplify_value(zf.relu(zf.val(x))) != fmt.relu(x):
            mismatches.append(("relu", x))
    xs, ws = random_values(fmt, rng, (n_dot * 4)).reshape(n_dot, 4), random_values(fmt, rng, n_dot * 4).reshape(
        n_dot, 4)
    bias = random_values(fmt, rng, n_dot)
    for x, w, bb in zip(xs, ws, bias):
        want = fmt.linear(x[None], w[None], np.array([bb]))[0, 0]
        got = zf.simplify_value(zf.dot([zf.val(v) for v in x], list(w), float(bb)))
        if got != want:
            mismatches.append(("dot", x, w, bb, want, got))
    assert not mismatches, mismatches[:5]


@pytest.mark.parametrize("ebits,sbits", FORMATS)
def test_exp_threshold_matches_neural_exp(ebits, sbits):
    fmt = FPFormat(ebits, sbits)
    T = exp_facts(ebits, sbits).threshold
    above = fmt.round(T + abs(T) * 2.0 ** -(sbits - 1))  # the next value up
    assert fmt.exp(T) == 0.0 and fmt.exp(-fmt.max_value) == 0.0
    assert fmt.exp(above) > 0.0 and above > T


def test_saturation_and_zero_over_zero():
    zf = Z3Format(5, 11)
    assert zf.simplify_value(zf.add(zf.B, zf.B)) == zf.max_value
    assert zf.simplify_value(zf.mul(-zf.B, zf.B)) == -zf.max_value
    assert zf.simplify_value(zf.div(zf.zero, zf.zero)) == 0.0
    s = z3.Solver()
    x = zf.var("x")
    s.add(zf.finite(x), z3.Or(z3.fpIsInf(zf.add(x, zf.B)), z3.fpIsNaN(zf.add(x, zf.B))))
    assert s.check() == z3.unsat  # no finite input reaches inf or NaN through add


def test_the_proofs_meaning_of_each_gate_agrees_with_the_ir_truth_table():
    """formal.gate_ffn restates every gate on purpose (the construction is built from grammar.ir's table)."""
    from formal.gate_ffn import MEANING
    from grammar.ir import TRUTH_TABLES

    assert set(MEANING) == set(TRUTH_TABLES)
    for op, table in TRUTH_TABLES.items():
        assert tuple(MEANING[op](a, b) for a in (0, 1) for b in (0, 1)) == table, op


@pytest.mark.parametrize("ieee", [False, True], ids=["paper", "ieee"])
def test_the_c_api_build_is_z3pys_term_for_term(ieee):
    """``Z3Format`` builds its terms through Z3's C API for speed; each is the very term z3py's operators spell (Z3
    shares equal terms, so ``eq`` is identity), so no query changed with the faster build."""
    f = Z3Format(5, 11, ieee)
    x, y, rne = f.var("x"), f.var("y"), z3.RNE()

    def clamp(r):
        return r if ieee else z3.If(z3.fpIsInf(r), z3.If(z3.fpIsPositive(r), f.B, -f.B), r)

    quotient = z3.fpDiv(rne, x, y)
    spelled = {"add": clamp(z3.fpAdd(rne, x, y)), "mul": clamp(z3.fpMul(rne, x, y)), "sub": clamp(z3.fpSub(rne, x, y)),
               "div": quotient if ieee else z3.If(z3.fpIsNaN(quotient), f.zero, clamp(quotient)),
               "max": z3.If(z3.fpGEQ(x, y), x, y)}
    for name, term in spelled.items():
        assert getattr(f, name)(x, y).eq(term), name
    assert f.relu(x).eq(z3.If(z3.fpGT(x, f.zero), x, f.zero))
    assert f.val(-0.0).eq(z3.FPVal(-0.0, f.sort)) and not f.val(-0.0).eq(f.val(0.0))  # the numeral cache keeps signs


def _unary_connectives(e: z3.ExprRef) -> int:
    """One-argument and/or in e, counted through z3py (independently of formal.query's C-API walk)."""
    if not z3.is_app(e):
        return 0
    own = int(e.decl().kind() in (z3.Z3_OP_AND, z3.Z3_OP_OR) and e.num_args() == 1)
    return own + sum(_unary_connectives(c) for c in e.children())


def test_strict_drops_every_one_argument_connective_and_leaves_the_rest_as_it_was():
    from formal.query import strict

    x, y, z = z3.Bools("x y z")
    shared = z3.Or(z3.And(z))  # a shared term: reached along two paths, rebuilt once
    deep = z3.Not(z3.Implies(x, z3.And(z3.Or(y), shared)))
    cases = [deep, z3.And(deep, shared, z3.Xor(shared, x)), z3.Or(z3.And(x)), z3.And(x, z3.Or(y, z))]
    for formula in cases:
        out = strict(formula)
        assert _unary_connectives(out) == 0
        proof = z3.Solver()
        proof.add(out != formula)
        assert proof.check() == z3.unsat
        if _unary_connectives(formula) == 0:
            assert out.get_id() == formula.get_id()  # nothing to drop: the very term, not a copy
    assert _unary_connectives(cases[0]) == 3 and strict(cases[2]).eq(x)


def test_a_formula_proved_once_is_not_asked_again_and_nothing_else_is_remembered(monkeypatch):
    import formal.query as q

    memo = q.ProvedFormulas(capacity=2)
    monkeypatch.setattr(q, "PROVED_FORMULAS", memo)
    x = z3.FP("x", z3.FPSort(5, 11))
    unsat = z3.And(z3.fpGT(x, z3.FPVal(1.0, x.sort())), z3.fpLT(x, z3.FPVal(0.5, x.sort())))
    sat = z3.fpGT(x, z3.FPVal(1.0, x.sort()))
    first = q.solve(q.Query("a", "lemma", unsat), 10.0)
    assert first.status == q.PROVED and first.seconds > 0
    asked = []
    real_make_solver = q.make_solver
    monkeypatch.setattr(q, "make_solver", lambda t: asked.append(t) or real_make_solver(t))
    rebuilt = z3.And(z3.fpGT(x, z3.FPVal(1.0, x.sort())), z3.fpLT(x, z3.FPVal(0.5, x.sort())))  # an equal term
    again = q.solve(q.Query("b", "other", rebuilt), 0.001)  # proved, whatever the time limit now
    assert (again.name, again.lemma, again.status, again.seconds, asked) == ("b", "other", q.PROVED, 0.0, [])
    assert again.query.name == "b"
    assert q.solve(q.Query("c", "lemma", sat), 10.0).status == q.REFUTED
    assert q.solve(q.Query("c", "lemma", sat), 10.0).status == q.REFUTED and len(asked) == 2  # SAT: asked each time
    for bound in (2.0, 4.0):  # two more proofs: the first one is the oldest and leaves
        q.solve(q.Query("d", "lemma", z3.And(unsat, z3.fpLT(x, z3.FPVal(bound, x.sort())))), 10.0)
    assert not memo.holds(unsat) and len(asked) == 4
    memo.clear()
    assert q.solve(q.Query("e", "lemma", z3.And(unsat, z3.fpLT(x, z3.FPVal(4.0, x.sort())))), 10.0).seconds > 0
