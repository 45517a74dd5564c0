"""Seeded random netlists for benchmarks and tests: any size, multi-input gates, every ISCAS-85 gate type."""
from __future__ import annotations

import random
from pathlib import Path

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


def write_bench(directory: Path, gates: int, inputs: int = 64) -> Path:
    """``random_circuit`` of two-input gates (seed 1), written as ``.bench`` into ``directory``: the netlists the
    size benchmarks run whole commands on, the same at every call."""
    from grammar.netlist import netlist_bytes

    path = Path(directory) / f"r{inputs}_{gates}.bench"
    path.write_bytes(netlist_bytes(random_circuit(inputs, gates, seed=1, max_fan_in=2), "bench"))
    return path


def array_multiplier(bits: int) -> Circuit:
    """An unsigned bits x bits array multiplier (partial products, then rows of full adders), the structure of
    ISCAS-85 c6288 (bits = 16) and of the EPFL multiplier (bits = 64): hard for plain SAT miters."""
    gates: list[Gate] = []

    def gate(name: str, op: str, *args: str) -> str:
        gates.append(Gate(name, op, args))
        return name

    a = [f"a{i}" for i in range(bits)]
    b = [f"b{i}" for i in range(bits)]
    pp = [[gate(f"p{i}_{j}", "AND", a[i], b[j]) for i in range(bits)] for j in range(bits)]
    outputs = [pp[0][0]]
    row = pp[0][1:] + [gate("zero", "CONST0")]  # the running sum, shifted one place per row
    for j in range(1, bits):
        carry = None
        new = []
        for i in range(bits):
            x, y = row[i], pp[j][i]
            if carry is None:
                s, carry = gate(f"s{j}_{i}", "XOR", x, y), gate(f"c{j}_{i}", "AND", x, y)
            else:
                t = gate(f"t{j}_{i}", "XOR", x, y)
                s = gate(f"s{j}_{i}", "XOR", t, carry)
                carry = gate(f"c{j}_{i}", "OR", gate(f"u{j}_{i}", "AND", x, y), gate(f"v{j}_{i}", "AND", t, carry))
            new.append(s)
        outputs.append(new[0])
        row = new[1:] + [carry]
    outputs += row
    return Circuit(f"mult{bits}", tuple(a + b), tuple(outputs), tuple(gates))
