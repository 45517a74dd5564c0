"""Netlist import and export: ISCAS ``.bench`` and ASCII AIGER ``.aag``, plus the shared semantic checks.

Both readers produce a ``Circuit`` (the user's view). ``check_circuit`` rejects undefined signals, duplicate
definitions, unknown gates, wrong arity and cycles, each with file:line:column, so no later stage sees a bad netlist.
"""
from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

from lark import Lark, Transformer, v_args
from lark.exceptions import UnexpectedInput

from grammar.errors import InputError, SourceLoc
from grammar.ir import GATE_OPS, Circuit, Gate, arity_ok, arity_words
from grammar.lark_errors import from_lark

OP_ALIASES = {"BUFF": "BUF"}


def read_text(path: str | os.PathLike) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read netlist: {getattr(err, 'strerror', None) or err}", SourceLoc(str(path))) from None


def load_netlist(path: str | os.PathLike) -> Circuit:
    """Read a ``.bench`` or ``.aag`` file by its extension."""
    path = str(path)
    suffix = Path(path).suffix.lower()
    if suffix == ".bench":
        return parse_bench(read_text(path), path)
    if suffix == ".aag":
        from grammar.aiger import parse_aag

        return parse_aag(read_text(path), path)
    if suffix == ".aig":
        raise InputError("binary AIGER (.aig) is not supported yet; convert it to ASCII with 'aigtoaig x.aig x.aag'",
                         SourceLoc(path))
    raise InputError(f"unknown netlist format {suffix or '(no extension)'!r}", SourceLoc(path),
                     expected="a .bench or .aag file")


# ---- .bench -------------------------------------------------------------------------------------------------

class _BenchStatements(Transformer):
    """Runs inside the LALR parser (no tree is built), which keeps 10^5-gate files fast. Stateless, so one parser
    instance serves every file; locations are attached afterwards from the tokens."""

    @v_args(inline=True)
    def input(self, _kw, _l, name, _r):
        return ("input", str(name), name.line, name.column, None, 0, ())

    @v_args(inline=True)
    def output(self, _kw, _l, name, _r):
        return ("output", str(name), name.line, name.column, None, 0, ())

    def gate(self, children):
        name, _eq, op = children[:3]
        args = children[4] if len(children) == 6 else ()
        return ("gate", str(name), name.line, name.column, str(op), op.column, args)

    def args(self, children):
        return tuple(str(c) for c in children if c.type == "NAME")

    def start(self, children):
        return children


@lru_cache(maxsize=None)
def _bench_parser(fast: bool) -> Lark:
    if fast:
        return Lark.open(str(Path(__file__).with_name("bench_fast.lark")), parser="lalr", lexer="basic",
                         maybe_placeholders=False)
    return Lark.open(str(Path(__file__).with_name("bench.lark")), parser="lalr", transformer=_BenchStatements(),
                     maybe_placeholders=False)


_IO = re.compile(r"(\w+)[ \t]*\([ \t]*([^\s(),=#]+)")
_GATE = re.compile(r"([^\s(),=#]+)[ \t]*=[ \t]*([^\s(),=#]+)[ \t]*\(([^()]*)\)")


def _fast_statements(text: str) -> list:
    """Statements as (kind, name, line, column, op, op_column, args), the shape the fine grammar yields too."""
    # start: (IO_DECL | GATE | _NL)* accepts every sequence of its tokens, so lexing alone decides the language and
    # the LALR parser (a third of the time on 10^5 gates) is skipped; a character no token matches still raises.
    out = []
    for tok in _bench_parser(True).lex(text):
        if tok.type == "_NL":
            continue
        if tok.type == "IO_DECL":
            kw, name = _IO.match(tok).groups()
            out.append((kw.lower(), name, tok.line, tok.column + tok.index(name, len(kw)), None, 0, ()))
        else:
            name, op, args = _GATE.match(tok).groups()
            arg_names = tuple(a.strip() for a in args.split(",")) if args.strip() else ()
            out.append(("gate", name, tok.line, tok.column, op, tok.column + tok.index(op, len(name) + 1),
                        arg_names))
    return out


def parse_bench(text: str, path: str = "<bench>") -> Circuit:
    text = text if text.endswith("\n") else text + "\n"
    try:
        statements = _fast_statements(text)
    except UnexpectedInput:
        try:  # the fine-grained grammar pinpoints the error; it accepts exactly the same language
            statements = _bench_parser(False).parse(text)
        except UnexpectedInput as err:
            raise from_lark(err, path, text) from None
    inputs, outputs, input_locs, output_locs, gates = [], [], [], [], []
    op_cache: dict[str, str] = {}
    for kind, name, line, column, op_text, op_column, args in statements:
        loc = SourceLoc(path, line, column)
        if kind == "input":
            inputs.append(name)
            input_locs.append(loc)
        elif kind == "output":
            outputs.append(name)
            output_locs.append(loc)
        else:
            op = op_cache.get(op_text)
            if op is None:
                op = OP_ALIASES.get(op_text.upper(), op_text.upper())
                if op not in GATE_OPS:
                    raise InputError(f"unknown gate type {op_text!r}", SourceLoc(path, line, op_column),
                                     text=op_text, expected="one of " + ", ".join(GATE_OPS + tuple(OP_ALIASES)))
                op_cache[op_text] = op
            gates.append(Gate(name, op, args, loc))
    circuit = Circuit(Path(path).stem, tuple(inputs), tuple(outputs), tuple(gates), tuple(input_locs),
                      tuple(output_locs))
    check_circuit(circuit, path)
    return circuit


def write_bench(circuit: Circuit) -> str:
    lines = [f"# {circuit.name}: {len(circuit.inputs)} inputs, {len(circuit.outputs)} outputs, "
             f"{len(circuit.gates)} gates (written by cotproof)"]
    lines += [f"INPUT({name})" for name in circuit.inputs]
    lines += [f"OUTPUT({name})" for name in circuit.outputs]
    lines += [f"{g.name} = {g.op}({', '.join(g.inputs)})" for g in circuit.gates]
    return "\n".join(lines) + "\n"


# ---- semantic checks ------------------------------------------------------------------------------------------

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
                raise InputError(f"undefined signal {arg!r} used by gate {g.name!r}", loc_or_file(g.loc), text=arg,
                                 expected="a signal declared as an input or defined by a gate")
    out_locs = circuit.output_locs or (None,) * len(circuit.outputs)
    for name, loc in zip(circuit.outputs, out_locs):
        if name not in defined:
            raise InputError(f"undefined output signal {name!r}", loc_or_file(loc), text=name,
                             expected="a signal declared as an input or defined by a gate")
    _check_acyclic(circuit, path)


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
