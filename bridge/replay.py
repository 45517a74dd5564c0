"""Replaying a refuted lemma, so that a counterexample is seen to fail and not only claimed to.

- *component*: the counterexample replays itself (``formal.witness``): the lemma's own claim on the concrete values
  the solver's model describes, through the actual weights, in F(e,s). ``replayed`` is true only when this
  reproduces the failure; a kind with nothing concrete to run says why.
- *model*: seeded instances (inputs, or CVP circuits) run teacher-forced through the whole model; the first one
  with a wrong CoT step is reported, so a user sees the failure as a wrong answer too.
- *torch*: with ``--ieee``, one correct sequence teacher-forced in that dtype and in float64, and an
  order_independence witness's terms added one by one in that dtype.
"""
from __future__ import annotations

import numpy as np

from grammar.ir import Mode
from grammar.spec import RANDOM_DEFAULTS
from neural import cvp
from neural.construction.execute import ExecMode


def replay_model(model, circuit, instances: int = 64, seed: int = 0, max_gates: int = RANDOM_DEFAULTS["max_gates"],
                 ieee: str | None = None) -> dict | None:
    """The first seeded instance whose teacher-forced CoT has a wrong step, or None: every input of a small
    Theorem 3.3 circuit (else ``instances`` random ones), or ``instances`` random CVP circuits of at most
    ``max_gates`` gates (as the random check draws them)."""
    from bridge.bounded import Simulator

    rng = np.random.default_rng(seed)
    sim = Simulator(model, ExecMode("finite", model.fmt) if ieee is None else ExecMode("ieee", dtype=ieee),
                    "replay")
    if model.mode == Mode.THM33:
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
    if model.mode == Mode.THM33:
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
        hooks = [b.attn.register_forward_pre_hook(lambda m, args, sink=inputs: sink.append(args[0]))
                 for b in net.blocks]
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
    """The report of a refuted outcome: its counterexample, and each replay that applies."""
    cex = outcome.counterexample
    head = {"lemma": outcome.lemma, "query": outcome.name, **cex.to_json()}
    if ieee is not None:  # the claim is about torch in that dtype: replay it there
        torch_replay = replay_in_torch(model, circuit, ieee)
        replayed = bool(torch_replay["replayed"])
        if "terms" in cex.values:  # an order_independence witness: the partial sum a kernel forms in that order
            torch_replay["partial_sum_in_order"] = partial_sum_in_torch(cex.values, ieee)
            replayed = replayed or torch_replay["partial_sum_in_order"]["replayed"]
        return {**head, "replay": torch_replay, "replayed": replayed}
    component = cex.replay(model)
    whole = replay_model(model, circuit)
    concrete = "why" not in component  # a component with a concrete residual to run
    replayed = component["replayed"] if concrete else whole is not None
    return {**head, "replay": component, "model_failure": whole, "replayed": bool(replayed)}
