"""Bounded checks by exhaustive or seeded simulation of the whole model: the cross-checks beside the lemmas.

- ``end_to_end``: every input (Theorem 3.3, up to ``max_inputs`` inputs) or every circuit of up to ``max_gates``
  gates (CVP), run teacher-forced through the whole model. All steps right under teacher forcing
  means greedy generation is right too (it then feeds back exactly those tokens).
- ``random``: seeded instances of the same kind, for sizes the exhaustive check cannot reach.
F(e,s) execution is tested bit for bit against the Z3 encoding the lemmas use, so both speak of one semantics.
``Simulator`` says which arithmetic runs them.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from formal.obligations import LemmaResult
from formal.query import PROVED, REFUTED
from neural import cvp
from neural.constructed import ConstructedModel
from neural.execute import (
    ExecMode,
    check_cvp_teacher_forced,
    check_thm33_teacher_forced,
    cvp_teacher_forcing,
    session,
    teacher_forced,
    thm33_teacher_forcing,
)
from neural.fp import FPFormat

SKIPPED = "skipped"
ACTIVATIONS_PER_PASS = 1 << 22  # residual entries one torch pass may hold (instances x length x width)
TORCH_WORTH_IT = 1e8  # multiply-adds above which batched torch float32 beats numpy F(e,s) plus torch's import
CVP_SIMULATION_LIMIT = 1024  # sequence length (8N) above which whole-model CVP simulation is skipped


def prefetch_torch() -> None:
    """Import torch on a thread while the lemmas are proved: z3 and numpy release the GIL while they compute, so
    the import (1.5 to 2 s) overlaps the solver's work instead of following it."""
    import importlib
    import threading

    threading.Thread(target=importlib.import_module, args=("torch",), name="import-torch", daemon=True).start()


def estimated_work(model: ConstructedModel, nc, claims: dict, instances: int, random_max_gates: int) -> float:
    """Multiply-adds of the bounded and random checks, roughly: attention over every position pair, and the
    unembedding at every checked step."""
    cfg = model.config
    if model.mode == "thm33":
        length = steps = nc.n_inputs + nc.n_gates
        n = instances + (2 ** nc.n_inputs if nc.n_inputs <= int(claims.get("end_to_end", {}).get("max_inputs", 6))
                         else 0)
    else:
        steps = 4 * model.max_gates  # every circuit is padded to the model's N gates
        length, n = cvp.sequence_length(model.max_gates), instances + 105  # 105: every circuit of <= 2 gates
    return n * (cfg.n_layers * length ** 2 * cfg.d_model + steps * cfg.vocab_size * cfg.d_model)


def cvp_circuit_count(max_gates: int) -> int:
    """How many circuits ``cvp.all_circuits`` enumerates: 5 * j^2 choices for gate j, so sum of 5^m (m!)^2."""
    total, ways = 0, 1
    for j in range(1, max_gates + 1):
        ways *= 5 * j * j
        total += ways
    return total


def planned_instances(model: ConstructedModel, nc, claims: dict, instances: int) -> tuple[int, int]:
    """(instances, tokens per instance) the bounded checks will simulate, exactly as ``end_to_end`` and
    ``random_instances`` choose them, so the work can be priced (and refused) before any of it starts."""
    e2e = claims.get("end_to_end")
    if model.mode == "thm33":
        length = nc.n_inputs + nc.n_gates
        exhaustive = 2 ** nc.n_inputs if e2e is not None and nc.n_inputs <= int(e2e.get("max_inputs", 6)) else 0
        return exhaustive + instances, length
    length = cvp.sequence_length(model.max_gates)
    if length > CVP_SIMULATION_LIMIT:  # both checks are skipped, and say so
        return 0, length
    exhaustive = cvp_circuit_count(min(int(e2e.get("max_gates", 2)), model.max_gates)) if e2e is not None else 0
    return exhaustive + instances, length


@dataclass
class Simulator:
    """Where a bounded check runs the whole model, and how the report names it.

    - ``--ieee DTYPE``: torch in that dtype, because that is the arithmetic the claim is about.
    - F(e,s), when ``order_independence`` holds in F(e,s) and the mismatch scores' [exp] is 0 in float32 too: torch
      float32, batched. No dot product rounds in F(e,s), hence none in float32 (a wider grid), so the kernels
      compute what F(e,s) computes; a wrong step found there is re-run in F(e,s) before it is reported.
    - otherwise ``neural.fp``'s F(e,s), one instance at a time.
    """

    model: ConstructedModel
    mode: ExecMode
    label: str
    confirm: ExecMode | None = None  # re-run a failure in this arithmetic before reporting it
    _sess: object = field(default=None, repr=False)

    @classmethod
    def choose(cls, model: ConstructedModel, ieee: str | None = None, work: float = float("inf")) -> "Simulator":
        """``work``: the checks' multiply-adds (``estimated_work``). Below ``TORCH_WORTH_IT`` F(e,s) in numpy is
        done before torch has even been imported, and the proof path stays torch-free."""
        if ieee is not None:
            return cls(model, ExecMode("ieee", dtype=ieee), f"torch {ieee}")
        finite = ExecMode("finite", model.fmt)
        if work >= TORCH_WORTH_IT and _float32_is_exact(model):
            return cls(model, ExecMode("ieee", dtype="float32"), f"torch float32, exact here: no dot product rounds "
                       f"in {finite} (order_independence)", confirm=finite)
        return cls(model, finite, f"{finite}")

    @property
    def session(self):
        if self._sess is None:
            self._sess = session(self.model.config, self.model.weights, self.mode)
        return self._sess

    def _predictions(self, sequences: np.ndarray, steps: np.ndarray) -> Iterator[np.ndarray]:
        """Teacher-forced predictions after ``steps`` for (B, L) equal-length sequences, row by row and lazily:
        F(e,s) one row at a time, torch many per pass."""
        if self.mode.kind == "finite":
            for row in sequences:
                yield teacher_forced(self.session, row, steps)
            return
        per_pass = max(1, ACTIVATIONS_PER_PASS // (sequences.shape[1] * self.model.config.d_model))
        for i in range(0, len(sequences), per_pass):
            yield from teacher_forced(self.session, sequences[i:i + per_pass], steps)

    # The failures come lazily, in order: every check stops at the first, so a refuted model (where nearly every
    # instance fails) costs one instance's report, not a simulation and a rerun of each.

    def thm33_failures(self, nc, batch: np.ndarray) -> Iterator[dict | None]:
        """One failure (or None) per row of input bits, teacher-forced."""
        tf = thm33_teacher_forcing(nc, batch)
        for bits, p, e in zip(batch, self._predictions(tf.tokens, tf.steps), tf.expected):
            yield None if np.array_equal(p, e) else self._failure(thm33_wrong, nc, bits)

    def cvp_failures(self, circuits: list[cvp.CVPCircuit]) -> Iterator[dict | None]:
        """One failure (or None) per circuit, teacher-forced; padded to the model's N gates, they share passes."""
        tf = cvp_teacher_forcing(circuits, self.model.max_gates)
        for c, p, e in zip(circuits, self._predictions(tf.tokens, tf.steps), tf.expected):
            yield None if np.array_equal(p, e) else self._failure(cvp_wrong, c)

    def _failure(self, wrong, *instance) -> dict | None:
        """The report of a wrong instance, run again on its own: in F(e,s) when torch float32 stood in for it."""
        if self.confirm is not None:
            return wrong(self.model, *instance, self.confirm)
        return wrong(self.model, *instance, self.mode, self.session)


def _float32_is_exact(model: ConstructedModel) -> bool:
    from formal.exactness import order_independence_items

    fmt = model.fmt
    if fmt.ebits > 8 or fmt.sbits > 24 or FPFormat.ieee("float32").exp(np.array(-2 * model.key_scale)) != 0:
        return False
    violations, summary = order_independence_items(model)
    return not violations and not summary["undecided"]


def thm33_wrong(model: ConstructedModel, nc, bits, mode: ExecMode, sess=None) -> dict | None:
    check = check_thm33_teacher_forced(model, nc, bits, mode, sess)
    t = check.first_wrong
    if t is None:
        return None
    return {"inputs": "".join(map(str, bits)), "first_wrong_step": t, "gate": nc.gates[t].name,
            "expected": int(check.expected[t]), "got": int(check.predicted[t]), "arithmetic": str(mode)}


def cvp_wrong(model: ConstructedModel, c: cvp.CVPCircuit, mode: ExecMode, sess=None) -> dict | None:
    check = check_cvp_teacher_forced(model, c, mode, sess)
    t = check.first_wrong
    if t is None:
        return None
    padded = c.padded(model.max_gates)
    return {"circuit": [f"{k} {a or 'NA'} {b or 'NA'}" for k, a, b in zip(padded.kinds, padded.in1, padded.in2)],
            "first_wrong_step": t, "gate": t // 4 + 1, "token": cvp.COT_SLOTS[t % 4],
            "expected": model.vocab[int(check.expected[t])],
            "got": model.vocab[int(check.predicted[t])], "arithmetic": str(mode)}


def _result(name: str, method: str, failures, start: float, total: int | None = None) -> LemmaResult:
    from bridge.progress import Progress

    count = 0
    with Progress(total, "instance", f"  {name}") as progress:
        for failure in failures:
            count += 1
            progress.update()
            if failure is not None:
                return LemmaResult(name, REFUTED, time.perf_counter() - start, method,
                                   detail=f"failed on instance {count}", failure=failure)
    return LemmaResult(name, PROVED, time.perf_counter() - start, method, detail=f"{count} instances, all exact")


def end_to_end(model, nc, max_inputs: int = 6, max_gates: int = 2, sim: Simulator | None = None) -> LemmaResult:
    start = time.perf_counter()
    sim = sim or Simulator.choose(model)
    if model.mode == "thm33":
        n = nc.n_inputs
        if n > max_inputs:
            return LemmaResult("end_to_end", SKIPPED, 0.0, f"exhaustive simulation in {sim.mode}",
                               detail=f"{n} inputs > max_inputs = {max_inputs}")
        batch = np.array([[(i >> b) & 1 for b in range(n)] for i in range(2 ** n)], dtype=np.uint8)
        return _result("end_to_end", f"exhaustive simulation in {sim.label}: all {2 ** n} inputs",
                       sim.thm33_failures(nc, batch), start, len(batch))
    bound = min(max_gates, model.max_gates)
    if (skip := _too_long(model, "end_to_end", sim)) is not None:
        return skip
    circuits = list(cvp.all_circuits(bound))
    return _result("end_to_end", f"exhaustive simulation in {sim.label}: every circuit of <= {bound} gates, "
                   f"padded to {model.max_gates}", sim.cvp_failures(circuits), start, len(circuits))


def _too_long(model: ConstructedModel, name: str, sim: Simulator) -> LemmaResult | None:
    """A model for N gates reads 8N-token sequences whatever the circuit (small ones are padded), so simulating it
    costs O(N^2) per instance; above CVP_SIMULATION_LIMIT tokens the check is skipped, and says so. The lemmas
    cover every position at any N."""
    length = cvp.sequence_length(model.max_gates)
    if length <= CVP_SIMULATION_LIMIT:
        return None
    return LemmaResult(name, SKIPPED, 0.0, "whole-model simulation",
                       detail=f"a model for {model.max_gates} gates runs {length}-token sequences; whole-model "
                              f"simulation stops at {CVP_SIMULATION_LIMIT} tokens (the lemmas cover every position)")


def random_instances(model: ConstructedModel, nc, instances: int, seed: int, max_gates: int = 32,
                     sim: Simulator | None = None) -> LemmaResult:
    """Theorem 3.3: random inputs to the compiled circuit, teacher-forced in batches. CVP: random circuits of 1 to
    min(max_gates, the model's max_gates) gates, padded to the model's N gates (its fixed layout)."""
    start = time.perf_counter()
    sim = sim or Simulator.choose(model)
    rng = np.random.default_rng(seed)
    if model.mode == "thm33":
        batch = rng.integers(0, 2, (instances, nc.n_inputs)).astype(np.uint8)
        return _result("random", f"seeded simulation in {sim.label} (seed {seed})", sim.thm33_failures(nc, batch),
                       start, instances)
    top = min(max_gates, model.max_gates)
    if (skip := _too_long(model, "random", sim)) is not None:
        return skip
    cases = [cvp.random_circuit(rng, int(rng.integers(1, top + 1))) for _ in range(instances)]
    return _result("random", f"seeded simulation in {sim.label} (seed {seed}, circuits of <= {top} gates, padded "
                   f"to {model.max_gates})", sim.cvp_failures(cases), start, instances)
