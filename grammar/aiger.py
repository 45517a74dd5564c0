"""ASCII AIGER (``.aag``), combinational only.

Reading maps every AND to an AND gate, every complemented literal to one shared NOT gate, and every output to a
gate named after the output (BUF, NOT, or a constant), so outputs keep their symbol-table names. Writing lowers any
normalised circuit to AND-inverter form.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from lark import Lark, Token
from lark.exceptions import UnexpectedInput

from grammar.check import check_circuit
from grammar.errors import InputError, SourceLoc
from grammar.ir import Circuit, Gate
from grammar.lark_errors import from_lark


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark.open(str(Path(__file__).with_name("aag.lark")), parser="lalr", maybe_placeholders=False)


def _unique(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "'"
    taken.add(name)
    return name


def parse_aag(text: str, path: str = "<aag>") -> Circuit:
    if text.startswith("aig "):
        raise InputError("binary AIGER is not supported yet; only ASCII 'aag' files are", SourceLoc(path, 1, 1),
                         text="aig", expected="'aag'")
    try:
        tree = _parser().parse(text if text.endswith("\n") else text + "\n")
    except UnexpectedInput as err:
        raise from_lark(err, path, text) from None
    header, *rest = tree.children
    head_toks: list[Token] = header.children[1:]
    m, n_in, n_latch, n_out, n_and, *extra = (int(t) for t in head_toks)
    at = lambda tok: SourceLoc(path, tok.line, tok.column)  # noqa: E731
    if any(extra):
        raise InputError("AIGER 1.9 bad-state, constraint, justice and fairness sections are not supported",
                         at(head_toks[5]), text=" ".join(map(str, head_toks)), expected="'aag M I L O A'")
    if m < n_in + n_latch + n_and:
        raise InputError(f"bad AIGER header: M={m} is smaller than I+L+A={n_in + n_latch + n_and}", at(head_toks[0]),
                         text=str(m), expected="M >= I + L + A")
    rows = [[t for t in r.children] for r in rest if getattr(r, "data", None) == "numbers"]
    symbols = [t for t in rest if isinstance(t, Token) and t.type == "SYMBOL"]
    expected_rows = n_in + n_latch + n_out + n_and
    if len(rows) > expected_rows:
        tok = rows[expected_rows][0]
        raise InputError(f"line is not part of the format: the header declares {expected_rows} literal lines",
                         at(tok), text=" ".join(rows[expected_rows]), expected="a symbol line, 'c', or end of file")
    if len(rows) < expected_rows:
        lines = text.splitlines()
        raise InputError(f"the header declares {expected_rows} literal lines but the file has {len(rows)}",
                         SourceLoc(path, len(lines) + 1, 1), expected="more literal lines")
    if n_latch:
        tok = rows[n_in][0]
        raise InputError("latches are not supported: only combinational AIGER is", at(tok),
                         text=" ".join(rows[n_in]), expected="L = 0 in the header")

    def literal(tok: Token) -> int:
        lit = int(tok)
        if lit > 2 * m + 1:
            raise InputError(f"literal {lit} exceeds 2*M+1 = {2 * m + 1}", at(tok), text=str(tok),
                             expected=f"a literal between 0 and {2 * m + 1}")
        return lit

    def shape(row: list[Token], count: int, what: str) -> None:
        if len(row) != count:
            raise InputError(f"{what} line must have {count} literal{'s' if count > 1 else ''}", at(row[0]),
                             text=" ".join(row), expected=f"{count} numbers")

    in_rows = rows[:n_in]
    out_rows = rows[n_in:n_in + n_out]
    and_rows = rows[n_in + n_out:]
    var_name: dict[int, str] = {}
    var_loc: dict[int, SourceLoc] = {}
    for row in in_rows:
        shape(row, 1, "an input")
        lit = literal(row[0])
        if lit < 2 or lit % 2:
            raise InputError(f"input literal {lit} must be even and positive", at(row[0]), text=str(lit),
                             expected="an even literal >= 2")
        if lit // 2 in var_name:
            raise InputError(f"duplicate definition of variable {lit // 2}", at(row[0]), text=str(lit))
        var_name[lit // 2] = ""
        var_loc[lit // 2] = at(row[0])
    in_vars = [int(r[0]) // 2 for r in in_rows]
    ands: list[tuple[int, int, int, SourceLoc]] = []
    for row in and_rows:
        shape(row, 3, "an AND")
        lhs, r0, r1 = (literal(t) for t in row)
        if lhs < 2 or lhs % 2:
            raise InputError(f"AND output literal {lhs} must be even and positive", at(row[0]), text=str(lhs),
                             expected="an even literal >= 2")
        if lhs // 2 in var_name:
            raise InputError(f"duplicate definition of variable {lhs // 2} (first at {var_loc[lhs // 2]})",
                             at(row[0]), text=str(lhs))
        var_name[lhs // 2] = ""
        var_loc[lhs // 2] = at(row[0])
        ands.append((lhs, r0, r1, at(row[0])))
    for row in out_rows:
        shape(row, 1, "an output")
        literal(row[0])

    in_names = [f"i{k}" for k in range(n_in)]
    out_names = [f"o{k}" for k in range(n_out)]
    for sym in symbols:
        kind, idx_text = sym[0], sym[1:].split(None, 1)[0]
        name = sym[1 + len(idx_text):].strip()
        idx = int(idx_text)
        table, count = {"i": (in_names, n_in), "o": (out_names, n_out)}.get(kind, (None, 0))
        if table is None:
            raise InputError(f"symbol for a latch or bad state: {sym!r}", at(sym), text=str(sym),
                             expected="'iK name' or 'oK name'")
        if idx >= count or not name:
            raise InputError(f"bad symbol line {str(sym)!r}", at(sym), text=str(sym),
                             expected=f"an index below {count} followed by a name")
        table[idx] = name

    taken: set[str] = set()
    for k, v in enumerate(in_vars):
        var_name[v] = _unique(in_names[k], taken)
    reserved_outputs = set(out_names)
    for lhs, *_ in ands:
        var_name[lhs // 2] = _unique(f"n{lhs // 2}", taken | reserved_outputs)
        taken.add(var_name[lhs // 2])

    gates: list[Gate] = []
    negated: dict[int, str] = {}
    const: dict[int, str] = {}

    def signal(lit: int, loc: SourceLoc) -> str:
        var = lit // 2
        if var == 0:
            if lit not in const:
                const[lit] = _unique(f"const{lit}", taken | reserved_outputs)
                taken.add(const[lit])
                gates.append(Gate(const[lit], "CONST1" if lit else "CONST0", (), loc))
            return const[lit]
        if var not in var_name:
            raise InputError(f"literal {lit} refers to undefined variable {var}", loc, text=str(lit),
                             expected="a literal of an input or an AND gate")
        if lit % 2 == 0:
            return var_name[var]
        if var not in negated:
            negated[var] = _unique(f"{var_name[var]}_n", taken | reserved_outputs)
            taken.add(negated[var])
            gates.append(Gate(negated[var], "NOT", (var_name[var],), loc))
        return negated[var]

    for lhs, r0, r1, loc in ands:
        gates.append(Gate(var_name[lhs // 2], "AND", (signal(r0, loc), signal(r1, loc)), loc))
    outputs: list[str] = []
    out_locs: list[SourceLoc] = []
    for k, row in enumerate(out_rows):
        loc = at(row[0])
        lit = int(row[0])
        src = signal(lit & ~1, loc) if lit // 2 else None
        if lit % 2 == 0 and src == out_names[k]:  # the output is a named signal itself: no buffer needed
            outputs.append(src)
            out_locs.append(loc)
            continue
        name = _unique(out_names[k], taken)
        if lit // 2 == 0:
            gates.append(Gate(name, "CONST1" if lit else "CONST0", (), loc))
        else:
            gates.append(Gate(name, "NOT" if lit % 2 else "BUF", (src,), loc))
        outputs.append(name)
        out_locs.append(loc)
    circuit = Circuit(Path(path).stem, tuple(var_name[v] for v in in_vars), tuple(outputs), tuple(gates),
                      tuple(var_loc[v] for v in in_vars), tuple(out_locs))
    check_circuit(circuit, path)
    return circuit


def write_aag(circuit: Circuit) -> str:
    """Lower to AND-inverter form. Input and output names survive in the symbol table."""
    from grammar.normalize import normalize

    nc = normalize(circuit)
    lit: list[int] = [2 * (i + 1) for i in range(nc.n_inputs)]
    ands: list[tuple[int, int, int]] = []
    next_var = nc.n_inputs + 1

    def new_and(x: int, y: int) -> int:
        nonlocal next_var
        out = 2 * next_var
        next_var += 1
        ands.append((out, x, y))
        return out

    def or_(x: int, y: int) -> int:
        return new_and(x ^ 1, y ^ 1) ^ 1

    for g in nc.gates:
        a, b = lit[g.a] if lit else 0, lit[g.b] if lit else 0
        if g.op == "AND":
            v = new_and(a, b)
        elif g.op == "NAND":
            v = new_and(a, b) ^ 1
        elif g.op == "OR":
            v = or_(a, b)
        elif g.op == "NOR":
            v = or_(a, b) ^ 1
        elif g.op in ("XOR", "XNOR"):
            v = or_(new_and(a, b ^ 1), new_and(a ^ 1, b)) ^ (g.op == "XNOR")
        elif g.op == "NOT":
            v = a ^ 1
        elif g.op == "BUF":
            v = a
        else:
            v = 1 if g.op == "CONST1" else 0
        lit.append(v)
    m = next_var - 1
    lines = [f"aag {m} {nc.n_inputs} 0 {len(nc.outputs)} {len(ands)}"]
    lines += [str(2 * (i + 1)) for i in range(nc.n_inputs)]
    lines += [str(lit[o]) for o in nc.outputs]
    lines += [f"{o} {x} {y}" for o, x, y in ands]
    lines += [f"i{k} {name}" for k, name in enumerate(nc.input_names)]
    lines += [f"o{k} {name}" for k, name in enumerate(nc.output_names)]
    lines += ["c", f"{circuit.name} written by cotproof"]
    return "\n".join(lines) + "\n"
