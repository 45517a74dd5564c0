"""Bounded checks by exhaustive or seeded simulation in F(e,s): the cross-checks beside the solver's lemmas.

- ``end_to_end``: every input (Theorem 3.3, up to ``max_inputs`` inputs) or every circuit of up to ``max_gates``
  gates (CVP), run teacher-forced through the whole model in ``neural.fp``. All steps right under teacher forcing
  means greedy generation is right too (it then feeds back exactly those tokens).
- ``random``: seeded instances of the same kind, for sizes the exhaustive check cannot reach.
F(e,s) execution is tested bit for bit against the Z3 encoding the lemmas use, so both speak of one semantics.
"""
from __future__ import annotations

import time

import numpy as np

from formal.obligations import LemmaResult
from formal.query import PROVED, REFUTED
from neural.constructed import ConstructedModel
from neural.encode import CVPCircuit, all_cvp_circuits, random_cvp_circuit
from neural.execute import ExecMode, check_cvp_teacher_forced, check_thm33_teacher_forced, session

SKIPPED = "skipped"


def finite_session(model: ConstructedModel):
    """One F(e,s) executor for every instance of a check: building it rounds every weight table once."""
    return session(model.config, model.weights, ExecMode("finite", model.fmt))


def thm33_wrong(model: ConstructedModel, nc, bits, sess=None) -> dict | None:
    check = check_thm33_teacher_forced(model, nc, bits, ExecMode("finite", model.fmt), sess)
    t = check.first_wrong
    if t is None:
        return None
    return {"inputs": "".join(map(str, bits)), "first_wrong_step": t, "gate": nc.gates[t].name,
            "expected": int(check.expected[t]), "got": int(check.predicted[t])}


def cvp_wrong(model: ConstructedModel, c: CVPCircuit, sess=None) -> dict | None:
    check = check_cvp_teacher_forced(model, c, ExecMode("finite", model.fmt), sess)
    t = check.first_wrong
    if t is None:
        return None
    return {"circuit": [f"{k} {a or 'NA'} {b or 'NA'}" for k, a, b in zip(c.kinds, c.in1, c.in2)],
            "first_wrong_step": t, "expected": model.vocab[int(check.expected[t])],
            "got": model.vocab[int(check.predicted[t])]}


def _result(name: str, method: str, cases, check, start: float) -> LemmaResult:
    count = 0
    for case in cases:
        count += 1
        failure = check(case)
        if failure is not None:
            return LemmaResult(name, REFUTED, time.perf_counter() - start, method,
                               detail=f"failed on instance {count}", failure=failure)
    return LemmaResult(name, PROVED, time.perf_counter() - start, method, detail=f"{count} instances, all exact")


def end_to_end(model, nc, max_inputs: int = 6, max_gates: int = 2) -> LemmaResult:
    start = time.perf_counter()
    sess = finite_session(model)
    if model.mode == "thm33":
        n = nc.n_inputs
        if n > max_inputs:
            return LemmaResult("end_to_end", SKIPPED, 0.0, "exhaustive simulation in F(e,s)",
                               detail=f"{n} inputs > max_inputs = {max_inputs}")
        cases = (np.array([(i >> b) & 1 for b in range(n)], dtype=np.uint8) for i in range(2 ** n))
        return _result("end_to_end", f"exhaustive simulation in F(e,s): all {2 ** n} inputs", cases,
                       lambda bits: thm33_wrong(model, nc, bits, sess), start)
    bound = min(max_gates, model.max_gates)
    return _result("end_to_end", f"exhaustive simulation in F(e,s): every circuit of <= {bound} gates",
                   all_cvp_circuits(bound), lambda c: cvp_wrong(model, c, sess), start)


def random_instances(model: ConstructedModel, nc, instances: int, seed: int, max_gates: int = 32) -> LemmaResult:
    """Theorem 3.3: random inputs to the compiled circuit. CVP: random circuits of 1 to min(max_gates, the model's
    max_gates) gates, sized by what the check is for (whole-model runs beside lemmas that cover every position),
    so a model built for 65,536 gates does not simulate 65,536-gate circuits in F(e,s)."""
    start = time.perf_counter()
    sess = finite_session(model)
    rng = np.random.default_rng(seed)
    if model.mode == "thm33":
        cases = (rng.integers(0, 2, nc.n_inputs).astype(np.uint8) for _ in range(instances))
        return _result("random", f"seeded simulation in F(e,s) (seed {seed})", cases,
                       lambda bits: thm33_wrong(model, nc, bits, sess), start)
    top = min(max_gates, model.max_gates)
    cases = (random_cvp_circuit(rng, int(rng.integers(1, top + 1))) for _ in range(instances))
    return _result("random", f"seeded simulation in F(e,s) (seed {seed}, circuits of <= {top} gates)", cases,
                   lambda c: cvp_wrong(model, c, sess), start)
