"""``gate_ffn`` and ``readout``: the feed-forward layer computes the gate exactly, and the argmax is the answer.

Both read the residual coordinates the weights actually touch. The designated inputs are symbolic in their exact
domain (a, b in {0, 1}; the gate type one-hot, one query per type), and every *other* coordinate the weights read
is symbolic in {-1, 0, 1}, so a stray weight is refuted with a concrete residual rather than assumed away.
"""
from __future__ import annotations

import numpy as np
import z3

from formal.attention import DOMAIN
from formal.fp import Z3Format
from formal.query import Query

TRUTH = {"AND": (0, 0, 0, 1), "OR": (0, 1, 1, 1), "NAND": (1, 1, 1, 0), "NOR": (1, 0, 0, 0), "XOR": (0, 1, 1, 0),
         "XNOR": (1, 0, 0, 1), "NOT": (1, 1, 0, 0), "BUF": (0, 0, 1, 1), "CONST0": (0, 0, 0, 0),
         "CONST1": (1, 1, 1, 1)}


def _residual(fmt: Z3Format, columns, fixed: dict[int, object]):
    """Symbolic residual values for ``columns``: fixed ones as given, the rest free in DOMAIN."""
    xs, dom, free = {}, [], {}
    for c in columns:
        if c in fixed:
            xs[c] = fixed[c]
        else:
            xs[c] = fmt.var(f"residual{c}")
            dom.append(fmt.in_set(xs[c], DOMAIN))
            free[f"residual{c}"] = xs[c]
    return xs, dom, free


def gate_ffn_queries(model) -> list[Query]:
    fmt = Z3Format(model.fmt.ebits, model.fmt.sbits)
    plan = model.ffn
    p = f"blocks.{plan.layer}.ffn."
    W1, b1 = model.weights[p + "fc1.weight"], model.weights[p + "fc1.bias"]
    W2, b2 = model.weights[p + "fc2.weight"], model.weights[p + "fc2.bias"]
    lay = model.layout
    a_col, b_col, out_col = lay.col(plan.a_field), lay.col(plan.b_field), lay.col(plan.output_field)
    type_cols = [int(c) for c in lay.cols(plan.type_field)]
    read = [int(c) for c in np.flatnonzero(np.any(W1 != 0, axis=0))]
    written = [r for r in range(W2.shape[0]) if W2[r].any() or b2[r] != 0 or r == out_col]
    queries = []
    for t, op in enumerate(plan.type_ops):
        for a_val in (0, 1):
            for b_val in (0, 1):
                queries.append(_gate_case(fmt, W1, b1, W2, b2, read, written, a_col, b_col, out_col, type_cols,
                                          t, op, a_val, b_val))
    return queries


def _gate_case(fmt, W1, b1, W2, b2, read, written, a_col, b_col, out_col, type_cols, t, op, a_val, b_val) -> Query:
    """One row of the gate's truth table. a and b are concrete (the domain has four points, and a solver asked to
    split them itself inside 20 ReLU units is 20x slower); every other coordinate the weights read stays symbolic."""
    fixed = {a_col: fmt.val(a_val), b_col: fmt.val(b_val)} | {
        c: fmt.val(1.0 if i == t else 0.0) for i, c in enumerate(type_cols)}
    xs, dom, free = _residual(fmt, read, fixed)
    hidden = [fmt.relu(fmt.dot([xs[c] for c in read], [float(W1[u, c]) for c in read], float(b1[u])))
              for u in range(W1.shape[0])]
    want = fmt.val(TRUTH[op][2 * a_val + b_val])
    claims, outs = [], {}
    for r in written:
        y = fmt.dot(hidden, [float(w) for w in W2[r]], float(b2[r]))
        # the residual: the output field is 0 before the FFN (checked by 'embedding'), so [0 + y] = y
        outs[f"ffn_out{r}"] = y
        claims.append(fmt.eq(fmt.add(fmt.zero, y), want) if r == out_col else fmt.eq(y, fmt.zero))
    return Query(f"gate_ffn[{op} a={a_val} b={b_val}]", "gate_ffn", z3.And(*dom, z3.Not(z3.And(*claims))),
                 {**free, **outs}, {"kind": "gate_ffn", "op": op, "type_index": t, "a": a_val, "b": b_val,
                                    "output_column": out_col})


def readout_queries(model) -> list[Query]:
    return _readout_cvp(model) if model.mode == "cvp" else _readout_bits(model)


def _readout_bits(model) -> list[Query]:
    """Theorem 3.3 mode: vocabulary {0, 1}; the token must be the out bit."""
    fmt = Z3Format(model.fmt.ebits, model.fmt.sbits)
    W, b = model.weights["head.weight"], model.weights["head.bias"]
    out_col = model.layout.col(model.ffn.output_field)
    read = [int(c) for c in np.flatnonzero(np.any(W != 0, axis=0))]
    ans = fmt.var("ans")
    xs, dom, free = _residual(fmt, read, {out_col: ans})
    logits = [fmt.dot([xs[c] for c in read], [float(W[v, c]) for c in read], float(b[v])) for v in range(W.shape[0])]
    right = z3.If(fmt.eq(ans, fmt.one), logits[1], logits[0])
    wrong = [z3.If(fmt.eq(ans, fmt.one), z3.BoolVal(v != 1), z3.BoolVal(v != 0)) for v in range(len(logits))]
    beaten = z3.Or(*[z3.And(w, z3.fpGEQ(lg, right)) for w, lg in zip(wrong, logits)])
    return [Query("readout[bit]", "readout", z3.And(fmt.in_set(ans, (0.0, 1.0)), *dom, beaten),
                  {"ans": ans, **free}, {"kind": "readout"})]


def _readout_cvp(model) -> list:
    """CVP mode: the right token g_J=ans must beat every other row, for every next id J in 1..N.

    The CoT rows are checked against their shape by ``embedding`` (row g_j=v = sbin(j) on next_code, w_v on out,
    bias b_v, uniform over j), so one query with symbolic J and competitor J' covers all N^2 pairs; every other
    distinct row is compared once. The query's size depends on the code width k, never on N."""
    from formal.tables import cvp_rows

    fmt = Z3Format(model.fmt.ebits, model.fmt.sbits)
    W, b = model.weights["head.weight"], model.weights["head.bias"]
    lay = model.layout
    k, N = model.code_bits, model.meta["max_gates"]
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
    items: list = [Query("readout[cot rows]", "readout", z3.And(dom, differs, z3.fpGEQ(other, right)),
                         {"next_gate": J, "ans": ans, "competitor_gate": Jc, "competitor_value": vc},
                         {"kind": "readout"})]
    # every distinct non-CoT row (NA, SEP, types, ids ...) once
    non_cot = np.array(rows.non_cot)
    others = np.unique(np.c_[W[non_cot], b[non_cot]], axis=0)
    read = sorted(set(next_cols) | {out_col} | {int(c) for c in np.flatnonzero(np.any(W[non_cot] != 0, axis=0))})
    fixed = {c: n for c, n in zip(next_cols, nxt)} | {out_col: ans}
    xs, rdom, free = _residual(fmt, read, fixed)
    for i, row in enumerate(others):
        logit = fmt.dot([xs[c] for c in read], [row[c] for c in read], row[-1])
        items.append(Query(f"readout[other row {i}]", "readout", z3.And(dom, *rdom, z3.fpGEQ(logit, right)),
                           {"next_gate": J, "ans": ans, **free}, {"kind": "readout"}))
    return items
