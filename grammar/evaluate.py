"""Reference semantics of a NormCircuit in numpy: the evaluator and the vectorised trace checker.

Both use the one truth-table mechanism of ``grammar.ir``: node value = TT[op][2*v[a] + v[b]].
"""
from __future__ import annotations

import numpy as np

from grammar.ir import TRUTH_TABLE_ARRAY, NormCircuit


def evaluate(nc: NormCircuit, inputs: np.ndarray) -> np.ndarray:
    """Values of every node for a batch of input vectors: (B, n) -> (B, n + T), as uint8.

    Gates of one level are evaluated together, so wide circuits cost one numpy call per level.
    """
    x = np.atleast_2d(np.asarray(inputs, dtype=np.uint8))
    if x.shape[1] != nc.n_inputs:
        raise ValueError(f"expected {nc.n_inputs} input bits, got {x.shape[1]}")
    values = np.zeros((x.shape[0], nc.n_nodes), dtype=np.uint8)
    values[:, :nc.n_inputs] = x
    if nc.n_gates == 0:
        return values
    n = nc.n_inputs
    levels = nc.levels[n:]
    order = np.argsort(levels, kind="stable")
    bounds = np.flatnonzero(np.diff(levels[order])) + 1
    ops, a, b = nc.op_codes, nc.arg_a, nc.arg_b
    for group in np.split(order, bounds):
        values[:, n + group] = TRUTH_TABLE_ARRAY[ops[group], 2 * values[:, a[group]] + values[:, b[group]]]
    return values


def evaluate_outputs(nc: NormCircuit, inputs: np.ndarray) -> np.ndarray:
    return evaluate(nc, inputs)[:, list(nc.outputs)]


def check_trace(nc: NormCircuit, inputs: np.ndarray, trace: np.ndarray) -> np.ndarray:
    """Soundness of CoT traces, with no loop over gates: each token must equal its gate applied to the trace's
    *own* earlier values (not the true values), so a wrong step is caught even when later steps recover.

    inputs (B, n), trace (B, T) -> bool array (B, T), True where the step is sound.
    """
    x = np.atleast_2d(np.asarray(inputs, dtype=np.uint8))
    tr = np.atleast_2d(np.asarray(trace, dtype=np.uint8))
    values = np.concatenate([x, tr], axis=1)
    expected = TRUTH_TABLE_ARRAY[nc.op_codes, 2 * values[:, nc.arg_a] + values[:, nc.arg_b]]
    return expected == tr


def first_unsound(nc: NormCircuit, inputs, trace) -> int | None:
    ok = check_trace(nc, inputs, trace)[0]
    bad = np.flatnonzero(~ok)
    return int(bad[0]) if bad.size else None
