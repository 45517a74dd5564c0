"""Structural Verilog (``.v``): one module of continuous assignments, read with a Lark grammar into the IR.

Each ``assign lhs = expr`` becomes the gate ``lhs`` (its top operator; a bare signal is a BUF) and a helper gate
``lhs~k`` for every inner operator, with ``origin = lhs``. Chains of one operator (``a & b & c``) become one n-ary
gate. Escaped identifiers (``\\a[0] ``) are named without the backslash, as other tools name them.
"""
from __future__ import annotations

from lark import Token, v_args

from grammar.check import checked_circuit
from grammar.ir import Circuit, Gate, fresh_name
from grammar.lark_errors import SourceTransformer, grammar_parser, parse_located


def _name(tok: Token) -> str:
    return str(tok)[1:] if tok.startswith("\\") else str(tok)


class _Module(SourceTransformer):
    """Expressions become ('ref', name) | ('const', 0|1) | (op, [operands]); declarations lists of names."""

    def name_list(self, children):
        return [(_name(t), self.at(t)) for t in children]

    port_list = name_list

    @v_args(inline=True)
    def ref(self, tok):
        return ("ref", _name(tok))

    @v_args(inline=True)
    def const(self, tok):
        return ("const", int(str(tok)[-1]))

    @v_args(inline=True)
    def not_op(self, x):
        return ("NOT", [x])

    def _binary(op):  # noqa: N805
        @v_args(inline=True)
        def build(self, a, b):
            if a[0] == op:  # a & b & c -> one AND of three; appended in place, so n terms cost O(n), not O(n^2)
                a[1].append(b)
                return a
            return (op, [a, b])
        return build

    and_op, or_op, xor_op = _binary("AND"), _binary("OR"), _binary("XOR")

    def input_decl(self, children):
        return ("input", children[0])

    def output_decl(self, children):
        return ("output", children[0])

    def wire_decl(self, children):
        return ("wire", children[0])

    @v_args(inline=True)
    def assign(self, lhs, expr):
        return ("assign", (_name(lhs), self.at(lhs), expr))

    def module(self, children):
        return str(children[0]).lstrip("\\"), [c for c in children[1:] if isinstance(c, tuple)]

    def start(self, children):
        return children[0]


def parse_verilog(text: str, path: str = "<verilog>") -> Circuit:
    tree = parse_located(grammar_parser("verilog.lark"), text, path)
    name, items = _Module(path).run(tree)
    declared: dict[str, list] = {"input": [], "output": [], "assign": []}  # other items (wires) declare nothing
    for kind, value in items:
        if kind in declared:
            declared[kind] += [value] if kind == "assign" else value
    inputs, outputs, assigns = declared["input"], declared["output"], declared["assign"]
    gates = _lower(assigns, {n for n, _ in inputs} | {lhs for lhs, _, _ in assigns})
    return checked_circuit(name, inputs, outputs, gates, path)


def _lower(assigns, taken: set[str]) -> list[Gate]:
    gates: list[Gate] = []
    for lhs, loc, expr in assigns:
        gates += _lower_assign(lhs, loc, expr, taken)
    return gates


def _lower_assign(lhs: str, loc, expr, taken: set[str]) -> list[Gate]:
    """The gates for ``assign lhs = expr``: the top one named ``lhs``, helpers ``lhs~k``. Operands come before the
    gates that read them; the walk uses an explicit stack, so nesting depth costs memory, never Python's recursion
    limit."""
    gates: list[Gate] = []
    count = 0

    def fresh() -> str:
        nonlocal count
        count += 1
        return fresh_name(f"{lhs}~{count}", taken)

    def gate(target: str, op: str, operands: tuple) -> Gate:
        return Gate(target, op, operands, loc, None if target == lhs else lhs)

    stack = [(expr, lhs, False)]
    signals: list[str] = []  # the signal carrying each finished sub-expression, in post-order
    while stack:
        (kind, arg), target, expanded = stack.pop()
        if kind == "ref" and target is None:  # an existing signal: no gate
            signals.append(arg)
        elif kind in ("ref", "const"):
            target = target or fresh()
            gates.append(gate(target, "BUF", (arg,)) if kind == "ref" else
                         gate(target, "CONST1" if arg else "CONST0", ()))
            signals.append(target)
        elif not expanded:
            stack.append(((kind, arg), target or fresh(), True))
            stack.extend((x, None, False) for x in reversed(arg))
        else:
            operands = tuple(signals[len(signals) - len(arg):])
            del signals[len(signals) - len(arg):]
            gates.append(gate(target, kind, operands))
            signals.append(target)
    return gates
