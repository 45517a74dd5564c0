"""ISCAS ``.bench`` netlists: a Lark grammar for errors, a lexer-only fast path for size, and a writer."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from lark import Lark, Transformer, v_args

from grammar.check import check_circuit
from grammar.errors import InputError, SourceLoc
from grammar.ir import GATE_OPS, Circuit, Gate
from grammar.lark_errors import grammar_parser, parse_located

OP_ALIASES = {"BUFF": "BUF"}

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
        return grammar_parser("bench_fast.lark", lexer="basic")
    return grammar_parser("bench.lark", transformer=_BenchStatements())


_IO = re.compile(r"(\w+)[ \t]*\([ \t]*([^\s(),=#]+)")
_GATE = re.compile(r"([^\s(),=#]+)[ \t]*=[ \t]*([^\s(),=#]+)[ \t]*\(([^()]*)\)")


@lru_cache(maxsize=None)
def _fast_scanner() -> re.Pattern:
    """bench_fast.lark's terminals as one Python regex, a named group each, in the grammar's order: they never
    overlap (a statement token needs a name first, a comment '#', the rest whitespace or a newline), so the first
    alternative that matches is the one Lark's lexer takes, at about a tenth of its cost per token."""
    terminals = _bench_parser(True).terminals
    return re.compile("|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in terminals))


STATEMENT_TOKENS = ("IO_DECL", "GATE")  # bench_fast.lark's tokens that are statements (the rest: layout)


def statement(kind: str, tok: str, line: int, column: int) -> tuple:
    """One IO_DECL or GATE token of bench_fast.lark at (line, column) as (kind, name, line, column, op, op_column,
    args), the shape the fine grammar yields too."""
    if kind == "IO_DECL":
        kw, name = _IO.match(tok).groups()
        return kw.lower(), name, line, column + tok.index(name, len(kw)), None, 0, ()
    name, op, args = _GATE.match(tok).groups()
    arg_names = tuple(a.strip() for a in args.split(",")) if args.strip() else ()
    return "gate", name, line, column, op, column + tok.index(op, len(name) + 1), arg_names


class _Unlexable(Exception):
    """A character no token of bench_fast.lark matches: the fine grammar says where, and what was expected."""


def _fast_statements(text: str) -> list:
    """Statements as (kind, name, line, column, op, op_column, args), the shape the fine grammar yields too."""
    # start: (IO_DECL | GATE | _NL)* accepts every sequence of its tokens, so lexing alone decides the language and
    # the LALR parser (a third of the time on 10^5 gates) is skipped; a character no token matches still raises.
    out = []
    line, line_start, pos = 1, 0, 0
    for m in _fast_scanner().finditer(text):
        if m.start() != pos:
            raise _Unlexable
        pos = m.end()
        kind, tok = m.lastgroup, m.group()
        if kind in STATEMENT_TOKENS:
            out.append(statement(kind, tok, line, m.start() - line_start + 1))
        if tok.endswith("\n"):
            line, line_start = line + 1, pos
    if pos != len(text):
        raise _Unlexable
    return out


def parse_bench(text: str, path: str = "<bench>") -> Circuit:
    text = text if text.endswith("\n") else text + "\n"
    try:
        statements = _fast_statements(text)
    except _Unlexable:
        # the fine-grained grammar pinpoints the error; it accepts exactly the same language
        statements = parse_located(_bench_parser(False), text, path)
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
