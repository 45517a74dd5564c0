"""Gate semantics in CNF (PySAT): trace soundness with an UNSAT core, and equivalence of two netlists.

Every gate is encoded by the one truth-table mechanism of ``grammar.ir``: for each row (u, v) of its table, the
clause (a != u) or (b != v) or (y == TT[u][v]). That is the Tseitin encoding of any 2-input gate, unary and
constant gates included, with no special cases. Variables come from ``IDPool`` and clauses live in ``CNF``.
Solvers are glucose4 (interruptible), so a time limit is a real limit and its expiry is UNKNOWN.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from pysat.formula import CNF, IDPool
from pysat.solvers import Solver

from formal.equivalence import (
    DIFFERENT,
    EQUIVALENT,
    UNKNOWN,
    Equivalence,
    require_same_interface,
)
from grammar.ir import TRUTH_TABLES, NormCircuit

SOLVER = "glucose4"


def _lit(var: int, value: int) -> int:
    return var if value else -var


def gate_clauses(op: str, y: int, a: int, b: int) -> list[list[int]]:
    table = TRUTH_TABLES[op]
    clauses = []
    for u in (0, 1):
        for v in (0, 1):
            out = table[2 * u + v]
            clauses.append([_lit(a, 1 - u), _lit(b, 1 - v), _lit(y, out)])
    return [sorted(set(c), key=abs) for c in clauses if not any(-lit in c for lit in c)]  # drop tautologies


def encode(nc: NormCircuit, pool: IDPool, prefix: str, inputs: list[int] | None = None) -> tuple[CNF, list[int]]:
    """CNF of the circuit; returns (cnf, variable of every node). ``inputs`` shares input variables (miters)."""
    cnf = CNF()
    nodes = list(inputs) if inputs is not None else [pool.id(f"{prefix}in{i}") for i in range(nc.n_inputs)]
    for t, g in enumerate(nc.gates):
        y = pool.id(f"{prefix}g{t}")
        cnf.extend(gate_clauses(g.op, y, nodes[g.a], nodes[g.b]))
        nodes.append(y)
    return cnf, nodes


@dataclass(frozen=True)
class TraceVerdict:
    sound: bool
    first_unsound_step: int | None
    solves: int


def check_trace(nc: NormCircuit, inputs, trace) -> TraceVerdict:
    """Each step's clauses are guarded by a selector; inputs, trace tokens and selectors are assumptions.

    UNSAT means some step contradicts the trace's own earlier values; the core names unsound steps, and asking
    again with only the steps before the earliest one found narrows to the first unsound step."""
    pool = IDPool()
    node = [pool.id(f"n{i}") for i in range(nc.n_nodes)]
    select = [pool.id(f"s{t}") for t in range(nc.n_gates)]
    n = nc.n_inputs
    values = np.concatenate([np.asarray(inputs, dtype=np.uint8), np.asarray(trace, dtype=np.uint8)])
    facts = [_lit(node[i], int(v)) for i, v in enumerate(values)]
    with Solver(name=SOLVER) as solver:
        for t, g in enumerate(nc.gates):
            for clause in gate_clauses(g.op, node[n + t], node[g.a], node[g.b]):
                solver.add_clause(clause + [-select[t]])
        limit, solves, first = nc.n_gates, 0, None
        while True:
            solves += 1
            if solver.solve(assumptions=facts + select[:limit]):
                return TraceVerdict(first is None, first, solves)
            core = set(solver.get_core() or [])
            steps = [t for t in range(limit) if select[t] in core]
            if not steps:  # cannot happen with consistent facts; fail loudly rather than guess
                raise RuntimeError("UNSAT core names no step")
            first = min(steps)
            limit = first  # is anything before it unsound too?


MITER = "plain CNF miter (PySAT)"


def equivalent(a: NormCircuit, b: NormCircuit, timeout_s: float = 60.0) -> Equivalence:
    """Miter over shared inputs (matched by name); outputs are compared in order."""
    require_same_interface(a, b)
    pool = IDPool()
    shared = {name: pool.id(f"in:{name}") for name in a.input_names}
    cnf_a, nodes_a = encode(a, pool, "a.", [shared[x] for x in a.input_names])
    cnf_b, nodes_b = encode(b, pool, "b.", [shared[x] for x in b.input_names])
    diffs = []
    cnf = CNF(from_clauses=cnf_a.clauses + cnf_b.clauses)
    for i, (oa, ob) in enumerate(zip(a.outputs, b.outputs)):
        x, y, d = nodes_a[oa], nodes_b[ob], pool.id(f"diff{i}")
        cnf.extend(gate_clauses("XOR", d, x, y))
        diffs.append(d)
    cnf.append(diffs)
    with Solver(name=SOLVER, bootstrap_with=cnf.clauses) as solver:
        timer = threading.Timer(timeout_s, solver.interrupt)
        timer.start()
        try:
            answer = solver.solve_limited(expect_interrupt=True)
        finally:
            timer.cancel()
        if answer is None:
            return Equivalence(UNKNOWN, method=MITER, reason=f"no answer within {timeout_s:g}s")
        if not answer:
            return Equivalence(EQUIVALENT, method=MITER)
        model = set(solver.get_model())
        return Equivalence(DIFFERENT, {name: int(v in model) for name, v in shared.items()}, MITER)
