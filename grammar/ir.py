"""The frozen-dataclass IR that every layer of cotproof speaks.

Two circuit forms exist on purpose:
- ``Circuit`` is what the user wrote: named gates of any fan-in, in any order, with source locations.
- ``NormCircuit`` is what the construction, the provers and the checkers consume: 2-input gates in topological
  order, nodes addressed by index (inputs first, then gates), and a map back to the user's gate names.

Every gate is described by one mechanism: a 4-entry truth table indexed by ``2*a + b``. Unary gates read ``b = a``,
constants ignore both, so the evaluator, the trace checker, the FFN builder and the SAT encoder need no special cases.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property

import numpy as np

from grammar.errors import SourceLoc

# op -> (f(0,0), f(0,1), f(1,0), f(1,1)); the order of this tuple is the op's code everywhere.
TRUTH_TABLES: dict[str, tuple[int, int, int, int]] = {
    "AND": (0, 0, 0, 1),
    "OR": (0, 1, 1, 1),
    "NAND": (1, 1, 1, 0),
    "NOR": (1, 0, 0, 0),
    "XOR": (0, 1, 1, 0),
    "XNOR": (1, 0, 0, 1),
    "NOT": (1, 1, 0, 0),
    "BUF": (0, 0, 1, 1),
    "CONST0": (0, 0, 0, 0),
    "CONST1": (1, 1, 1, 1),
}
GATE_OPS: tuple[str, ...] = tuple(TRUTH_TABLES)
OP_CODE: dict[str, int] = {op: i for i, op in enumerate(GATE_OPS)}
TRUTH_TABLE_ARRAY = np.array([TRUTH_TABLES[op] for op in GATE_OPS], dtype=np.uint8)
UNARY_OPS = frozenset({"NOT", "BUF"})
CONST_OPS = frozenset({"CONST0", "CONST1"})
# For a fan-in > 2 gate, the associative op that folds all but the last input.
FOLD_OP = {"AND": "AND", "NAND": "AND", "OR": "OR", "NOR": "OR", "XOR": "XOR", "XNOR": "XOR"}

# How each op is built from AND, OR and NOT: the one decomposition every lowering uses (CVP gates, AIGER's
# AND-inverter form, aigverse networks), each with its own constructors (``build``). An expression is "a", "b",
# a constant 0 or 1, or (OP, operand, ...). tests/test_netlist.py checks every form against TRUTH_TABLES.
_XOR = ("OR", ("AND", "a", ("NOT", "b")), ("AND", ("NOT", "a"), "b"))
FORMS: dict[str, object] = {
    "AND": ("AND", "a", "b"), "OR": ("OR", "a", "b"), "NAND": ("NOT", ("AND", "a", "b")),
    "NOR": ("NOT", ("OR", "a", "b")), "XOR": _XOR, "XNOR": ("NOT", _XOR), "NOT": ("NOT", "a"), "BUF": "a",
    "CONST0": 0, "CONST1": 1,
}


class Mode(str, Enum):
    """The two constructions (DESIGN.md): Theorem 3.3 compiles one circuit into the weights; cvp is one model that
    takes any circuit of up to ``max_gates`` gates as its prompt. Parsed here, once; everywhere else compares
    members. A ``str`` so that JSON and checkpoints hold the plain name."""

    THM33 = "thm33"
    CVP = "cvp"

    def __str__(self) -> str:
        return self.value


MODES = tuple(m.value for m in Mode)


def build(op: str, a, b, AND, OR, NOT, const):
    """The op applied to the signals a and b, made with a target's own AND(x, y), OR(x, y), NOT(x) and const(bit):
    ``FORMS[op]``, evaluated bottom-up."""
    def walk(e):
        if e == "a":
            return a
        if e == "b":
            return b
        if e in (0, 1):
            return const(e)
        head, *args = e
        return {"AND": AND, "OR": OR, "NOT": NOT}[head](*(walk(x) for x in args))

    return walk(FORMS[op])


def fresh_name(base: str, taken: set[str], reserved: set[str] | frozenset = frozenset()) -> str:
    """``base``, primed until it is neither taken nor reserved; then taken. The one way readers and writers make
    up a signal name, so a made-up name never captures a user's."""
    name = base
    while name in taken or name in reserved:
        name += "'"
    taken.add(name)
    return name


def arity_ok(op: str, fan_in: int) -> bool:
    if op in CONST_OPS:
        return fan_in == 0
    if op in UNARY_OPS:
        return fan_in == 1
    return fan_in >= 1


def arity_words(op: str) -> str:
    if op in CONST_OPS:
        return "no inputs"
    if op in UNARY_OPS:
        return "exactly 1 input"
    return "at least 1 input"


@dataclass(frozen=True)
class Gate:
    """A gate as the user wrote it."""

    name: str
    op: str
    inputs: tuple[str, ...]
    loc: SourceLoc | None = None
    origin: str | None = None  # a helper a reader made while lowering the user's signal ``origin`` (BLIF covers,
    # Verilog expressions); None for a gate the user wrote as such


@dataclass(frozen=True)
class Circuit:
    """A netlist as written: any fan-in, any order. ``normalize`` turns it into a NormCircuit."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    gates: tuple[Gate, ...]
    input_locs: tuple[SourceLoc | None, ...] = ()
    output_locs: tuple[SourceLoc | None, ...] = ()


@dataclass(frozen=True)
class NormGate:
    """A 2-input gate over node indices. ``origin`` is the user's gate (or output) this gate implements part of."""

    op: str
    a: int
    b: int
    name: str
    origin: str
    used: bool = True


@dataclass(frozen=True)
class NormCircuit:
    """Inputs are nodes 0..n-1 and gate t is node n+t; gates are in topological order (a, b < own node)."""

    name: str
    input_names: tuple[str, ...]
    gates: tuple[NormGate, ...]
    outputs: tuple[int, ...]
    output_names: tuple[str, ...]

    @property
    def n_inputs(self) -> int:
        return len(self.input_names)

    @property
    def n_gates(self) -> int:
        return len(self.gates)

    @property
    def n_nodes(self) -> int:
        return self.n_inputs + self.n_gates

    @cached_property
    def op_codes(self) -> np.ndarray:
        return np.fromiter((OP_CODE[g.op] for g in self.gates), dtype=np.int64, count=self.n_gates)

    @cached_property
    def arg_a(self) -> np.ndarray:
        return np.fromiter((g.a for g in self.gates), dtype=np.int64, count=self.n_gates)

    @cached_property
    def arg_b(self) -> np.ndarray:
        return np.fromiter((g.b for g in self.gates), dtype=np.int64, count=self.n_gates)

    @cached_property
    def levels(self) -> np.ndarray:
        """Level of each node (inputs 0); gates of one level can be evaluated together."""
        level = np.zeros(self.n_nodes, dtype=np.int64)
        n = self.n_inputs
        for t, g in enumerate(self.gates):
            level[n + t] = 0 if g.op in CONST_OPS else 1 + max(level[g.a], level[g.b])
        return level

    def gate_type_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for g in self.gates:
            counts[g.op] = counts.get(g.op, 0) + 1
        return counts

    def to_dict(self) -> dict:
        """Plain JSON, as a compiled Theorem 3.3 checkpoint stores the circuit it holds."""
        return {"name": self.name, "inputs": list(self.input_names),
                "gates": [[g.op, g.a, g.b, g.name, g.origin, g.used] for g in self.gates],
                "outputs": [[name, node] for name, node in zip(self.output_names, self.outputs)]}

    @classmethod
    def from_dict(cls, doc) -> "NormCircuit":
        """The inverse of ``to_dict``; anything else (a file edited by hand) is a ParameterError naming the part."""
        from grammar.errors import ParameterError

        try:
            inputs = tuple(str(x) for x in doc["inputs"])
            gates = []
            for t, (op, a, b, name, origin, used) in enumerate(doc["gates"]):
                node = len(inputs) + t
                if op not in GATE_OPS or not all(isinstance(x, int) and 0 <= x < max(node, 1) for x in (a, b)):
                    raise ParameterError(f"gate {t} ({op!r} of {a!r}, {b!r}) is not a two-input gate over "
                                         f"earlier nodes")
                gates.append(NormGate(op, a, b, str(name), str(origin), bool(used)))
            outputs = [(str(name), node) for name, node in doc["outputs"]]
            if not all(isinstance(node, int) and 0 <= node < len(inputs) + len(gates) for _, node in outputs):
                raise ParameterError("an output names a node the circuit does not have")
            return cls(str(doc["name"]), inputs, tuple(gates), tuple(n for _, n in outputs),
                       tuple(name for name, _ in outputs))
        except ParameterError:
            raise
        except (KeyError, TypeError, ValueError) as err:  # a missing key, or a gate that is not a list of six
            raise ParameterError(f"the stored circuit is malformed ({type(err).__name__}: {err})") from None


# ---- specs -------------------------------------------------------------------------------------------------

Value = int | float | str


@dataclass(frozen=True)
class Precision:
    """The finite-precision format F(ebits, sbits); sbits counts the hidden bit, as Z3's FPSort does."""

    ebits: int
    sbits: int


@dataclass(frozen=True)
class Task:
    kind: str  # cvp | s5 | modadd | isq
    params: tuple[tuple[str, Value], ...] = ()

    def get(self, key: str, default: Value | None = None) -> Value | None:
        return dict(self.params).get(key, default)


@dataclass(frozen=True)
class Construction:
    mode: Mode
    precision: Precision
    key_scale: float | None  # None: the provable default chosen by the construction
    max_gates: int


@dataclass(frozen=True)
class Claim:
    lemma: str
    params: tuple[tuple[str, Value], ...] = ()

    def get(self, key: str, default: Value | None = None) -> Value | None:
        return dict(self.params).get(key, default)


@dataclass(frozen=True)
class RandomCheck:
    instances: int
    seed: int
    max_gates: int = 32  # CVP: random circuits have at most this many gates (and at most the model's max_gates)


@dataclass(frozen=True)
class Spec:
    name: str
    path: str
    construction: Construction
    claims: tuple[Claim, ...]
    random: RandomCheck
    circuit: Circuit | None = None
    task: Task | None = None
    parameters: tuple[tuple[str, Value], ...] = field(default=(), compare=False)
