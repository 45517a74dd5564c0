"""Seeded random netlists for benchmarks and tests: any size, multi-input gates, every ISCAS-85 gate type."""
from __future__ import annotations

import random

from grammar.ir import Circuit, Gate

BENCH_OPS = ("AND", "NAND", "OR", "NOR", "XOR", "XNOR", "NOT", "BUF")


def random_circuit(n_inputs: int, n_gates: int, seed: int = 0, max_fan_in: int = 4, n_outputs: int = 8,
                   window: int = 64) -> Circuit:
    """Gates draw inputs from the last ``window`` signals, which keeps depth realistic and every gate reachable."""
    rng = random.Random(seed)
    inputs = [f"x{i}" for i in range(n_inputs)]
    signals = list(inputs)
    gates = []
    for t in range(n_gates):
        op = rng.choice(BENCH_OPS)
        fan_in = 1 if op in ("NOT", "BUF") else rng.randint(2, max_fan_in)
        pool = signals[-window:]
        args = tuple(rng.choice(pool) for _ in range(fan_in))
        name = f"g{t}"
        gates.append(Gate(name, op, args))
        signals.append(name)
    outputs = tuple(signals[-min(n_outputs, n_gates):]) if n_gates else tuple(inputs[:1])
    return Circuit(f"random_{n_inputs}_{n_gates}_{seed}", tuple(inputs), outputs, tuple(gates))
