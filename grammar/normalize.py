"""Circuit -> NormCircuit: topological order, 2-input gates, node indices, and a map back to the user's names.

A fan-in-k gate becomes k-1 two-input gates: the first k-2 fold the inputs with the gate's associative base op
(AND for NAND, XOR for XNOR, ...), and the last applies the gate's own op, so NAND(a,b,c) = NAND(AND(a,b), c). The
last gate keeps the user's name; the helpers are named ``name~1``, ``name~2``, ... and all carry ``origin=name``.
"""
from __future__ import annotations

from grammar.check import in_definition_order
from grammar.ir import CONST_OPS, FOLD_OP, UNARY_OPS, Circuit, NormCircuit, NormGate

# A fan-in-1 binary gate is a buffer or an inverter.
SINGLE_INPUT_OP = {"AND": "BUF", "OR": "BUF", "XOR": "BUF", "NAND": "NOT", "NOR": "NOT", "XNOR": "NOT"}


def _topological(circuit: Circuit) -> list:
    """Gates in an order where every gate follows its inputs; a file already in order keeps its order."""
    if in_definition_order(circuit):
        return list(circuit.gates)
    by_name = {g.name: g for g in circuit.gates}
    done: set[str] = set()
    order = []
    for root in circuit.gates:
        if root.name in done:
            continue
        stack = [(root, 0)]
        while stack:
            g, i = stack[-1]
            if i < len(g.inputs):
                stack[-1] = (g, i + 1)
                nxt = by_name.get(g.inputs[i])
                if nxt is not None and nxt.name not in done:
                    stack.append((nxt, 0))
                continue
            stack.pop()
            if g.name not in done:
                done.add(g.name)
                order.append(g)
    return order


def normalize(circuit: Circuit) -> NormCircuit:
    """Assumes ``check_circuit`` has accepted the circuit (every reader calls it)."""
    index = {name: i for i, name in enumerate(circuit.inputs)}
    gates: list[NormGate] = []
    n = len(circuit.inputs)

    def emit(op: str, a: int, b: int, name: str, origin: str) -> int:
        gates.append(NormGate(op, a, b, name, origin))
        return n + len(gates) - 1

    for g in _topological(circuit):
        args = [index[x] for x in g.inputs]
        origin = g.origin or g.name
        if g.op in CONST_OPS:
            node = emit(g.op, 0, 0, g.name, origin)
        elif g.op in UNARY_OPS:
            node = emit(g.op, args[0], args[0], g.name, origin)
        elif len(args) == 1:
            node = emit(SINGLE_INPUT_OP[g.op], args[0], args[0], g.name, origin)
        else:
            acc = args[0]
            for k, arg in enumerate(args[1:-1], start=1):
                acc = emit(FOLD_OP[g.op], acc, arg, f"{g.name}~{k}", origin)
            node = emit(g.op, acc, args[-1], g.name, origin)
        index[g.name] = node
    outputs = tuple(index[o] for o in circuit.outputs)
    used = _cone(gates, n, outputs)
    gates = [g if used[n + t] else NormGate(g.op, g.a, g.b, g.name, g.origin, used=False)
             for t, g in enumerate(gates)]
    return NormCircuit(circuit.name, tuple(circuit.inputs), tuple(gates), outputs, tuple(circuit.outputs))


def _cone(gates: list[NormGate], n: int, outputs: tuple[int, ...]) -> list[bool]:
    used = [False] * (n + len(gates))
    for o in outputs:
        used[o] = True
    for t in range(len(gates) - 1, -1, -1):
        if used[n + t] and gates[t].op not in CONST_OPS:
            used[gates[t].a] = used[gates[t].b] = True
    return used
