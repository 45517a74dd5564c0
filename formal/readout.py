"""``readout``: the argmax of the logits is the token of the answer the FFN wrote.

The query reads the residual coordinates the unembedding actually touches: the answer is symbolic in {0, 1}, and
every other coordinate it reads is symbolic in {-1, 0, 1}, so a stray weight is refuted rather than assumed away.
"""
from __future__ import annotations

import numpy as np
import z3

from formal.embedding import cvp_rows
from formal.fp import model_format
from formal.query import Query, Violation
from formal.residual import symbolic_residual
from neural.config import Keys
from neural.constructed import ConstructedModel, unique_rows


def readout_queries(model: ConstructedModel, ieee: bool = False) -> list[Query]:
    fmt = model_format(model, ieee)
    return _readout_cvp(model, fmt) if model.mode == "cvp" else _readout_bits(model, fmt)


def _beats(fmt, other, right):
    """``other`` takes the argmax from ``right``: it is at least as large, or either is inf/NaN (torch's argmax
    takes a NaN as the maximum; F(e,s) never makes one, so there this is just >=)."""
    return z3.Or(z3.fpGEQ(other, right), z3.Not(fmt.finite(other)), z3.Not(fmt.finite(right)))


def _readout_bits(model, fmt) -> list[Query]:
    """Theorem 3.3 mode: vocabulary {0, 1}; the token must be the out bit."""
    W, b = model.linear(Keys.HEAD)
    out_col = model.layout.col(model.ffn.output_field)
    read = [int(c) for c in np.flatnonzero(np.any(W != 0, axis=0))]
    ans = fmt.var("ans")
    xs, dom, free = symbolic_residual(fmt, read, {out_col: ans})
    logits = [fmt.dot([xs[c] for c in read], [float(W[v, c]) for c in read], float(b[v])) for v in range(W.shape[0])]
    right = z3.If(fmt.eq(ans, fmt.one), logits[1], logits[0])
    wrong = [z3.If(fmt.eq(ans, fmt.one), z3.BoolVal(v != 1), z3.BoolVal(v != 0)) for v in range(len(logits))]
    beaten = z3.Or(*[z3.And(w, _beats(fmt, lg, right)) for w, lg in zip(wrong, logits)])
    return [Query("readout[bit]", "readout", z3.And(fmt.in_set(ans, (0.0, 1.0)), *dom, beaten),
                  {"ans": ans, **free}, {"kind": "readout"})]


def _readout_cvp(model, fmt) -> list:
    """CVP mode: the right token g_J=ans must beat every other row, for every next id J in 1..N.

    The CoT rows are checked against their shape by ``embedding`` (row g_j=v = sbin(j) on next_code, w_v on out,
    bias b_v, uniform over j). The logits are sums over next_code in column order, then the out term, then the
    bias. Induction over the code bits, with counters i (bits so far) and d (mismatches so far): the right row's
    partial sum is exactly i and a competitor's exactly i - 2d. One step query covers every bit, every J and every
    competitor J', and the final query compares the two logits after the value term: neither depends on k or N.
    Every other distinct row is compared once, against the right logit the induction computes."""
    W, b = model.linear(Keys.HEAD)
    lay = model.layout
    k = model.code_bits
    next_cols = [int(c) for c in lay.cols("next_code")]
    out_col = lay.col(model.ffn.output_field)
    rows = cvp_rows(model)
    if out_col < max(next_cols):
        return [Violation("readout[order]", "readout", f"the out column {out_col} is summed before next_code",
                          {"out_column": out_col})]
    value_shape = {v: (float(W[rows.cot[1, v], out_col]), float(b[rows.cot[1, v]])) for v in (0, 1)}
    ans, vc = fmt.var("ans"), z3.Bool("competitor_value")
    ans_is_one = fmt.eq(ans, fmt.one)

    def value_term(acc, v_is_one):
        w_out = z3.If(v_is_one, fmt.val(value_shape[1][0]), fmt.val(value_shape[0][0]))
        bias = z3.If(v_is_one, fmt.val(value_shape[1][1]), fmt.val(value_shape[0][1]))
        return fmt.add(fmt.add(acc, fmt.mul(ans, w_out)), bias)

    width = max(8, k.bit_length() + 2)
    i, d = z3.BitVec("bits_so_far", width), z3.BitVec("mismatches_so_far", width)
    R, C = fmt.var("right_partial"), fmt.var("competitor_partial")

    def count(bv):
        return z3.fpSignedToFP(z3.RNE(), bv, fmt.sort)

    def inv(i, d, R, C):
        return z3.And(z3.ULE(d, i), z3.ULE(i, k), fmt.eq(R, count(i)), fmt.eq(C, count(i - 2 * d)))

    n, c = fmt.var("next_bit"), fmt.var("competitor_bit")
    pm = z3.And(fmt.in_set(n, (-1.0, 1.0)), fmt.in_set(c, (-1.0, 1.0)))
    d2 = d + z3.If(fmt.eq(n, c), z3.BitVecVal(0, width), z3.BitVecVal(1, width))
    step = z3.And(pm, inv(i, d, R, C), z3.ULT(i, k),
                  z3.Not(inv(i + 1, d2, fmt.add(R, fmt.mul(n, n)), fmt.add(C, fmt.mul(n, c)))))
    right, other = value_term(R, ans_is_one), value_term(C, vc)
    final = z3.And(inv(z3.BitVecVal(k, width), d, R, C), fmt.in_set(ans, (0.0, 1.0)),
                   z3.Or(d != 0, vc != ans_is_one), _beats(fmt, other, right))
    state = {"bits_so_far": i, "mismatches_so_far": d, "right_partial": R, "competitor_partial": C}
    items: list = [
        Query("readout[cot rows: base]", "readout", z3.Not(inv(z3.BitVecVal(0, width), z3.BitVecVal(0, width),
                                                               fmt.zero, fmt.zero)), {}, {"kind": "readout_base"}),
        Query("readout[cot rows: step]", "readout", step, {**state, "next_bit": n, "competitor_bit": c},
              {"kind": "readout_step"}),
        Query("readout[cot rows: final]", "readout", final, {**state, "ans": ans, "competitor_value": vc},
              {"kind": "readout_final"}),
    ]
    # every distinct non-CoT row (NA, SEP, types, ids ...) once, against the right logit after all k bits
    right_k = value_term(fmt.val(float(k)), ans_is_one)
    non_cot = rows.non_cot
    others, _ = unique_rows(np.c_[W[non_cot], b[non_cot]])
    read = sorted({int(c) for c in np.flatnonzero(np.any(W[non_cot] != 0, axis=0))})
    J = z3.BitVec("next_gate", k + 1)
    fixed = {out_col: ans}
    dom = [fmt.in_set(ans, (0.0, 1.0))]
    if set(read) & set(next_cols):  # a row that reads next_code sees the code of a real next gate
        fixed |= {col: z3.If(z3.Extract(t, t, J) == 1, fmt.one, -fmt.one) for t, col in enumerate(next_cols)}
        dom += [z3.UGE(J, 1), z3.ULE(J, model.max_gates)]
    xs, rdom, free = symbolic_residual(fmt, read, fixed)
    for r, row in enumerate(others):
        logit = fmt.dot([xs[col] for col in read], [row[col] for col in read], row[-1])
        items.append(Query(f"readout[other row {r}]", "readout", z3.And(*dom, *rdom, _beats(fmt, logit, right_k)),
                           {"next_gate": J, "ans": ans, **free}, {"kind": "readout"}))
    return items
