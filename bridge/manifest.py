"""The mechanism manifest: a constructed model's ground truth, in JSON, for scoring interpretability tools.

It records what the construction was built to do and ``formal`` proved it does, in the terms a circuit-discovery
method reports: the residual stream's named fields, where each head attends from each position (one-hot, by the
retrieval lemma), which gate function each group of FFN units computes, the circuit, and the proof's verdict.

Attention targets follow one rule per head, read by ``attention_targets``: a position whose token is in
``at_token`` attends to that entry; else a position in ``at_position`` attends to that entry; else to
``elsewhere`` (``null``: nothing is claimed there, as at a Theorem 3.3 input position, whose query names no gate).
"""
from __future__ import annotations

import numpy as np

from grammar.ir import Mode, NormCircuit
from neural.construction.construct import minterm_units
from neural.construction.constructed import ConstructedModel

FORMAT_VERSION = 1

FIELDS = {
    "tok": "the current token's bit",
    "type": "one-hot type of the gate computed next (its op, or its CVP gate type)",
    "pred1": "sbin code of the next gate's first input (its position)",
    "pred2": "sbin code of the next gate's second input (its position)",
    "pos": "sbin code of this position (the key every retrieval head matches)",
    "a": "the first input's value, written by a head",
    "b": "the second input's value, written by a head",
    "out": "the next token's value, written by the FFN",
    "in_code": "sbin code of the gate id this prompt token names (id 0 for every other token)",
    "idq": "sbin code of the position where the value of the gate this @j token names sits",
    "value": "1 on the value token 1, else 0",
    "q_type": "sbin code of the position of the next gate's type token (0 where none is needed)",
    "q_in": "sbin code of the prompt slot of the input id written next (0 where none is)",
    "q_prev": "sbin code of the previous position where the next gate's value is due (0 elsewhere)",
    "g_type": "one-hot type of the gate whose value is next, copied by the type head",
    "g_in": "sbin code of the input id written next, copied by the id head",
    "role_id": "1 where an input id @j is written next",
    "role_va": "1 where the value of a gate's first input is written next",
    "role_vg": "1 where a gate's own value is written next",
}

HEAD_NAMES = {Mode.THM33: ("first input", "second input"), Mode.CVP: ("type", "id", "prev", "value")}


def manifest(model: ConstructedModel, circuit: NormCircuit | None, proof: dict) -> dict:
    """The ground truth of ``model`` (with ``circuit`` for Theorem 3.3 mode) and its ``proof``
    ({"status", "dtype", "lemmas": [{name, status}]})."""
    heads = _heads_thm33(model, circuit) if model.mode == Mode.THM33 else _heads_cvp(model)
    return {"format": "cotproof-mechanism-manifest", "version": FORMAT_VERSION, "mode": model.mode,
            "config": model.config.to_dict(), "vocab": list(model.vocab),
            "residual": [{"field": name, "dims": [start, start + size], "meaning": FIELDS.get(name, "")}
                         for name, start, size in model.layout.fields],
            "heads": heads, "ffn": _ffn(model), "readout": _readout(model),
            "circuit": _circuit(model, circuit), "proof": proof}


def _head(plan, name: str, at_position: dict, at_token: dict, elsewhere) -> dict:
    return {"layer": plan.layer, "head": plan.head, "name": name,
            "query": plan.query_field, "key": plan.key_field, "value": plan.value_field, "writes": plan.output_field,
            "at_position": {str(p): int(t) for p, t in at_position.items()},
            "at_token": {tok: int(t) for tok, t in at_token.items()}, "elsewhere": elsewhere}


def _heads_thm33(model: ConstructedModel, nc: NormCircuit) -> list[dict]:
    """Position n+t-1 announces gate t, so each head reads that gate's input there; nothing is claimed elsewhere."""
    n = nc.n_inputs
    out = []
    for plan, name, side in zip(model.heads, HEAD_NAMES[Mode.THM33], ("a", "b")):
        at = {n + t - 1: getattr(g, side) for t, g in enumerate(nc.gates)}
        out.append(_head(plan, name, at, {}, None))
    return out


def _heads_cvp(model: ConstructedModel) -> list[dict]:
    """The positions of ``build_cvp``'s docstring; every other query names position 0, which it then reads."""
    from neural import cvp

    N = model.max_gates
    r = cvp.reads(N)
    type_at = dict(zip(r.before_v.tolist(), r.type_slot.tolist()))
    id_at = {**dict(zip(r.before_a.tolist(), r.in1_slot.tolist())),
             **dict(zip(r.before_b.tolist(), r.in2_slot.tolist()))}
    prev_at = dict(zip(r.before_v.tolist(), r.previous.tolist()))
    value_at = {model.vocab[int(cvp.ref_token(j, N))]: int(r.value_position(j)) for j in r.gates.tolist()}
    tables = ((type_at, {}), (id_at, {}), (prev_at, {}), ({}, value_at))
    return [_head(plan, name, at, by_token, 0)
            for plan, name, (at, by_token) in zip(model.heads, HEAD_NAMES[Mode.CVP], tables)]


def _ffn(model: ConstructedModel) -> dict:
    """Unit groups of the minterm FFN: each op's units fire on its truth table's true rows, and sum to its value."""
    plan = model.ffn
    groups: dict[str, dict] = {}
    units = minterm_units(plan.type_ops)
    for unit, (t, a, b) in enumerate(units):
        op = plan.type_ops[t]
        group = groups.setdefault(op, {"computes": op, "type_bit": t, "units": [], "true_rows": []})
        group["units"].append(unit)
        group["true_rows"].append([a, b])
    copies = [{"computes": f"copy of {source}", "when": flag, "units": [unit]}
              for unit, (flag, source) in enumerate(plan.copies, start=len(units))]
    return {"layer": plan.layer, "inputs": [plan.a_field, plan.b_field], "type_field": plan.type_field,
            "writes": plan.output_field, "only_where": plan.gate_field,
            "groups": list(groups.values()) + copies}


def _readout(model: ConstructedModel) -> str:
    if model.mode == Mode.THM33:
        return "logit(1) = out, logit(0) = 1 - out: the next bit is out"
    return ("role-gated: where role_id is set, the @j whose sbin code matches g_in wins; where role_va or role_vg "
            "is set, the value token out wins")


def _circuit(model: ConstructedModel, nc: NormCircuit | None) -> dict:
    if model.mode == Mode.CVP:
        return {"kind": "any circuit in the cvp task's format", "max_gates": model.max_gates}
    n = nc.n_inputs
    return {"kind": "compiled in", "name": nc.name, "inputs": list(nc.input_names),
            "gates": [{"position": n + t, "name": g.name, "op": g.op, "inputs": [g.a, g.b], "origin": g.origin}
                      for t, g in enumerate(nc.gates)],
            "outputs": {name: int(node) for name, node in zip(nc.output_names, nc.outputs)}}


def attention_targets(manifest: dict, tokens: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """For each (layer, head), the position each query of ``tokens`` (B, T, as vocabulary ids) must attend to, or
    -1 where the manifest claims nothing."""
    tokens = np.asarray(tokens)
    vocab = manifest["vocab"]
    out = {}
    for h in manifest["heads"]:
        elsewhere = -1 if h["elsewhere"] is None else int(h["elsewhere"])
        target = np.full(tokens.shape, elsewhere, dtype=np.int64)
        for p, t in h["at_position"].items():
            if int(p) < tokens.shape[1]:
                target[:, int(p)] = t
        for tok, t in h["at_token"].items():
            target[tokens == vocab.index(tok)] = t
        out[(h["layer"], h["head"])] = target
    return out
