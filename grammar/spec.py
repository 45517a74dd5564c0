"""Parse spec files (``specs/*.lark``) into the ``Spec`` IR, with ``--override KEY=VALUE`` applied on the way.

Parsing is two steps so that overrides and file values share one validator: the Lark tree becomes a flat table of
parameters (``construction.key_scale`` -> value, with its source location), overrides replace entries in that
table, and only then is the table checked and turned into frozen dataclasses.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput

from grammar.errors import InputError, SourceLoc
from grammar.ir import Circuit, Claim, Construction, Gate, Precision, RandomCheck, Spec, Task, Value
from grammar.lark_errors import from_lark

MODES = ("thm33", "cvp")
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
RANDOM_DEFAULTS: dict[str, Value] = {"instances": 100, "seed": 0}
# Bare override keys are looked up in this order of sections.
BARE_KEY_SECTIONS = ("construction", "task", "random")


@dataclass(frozen=True)
class _Param:
    value: Value
    loc: SourceLoc


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark.open(str(Path(__file__).with_name("spec.lark")), parser="lalr", propagate_positions=True,
                     maybe_placeholders=False)


def _loc(path: str, node: Token | Tree) -> SourceLoc:
    if isinstance(node, Token):
        return SourceLoc(path, node.line or 0, node.column or 0)
    meta = node.meta
    return SourceLoc(path, getattr(meta, "line", 0), getattr(meta, "column", 0))


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


def _block(path: str, tree: Tree | None) -> list[tuple[str, _Param, Token]]:
    if tree is None:
        return []
    out = []
    for param in tree.children:
        if not isinstance(param, Tree):
            continue
        name, _eq, value = param.children
        out.append((str(name), _Param(_value(value), _loc(path, value)), name))
    return out


def _child_block(node: Tree) -> Tree | None:
    return next((c for c in node.children if isinstance(c, Tree) and c.data == "block"), None)


def parse_spec(path: str | os.PathLike, overrides: dict[str, str] | None = None, text: str | None = None) -> Spec:
    path = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"cannot read spec: {err.strerror or err}", SourceLoc(path)) from None
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as err:
        raise from_lark(err, path, text) from None
    table, name, circuit, task_kind, lemmas = _collect(path, tree)
    for key, raw in (overrides or {}).items():
        _apply_override(table, key, raw, task_kind)
    return _build(path, name, table, circuit, task_kind, lemmas)


def _collect(path: str, tree: Tree):
    header = tree.children[0]
    name = str(header.children[1])
    table: dict[str, _Param] = {}
    seen_sections: dict[str, SourceLoc] = {}
    circuit: Circuit | None = None
    task_kind: str | None = None
    lemmas: list[tuple[str, SourceLoc]] = []

    def once(section: str, node) -> None:
        if section in seen_sections:
            raise InputError(f"duplicate '{section}' section (first at {seen_sections[section]})", _loc(path, node),
                             text=section)
        seen_sections[section] = _loc(path, node)

    def put(key: str, param: _Param, name_tok: Token, allowed: dict[str, Value]) -> None:
        short = key.rsplit(".", 1)[1]
        if short not in allowed:
            raise InputError(f"unknown parameter '{short}'", _loc(path, name_tok), text=short,
                             expected=_one_of(allowed) if allowed else "no parameters here")
        if key in table:
            raise InputError(f"duplicate parameter '{short}' (first at {table[key].loc})", _loc(path, name_tok),
                             text=short)
        table[key] = param

    for item in tree.children[1:]:
        kind = item.data
        if kind == "task":
            once("task", item)
            kind_tok = item.children[1]
            task_kind = str(kind_tok)
            if task_kind not in TASK_DEFAULTS:
                raise InputError(f"unknown task '{task_kind}'", _loc(path, kind_tok), text=task_kind,
                                 expected=_one_of(TASK_DEFAULTS))
            for key, param, tok in _block(path, _child_block(item)):
                put(f"task.{key}", param, tok, TASK_DEFAULTS[task_kind])
        elif kind == "construction":
            once("construction", item)
            for key, param, tok in _block(path, _child_block(item)):
                put(f"construction.{key}", param, tok, {"mode": None, **CONSTRUCTION_DEFAULTS})
        elif kind == "claims":
            once("claims", item)
            for claim in item.children:
                if not isinstance(claim, Tree):
                    continue
                if claim.data == "random":
                    once("random", claim)
                    for key, param, tok in _block(path, _child_block(claim)):
                        put(f"random.{key}", param, tok, RANDOM_DEFAULTS)
                    continue
                lemma_tok = claim.children[1]
                lemma = str(lemma_tok)
                if lemma not in CLAIM_PARAMS:
                    raise InputError(f"unknown lemma '{lemma}'", _loc(path, lemma_tok), text=lemma,
                                     expected=_one_of(CLAIM_PARAMS))
                if any(lemma == seen for seen, _ in lemmas):
                    raise InputError(f"lemma '{lemma}' is claimed twice", _loc(path, lemma_tok), text=lemma)
                lemmas.append((lemma, _loc(path, lemma_tok)))
                for key, param, tok in _block(path, _child_block(claim)):
                    put(f"claims.{lemma}.{key}", param, tok, CLAIM_PARAMS[lemma])
        else:  # circuit_file | circuit_inline
            once("circuit", item)
            circuit = _circuit(path, item)
    return table, name, circuit, task_kind, lemmas


def _circuit(path: str, item: Tree) -> Circuit:
    from grammar.netlist import load_netlist  # local: netlists import this module's neighbours

    name = str(item.children[1])
    if item.data == "circuit_file":
        tok = item.children[3]
        target = Path(path).parent / tok[1:-1]
        try:
            return load_netlist(target)
        except InputError as err:
            if err.loc is None or err.loc.line == 0:
                raise InputError(f"cannot load circuit {tok[1:-1]!r}: {err.message}", _loc(path, tok),
                                 text=tok[1:-1]) from None
            raise
    inputs: list[str] = []
    outputs: list[str] = []
    in_locs: list[SourceLoc] = []
    out_locs: list[SourceLoc] = []
    gates: list[Gate] = []
    for stmt in item.children[3:-1]:
        if stmt.data in ("inputs", "outputs"):
            names = [t for t in stmt.children[1].children if isinstance(t, Token) and t.type == "NAME"]
            target, locs = (inputs, in_locs) if stmt.data == "inputs" else (outputs, out_locs)
            target.extend(str(t) for t in names)
            locs.extend(_loc(path, t) for t in names)
        else:
            out_tok, _eq, op_tok, *rest = stmt.children
            args = next((c for c in rest if isinstance(c, Tree)), None)
            arg_names = tuple(str(t) for t in args.children if t.type == "NAME") if args else ()
            gates.append(Gate(str(out_tok), str(op_tok).upper(), arg_names, _loc(path, out_tok)))
    from grammar.netlist import check_circuit

    circuit = Circuit(name, tuple(inputs), tuple(outputs), tuple(gates), tuple(in_locs), tuple(out_locs))
    check_circuit(circuit, path)
    return circuit


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


def _int(table, key, default, lo=None, hi=None) -> int:
    param = table.get(key)
    value = default if param is None else param.value
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputError(f"'{key}' must be an integer", param.loc if param else None, text=str(value))
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise InputError(f"'{key}' is out of range", param.loc if param else None, text=str(value),
                         expected=f"an integer {bounds}")
    return value


def _build(path, name, table, circuit, task_kind, lemmas) -> Spec:
    mode_param = table.get("construction.mode")
    default_mode = "thm33" if circuit is not None else "cvp"
    mode = str(mode_param.value) if mode_param else default_mode
    if mode not in MODES:
        raise InputError(f"unknown construction mode '{mode}'", mode_param.loc, text=mode, expected=_one_of(MODES))
    if mode == "thm33" and circuit is None:
        loc = mode_param.loc if mode_param else SourceLoc(path, 1, 1)
        raise InputError("mode 'thm33' compiles one circuit, but this spec has no 'circuit'", loc, text=mode,
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
                         _int(table, "random.seed", RANDOM_DEFAULTS["seed"], 0))
    construction = Construction(mode, Precision(ebits, sbits), key_scale, max_gates)
    parameters = tuple(sorted((k, p.value) for k, p in table.items()))
    return Spec(name, path, construction, claims, random, circuit, task, parameters)
