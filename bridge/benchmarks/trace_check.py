"""Trace checking: the vectorised numpy checker against PySAT unit propagation on the same trace (gate-checks/s).

PySAT's side encodes every gate (formal.sat.gate_clauses), assumes the inputs and the trace, and propagates: a
conflict means an unsound step. Both must agree on a sound trace and on one with a flipped step.
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
from pysat.solvers import Solver

from bridge.benchmarks.gen import random_circuit
from formal.sat import SOLVER, gate_clauses
from grammar.evaluate import check_trace, evaluate
from grammar.normalize import normalize


def pysat_sound(nc, bits, trace) -> tuple[bool, float]:
    n = nc.n_inputs
    var = np.arange(1, nc.n_nodes + 1)
    with Solver(name=SOLVER) as s:
        for t, g in enumerate(nc.gates):
            for c in gate_clauses(g.op, int(var[n + t]), int(var[g.a]), int(var[g.b])):
                s.add_clause(c)
        values = np.concatenate([bits, trace])
        assumptions = [int(v) if x else -int(v) for v, x in zip(var, values)]
        start = time.perf_counter()
        ok, _ = s.propagate(assumptions=assumptions)
        return bool(ok), time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gates", type=int, default=100_000)
    args = ap.parse_args()
    nc = normalize(random_circuit(64, args.gates, seed=7, max_fan_in=2))
    bits = np.random.default_rng(0).integers(0, 2, nc.n_inputs).astype(np.uint8)
    trace = evaluate(nc, bits[None])[0][nc.n_inputs:]
    start = time.perf_counter()
    np_ok = bool(check_trace(nc, bits[None], trace[None]).all())
    np_seconds = time.perf_counter() - start
    sat_ok, sat_seconds = pysat_sound(nc, bits, trace)
    flipped = trace.copy()
    flipped[nc.n_gates // 2] ^= 1
    agree_flip = (not check_trace(nc, bits[None], flipped[None]).all()) and not pysat_sound(nc, bits, flipped)[0]
    print(json.dumps({"gates": nc.n_gates, "numpy_gate_checks_per_second": round(nc.n_gates / np_seconds),
                      "pysat_gate_checks_per_second": round(nc.n_gates / sat_seconds),
                      "numpy_to_pysat_speed_ratio": round(sat_seconds / np_seconds, 1),
                      "agree": np_ok and sat_ok and agree_flip,
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
    main()
