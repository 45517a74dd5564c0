"""The semantic checks every netlist reader shares: undefined signals, duplicate definitions, unknown gates, wrong
arity and cycles are each rejected with file:line:column, so no later stage sees a bad netlist."""
from __future__ import annotations

from grammar.errors import InputError, SourceLoc
from grammar.ir import Circuit, Gate, arity_ok, arity_words


def checked_circuit(name: str, inputs: list[tuple[str, SourceLoc]], outputs: list[tuple[str, SourceLoc]],
                    gates: list[Gate], path: str) -> Circuit:
    """A reader's ports (each with where it was declared) and gates as a Circuit, checked."""
    circuit = Circuit(name, tuple(n for n, _ in inputs), tuple(n for n, _ in outputs), tuple(gates),
                      tuple(loc for _, loc in inputs), tuple(loc for _, loc in outputs))
    check_circuit(circuit, path)
    return circuit


def check_circuit(circuit: Circuit, path: str) -> None:
    """Reject anything later stages could not handle, pointing at the offending line."""
    loc_or_file = lambda loc: loc or SourceLoc(path)  # noqa: E731
    defined: dict[str, SourceLoc | None] = {}
    in_locs = circuit.input_locs or (None,) * len(circuit.inputs)
    for name, loc in zip(circuit.inputs, in_locs):
        if name in defined:
            raise InputError(f"duplicate definition of {name!r} (first defined at {defined[name] or path})",
                             loc_or_file(loc), text=name)
        defined[name] = loc
    for g in circuit.gates:
        if g.name in defined:
            raise InputError(f"duplicate definition of {g.name!r} (first defined at {defined[g.name] or path})",
                             loc_or_file(g.loc), text=g.name)
        defined[g.name] = g.loc
        if not arity_ok(g.op, len(g.inputs)):
            raise InputError(f"gate {g.name!r}: {g.op} takes {arity_words(g.op)}, got {len(g.inputs)}",
                             loc_or_file(g.loc), text=f"{g.op}({', '.join(g.inputs)})",
                             expected=f"{g.op} with {arity_words(g.op)}")
    for g in circuit.gates:
        for arg in g.inputs:
            if arg not in defined:
                raise InputError(f"undefined signal {arg!r} used by gate {g.origin or g.name!r}", loc_or_file(g.loc),
                                 text=arg,
                                 expected="a signal declared as an input or defined by a gate")
    out_locs = circuit.output_locs or (None,) * len(circuit.outputs)
    for name, loc in zip(circuit.outputs, out_locs):
        if name not in defined:
            raise InputError(f"undefined output signal {name!r}", loc_or_file(loc), text=name,
                             expected="a signal declared as an input or defined by a gate")
    if not in_definition_order(circuit):  # a circuit in order cannot have a cycle: no search needed
        _check_acyclic(circuit, path)


def in_definition_order(circuit: Circuit) -> bool:
    """Does every gate read only inputs and gates defined before it? True for what most tools write (AIGER
    requires it), which lets the checks and normalisation skip their graph searches."""
    seen = set(circuit.inputs)
    for g in circuit.gates:
        for arg in g.inputs:
            if arg not in seen:
                return False
        seen.add(g.name)
    return True


def _check_acyclic(circuit: Circuit, path: str) -> None:
    by_name = {g.name: g for g in circuit.gates}
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    for root in circuit.gates:
        if state.get(root.name):
            continue
        stack = [(root.name, 0)]
        state[root.name] = 1
        while stack:
            name, i = stack[-1]
            args = by_name[name].inputs
            if i == len(args):
                state[name] = 2
                stack.pop()
                continue
            stack[-1] = (name, i + 1)
            nxt = args[i]
            if nxt not in by_name:
                continue
            if state.get(nxt) == 1:
                names = [n for n, _ in stack]
                cycle = names[names.index(nxt):] + [nxt]
                g = by_name[nxt]
                raise InputError("combinational cycle: " + " -> ".join(cycle), g.loc or SourceLoc(path), text=nxt,
                                 expected="an acyclic netlist")
            if not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, 0))
