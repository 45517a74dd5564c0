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


def pack_bits(vectors: np.ndarray) -> np.ndarray:
    """(B, n) bits -> (n, ceil(B / 64)) uint64 words: vector j is bit j % 64 of word j // 64."""
    x = np.atleast_2d(np.asarray(vectors, dtype=np.uint8))
    B = x.shape[0]
    padded = np.zeros((-(-B // 64) * 64, x.shape[1]), dtype=np.uint8)
    padded[:B] = x
    little = np.packbits(padded.T.reshape(x.shape[1], -1, 8)[:, :, ::-1], axis=-1)  # bit j of byte = vector j
    return little.reshape(x.shape[1], -1).view(np.uint64) if little.size else np.zeros((x.shape[1], 0), np.uint64)


def unpack_bits(words: np.ndarray, count: int) -> np.ndarray:
    """(m, W) uint64 words -> (count, m) bits: the inverse of ``pack_bits``."""
    bytes_ = np.ascontiguousarray(words).view(np.uint8).reshape(words.shape[0], -1)
    bits = np.unpackbits(bytes_, axis=-1, bitorder="little")
    return bits[:, :count].T.copy()


def evaluate_packed(nc: NormCircuit, words: np.ndarray) -> np.ndarray:
    """Bit-parallel evaluation: (n, W) uint64 input words -> (n + T, W) node words, 64 vectors per word.

    The same truth-table mechanism as ``evaluate``, in bitwise form: with per-gate masks t_r (all ones where the
    gate's table row r is 1), v = (~a & ~b & t_0) | (~a & b & t_1) | (a & ~b & t_2) | (a & b & t_3). Gates of
    one level are evaluated together."""
    words = np.asarray(words, dtype=np.uint64)
    n = nc.n_inputs
    values = np.empty((nc.n_nodes, words.shape[1]), dtype=np.uint64)
    values[:n] = words
    if nc.n_gates == 0:
        return values
    rows = (TRUTH_TABLE_ARRAY[nc.op_codes].astype(np.uint64) * np.uint64(0xFFFFFFFFFFFFFFFF))[:, :, None]
    levels = nc.levels[n:]
    order = np.argsort(levels, kind="stable")
    bounds = np.flatnonzero(np.diff(levels[order])) + 1
    for group in np.split(order, bounds):
        a, b, t = values[nc.arg_a[group]], values[nc.arg_b[group]], rows[group]
        na, nb = ~a, ~b
        values[n + group] = (na & nb & t[:, 0]) | (na & b & t[:, 1]) | (a & nb & t[:, 2]) | (a & b & t[:, 3])
    return values
