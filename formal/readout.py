"""``readout``: the argmax of the logits is the token of the answer the FFN wrote.

The query reads the residual coordinates the unembedding actually touches: the answer is symbolic in {0, 1}, and
every other coordinate it reads is symbolic in {-1, 0, 1}, so a stray weight is refuted rather than assumed away.
"""
from __future__ import annotations

import numpy as np
import z3

from formal.embedding import cvp_rows
from formal.fp_theory import model_format
from formal.query import Query, Violation
from formal.residual import symbolic_residual
from formal.witness import Kind
from grammar.ir import Mode
from neural.config import Keys
from neural.construction.constructed import ConstructedModel
from neural.construction.tables import distinct_rows, take_rows


def readout_queries(model: ConstructedModel, ieee: bool = False) -> list[Query]:
    fmt = model_format(model, ieee)
    return _readout_cvp(model, fmt) if model.mode == Mode.CVP else _readout_bits(model, fmt)


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
                  {"ans": ans, **free}, {}, Kind.READOUT)]


def _readout_cvp(model, fmt) -> list:
    """CVP mode: at every position that predicts a CoT token, the right token's logit beats every other row.

    Roles (``embedding`` checks the position table): where an id is next (role_id), g_in holds sbin(J) of the
    right id J (0 for NA) and out = 0 (``gate_ffn``, no role); where a value is next (role_va, role_vg), out holds
    the value and g_in some code. The id rows (NA, @1..@N) share one shape (``embedding``): sbin(j) on g_in, then a
    common tail. Their logits are sums over g_in in column order, then the tail. Induction over the code bits,
    with counters i (bits so far) and d (mismatches so far): the right row's partial sum is exactly i and any other
    id row's exactly i - 2d. One step query covers every bit, every J and every other J'; the final queries
    compare, in each role, the id rows after the tail and every other distinct row (read symbolically), neither
    depending on k or N."""
    W, b = model.table(Keys.weight(Keys.HEAD)), model.weights[Keys.bias(Keys.HEAD)]  # W: rows on demand
    lay = model.layout
    k = model.code_bits
    code = [int(c) for c in lay.cols("g_in")]
    out_col = lay.col(model.ffn.output_field)
    flag_cols = {f: lay.col(f) for f in ("role_id", "role_va", "role_vg")}
    rows = cvp_rows(model)
    na_row = take_rows(W, [rows.refs[0]])[0]
    tail_cols = [int(c) for c in np.flatnonzero(na_row) if int(c) not in code]
    if any(c < max(code) for c in tail_cols):
        return [Violation("readout[order]", "readout", "an id row's weight outside g_in is summed before it",
                          {"columns": tail_cols})]
    id_bias = float(b[rows.refs[0]])

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
    state = {"bits_so_far": i, "mismatches_so_far": d, "right_partial": R, "competitor_partial": C}
    items: list = [
        Query("readout[id rows: base]", "readout", z3.Not(inv(z3.BitVecVal(0, width), z3.BitVecVal(0, width),
                                                              fmt.zero, fmt.zero)), {}, {}, Kind.READOUT_BASE),
        Query("readout[id rows: step]", "readout", step, {**state, "next_bit": n, "competitor_bit": c},
              {}, Kind.READOUT_STEP),
    ]
    # the residual outside g_in: role flags and out fixed per role, every other column any row reads symbolic
    others, _ = distinct_rows(W, rows.others, b)  # every row that is neither an id nor a value, with its bias
    value_rows = [np.r_[row, b[r]] for r, row in zip(rows.values, take_rows(W, rows.values))]
    non_id = np.vstack([others[:, :-1], *(row[None, :-1] for row in value_rows)])
    read = sorted(({int(x) for x in np.flatnonzero(np.any(non_id != 0, axis=0))} | set(tail_cols) |
                   {out_col, *flag_cols.values()}) - set(code))
    ans = fmt.var("ans")
    k_bits = z3.BitVecVal(k, width)
    for role in ("role_id", "role_va", "role_vg"):
        fixed = {col: fmt.val(1.0 if f == role else 0.0) for f, col in flag_cols.items()}
        fixed[out_col] = fmt.zero if role == "role_id" else ans
        xs, dom, free = symbolic_residual(fmt, read, fixed)
        if role != "role_id":
            dom = [*dom, fmt.in_set(ans, (0.0, 1.0))]

        def logit(row, xs=xs):
            return fmt.dot([xs[col] for col in read], [float(row[col]) for col in read], float(row[-1]))

        def id_logit(partial, xs=xs):
            acc = partial
            for col in tail_cols:
                acc = fmt.add(acc, fmt.mul(xs[col], fmt.val(float(na_row[col]))))
            return fmt.add(acc, fmt.val(id_bias))

        if role == "role_id":  # the right id row against another id row, the value rows and every other row
            right = id_logit(fmt.val(float(k)))
            rivals = [("another id row", z3.And(inv(k_bits, d, R, C), d != 0, _beats(fmt, id_logit(C), right)))]
            rivals += [(f"value row {v}", _beats(fmt, logit(value_rows[v]), right)) for v in (0, 1)]
        else:  # the right value row against the other one, any id row (whatever g_in holds) and every other row
            ans_one = fmt.eq(ans, fmt.one)
            right = z3.If(ans_one, logit(value_rows[1]), logit(value_rows[0]))
            wrong = z3.If(ans_one, logit(value_rows[0]), logit(value_rows[1]))
            rivals = [("the other value row", _beats(fmt, wrong, right)),
                      ("any id row", z3.And(inv(k_bits, d, R, C), _beats(fmt, id_logit(C), right)))]
        rivals += [(f"other row {r}", _beats(fmt, logit(row), right)) for r, row in enumerate(others)]
        where = role.removeprefix("role_")
        for what, beaten in rivals:
            items.append(Query(f"readout[{where}: {what}]", "readout", z3.And(*dom, beaten),
                               {**state, "ans": ans, **free}, {"role": role}, Kind.READOUT))
    return items
