"""BLIF (``.blif``), combinational: read with a Lark grammar, each cover lowered to the IR's gates; and written.

A ``.names in_1 .. in_n out`` cover is a sum of products over its rows, on-set (output column 1) or off-set (0).
Lowering keeps the user's signal as the gate ``out``, and names every helper ``out~n<i>`` (an inverted input) or
``out~r<k>`` (a row's product) with ``origin = out``, so reports speak of the user's signals:
- on-set rows r_1..r_m: out = OR(r_1, .., r_m); off-set: out = NOR(..); one row: BUF or NOT of it;
- a row is the AND of its literals ('1' the input, '0' its inverse, '-' absent); an all-'-' row is constant true;
- no rows: constant 0; an empty cube (``.names out`` then ``1``): constant 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lark import Token, v_args

from grammar.check import checked_circuit
from grammar.errors import InputError, SourceLoc
from grammar.ir import CONST_OPS, TRUTH_TABLES, UNARY_OPS, Circuit, Gate, NormCircuit, fresh_name
from grammar.lark_errors import SourceTransformer, grammar_parser, parse_located

UNSUPPORTED = {".latch": "latches are not supported: only combinational BLIF is",
               ".subckt": "hierarchical BLIF (.subckt) is not supported: flatten the design first",
               ".gate": "library gates (.gate) are not supported: only .names covers are"}


@dataclass(frozen=True)
class _Cover:
    inputs: tuple[str, ...]
    output: str
    rows: tuple[tuple[str, str, SourceLoc], ...]  # (cube, output bit, where)
    loc: SourceLoc


class _Statements(SourceTransformer):


    @v_args(meta=True)
    def model(self, meta, children):
        return ("model", (str(children[0]) if children else None, self.at(meta)))

    def inputs(self, children):
        return ("inputs", [(str(t), self.at(t)) for t in children])

    def outputs(self, children):
        return ("outputs", [(str(t), self.at(t)) for t in children])

    def row(self, children):
        tokens = [str(t) for t in children]
        cube, bit = ("", tokens[0]) if len(tokens) == 1 else tokens
        if bit not in ("0", "1"):
            raise InputError(f"a cover row's output must be 0 or 1, not {bit!r}", self.at(children[-1]),
                             text=bit, expected="0 (off-set) or 1 (on-set)")
        return cube, bit, self.at(children[0])

    def names(self, children):
        signals = [t for t in children if isinstance(t, Token)]
        rows = tuple(c for c in children if isinstance(c, tuple))
        *ins, out = signals
        for cube, _, loc in rows:
            if len(cube) != len(ins):
                raise InputError(f"cover of {str(out)!r} has {len(ins)} inputs, but this row has {len(cube)} "
                                 f"columns", loc, text=cube, expected=f"{len(ins)} characters of 0, 1 or -")
        if len({bit for _, bit, _ in rows}) > 1:
            raise InputError(f"cover of {str(out)!r} mixes on-set (1) and off-set (0) rows", rows[-1][2],
                             expected="every row of a cover with the same output value")
        return ("names", _Cover(tuple(map(str, ins)), str(out), rows, self.at(out)))

    @v_args(meta=True)
    def end(self, meta, _children):
        return ("end", self.at(meta))

    @v_args(inline=True)
    def other(self, directive: Token, *_args):
        name = str(directive)
        message = UNSUPPORTED.get(name, f"the directive {name} is not supported")
        raise InputError(message, self.at(directive), text=name,
                         expected=".model, .inputs, .outputs, .names or .end")

    def start(self, children):
        return children


def parse_blif(text: str, path: str = "<blif>") -> Circuit:
    text = text if text.endswith("\n") else text + "\n"
    tree = parse_located(grammar_parser("blif.lark", propagate_positions=True), text, path)
    statements = _Statements(path).run(tree)
    name, inputs, outputs, covers, model_seen, end = Path(path).stem, [], [], [], False, None
    for kind, value in statements:
        if end is not None:  # nothing after .end is read, so nothing may stand there
            what = "a second .model" if kind == "model" else f"a .{kind} statement"
            raise InputError(f"{what} after .end (at {end}): only one flat model per file is supported",
                             _where(kind, value) or end, expected="the end of the file")
        if kind == "model":
            if model_seen:
                raise InputError("a second .model: only one flat model per file is supported", value[1],
                                 expected="one .model")
            model_seen, name = True, value[0] or name
        elif kind == "inputs":
            inputs += value
        elif kind == "outputs":
            outputs += value
        elif kind == "names":
            covers.append(value)
        else:
            end = value
    gates = _lower(covers, {n for n, _ in inputs} | {c.output for c in covers})
    return checked_circuit(name, inputs, outputs, gates, path)


def _where(kind: str, value) -> SourceLoc | None:
    """Where a statement stands, as the transformer recorded it."""
    if kind in ("model", "end"):
        return value[1]
    if kind == "names":
        return value.loc
    return value[0][1] if value else None


def _literals(out: str, inputs: tuple, loc, taken: set[str], gates: list[Gate]):
    """``literal(signal, positive)`` for one cover: the signal itself, or its inverter, made once per signal as a
    helper gate ``out~n<i>`` (appended to ``gates``) the first time a product needs it."""
    inverted: dict[str, str] = {}

    def literal(signal: str, positive: bool) -> str:
        if positive:
            return signal
        if signal not in inverted:
            inverted[signal] = fresh_name(f"{out}~n{inputs.index(signal)}", taken)
            gates.append(Gate(inverted[signal], "NOT", (signal,), loc, origin=out))
        return inverted[signal]

    return literal


def _lower(covers: list[_Cover], taken: set[str]) -> list[Gate]:
    gates: list[Gate] = []
    for c in covers:
        out, loc = c.output, c.loc
        on = not c.rows or c.rows[0][1] == "1"
        products = [[(c.inputs[i], ch == "1") for i, ch in enumerate(cube) if ch != "-"] for cube, _, _ in c.rows]
        if not products or any(not p for p in products):  # no rows, or a row that is always true
            value = bool(products) == on
            gates.append(Gate(out, "CONST1" if value else "CONST0", (), loc))
            continue
        if len(products) == 1 and len(products[0]) == 1:
            signal, positive = products[0][0]
            gates.append(Gate(out, "BUF" if positive == on else "NOT", (signal,), loc))
            continue
        literal = _literals(out, c.inputs, loc, taken, gates)

        if len(products) == 1:  # one product: the gate itself is its AND (on-set) or NAND (off-set)
            lits = tuple(literal(sig, positive) for sig, positive in products[0])
            gates.append(Gate(out, "AND" if on else "NAND", lits, loc))
            continue
        terms = []
        for k, product in enumerate(products):
            lits = [literal(s, p) for s, p in product]
            if len(lits) == 1:
                terms.append(lits[0])
            else:
                terms.append(fresh_name(f"{out}~r{k}", taken))
                gates.append(Gate(terms[-1], "AND", tuple(lits), loc, origin=out))
        gates.append(Gate(out, "OR" if on else "NOR", tuple(terms), loc))
    return gates


def cover(op: str) -> list[str]:
    """The op's single-output cover, its ON-set read off ``TRUTH_TABLES``: one row per input pair (per input value
    for a unary op) where it is 1; a constant is the empty cover (0) or the row "1"."""
    table = TRUTH_TABLES[op]
    if op in CONST_OPS:
        return ["1"] if table[0] else []
    if op in UNARY_OPS:
        return [f"{a} 1" for a in (0, 1) if table[2 * a]]
    return [f"{a}{b} 1" for a in (0, 1) for b in (0, 1) if table[2 * a + b]]


def write_blif(circuit: Circuit | NormCircuit) -> str:
    """One two-input cover per normalised gate; inputs and outputs keep their names."""
    from grammar.normalize import normalize

    nc = circuit if isinstance(circuit, NormCircuit) else normalize(circuit)
    names = list(nc.input_names) + [g.name for g in nc.gates]
    lines = [f"# {nc.name}: written by cotproof", f".model {nc.name}", ".inputs " + " ".join(nc.input_names),
             ".outputs " + " ".join(nc.output_names)]
    for g in nc.gates:
        fan_in = [] if g.op in CONST_OPS else [names[g.a]] if g.op in UNARY_OPS else [names[g.a], names[g.b]]
        lines.append(".names " + " ".join(fan_in + [g.name]))
        lines += cover(g.op)
    lines.append(".end")
    return "\n".join(lines) + "\n"
