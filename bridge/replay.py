"""Turning a refuted lemma into concrete positions, tokens and inputs, and replaying it in ``neural.construction.fp``.

Two replays, both in the finite arithmetic the model runs in:
- *component*: the lemma's own claim, on the concrete residual vectors the solver's model describes, through the
  actual weights (a head, the FFN, the readout). ``replayed`` is true only when this reproduces the failure.
- *model*: seeded instances (inputs, or CVP circuits) run teacher-forced through the whole model; the first one
  with a wrong CoT step is reported, so a user sees the failure as a wrong answer too.
"""
from __future__ import annotations

import numpy as np

from formal.query import Kind
from grammar.codes import sbin
from neural import cvp
from neural.config import Keys
from neural.construction.execute import ExecMode


def _bit(x: float) -> int:
    return 1 if x > 0 else 0


def _positions_from(cex: dict, k: int) -> tuple[int, int] | None:
    """Query and key positions (codes) that realise a score counterexample."""
    if cex["kind"] == Kind.UNROLLED:
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


def _residual(cex: dict, d: int) -> np.ndarray:
    """The residual row a witness describes: its ``residual<column>`` values, 0 elsewhere."""
    x = np.zeros((1, d))
    for key, val in cex.items():
        if key.startswith("residual"):
            x[0, int(key[len("residual"):])] = val
    return x


def _head(model, cex: dict):
    return next(h for h in model.heads if h.layer == cex["layer"] and h.head == cex["head"])


def _replay_score(model, cex: dict) -> dict:
    """The head on two concrete keys (the mismatched one first, then the match) with the query the witness
    describes: attention must return the matching position's value, 1."""
    fmt, lay = model.fmt, model.layout
    plan = _head(model, cex)
    pos = _positions_from(cex, model.code_bits)
    if pos is None:
        return {"replayed": False, "why": "the solver's state is not reachable from a real sequence"}
    p, j = pos
    X = np.zeros((3, model.config.d_model))
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


def _replay_gate_ffn(model, cex: dict) -> dict:
    """The FFN on the witness's residual, with its concrete a, b, type and role: it must write the gate's value to
    the output column and 0 everywhere else."""
    fmt, lay, plan = model.fmt, model.layout, model.ffn
    x = _residual(cex, model.config.d_model)
    a, b = _witness_bit(cex.get("a")), _witness_bit(cex.get("b"))
    if a is None or b is None:
        return _not_a_bit(cex, "a", "b")
    x[0, lay.col(plan.a_field)], x[0, lay.col(plan.b_field)] = a, b
    x[0, lay.cols(plan.type_field)] = np.eye(len(plan.type_ops))[cex["type_index"]]
    for flag in (f for f in plan.roles if f is not None):
        x[0, lay.col(flag)] = 1.0 if cex.get("role") == flag else 0.0
    hidden = fmt.relu(fmt.linear(x, *model.linear(Keys.ffn(plan.layer, "fc1"))))
    y = fmt.linear(hidden, *model.linear(Keys.ffn(plan.layer, "fc2")))
    want = np.zeros(model.config.d_model)
    want[lay.col(plan.output_field)] = cex["expected"]
    bad = np.flatnonzero(y[0] != want)
    return {"replayed": bool(bad.size), "op": cex["op"], "a": a, "b": b,
            "ffn_output": float(y[0, lay.col(plan.output_field)]), "expected": float(want[lay.col(plan.output_field)]),
            "wrong_columns": [int(c) for c in bad]}


def _replay_readout(model, cex: dict) -> dict:
    """The unembedding on the witness's residual: its argmax must be the token of the value (or id) it holds."""
    fmt, lay = model.fmt, model.layout
    x = _residual(cex, model.config.d_model)
    ans = _witness_bit(cex.get("ans"))
    if ans is None:
        return _not_a_bit(cex, "ans")
    if model.mode == "cvp":
        role = cex["role"]
        for flag in ("role_id", "role_va", "role_vg"):
            x[0, lay.col(flag)] = 1.0 if flag == role else 0.0
        # the right id is the code the counters describe when every bit matched: take id 0 (NA), whose code
        # sbin(0) is all -1; where a value is next, that code is what position 0 gives, and out holds ans
        x[0, lay.cols("g_in")] = sbin(0, model.code_bits)
        x[0, lay.col(model.ffn.output_field)] = 0 if role == "role_id" else ans
        want = cvp.NA if role == "role_id" else model.vocab.index(str(ans))
    else:
        x[0, lay.col(model.ffn.output_field)] = ans
        want = ans
    logits = fmt.linear(x, *model.linear(Keys.HEAD))[0]
    got = int(np.argmax(logits))
    return {"replayed": got != want, "expected_token": model.vocab[want], "argmax_token": model.vocab[got],
            "logits": {model.vocab[want]: float(logits[want]), model.vocab[got]: float(logits[got])}}


def _replay_value(model, cex: dict) -> dict:
    """The head's value projection on the witness's value: it must copy it."""
    plan = _head(model, cex)
    x = np.zeros((1, model.config.d_model))
    x[0, model.layout.cols(plan.value_field)] = cex["value_in"]
    wv, bv = model.head_slice(plan, "v")
    v = model.fmt.linear(x, wv, bv)[0, :len(model.layout.cols(plan.value_field))]
    return {"replayed": bool((v != cex["value_in"]).any()), "value_in": cex["value_in"],
            "value_out": [float(t) for t in v]}


def _replay_output(model, cex: dict) -> dict:
    """attn.o's row on the witness's head dims: it must give the dim it copies (its source), or 0."""
    cfg, layer, r = model.config, cex["layer"], cex["row"]
    W, b = model.linear(Keys.attn(layer, "o"))
    cols = [int(c) for c in np.flatnonzero(W[r])]
    h = np.array([[float(cex.get(f"head_dim{j}", 0.0)) for j in range(len(cols))]])
    got = float(model.fmt.linear(h, W[r:r + 1, cols], b[r:r + 1])[0, 0])
    source = {int(col): plan.head * cfg.d_head + d for plan in model.heads if plan.layer == layer
              and plan.output_field for d, col in enumerate(model.layout.cols(plan.output_field))}.get(r)
    want = (float(h[0, cols.index(source)]) if source in cols else float(cex.get("source_dim", 0.0))
            if source is not None else 0.0)
    return {"replayed": got != want, "row": r, "head_dims": [float(v) for v in h[0]], "output": got,
            "expected": want}


# Every kind of counterexample: its replay, or why there is none. In F(e,s) the component replay runs what the
# lemma claims about one component on the witness's concrete values; in IEEE (``--ieee``) every kind is replayed
# in torch instead (``replay_in_torch``). The whole-model replay runs either way.
NO_POSITION = "the induction's base case, the empty score 0: there is no position to run it at"
COMPONENT_REPLAYS: dict[Kind, object] = {
    Kind.SCORE_STEP: _replay_score,
    Kind.UNROLLED: _replay_score,
    Kind.GATE_FFN: _replay_gate_ffn,
    Kind.READOUT: _replay_readout,
    Kind.VALUE: _replay_value,
    Kind.OUTPUT: _replay_output,
    Kind.SCORE_BASE: NO_POSITION,
    Kind.PAIR: "a claim of IEEE arithmetic only: it is replayed in torch, in that dtype",
    Kind.PARTIAL_SUM: "a claim of IEEE arithmetic only: its terms are added in torch, in that dtype",
    Kind.SOFTMAX: "a claim about the softmax over an abstract one-hot row of scores, not about a position",
    Kind.READOUT_BASE: "an induction over abstract counters of code bits: no concrete residual",
    Kind.READOUT_STEP: "an induction over abstract counters of code bits: no concrete residual",
    Kind.TABLE: "read off the weights and tables directly, with no solver model: the counterexample names the entry",
}


def replay_component(model, cex: dict) -> dict:
    """The lemma's own claim on the witness's concrete values, or ``{"replayed": False, "why": ...}``."""
    replay = COMPONENT_REPLAYS[Kind(cex["kind"])]
    if isinstance(replay, str):
        return {"replayed": False, "why": f"no component replay: {replay}"}
    return replay(model, cex)


def _witness_bit(value) -> int | None:
    """A witness's 0 or 1; None for anything else a solver may return (NaN, inf, 0.5, in tiny formats)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return int(f) if f in (0.0, 1.0) else None


def _not_a_bit(cex: dict, *keys: str) -> dict:
    """No component replay, said plainly: the witness sets a bit-valued input to something that is no bit, so
    there is no concrete residual to feed the component (the whole-model replay still runs)."""
    found = ", ".join(f"{k} = {cex.get(k)}" for k in keys)
    return {"replayed": False, "why": f"the witness has {found}: not a bit, so no concrete residual to replay"}


def replay_model(model, circuit, instances: int = 64, seed: int = 0, max_gates: int = 32,
                 ieee: str | None = None) -> dict | None:
    """The first seeded instance whose teacher-forced CoT has a wrong step, or None: every input of a small
    Theorem 3.3 circuit (else ``instances`` random ones), or ``instances`` random CVP circuits of at most
    ``max_gates`` gates (as the random check draws them)."""
    from bridge.bounded import Simulator

    rng = np.random.default_rng(seed)
    sim = Simulator(model, ExecMode("finite", model.fmt) if ieee is None else ExecMode("ieee", dtype=ieee),
                    "replay")
    if model.mode == "thm33":
        n = circuit.n_inputs
        batch = (np.array([[(i >> b) & 1 for b in range(n)] for i in range(2 ** n)], dtype=np.uint8) if n <= 6
                 else rng.integers(0, 2, (instances, n)).astype(np.uint8))
        return next((w for w in sim.thm33_failures(circuit, batch) if w), None)
    top = min(model.max_gates, max_gates)
    cases = [cvp.random_circuit(rng, int(rng.integers(1, top + 1))) for _ in range(instances)]
    return next((w for w in sim.cvp_failures(cases) if w), None)


def _instance_tokens(model, circuit, seed: int = 0) -> np.ndarray:
    """One whole, correct sequence (prompt and CoT) to run teacher-forced: the circuit on seeded inputs, or a random
    CVP circuit as large as the model takes."""
    from neural.construction.execute import cvp_teacher_forcing, thm33_teacher_forcing

    rng = np.random.default_rng(seed)
    if model.mode == "thm33":
        return thm33_teacher_forcing(circuit, rng.integers(0, 2, circuit.n_inputs)).tokens[0]
    return cvp_teacher_forcing([cvp.random_circuit(rng, model.max_gates)], model.max_gates).tokens[0]


def replay_in_torch(model, circuit, dtype: str) -> dict:
    """Run one correct sequence teacher-forced in torch ``dtype`` and in float64 (exact for these weights), and
    report the first attention row that differs: its head and position, the scores torch computed there, and the
    weights (NaN included) it made of them; plus the first CoT step whose prediction differs."""
    import torch

    from neural.model import Decoder

    tokens = _instance_tokens(model, circuit)
    runs = {}
    for name in (dtype, "float64"):
        net = Decoder.from_arrays(model.config, model.weights, getattr(torch, name))
        inputs = []
        hooks = [b.attn.register_forward_pre_hook(lambda m, args: inputs.append(args[0])) for b in net.blocks]
        with torch.inference_mode():
            logits, weights = net(torch.as_tensor(tokens)[None], need_weights=True)
        for h in hooks:
            h.remove()
        runs[name] = (logits[0].argmax(-1).numpy(), weights, inputs, net)
    pred, weights, inputs, net = runs[dtype]
    ref_pred, ref_weights = runs["float64"][0], runs["float64"][1]
    out: dict = {"dtype": dtype, "positions": int(tokens.size)}
    for layer, (w, w_ref) in enumerate(zip(weights, ref_weights)):
        w64 = w[0].to(torch.float64)
        bad = ~torch.isclose(w64, w_ref[0], rtol=0, atol=0, equal_nan=False)
        if bool(bad.any()):
            head, pos = (int(i) for i in torch.nonzero(bad)[0][:2])
            attn = net.blocks[layer].attn
            x = inputs[layer][0]
            with torch.inference_mode():
                q, k = attn._split(attn.q(x)[None]), attn._split(attn.k(x)[None])
                scores = (q[0, head, pos] @ k[0, head, :pos + 1].T) * attn.cfg.scale
            out.update({"layer": layer, "head": head, "query_position": pos,
                        "score_row": _floats(scores), "weights_row": _floats(w[0, head, pos, :pos + 1]),
                        "exact_weights_row": _floats(w_ref[0, head, pos, :pos + 1]),
                        "nan": bool(torch.isnan(w[0, head, pos]).any())})
            break
    wrong = np.flatnonzero(pred != ref_pred)
    out["first_wrong_position"] = int(wrong[0]) if wrong.size else None
    out["replayed"] = "layer" in out or wrong.size > 0
    return out


def partial_sum_in_torch(cex: dict, dtype: str) -> dict:
    """Add the witness's terms one at a time in torch ``dtype``, as a kernel that sums them first would: the
    result is inf, or rounded, where the lemma says the exact partial sum is off the grid."""
    import torch

    terms = [v for _, v in sorted(cex["terms"].items(), key=lambda kv: int(kv[0]))]
    acc = torch.zeros((), dtype=getattr(torch, dtype))
    steps = []
    for v in terms:
        acc = acc + torch.tensor(v, dtype=acc.dtype)
        steps.append(float(acc))
    got = float(acc)
    return {"terms_in_order": terms, "running_sums": _floats(torch.tensor(steps)), "exact": cex["partial_sum"],
            "computed": got if np.isfinite(got) else str(got), "replayed": got != cex["partial_sum"]}


def _floats(t, limit: int = 16) -> list:
    """A row for a report: its first ``limit`` entries as JSON numbers (inf and NaN as strings)."""
    vals = [float(v) for v in t.reshape(-1)[:limit]]
    return [v if np.isfinite(v) else str(v) for v in vals]


def replay(model, circuit, outcome, ieee: str | None = None) -> dict:
    cex = dict(outcome.counterexample or {})
    if ieee is not None:  # the claim is about torch in that dtype: replay it there
        torch_replay = replay_in_torch(model, circuit, ieee)
        replayed = bool(torch_replay["replayed"])
        if "terms" in cex:  # an order_independence witness: the partial sum a kernel forms in that order
            torch_replay["partial_sum_in_order"] = partial_sum_in_torch(cex, ieee)
            replayed = replayed or torch_replay["partial_sum_in_order"]["replayed"]
        return {"lemma": outcome.lemma, "query": outcome.name, **cex, "replay": torch_replay, "replayed": replayed}
    component = replay_component(model, cex)
    whole = replay_model(model, circuit)
    concrete = "why" not in component  # a component with a concrete residual to run
    replayed = component["replayed"] if concrete else whole is not None
    return {"lemma": outcome.lemma, "query": outcome.name, **cex, "replay": component, "model_failure": whole,
            "replayed": bool(replayed)}
