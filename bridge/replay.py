"""Turning a refuted lemma into concrete positions, tokens and inputs, and replaying it in ``neural.fp``.

Two replays, both in the finite arithmetic the model runs in:
- *component*: the lemma's own claim, on the concrete residual vectors the solver's model describes, through the
  actual weights (a head, the FFN, the readout). ``replayed`` is true only when this reproduces the failure.
- *model*: seeded instances (inputs, or CVP circuits) run teacher-forced through the whole model; the first one
  with a wrong CoT step is reported, so a user sees the failure as a wrong answer too.
"""
from __future__ import annotations

import numpy as np

from grammar.codes import sbin
from neural.config import Keys
from neural.encode import random_cvp_circuit


def _bit(x: float) -> int:
    return 1 if x > 0 else 0


def _positions_from(cex: dict, k: int) -> tuple[int, int] | None:
    """Query and key positions (codes) that realise a score counterexample."""
    if cex.get("kind") == "unrolled":
        bits = cex["bits"]
        p = sum(_bit(cex[f"query_bit{b}"]) << b for b in bits)
        j = sum(_bit(cex[f"key_bit{b}"]) << b for b in bits)
        return p, j
    b = cex["bit"]
    p, j = _bit(cex["query_bit"]) << b, _bit(cex["key_bit"]) << b
    if not cex["matched_so_far"]:
        if b == 0:
            return None  # "a mismatch before bit 0" cannot happen: the solver's state is unreachable
        j |= 1
    return p, j




def replay_component(model, cex: dict) -> dict | None:
    fmt, lay, d = model.fmt, model.layout, model.config.d_model
    kind = cex.get("kind")
    if kind in ("score_step", "unrolled"):
        plan = next(h for h in model.heads if h.layer == cex["layer"] and h.head == cex["head"])
        pos = _positions_from(cex, model.code_bits)
        if pos is None:
            return {"replayed": False, "why": "the solver's state is not reachable from a real sequence"}
        p, j = pos
        X = np.zeros((3, d))
        X[0, lay.cols(plan.query_field)] = sbin(p, model.code_bits)
        X[1, lay.cols(plan.key_field)] = sbin(j, model.code_bits)  # the other key first, then the match
        X[2, lay.cols(plan.key_field)] = sbin(p, model.code_bits)
        X[2, lay.cols(plan.value_field)[0]] = 1.0
        keys = X[1:] if p != j else X[2:]
        (wq, bq), (wk, bk), (wv, bv) = (model.head_slice(plan, proj) for proj in "qkv")
        q, k, v = fmt.linear(X[:1], wq, bq), fmt.linear(keys, wk, bk), fmt.linear(keys, wv, bv)
        out, weights = fmt.attention(q, k, v, model.config.scale, causal_offset=None)
        got = float(out[0, 0])
        return {"replayed": got != 1.0, "query_position_code": p, "key_position_code": j,
                "attention_weights": [float(x) for x in weights[0]], "head_output": got, "expected": 1.0,
                "layer": plan.layer, "head": plan.head}
    if kind == "gate_ffn":
        plan = model.ffn
        x = np.zeros((1, d))
        for key, val in cex.items():
            if key.startswith("residual"):
                x[0, int(key[len("residual"):])] = val
        a, b = int(cex["a"]), int(cex["b"])
        x[0, lay.col(plan.a_field)], x[0, lay.col(plan.b_field)] = a, b
        x[0, lay.cols(plan.type_field)] = np.eye(len(plan.type_ops))[cex["type_index"]]
        hidden = fmt.relu(fmt.linear(x, *model.linear(Keys.ffn(plan.layer, "fc1"))))
        y = fmt.linear(hidden, *model.linear(Keys.ffn(plan.layer, "fc2")))
        from grammar.ir import TRUTH_TABLES

        want = np.zeros(d)
        want[lay.col(plan.output_field)] = TRUTH_TABLES[cex["op"]][2 * a + b]
        bad = np.flatnonzero(y[0] != want)
        return {"replayed": bool(bad.size), "op": cex["op"], "a": a, "b": b, "ffn_output": float(y[0, lay.col(
            plan.output_field)]), "expected": float(want[lay.col(plan.output_field)]),
                "wrong_columns": [int(c) for c in bad]}
    if kind == "readout":
        x = np.zeros((1, d))
        for key, val in cex.items():
            if key.startswith("residual"):
                x[0, int(key[len("residual"):])] = val
        ans = int(cex["ans"])
        x[0, lay.col(model.ffn.output_field)] = ans
        if model.mode == "cvp":
            J = int(cex["next_gate"])
            x[0, lay.cols("next_code")] = sbin(J, model.code_bits)
            want = model.vocab.index(f"g{J}={ans}")
        else:
            want = ans
        logits = fmt.linear(x, *model.linear(Keys.HEAD))[0]
        got = int(np.argmax(logits))
        return {"replayed": got != want, "expected_token": model.vocab[want], "argmax_token": model.vocab[got],
                "logits": {model.vocab[want]: float(logits[want]), model.vocab[got]: float(logits[got])}}
    if kind == "value":
        plan = next(h for h in model.heads if h.layer == cex["layer"] and h.head == cex["head"])
        x = np.zeros((1, d))
        x[0, lay.cols(plan.value_field)] = cex["value_in"]
        wv, bv = model.head_slice(plan, "v")
        v = fmt.linear(x, wv, bv)[0, :len(lay.cols(plan.value_field))]
        return {"replayed": bool((v != cex["value_in"]).any()), "value_in": cex["value_in"],
                "value_out": [float(t) for t in v]}
    return None


def replay_model(model, circuit, instances: int = 64, seed: int = 0, max_gates: int = 32) -> dict | None:
    """The first seeded instance whose teacher-forced CoT has a wrong step, or None: every input of a small
    Theorem 3.3 circuit (else ``instances`` random ones), or ``instances`` random CVP circuits of at most
    ``max_gates`` gates (as the random check draws them)."""
    from bridge.bounded import cvp_wrong, finite_session, thm33_wrong

    rng = np.random.default_rng(seed)
    sess = finite_session(model)
    if model.mode == "thm33":
        n = circuit.n_inputs
        cases = (np.array([(i >> b) & 1 for b in range(n)], dtype=np.uint8) for i in range(2 ** n)) if n <= 6 else (
            rng.integers(0, 2, n).astype(np.uint8) for _ in range(instances))
        return next((w for w in (thm33_wrong(model, circuit, bits, sess) for bits in cases) if w), None)
    top = min(model.max_gates, max_gates)
    cases = (random_cvp_circuit(rng, int(rng.integers(1, top + 1))) for _ in range(instances))
    return next((w for w in (cvp_wrong(model, c, sess) for c in cases) if w), None)


def replay(model, circuit, outcome) -> dict:
    cex = dict(outcome.counterexample or {})
    component = replay_component(model, cex)
    whole = replay_model(model, circuit)
    replayed = component["replayed"] if component is not None else whole is not None
    return {"lemma": outcome.lemma, "query": outcome.name, **cex, "replay": component, "model_failure": whole,
            "replayed": bool(replayed)}
