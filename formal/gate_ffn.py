"""``gate_ffn``: the feed-forward layer writes exactly the gate's value, and adds 0 to every other coordinate.

The query reads the residual coordinates the weights actually touch. The designated inputs are concrete per truth
table row (a, b in {0, 1}; the gate type one-hot, one query per type), and every *other* coordinate the weights
read is symbolic in {-1, 0, 1}, so a stray weight is refuted with a concrete residual rather than assumed away.

A role-gated FFN (CVP mode) is checked in every role a position can be in (``FFNPlan.roles``): where the gate flag
is set it must write the gate's value, where a copy flag is set the copied 0/1 field, and where none is set 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import z3

from formal.fp_theory import model_format
from formal.query import Query
from formal.residual import symbolic_residual
from formal.witness import Kind
from neural.config import Keys
from neural.construction.constructed import ConstructedModel

# What each gate name means, restated here on purpose rather than imported from grammar.ir.TRUTH_TABLES: the
# construction builds its minterm units from that table, so a proof against the same table could not see an error
# in it. tests/test_formal_fp.py checks that the two agree. Unary gates read a; b is ignored.
MEANING = {"AND": lambda a, b: a & b, "OR": lambda a, b: a | b, "NAND": lambda a, b: 1 - (a & b),
           "NOR": lambda a, b: 1 - (a | b), "XOR": lambda a, b: a ^ b, "XNOR": lambda a, b: 1 - (a ^ b),
           "NOT": lambda a, b: 1 - a, "BUF": lambda a, b: a, "CONST0": lambda a, b: 0, "CONST1": lambda a, b: 1}


@dataclass(frozen=True)
class _FFN:
    """The FFN as the queries see it: its arrays, and the residual columns it reads, writes and is built around."""

    fmt: object
    W1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    b2: np.ndarray
    read: list[int]  # the columns any fc1 weight reads
    written: list[int]  # the columns fc2 may write (and the output column)
    a_col: int
    b_col: int
    out_col: int
    type_cols: list[int]


@dataclass(frozen=True)
class _Case:
    """One row of a gate's truth table in one role, and what the FFN must write there."""

    type_index: int
    op: str
    a: int
    b: int
    flags: dict  # the role flags' columns, fixed to the role
    role: str | None
    want: int


def gate_ffn_queries(model: ConstructedModel, ieee: bool = False) -> list[Query]:
    fmt = model_format(model, ieee)
    plan = model.ffn
    W1, b1 = model.linear(Keys.ffn(plan.layer, "fc1"))
    W2, b2 = model.linear(Keys.ffn(plan.layer, "fc2"))
    lay = model.layout
    out_col = lay.col(plan.output_field)
    ffn = _FFN(fmt, W1, b1, W2, b2, read=[int(c) for c in np.flatnonzero(np.any(W1 != 0, axis=0))],
               written=[r for r in range(W2.shape[0]) if W2[r].any() or b2[r] != 0 or r == out_col],
               a_col=lay.col(plan.a_field), b_col=lay.col(plan.b_field), out_col=out_col,
               type_cols=[int(c) for c in lay.cols(plan.type_field)])
    flags = {f: lay.col(f) for f in plan.roles if f is not None}
    copies = dict(plan.copies)
    queries = []
    for role in plan.roles:
        for t, op in enumerate(plan.type_ops):
            for a_val in (0, 1):
                for b_val in (0, 1):
                    if role is None or role == plan.gate_field:
                        want = MEANING[op](a_val, b_val) if role is not None or not flags else 0
                    else:  # a copy of a 0/1 field
                        want = {plan.a_field: a_val, plan.b_field: b_val}[copies[role]]
                    fixed = {col: fmt.val(1.0 if f == role else 0.0) for f, col in flags.items()}
                    queries.append(_gate_case(ffn, _Case(t, op, a_val, b_val, fixed, role, want)))
    return queries


def _gate_case(ffn: _FFN, case: _Case) -> Query:
    """One row of the gate's truth table, in one role. a and b are concrete (the domain has four points, and a
    solver asked to split them itself inside 20 ReLU units is 20x slower); every other coordinate the weights read
    stays symbolic."""
    fmt = ffn.fmt
    fixed = {ffn.a_col: fmt.val(case.a), ffn.b_col: fmt.val(case.b)} | {
        c: fmt.val(1.0 if i == case.type_index else 0.0) for i, c in enumerate(ffn.type_cols)} | case.flags
    xs, dom, free = symbolic_residual(fmt, ffn.read, fixed)
    hidden = [fmt.relu(fmt.dot([xs[c] for c in ffn.read], [float(ffn.W1[u, c]) for c in ffn.read], float(ffn.b1[u])))
              for u in range(ffn.W1.shape[0])]
    want = fmt.val(case.want)
    claims, outs = [], {}
    for r in ffn.written:
        y = fmt.dot(hidden, [float(w) for w in ffn.W2[r]], float(ffn.b2[r]))
        # the residual: the output field is 0 before the FFN (checked by 'embedding'), so [0 + y] = y
        outs[f"ffn_out{r}"] = y
        claims.append(fmt.eq(fmt.add(fmt.zero, y), want) if r == ffn.out_col else fmt.eq(y, fmt.zero))
    where = "" if not case.flags else f" {case.role or 'no role'}"
    return Query(f"gate_ffn[{case.op} a={case.a} b={case.b}{where}]", "gate_ffn",
                 z3.And(*dom, z3.Not(z3.And(*claims))), {**free, **outs},
                 {"op": case.op, "type_index": case.type_index, "a": case.a, "b": case.b,
                  "output_column": ffn.out_col, "role": case.role, "expected": case.want}, Kind.GATE_FFN)
