"""AIGER 1.9, combinational only: ASCII (``.aag``) and binary (``.aig``), read and written.

Both readers decode their syntax into the same lists (inputs, ANDs, outputs, symbols, each with where it stands:
line:column in ASCII, a byte offset in binary) and share one assembly into a ``Circuit``: every AND becomes an AND
gate, every complemented literal one shared NOT gate, and every output a gate named after the output (BUF, NOT or
a constant), so outputs keep their symbol-table names and inputs theirs. Writing lowers any circuit to
AND-inverter form once and prints it in either syntax.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lark import Token

from grammar.check import check_circuit
from grammar.errors import InputError, SourceLoc
from grammar.ir import Circuit, Gate, build, fresh_name
from grammar.lark_errors import grammar_parser, parse_located


def parse_aag(text: str, path: str = "<aag>") -> Circuit:
    if text.startswith("aig "):
        raise InputError("this is binary AIGER ('aig'), read here as ASCII AIGER", SourceLoc(path, 1, 1),
                         text="aig", expected="'aag', or a .aig file (or --format aig) for binary AIGER")
    tree = parse_located(grammar_parser("aag.lark"), text if text.endswith("\n") else text + "\n", path)
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

    syms = []
    for sym in symbols:
        kind, idx_text = sym[0], sym[1:].split(None, 1)[0]
        syms.append((kind, int(idx_text), sym[1 + len(idx_text):].strip(), str(sym), at(sym)))
    return _assemble(path, n_in, n_out, [(v, var_loc[v]) for v in in_vars], ands,
                     [(int(row[0]), at(row[0])) for row in out_rows], syms)


def _assemble(path: str, n_in: int, n_out: int, inputs: list[tuple[int, SourceLoc]],
              ands: list[tuple[int, int, int, SourceLoc]], outs: list[tuple[int, SourceLoc]],
              symbols: list[tuple[str, int, str, str, SourceLoc]]) -> Circuit:
    """Decoded AIGER (input variables, ANDs as (lhs, rhs0, rhs1), output literals, symbols as (kind, index, name,
    the line as written)) -> a checked Circuit. Literal ranges and definitions are already checked."""
    in_vars = [v for v, _ in inputs]
    var_loc = dict(inputs)
    var_name: dict[int, str] = {v: "" for v in in_vars} | {lhs // 2: "" for lhs, *_ in ands}
    in_names = [f"i{k}" for k in range(n_in)]
    out_names = [f"o{k}" for k in range(n_out)]
    for kind, idx, name, text, loc in symbols:
        table, count = {"i": (in_names, n_in), "o": (out_names, n_out)}.get(kind, (None, 0))
        if table is None:
            raise InputError(f"symbol for a latch or bad state: {text!r}", loc, text=text,
                             expected="'iK name' or 'oK name'")
        if idx >= count or not name:
            raise InputError(f"bad symbol line {text!r}", loc, text=text,
                             expected=f"an index below {count} followed by a name")
        table[idx] = name

    taken: set[str] = set()
    for k, v in enumerate(in_vars):
        var_name[v] = fresh_name(in_names[k], taken)
    reserved_outputs = set(out_names)
    for lhs, *_ in ands:
        var_name[lhs // 2] = fresh_name(f"n{lhs // 2}", taken, reserved_outputs)

    gates: list[Gate] = []
    negated: dict[int, str] = {}
    const: dict[int, str] = {}

    def signal(lit: int, loc: SourceLoc) -> str:
        var = lit // 2
        if var == 0:
            if lit not in const:
                const[lit] = fresh_name(f"const{lit}", taken, reserved_outputs)
                gates.append(Gate(const[lit], "CONST1" if lit else "CONST0", (), loc))
            return const[lit]
        if var not in var_name:
            raise InputError(f"literal {lit} refers to undefined variable {var}", loc, text=str(lit),
                             expected="a literal of an input or an AND gate")
        if lit % 2 == 0:
            return var_name[var]
        if var not in negated:
            negated[var] = fresh_name(f"{var_name[var]}_n", taken, reserved_outputs)
            gates.append(Gate(negated[var], "NOT", (var_name[var],), loc))
        return negated[var]

    for lhs, r0, r1, loc in ands:
        gates.append(Gate(var_name[lhs // 2], "AND", (signal(r0, loc), signal(r1, loc)), loc))
    outputs: list[str] = []
    out_locs: list[SourceLoc] = []
    for k, (lit, loc) in enumerate(outs):
        src = signal(lit & ~1, loc) if lit // 2 else None
        if lit % 2 == 0 and src == out_names[k]:  # the output is a named signal itself: no buffer needed
            outputs.append(src)
            out_locs.append(loc)
            continue
        name = fresh_name(out_names[k], taken)
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


def parse_aig(data: bytes, path: str = "<aig>") -> Circuit:
    """Binary AIGER: inputs are implicit, ANDs are delta-coded varints, errors name the byte offset."""
    at = lambda offset: SourceLoc(path, byte=offset)  # noqa: E731
    end = data.find(b"\n")
    header = data[:end if end >= 0 else len(data)].decode("ascii", "replace").split()
    if end < 0 or len(header) not in (6, 10) or header[0] != "aig" or not all(f.isdigit() for f in header[1:]):
        raise InputError("bad binary AIGER header", at(0), text=" ".join(header)[:60],
                         expected="'aig M I L O A' on the first line")
    m, n_in, n_latch, n_out, n_and, *extra = (int(f) for f in header[1:])
    if any(extra):
        raise InputError("AIGER 1.9 bad-state, constraint, justice and fairness sections are not supported", at(0),
                         text=" ".join(header), expected="'aig M I L O A'")
    if n_latch:
        raise InputError("latches are not supported: only combinational AIGER is", at(0), text=" ".join(header),
                         expected="L = 0 in the header")
    if m != n_in + n_and:
        raise InputError(f"bad AIGER header: M={m} differs from I+L+A={n_in + n_and}, as binary AIGER requires",
                         at(0), text=" ".join(header), expected="M = I + L + A")
    pos = end + 1

    def line(required: bool) -> tuple[str, int]:
        """The next line and where it starts; a last line without its newline is an error where one is required
        (the output lines) and the end of the file elsewhere (the symbol table)."""
        nonlocal pos
        stop = data.find(b"\n", pos)
        if stop < 0:
            if required:
                raise InputError("unexpected end of file in the output lines", at(len(data)),
                                 expected=f"{n_out} output literals, one per line")
            stop = len(data)
        text, start, pos = data[pos:stop].decode("ascii", "replace").strip(), pos, stop + 1
        return text, start

    outs = []
    for _ in range(n_out):
        text, start = line(required=True)
        if not text.isdigit():
            raise InputError("an output line must hold one literal", at(start), text=text, expected="a number")
        lit = int(text)
        if lit > 2 * m + 1:
            raise InputError(f"literal {lit} exceeds 2*M+1 = {2 * m + 1}", at(start), text=text,
                             expected=f"a literal between 0 and {2 * m + 1}")
        outs.append((lit, at(start)))

    def varint() -> int:
        nonlocal pos
        value, shift, start = 0, 0, pos
        while True:
            if pos >= len(data):
                raise InputError("truncated binary AIGER: the AND section ends inside a number", at(start),
                                 expected=f"{n_and} AND gates")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    ands = []
    for i in range(n_and):
        lhs, start = 2 * (n_in + i + 1), pos
        d0 = varint()
        d1 = varint()
        r0, r1 = lhs - d0, lhs - d0 - d1
        if d0 == 0 or r1 < 0:
            raise InputError(f"AND gate {i} (literal {lhs}) has an input literal out of range ({r0}, {r1})",
                             at(start), expected="input literals below the gate's own")
        ands.append((lhs, r0, r1, at(start)))
    symbols = []
    while pos < len(data):
        text, start = line(required=False)
        if text == "c" or text.startswith("c "):
            break
        kind, _, rest = text.partition(" ")
        if not kind[1:].isdigit():
            raise InputError(f"bad symbol line {text!r}", at(start), text=text,
                             expected="'iK name', 'oK name' or 'c' before a comment")
        symbols.append((kind[0], int(kind[1:]), rest.strip(), text, at(start)))
    inputs = [(k + 1, at(0)) for k in range(n_in)]
    return _assemble(path, n_in, n_out, inputs, ands, outs, symbols)


@dataclass(frozen=True)
class _AigForm:
    """A circuit in AND-inverter form, numbered as binary AIGER requires (inputs 1..I, then ANDs in order)."""

    name: str
    n_inputs: int
    outputs: tuple[int, ...]  # literals
    ands: tuple[tuple[int, int, int], ...]  # (lhs, rhs0, rhs1), rhs0 >= rhs1, lhs > rhs0
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    @property
    def max_var(self) -> int:
        return self.n_inputs + len(self.ands)


def _lower(circuit: Circuit) -> _AigForm:
    from grammar.normalize import normalize

    nc = normalize(circuit)
    lit: list[int] = [2 * (i + 1) for i in range(nc.n_inputs)]
    ands: list[tuple[int, int, int]] = []
    next_var = nc.n_inputs + 1

    def new_and(x: int, y: int) -> int:
        nonlocal next_var
        out = 2 * next_var
        next_var += 1
        ands.append((out, max(x, y), min(x, y)))
        return out

    def or_(x: int, y: int) -> int:
        return new_and(x ^ 1, y ^ 1) ^ 1

    for g in nc.gates:
        a, b = lit[g.a] if lit else 0, lit[g.b] if lit else 0
        lit.append(build(g.op, a, b, AND=new_and, OR=or_, NOT=lambda x: x ^ 1, const=int))
    return _AigForm(circuit.name, nc.n_inputs, tuple(lit[o] for o in nc.outputs), tuple(ands), nc.input_names,
                    nc.output_names)


def _symbols(form: _AigForm) -> list[str]:
    return ([f"i{k} {name}" for k, name in enumerate(form.input_names)]
            + [f"o{k} {name}" for k, name in enumerate(form.output_names)]
            + ["c", f"{form.name} written by cotproof"])


def write_aag(circuit: Circuit) -> str:
    """Lower to AND-inverter form. Input and output names survive in the symbol table."""
    form = _lower(circuit)
    lines = [f"aag {form.max_var} {form.n_inputs} 0 {len(form.outputs)} {len(form.ands)}"]
    lines += [str(2 * (i + 1)) for i in range(form.n_inputs)]
    lines += [str(o) for o in form.outputs]
    lines += [f"{o} {x} {y}" for o, x, y in form.ands]
    return "\n".join(lines + _symbols(form)) + "\n"


def write_aig(circuit: Circuit) -> bytes:
    """Binary AIGER of the same AND-inverter form as ``write_aag``."""
    form = _lower(circuit)
    out = bytearray(f"aig {form.max_var} {form.n_inputs} 0 {len(form.outputs)} {len(form.ands)}\n".encode())
    out += "".join(f"{o}\n" for o in form.outputs).encode()
    for lhs, r0, r1 in form.ands:
        for delta in (lhs - r0, r0 - r1):
            while delta >= 0x80:
                out.append((delta & 0x7F) | 0x80)
                delta >>= 7
            out.append(delta)
    out += ("\n".join(_symbols(form)) + "\n").encode()
    return bytes(out)
