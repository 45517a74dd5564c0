"""``readout``: the argmax of the logits is the token of the answer the FFN wrote.

The query reads the residual coordinates the unembedding actually touches: the answer is symbolic in {0, 1}, and
every other coordinate it reads is symbolic in {-1, 0, 1}, so a stray weight is refuted rather than assumed away.
"""
from __future__ import annotations

import numpy as np
import z3

from formal.embedding import cvp_rows
from formal.fp import model_format
from formal.query import Query
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
    bias b_v, uniform over j), so one query with symbolic J and competitor J' covers all N^2 pairs; every other
    distinct row is compared once. The query's size depends on the code width k, never on N."""
    W, b = model.linear(Keys.HEAD)
    lay = model.layout
    k, N = model.code_bits, model.max_gates
    next_cols = [int(c) for c in lay.cols("next_code")]
    out_col = lay.col(model.ffn.output_field)
    rows = cvp_rows(model)
    value_shape = {v: (float(W[rows.cot[1][v], out_col]), float(b[rows.cot[1][v]])) for v in (0, 1)}
    J, Jc = z3.BitVec("next_gate", k + 1), z3.BitVec("competitor_gate", k + 1)
    ans, vc = fmt.var("ans"), z3.Bool("competitor_value")

    def bits(bv):
        return [z3.If(z3.Extract(i, i, bv) == 1, fmt.one, -fmt.one) for i in range(k)]

    def in_range(bv):
        return z3.And(z3.UGE(bv, 1), z3.ULE(bv, N))

    nxt = bits(J)
    # the residual at a CoT position: next_code = sbin(J), out = ans; the order of the sum is column order
    def cot_logit(code_bits, v_is_one):
        w_out = z3.If(v_is_one, fmt.val(value_shape[1][0]), fmt.val(value_shape[0][0]))
        bias = z3.If(v_is_one, fmt.val(value_shape[1][1]), fmt.val(value_shape[0][1]))
        terms = [(c, fmt.mul(n, w)) for c, n, w in zip(next_cols, nxt, code_bits)] + [(out_col, fmt.mul(ans, w_out))]
        acc = fmt.seq_sum([t for _, t in sorted(terms, key=lambda ct: ct[0])])
        return fmt.add(acc, bias)

    ans_is_one = fmt.eq(ans, fmt.one)
    right = cot_logit(nxt, ans_is_one)
    other = cot_logit(bits(Jc), vc)
    differs = z3.Or(J != Jc, vc != ans_is_one)
    dom = z3.And(in_range(J), in_range(Jc), fmt.in_set(ans, (0.0, 1.0)))
    items: list = [Query("readout[cot rows]", "readout", z3.And(dom, differs, _beats(fmt, other, right)),
                         {"next_gate": J, "ans": ans, "competitor_gate": Jc, "competitor_value": vc},
                         {"kind": "readout"})]
    # every distinct non-CoT row (NA, SEP, types, ids ...) once
    non_cot = np.array(rows.non_cot)
    others, _ = unique_rows(np.c_[W[non_cot], b[non_cot]])
    read = sorted(set(next_cols) | {out_col} | {int(c) for c in np.flatnonzero(np.any(W[non_cot] != 0, axis=0))})
    fixed = {c: n for c, n in zip(next_cols, nxt)} | {out_col: ans}
    xs, rdom, free = symbolic_residual(fmt, read, fixed)
    for i, row in enumerate(others):
        logit = fmt.dot([xs[c] for c in read], [row[c] for c in read], row[-1])
        items.append(Query(f"readout[other row {i}]", "readout", z3.And(dom, *rdom, _beats(fmt, logit, right)),
                           {"next_gate": J, "ans": ans, **free}, {"kind": "readout"}))
    return items
