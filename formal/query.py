"""Proof queries and their outcomes.

A ``Query`` holds the *negation* of a claim: UNSAT means the claim holds (PROVED), SAT gives a model that is a
counterexample (REFUTED), and a solver that gives up or runs out of time is UNKNOWN, never PROVED.
A ``Violation`` is a claim refuted without a solver: a weight outside the shape the lemma's argument needs, found by
reading the arrays. Both carry a ``context`` of concrete facts (layer, head, bit, gate type ...) for replay.
"""
from __future__ import annotations

import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import z3

from formal.fp_theory import make_solver
from formal.witness import Kind, Witness, witness

PROVED, REFUTED, UNKNOWN = "proved", "refuted", "unknown"


@dataclass(frozen=True)
class Query:
    name: str
    lemma: str
    formula: z3.BoolRef  # SAT <=> the claim fails
    witness: dict = field(default_factory=dict)  # label -> z3 term, read from a model as a counterexample
    context: dict = field(default_factory=dict)
    kind: Kind | None = None


@dataclass(frozen=True)
class Violation:
    name: str
    lemma: str
    reason: str
    context: dict = field(default_factory=dict)
    kind: Kind = Kind.TABLE


@dataclass(frozen=True)
class Outcome:
    name: str
    lemma: str
    status: str
    seconds: float
    counterexample: Witness | None = None
    reason: str | None = None
    query: Query | None = field(default=None, repr=False, compare=False)  # what the solver was asked, for export


def _read(model: z3.ModelRef, term):
    value = model.eval(term, model_completion=True)
    if z3.is_fp_value(value) or isinstance(value, z3.FPRef):
        from formal.fp_theory import Z3Format

        return float(Z3Format.to_fraction(value)) if Z3Format.to_fraction(value) is not None else str(value)
    if z3.is_true(value) or z3.is_false(value):
        return bool(z3.is_true(value))
    if z3.is_bv_value(value) or z3.is_int_value(value):
        return value.as_long()
    return str(value)


def solve(item: Query | Violation, timeout_s: float) -> Outcome:
    if isinstance(item, Violation):
        return Outcome(item.name, item.lemma, REFUTED, 0.0,
                       witness(item.kind, {**item.context, "violation": item.reason}), item.reason)
    if PROVED_FORMULAS.holds(item.formula):
        return Outcome(item.name, item.lemma, PROVED, 0.0, query=item)
    solver = make_solver(timeout_s)
    solver.add(item.formula)
    start = time.perf_counter()
    answer = solver.check()
    seconds = time.perf_counter() - start
    if answer == z3.unsat:
        PROVED_FORMULAS.add(item.formula)
        return Outcome(item.name, item.lemma, PROVED, seconds, query=item)
    if answer == z3.sat:
        model = solver.model()
        values = {label: _read(model, term) for label, term in item.witness.items()}
        cex = witness(item.kind, {**item.context, **values})
        return Outcome(item.name, item.lemma, REFUTED, seconds, cex, query=item)
    return Outcome(item.name, item.lemma, UNKNOWN, seconds, reason=f"solver: {solver.reason_unknown()}", query=item)


class ProvedFormulas:
    """The formulas z3 has answered UNSAT in this process, so that the identical query is not asked twice: heads
    or gates whose weights coincide, a spec proved again (the pytest helper, a test suite), specs that compile to
    one construction. Z3 shares equal terms, so "identical" is one pointer comparison (``eq``) after a hash lookup,
    never a printout. Only UNSAT is kept: it holds whatever the time limit, while UNKNOWN may not under a longer
    one, and a SAT answer is solved again for its own counterexample. The most recent ``capacity`` are kept (a
    query's terms are a few hundred nodes, held alive by the entry)."""

    def __init__(self, capacity: int = 4096):
        self.capacity = capacity
        self._by_hash: OrderedDict[int, list[z3.BoolRef]] = OrderedDict()
        self._count = 0

    def holds(self, formula: z3.BoolRef) -> bool:
        key = formula.hash()
        found = any(f.eq(formula) for f in self._by_hash.get(key, ()))
        if found:
            self._by_hash.move_to_end(key)
        return found

    def add(self, formula: z3.BoolRef) -> None:
        key = formula.hash()
        self._by_hash.setdefault(key, []).append(formula)
        self._by_hash.move_to_end(key)
        self._count += 1
        while self._count > self.capacity:
            _, dropped = self._by_hash.popitem(last=False)
            self._count -= len(dropped)

    def clear(self) -> None:
        """Forget every proof: what a test of the solver's own behaviour (a time limit) starts from."""
        self._by_hash.clear()
        self._count = 0


PROVED_FORMULAS = ProvedFormulas()


def strict(formula: z3.BoolRef) -> z3.BoolRef:
    """The same formula with every one-argument ``and``/``or`` replaced by its argument: z3 builds and prints
    ``(and X)``, which SMT-LIB 2.6 does not allow (both are left-associative and take at least two), and strict
    solvers such as bitwuzla reject the file. Only the terms above such a connective are rebuilt: rebuilding every
    term through z3's Python API cost more than the proof itself (``_holding_unary_connectives``)."""
    dirty = _holding_unary_connectives(formula)
    memo: dict[int, z3.ExprRef] = {}

    def rebuild(e: z3.ExprRef) -> z3.ExprRef:
        key = e.get_id()
        if key not in dirty:
            return e
        if key not in memo:
            args = [rebuild(c) for c in e.children()]
            unary_connective = e.decl().kind() in _CONNECTIVES and len(args) == 1
            memo[key] = args[0] if unary_connective else e.decl()(*args)
        return memo[key]

    return rebuild(formula)


_CONNECTIVES = (z3.Z3_OP_AND, z3.Z3_OP_OR)


def _holding_unary_connectives(formula: z3.ExprRef) -> set[int]:
    """The ids of the terms of ``formula`` that are, or contain, a one-argument ``and``/``or``. It walks the term
    DAG once through z3's C API (no Python object per term), each shared term once."""
    ctx = formula.ctx_ref()
    children: dict[int, list[int]] = {}
    unary: set[int] = set()
    order: list[int] = []  # each term after every term it contains
    stack = [(formula.as_ast(), False)]
    while stack:
        ast, expanded = stack.pop()
        key = z3.Z3_get_ast_id(ctx, ast)
        if expanded:
            order.append(key)
            continue
        if key in children:
            continue
        if z3.Z3_get_ast_kind(ctx, ast) != z3.Z3_APP_AST:
            children[key] = []
            order.append(key)
            continue
        args = [z3.Z3_get_app_arg(ctx, ast, i) for i in range(z3.Z3_get_app_num_args(ctx, ast))]
        children[key] = [z3.Z3_get_ast_id(ctx, a) for a in args]
        if len(args) == 1 and z3.Z3_get_decl_kind(ctx, z3.Z3_get_app_decl(ctx, ast)) in _CONNECTIVES:
            unary.add(key)
        stack.append((ast, True))
        stack.extend((a, False) for a in args)
    dirty: set[int] = set()
    for key in order:
        if key in unary or any(c in dirty for c in children[key]):
            dirty.add(key)
    return dirty


def to_smt2(query: Query) -> str:
    solver = z3.Solver()
    solver.add(strict(query.formula))
    header = f"; cotproof lemma {query.name}\n; unsat means the claim holds (the formula is its negation)\n"
    text = solver.to_smt2()
    return header + text.replace("(check-sat)", "").rstrip() + "\n(check-sat)\n"


def smt2_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") + ".smt2"
