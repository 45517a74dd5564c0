"""Parse spec files (``specs/*.lark``) into the ``Spec`` IR, with ``--override KEY=VALUE`` applied on the way.

Parsing is two steps so that overrides and file values share one validator: the Lark tree becomes a flat table of
parameters (``construction.key_scale`` -> value, with its source location), overrides replace entries in that
table, and only then is the table checked and turned into frozen dataclasses.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lark import Token, v_args

from grammar.check import checked_circuit
from grammar.errors import InputError, SourceLoc
from grammar.ir import (
    MODES,
    Circuit,
    Claim,
    Construction,
    Gate,
    Mode,
    Precision,
    RandomCheck,
    Spec,
    Task,
    Value,
)
from grammar.lark_errors import SourceTransformer, grammar_parser, parse_located

LEMMAS = ("retrieval", "gate_ffn", "readout", "composition", "end_to_end")
TASK_DEFAULTS: dict[str, dict[str, Value]] = {
    "cvp": {"gates": 16},
    "s5": {"length": 16},
    "modadd": {"length": 16, "modulus": 7},
    "isq": {"steps": 8, "min_prime": 2, "max_prime": 397},
}
CONSTRUCTION_DEFAULTS: dict[str, Value] = {"ebits": 5, "sbits": 11, "key_scale": "auto", "max_gates": 16}
CLAIM_PARAMS: dict[str, dict[str, Value]] = {
    "retrieval": {"unrolled_k": 4},
    "gate_ffn": {},
    "readout": {},
    "composition": {},
    "end_to_end": {"max_gates": 2, "max_inputs": 6},
}


def claim_param(claims: dict, lemma: str, key: str) -> int:
    """A claim's parameter as ``claims`` (lemma -> params) gives it, else its default here: the one place the
    defaults of ``CLAIM_PARAMS`` are read."""
    return int(claims.get(lemma, {}).get(key, CLAIM_PARAMS[lemma][key]))


# The random check cross-checks the lemmas on whole-model runs; the lemmas already cover every position, so its
# CVP circuits are sized by what they check (max_gates), not by the model's max_gates.
RANDOM_DEFAULTS: dict[str, Value] = {"instances": 100, "seed": 0, "max_gates": 32}
# Bare override keys are looked up in this order of sections.
BARE_KEY_SECTIONS = ("construction", "task", "random")


@dataclass(frozen=True)
class _Param:
    value: Value
    loc: SourceLoc


def _value(tok: Token) -> Value:
    if tok.type == "STRING":
        return tok[1:-1]
    if tok.type == "NUMBER":
        return parse_scalar(str(tok))
    return str(tok)


def parse_scalar(text: str) -> Value:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


@dataclass(frozen=True)
class _Section:
    """One top-level item of a spec: its kind, where it starts, its name token (task kind, lemma) and parameters."""

    kind: str  # task | construction | claims | prove | random | circuit
    loc: SourceLoc
    name: tuple[str, SourceLoc] | None = None
    params: tuple[tuple[str, SourceLoc, _Param], ...] = ()
    children: tuple["_Section", ...] = ()  # the claims of 'claims'
    circuit: Circuit | None = None


class _SpecTree(SourceTransformer):
    """The parse tree, bottom up, into ``_Section``s; keywords and punctuation never reach it."""

    def _named(self, tok: Token) -> tuple[str, SourceLoc]:
        return str(tok), self.at(tok)

    @v_args(inline=True)
    def param(self, name: Token, value: Token):
        return str(name), self.at(name), _Param(_value(value), self.at(value))

    def block(self, params):
        return tuple(params)

    def name_list(self, names):
        return [(str(t), self.at(t)) for t in names]

    def _named_section(self, kind: str, meta, children) -> "_Section":
        """``KIND NAME [{ params }]``: a task or a claimed lemma."""
        name, *block = children
        return _Section(kind, self.at(meta), self._named(name), block[0] if block else ())

    @v_args(meta=True)
    def task(self, meta, children):
        return self._named_section("task", meta, children)

    @v_args(meta=True)
    def prove(self, meta, children):
        return self._named_section("prove", meta, children)

    @v_args(meta=True, inline=True)
    def construction(self, meta, block):
        return _Section("construction", self.at(meta), None, block)

    @v_args(meta=True, inline=True)
    def random(self, meta, block):
        return _Section("random", self.at(meta), None, block)

    @v_args(meta=True)
    def claims(self, meta, children):
        return _Section("claims", self.at(meta), children=tuple(children))

    @v_args(meta=True, inline=True)
    def circuit_file(self, meta, name: Token, file_tok: Token):
        return _Section("circuit", self.at(meta), self._named(name), circuit=self._load(file_tok))

    def _load(self, tok: Token) -> Circuit:
        from grammar.netlist import load_netlist

        target = Path(self.path).parent / tok[1:-1]
        try:
            return load_netlist(target)
        except InputError as err:
            if err.loc is None or err.loc.line == 0:
                raise InputError(f"cannot load circuit {tok[1:-1]!r}: {err.message}", self.at(tok),
                                 text=tok[1:-1]) from None
            raise

    def inputs(self, children):
        return "inputs", children[0]

    def outputs(self, children):
        return "outputs", children[0]

    def gate(self, children):
        out_tok, op_tok, *args = children
        names = tuple(name for name, _ in args[0]) if args else ()
        return "gate", Gate(str(out_tok), str(op_tok).upper(), names, self.at(out_tok))

    @v_args(meta=True)
    def circuit_inline(self, meta, children):
        name, *stmts = children
        ports = {"inputs": [], "outputs": []}
        gates: list[Gate] = []
        for kind, item in stmts:
            if kind == "gate":
                gates.append(item)
            else:
                ports[kind].extend(item)
        circuit = checked_circuit(str(name), ports["inputs"], ports["outputs"], gates, self.path)
        return _Section("circuit", self.at(meta), self._named(name), circuit=circuit)

    def spec_header(self, children):
        return str(children[0])

    def start(self, children):
        return children[0], children[1:]


def parse_spec(path: str | os.PathLike, overrides: dict[str, str] | None = None, text: str | None = None) -> Spec:
    path = str(path)
    if text is None:
        from grammar.source import read_text

        text = read_text(path, "spec")
    tree = parse_located(grammar_parser("spec.lark", propagate_positions=True), text, path)
    name, sections = _SpecTree(path).run(tree)
    table, circuit, task_kind, lemmas = _collect(sections)
    for key, raw in (overrides or {}).items():
        _apply_override(table, key, raw, task_kind)
    return _build(path, name, table, circuit, task_kind, lemmas)


def default_claims() -> dict[str, dict[str, Value]]:
    """Every lemma with its default parameters: what a spec without a 'claims' section claims."""
    return {lemma: dict(CLAIM_PARAMS[lemma]) for lemma in LEMMAS}


def spec_for_circuit(circuit: Circuit, path: str, overrides: dict[str, str] | None = None) -> Spec:
    """The spec a bare netlist stands for: this module's defaults for everything (Theorem 3.3 mode, every lemma),
    with the same ``--override`` keys a spec file takes."""
    table: dict[str, _Param] = {}
    for key, raw in (overrides or {}).items():
        _apply_override(table, key, raw, None)
    return _build(path, circuit.name, table, circuit, None, [])


def _collect(sections: list[_Section]):
    """The sections as one flat parameter table, rejecting duplicates and unknown names where they stand."""
    table: dict[str, _Param] = {}
    seen_sections: dict[str, SourceLoc] = {}
    circuit: Circuit | None = None
    task_kind: str | None = None
    lemmas: list[tuple[str, SourceLoc]] = []

    def once(section: _Section) -> None:
        kind = section.kind
        if kind in seen_sections:
            raise InputError(f"duplicate '{kind}' section (first at {seen_sections[kind]})", section.loc, text=kind)
        seen_sections[kind] = section.loc

    def put(prefix: str, section: _Section, allowed: dict[str, Value]) -> None:
        for short, name_loc, param in section.params:
            if short not in allowed:
                raise InputError(f"unknown parameter '{short}'", name_loc, text=short,
                                 expected=_one_of(allowed) if allowed else "no parameters here")
            key = f"{prefix}.{short}"
            if key in table:
                raise InputError(f"duplicate parameter '{short}' (first at {table[key].loc})", name_loc, text=short)
            table[key] = param

    for section in sections:
        if section.kind == "task":
            once(section)
            task_kind, kind_loc = section.name
            if task_kind not in TASK_DEFAULTS:
                raise InputError(f"unknown task '{task_kind}'", kind_loc, text=task_kind,
                                 expected=_one_of(TASK_DEFAULTS))
            put("task", section, TASK_DEFAULTS[task_kind])
        elif section.kind == "construction":
            once(section)
            put("construction", section, {"mode": None, **CONSTRUCTION_DEFAULTS})
        elif section.kind == "claims":
            once(section)
            for claim in section.children:
                if claim.kind == "random":
                    once(claim)
                    put("random", claim, RANDOM_DEFAULTS)
                    continue
                lemma, lemma_loc = claim.name
                if lemma not in CLAIM_PARAMS:
                    raise InputError(f"unknown lemma '{lemma}'", lemma_loc, text=lemma, expected=_one_of(CLAIM_PARAMS))
                if any(lemma == seen for seen, _ in lemmas):
                    raise InputError(f"lemma '{lemma}' is claimed twice", lemma_loc, text=lemma)
                lemmas.append((lemma, lemma_loc))
                put(f"claims.{lemma}", claim, CLAIM_PARAMS[lemma])
        else:
            once(section)
            circuit = section.circuit
    return table, circuit, task_kind, lemmas


def _one_of(names) -> str:
    names = sorted(names)
    return "one of " + ", ".join(names)


def _apply_override(table: dict[str, _Param], key: str, raw: str, task_kind: str | None) -> None:
    loc = SourceLoc(f"--override {key}={raw}")
    full = _resolve_key(key, task_kind, loc)
    table[full] = _Param(parse_scalar(raw), loc)


def known_keys(task_kind: str | None) -> list[str]:
    keys = [f"construction.{k}" for k in ("mode", *CONSTRUCTION_DEFAULTS)]
    if task_kind:
        keys += [f"task.{k}" for k in TASK_DEFAULTS[task_kind]]
    keys += [f"random.{k}" for k in RANDOM_DEFAULTS]
    keys += [f"claims.{lemma}.{k}" for lemma, params in CLAIM_PARAMS.items() for k in params]
    return keys


def _resolve_key(key: str, task_kind: str | None, loc: SourceLoc) -> str:
    keys = known_keys(task_kind)
    if key in keys:
        return key
    for section in BARE_KEY_SECTIONS:
        if f"{section}.{key}" in keys:
            return f"{section}.{key}"
    raise InputError(f"unknown parameter '{key}'", loc, text=key, expected=_one_of(keys))


LARGEST_INT = 2 ** 63 - 1  # every count a spec sets fits in 64 bits, as numpy and the limit arithmetic need


def _int(table, key, default, lo=None, hi=None) -> int:
    param = table.get(key)
    value = default if param is None else param.value
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputError(f"'{key}' must be an integer", param.loc if param else None, text=str(value))
    hi = LARGEST_INT if hi is None else hi
    if (lo is not None and value < lo) or value > hi:
        bounds = f"between {lo} and {hi}" if lo is not None else f"at most {hi}"
        raise InputError(f"'{key}' is out of range", param.loc if param else None, text=str(value),
                         expected=f"an integer {bounds}")
    return value


def _build(path, name, table, circuit, task_kind, lemmas) -> Spec:
    mode_param = table.get("construction.mode")
    default_mode = Mode.THM33 if circuit is not None else Mode.CVP
    mode = str(mode_param.value) if mode_param else default_mode
    if mode not in MODES:
        raise InputError(f"unknown construction mode '{mode}'", mode_param.loc, text=mode, expected=_one_of(MODES))
    mode = Mode(mode)
    if mode == Mode.THM33 and circuit is None:
        loc = mode_param.loc if mode_param else SourceLoc(path, 1, 1)
        raise InputError("mode 'thm33' compiles one circuit, but this spec has no 'circuit'", loc, text=str(mode),
                         expected="a 'circuit NAME from \"file.bench\"' or an inline circuit")
    ebits = _int(table, "construction.ebits", CONSTRUCTION_DEFAULTS["ebits"], 3, 10)
    sbits = _int(table, "construction.sbits", CONSTRUCTION_DEFAULTS["sbits"], 3, 25)
    max_gates = _int(table, "construction.max_gates", CONSTRUCTION_DEFAULTS["max_gates"], 1, 1 << 20)
    ks_param = table.get("construction.key_scale")
    key_scale: float | None = None
    if ks_param is not None and ks_param.value != "auto":
        if not isinstance(ks_param.value, (int, float)) or ks_param.value <= 0:
            raise InputError("'key_scale' must be a positive number or 'auto'", ks_param.loc,
                             text=str(ks_param.value), expected="a positive number or auto")
        key_scale = float(ks_param.value)
    task = None
    if task_kind is not None:
        params = tuple((k, _int(table, f"task.{k}", v, 1)) for k, v in TASK_DEFAULTS[task_kind].items())
        task = Task(task_kind, params)
    claimed = lemmas or [(lemma, None) for lemma in LEMMAS]
    claims = tuple(
        Claim(lemma, tuple((k, _int(table, f"claims.{lemma}.{k}", v, 0)) for k, v in CLAIM_PARAMS[lemma].items()))
        for lemma, _ in claimed)
    random = RandomCheck(_int(table, "random.instances", RANDOM_DEFAULTS["instances"], 0),
                         _int(table, "random.seed", RANDOM_DEFAULTS["seed"], 0),
                         _int(table, "random.max_gates", RANDOM_DEFAULTS["max_gates"], 1))
    construction = Construction(mode, Precision(ebits, sbits), key_scale, max_gates)
    parameters = tuple(sorted((k, p.value) for k, p in table.items()))
    return Spec(name, path, construction, claims, random, circuit, task, parameters)
