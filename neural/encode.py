"""Circuits as token sequences for the two constructions, and traces back to the normalised gate order.

Theorem 3.3 mode: the tokens are the bits themselves, inputs first, then one CoT bit per normalised gate.

CVP mode: the circuit itself is the prompt. Any normalised circuit is first *lowered* to {TRUE, FALSE, AND, OR, NOT}
with the input values baked in as TRUE/FALSE gates, so one set of weights runs every netlist:
NAND = NOT(AND), NOR = NOT(OR), BUF(a) = AND(a, a), XOR(a, b) = OR(AND(a, NOT b), AND(NOT a, b)), XNOR = NOT(XOR).
``node_gate`` remembers which CVP gate holds each normalised node, so traces are reported in the user's order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grammar.ir import NormCircuit
from neural.construct import CVP_SPECIAL, CVP_TYPES, cvp_cot_token, cvp_id_token

NA, SEP = CVP_SPECIAL.index("NA"), CVP_SPECIAL.index("SEP")


def cvp_type_token(kind: str) -> int:
    return len(CVP_SPECIAL) + CVP_TYPES.index(kind)


@dataclass(frozen=True)
class CVPCircuit:
    """Gates 1..m over {TRUE, FALSE, AND, OR, NOT}; an input reference 0 means NA (unused slot)."""

    kinds: tuple[str, ...]
    in1: tuple[int, ...]
    in2: tuple[int, ...]
    node_gate: tuple[int, ...] = ()  # normalised node -> CVP gate id (lowered circuits only)

    @property
    def size(self) -> int:
        return len(self.kinds)

    def evaluate(self) -> np.ndarray:
        """Values of gates 1..m (index 0 is gate 1)."""
        vals = [0]
        for kind, a, b in zip(self.kinds, self.in1, self.in2):
            vals.append(_apply(kind, vals[a], vals[b]))
        return np.array(vals[1:], dtype=np.uint8)

    def check(self, trace) -> np.ndarray:
        """Soundness per step: gate j's token equals its gate applied to the trace's *own* earlier values."""
        vals = np.concatenate([[0], np.asarray(trace, dtype=np.int64)])
        return np.array([vals[j] == _apply(kind, vals[a], vals[b])
                         for j, (kind, a, b) in enumerate(zip(self.kinds, self.in1, self.in2), start=1)], dtype=bool)


def _apply(kind: str, x: int, y: int) -> int:
    return {"TRUE": 1, "FALSE": 0, "AND": x & y, "OR": x | y, "NOT": 1 - x}[kind]


def lower_to_cvp(nc: NormCircuit, bits) -> CVPCircuit:
    kinds: list[str] = []
    in1: list[int] = []
    in2: list[int] = []

    def gate(kind: str, a: int = 0, b: int = 0) -> int:
        kinds.append(kind)
        in1.append(a)
        in2.append(b)
        return len(kinds)

    node = [gate("TRUE" if int(v) else "FALSE") for v in np.asarray(bits).reshape(-1)]
    for g in nc.gates:
        a, b = node[g.a], node[g.b]
        if g.op in ("AND", "OR"):
            out = gate(g.op, a, b)
        elif g.op in ("NAND", "NOR"):
            out = gate("NOT", gate(g.op[1:], a, b))
        elif g.op == "NOT":
            out = gate("NOT", a)
        elif g.op == "BUF":
            out = gate("AND", a, a)
        elif g.op in ("XOR", "XNOR"):
            x = gate("OR", gate("AND", a, gate("NOT", b)), gate("AND", gate("NOT", a), b))
            out = x if g.op == "XOR" else gate("NOT", x)
        else:
            out = gate("TRUE" if g.op == "CONST1" else "FALSE")
        node.append(out)
    return CVPCircuit(tuple(kinds), tuple(in1), tuple(in2), tuple(node))


def cvp_prompt(c: CVPCircuit) -> np.ndarray:
    """``type in1 in2 id`` per gate, then SEP."""
    toks = []
    for j, (kind, a, b) in enumerate(zip(c.kinds, c.in1, c.in2), start=1):
        toks += [cvp_type_token(kind), cvp_id_token(a) if a else NA, cvp_id_token(b) if b else NA, cvp_id_token(j)]
    return np.array(toks + [SEP], dtype=np.int64)


def cvp_cot_tokens(values, max_gates: int) -> np.ndarray:
    return np.array([cvp_cot_token(j, int(v), max_gates) for j, v in enumerate(values, start=1)], dtype=np.int64)


def cvp_decode(tokens, max_gates: int) -> tuple[np.ndarray, np.ndarray]:
    """CoT tokens -> (gate ids they name, values); a token that is no CoT token decodes as id -1, value 0."""
    t = np.asarray(tokens, dtype=np.int64) - cvp_cot_token(1, 0, max_gates)
    ok = (t >= 0) & (t < 2 * max_gates)
    return np.where(ok, t // 2 + 1, -1), np.where(ok, t % 2, 0).astype(np.uint8)


def random_cvp_circuit(rng: np.random.Generator, n_gates: int, p_const: float = 0.2, p_not: float = 0.2) -> CVPCircuit:
    """The paper's CVP distribution: gates 1 and 2 are constants; later gates are constants with p_const, NOT with
    p_not, AND or OR otherwise, with inputs drawn uniformly from earlier gates (NA in unused slots)."""
    kinds, in1, in2 = [], [], []
    for j in range(1, n_gates + 1):
        u = rng.random()
        if j <= 2 or u < p_const:
            kinds.append("TRUE" if rng.random() < 0.5 else "FALSE")
            in1.append(0)
            in2.append(0)
        elif u < p_const + p_not:
            kinds.append("NOT")
            in1.append(int(rng.integers(1, j)))
            in2.append(0)
        else:
            kinds.append("AND" if rng.random() < 0.5 else "OR")
            in1.append(int(rng.integers(1, j)))
            in2.append(int(rng.integers(1, j)))
    return CVPCircuit(tuple(kinds), tuple(in1), tuple(in2))


def all_cvp_circuits(max_gates: int):
    """Every circuit of 1..max_gates gates: any type, each input NA or any earlier gate (5 * j^2 choices for gate j)."""
    def extend(prefix):
        j = len(prefix[0]) + 1
        for kind in ("TRUE", "FALSE", "AND", "OR", "NOT"):
            for a in range(j):
                for b in range(j):
                    yield (prefix[0] + (kind,), prefix[1] + (a,), prefix[2] + (b,))

    level = [((), (), ())]
    for _ in range(max_gates):
        level = list(c for p in level for c in extend(p))
        yield from (CVPCircuit(*c) for c in level)
