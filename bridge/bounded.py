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

from bridge.estimates import RUN_RATE, instance_work
from formal.obligations import LemmaResult
from formal.query import PROVED, REFUTED
from grammar.ir import Mode
from grammar.spec import RANDOM_DEFAULTS, claim_param
from neural import cvp
from neural.construction.constructed import ConstructedModel
from neural.construction.execute import (
    ExecMode,
    check_cvp_teacher_forced,
    check_thm33_teacher_forced,
    cvp_teacher_forcing,
    session,
    thm33_teacher_forcing,
)
from neural.construction.fp import FPFormat
from neural.decoding import teacher_forced_rows

SKIPPED = "skipped"
TORCH_WORTH_IT = 1e8  # multiply-adds above which batched torch float32 beats numpy F(e,s) plus torch's import


def prefetch_torch() -> None:
    """Import torch on a thread while the lemmas are proved: z3 and numpy release the GIL while they compute, so
    the import (1.5 to 2 s) overlaps the solver's work instead of following it."""
    import importlib
    import threading

    threading.Thread(target=importlib.import_module, args=("torch",), name="import-torch", daemon=True).start()


def cvp_circuit_count(max_gates: int) -> int:
    """How many circuits ``cvp.all_circuits`` enumerates: 5 * j^2 choices for gate j, so sum of 5^m (m!)^2."""
    total, ways = 0, 1
    for j in range(1, max_gates + 1):
        ways *= 5 * j * j
        total += ways
    return total


def require_affordable(tokens: float, seconds: float, what: str, where: str, hint: str) -> None:
    """Refuse (exit 2, with the estimate) simulations past the limits on tokens, memory (24 bytes a token: the
    token, its proposal and its prediction) and time; ``--no-limit`` lifts them."""
    from grammar.limits import require_memory, require_seconds, require_tokens

    require_tokens(tokens, what, where, hint)
    require_memory(24.0 * tokens, what, where, hint)
    require_seconds(seconds, what, where, hint)


@dataclass(frozen=True)
class SimulationPlan:
    """What the bounded checks will simulate, chosen before any of it runs so that it can be priced and reported.

    Every instance is full length: a Theorem 3.3 model reads the inputs and every gate, a CVP model 8N tokens
    whatever the circuit (small ones are padded). The exhaustive check runs whole or not at all; the random check
    runs as many of its requested instances as ``grammar.limits.simulation_budget`` (seconds, priced at this
    machine's measured rates) leaves room for, and always at least one, unless one alone would overrun the budget
    ``ONE_INSTANCE_OVERRUN`` times. ``--no-limit`` runs everything.

    An exhaustive check over budget is skipped when the model's length is what makes it dear (a CVP model for many
    gates runs every small circuit padded to its N); it is priced, and refused, on its instance count at the
    shortest length its circuits need (``floor_length``), so that a bound no machine can enumerate is an error."""

    length: int  # tokens per instance
    per_instance: float  # multiply-adds per instance: attention over every position pair, the unembedding per step
    per_instance_seconds: float  # ... at the measured rate of the path the checks take (``in_torch``)
    in_torch: bool  # the checks run in torch (an IEEE dtype, or float32 standing in for F(e,s)), else numpy F(e,s)
    exhaustive: int  # end_to_end instances to run
    exhaustive_skip: str | None  # why end_to_end does not run, when it is claimed but skipped
    claimed: int  # end_to_end instances the claim names, run or not
    floor_length: int  # tokens per end_to_end instance in the smallest model that holds its circuits
    requested: int  # random instances the spec asks for
    random: int  # random instances to run
    random_skip: str | None

    @property
    def instances(self) -> int:
        return self.exhaustive + self.random

    @property
    def work(self) -> float:
        return self.instances * self.per_instance

    @property
    def seconds(self) -> float:
        return self.instances * self.per_instance_seconds

    @property
    def priced_tokens(self) -> int:
        """Tokens the limits weigh: those that run, and a skipped exhaustive check at its floor length."""
        skipped = self.claimed - self.exhaustive
        return self.instances * self.length + skipped * self.floor_length


# the random check runs at least one instance, however far past the budget, unless one alone would overrun it this
# many times (a netlist of 3e5 gates: one dense instance about 5 minutes here)
ONE_INSTANCE_OVERRUN = 4


def plan_simulations(model: ConstructedModel, nc, claims: dict, requested: int, ieee: str | None = None,
                     proved_attention: bool = False, float32_exact: bool | None = None) -> SimulationPlan:
    """``proved_attention``: priced for the attention the retrieval lemma licenses (``neural.selected``), which
    the checks use once the same report has proved it. ``float32_exact``: ``float32_is_exact(model)`` where the
    caller has it (it reads every table: seconds at 10^5 CVP gates)."""
    from grammar.limits import human_count, human_seconds, simulation_budget

    length, e2e = model.config.max_len, claims.get("end_to_end")
    per = instance_work(model, proved_attention)
    kernel = "proved" if proved_attention else "dense"
    if model.mode == Mode.THM33:
        exhaustive = 2 ** nc.n_inputs if e2e is not None and nc.n_inputs <= claim_param(claims, "end_to_end",
                                                                                         "max_inputs") else 0
        floor_length = length
    else:
        bound = min(claim_param(claims, "end_to_end", "max_gates"), model.max_gates) if e2e is not None else 0
        exhaustive, floor_length = (cvp_circuit_count(bound), cvp.sequence_length(bound)) if bound else (0, 0)
    claimed = exhaustive
    budget = simulation_budget()

    def sized(each: float) -> tuple:
        """How many instances fit the budget at ``each`` seconds an instance, and why any are skipped."""
        runs, skip = exhaustive, None
        if runs and runs * each > budget and length > floor_length:
            skip = (f"{human_count(runs)} instances of {length:,} tokens would take about "
                    f"{human_seconds(runs * each)}, past the simulation budget of {human_seconds(budget)} "
                    f"(--no-limit runs them); the lemmas cover every position")
            runs = 0
        room = max(0.0, budget - runs * each)
        random, random_skip = min(requested, max(1, int(min(room / max(each, 1e-9), requested)))), None
        if requested and each > ONE_INSTANCE_OVERRUN * budget:
            random, random_skip = 0, (f"one instance of {length:,} tokens would take about {human_seconds(each)}, "
                                      f"more than {ONE_INSTANCE_OVERRUN} times the simulation budget of "
                                      f"{human_seconds(budget)} (--no-limit runs it); the lemmas cover every "
                                      f"position")
        return runs, skip, random, random_skip

    # priced at the measured rate of the path Simulator.choose will take for the planned work: torch's where it
    # may run, unless what fits is too little for torch to be worth it, then numpy F(e,s)'s (slower, so it plans
    # no more: the choice stands)
    in_torch = ieee is not None or (float32_is_exact(model) if float32_exact is None else float32_exact)
    each = per / RUN_RATE["torch" if in_torch else "numpy", kernel]
    runs, skip, random, random_skip = sized(each)
    if ieee is None and in_torch and (runs + random) * per < TORCH_WORTH_IT:
        in_torch, each = False, per / RUN_RATE["numpy", kernel]
        runs, skip, random, random_skip = sized(each)
    return SimulationPlan(length, per, each, in_torch, runs, skip, claimed, floor_length, requested, random,
                          random_skip)


@dataclass
class Simulator:
    """Where a bounded check runs the whole model, and how the report names it.

    - ``--ieee DTYPE``: torch in that dtype, because that is the arithmetic the claim is about.
    - F(e,s), when ``order_independence`` holds in F(e,s) and the mismatch scores' [exp] is 0 in float32 too: torch
      float32, batched. No dot product rounds in F(e,s), hence none in float32 (a wider grid), so the kernels
      compute what F(e,s) computes; a wrong step found there is re-run in F(e,s) before it is reported.
    - otherwise ``neural.construction.fp``'s F(e,s), one instance at a time.
    """

    model: ConstructedModel
    mode: ExecMode
    label: str
    confirm: ExecMode | None = None  # re-run a failure in this arithmetic before reporting it
    selection: object = None  # neural.selected.Selection: the attention the proved retrieval lemma licenses
    _sess: object = field(default=None, repr=False)

    @classmethod
    def choose(cls, model: ConstructedModel, ieee: str | None = None, work: float = float("inf"),
               proved_attention: bool = False, float32_exact: bool | None = None) -> "Simulator":
        """``work``: the checks' multiply-adds (``SimulationPlan.work``). Below ``TORCH_WORTH_IT`` F(e,s) in numpy is
        done before torch has even been imported, and the proof path stays torch-free. ``proved_attention``: the
        retrieval lemma is proved for these weights in this arithmetic, so each head's row is gathered at its
        selected key, a seeded sample of rows checked against the dense kernel in every pass."""
        selection, kernel = None, ""
        if proved_attention:
            from neural.construction.selection import proved_selection

            selection, kernel = proved_selection(model), ", attention gathered where the retrieval lemma licenses it"
        if ieee is not None:
            return cls(model, ExecMode("ieee", dtype=ieee), f"torch {ieee}{kernel}", selection=selection)
        finite = ExecMode("finite", model.fmt)
        if work >= TORCH_WORTH_IT and (float32_is_exact(model) if float32_exact is None else float32_exact):
            return cls(model, ExecMode("ieee", dtype="float32"), f"torch float32, exact here: no dot product rounds "
                       f"in {finite} (order_independence){kernel}", confirm=finite, selection=selection)
        return cls(model, finite, f"{finite}{kernel}", selection=selection)

    @property
    def session(self):
        if self._sess is None:
            self._sess = session(self.model.config, self.model.weights, self.mode, selection=self.selection)
        return self._sess

    def _predictions(self, sequences: np.ndarray, steps: np.ndarray) -> Iterator[np.ndarray]:
        """Teacher-forced predictions, lazily: the one-pass path ``cotproof run`` takes."""
        return teacher_forced_rows(self.session, sequences, steps)

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


def float32_is_exact(model: ConstructedModel) -> bool:
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


def _result(name: str, method: str, failures, start: float, total: int, length: int, note: str = "") -> LemmaResult:
    from bridge.progress import Progress
    from neural.selected import UnsoundAttention

    count = 0
    with Progress(total, "instance", f"  {name}") as progress:
        try:
            for failure in failures:
                count += 1
                progress.update()
                if failure is not None:
                    return LemmaResult(name, REFUTED, time.perf_counter() - start, method,
                                       detail=f"failed on instance {count}", failure=failure)
        except UnsoundAttention as err:  # the retrieval lemma was proved, yet a gathered row is not the dense one's
            where = {"layer": err.layer, "head": err.head, "sequence": err.row, "position": err.position}
            return LemmaResult(name, REFUTED, time.perf_counter() - start, method, detail=str(err),
                               failure={"unsound_attention": where})
    return LemmaResult(name, PROVED, time.perf_counter() - start, method,
                       detail=f"{count:,} instances, {count * length:,} tokens, all exact{note}")


def _skipped(name: str, method: str, why: str) -> LemmaResult:
    return LemmaResult(name, SKIPPED, 0.0, method, detail=why)


def end_to_end(model, nc, plan: SimulationPlan, max_inputs: int, max_gates: int,
               sim: Simulator | None = None) -> LemmaResult:
    """Every input (Theorem 3.3, up to ``max_inputs`` inputs) or every circuit of up to ``max_gates`` gates (CVP),
    whole or not at all (``plan``)."""
    start = time.perf_counter()
    sim = sim or Simulator.choose(model)
    if model.mode == Mode.THM33:
        n = nc.n_inputs
        if n > max_inputs:
            return _skipped("end_to_end", f"exhaustive simulation in {sim.mode}", f"{n} inputs > max_inputs = "
                            f"{max_inputs}")
        method = f"exhaustive simulation in {sim.label}: all {2 ** n} inputs"
        if plan.exhaustive_skip:
            return _skipped("end_to_end", method, plan.exhaustive_skip)
        batch = np.array([[(i >> b) & 1 for b in range(n)] for i in range(2 ** n)], dtype=np.uint8)
        return _result("end_to_end", method, sim.thm33_failures(nc, batch), start, len(batch), plan.length)
    bound = min(max_gates, model.max_gates)
    method = f"exhaustive simulation in {sim.label}: every circuit of <= {bound} gates, padded to {model.max_gates}"
    if plan.exhaustive_skip:
        return _skipped("end_to_end", method, plan.exhaustive_skip)
    circuits = list(cvp.all_circuits(bound))
    return _result("end_to_end", method, sim.cvp_failures(circuits), start, len(circuits), plan.length)


def random_instances(model: ConstructedModel, nc, plan: SimulationPlan, seed: int,
                     max_gates: int = RANDOM_DEFAULTS["max_gates"], sim: Simulator | None = None) -> LemmaResult:
    """Theorem 3.3: random inputs to the compiled circuit, teacher-forced in batches. CVP: random circuits of 1 to
    min(max_gates, the model's max_gates) gates, padded to the model's N gates (its fixed layout). As many as
    ``plan`` runs: the first ones of the requested seeded sequence."""
    start = time.perf_counter()
    sim = sim or Simulator.choose(model)
    rng = np.random.default_rng(seed)
    if model.mode == Mode.THM33:
        method = f"seeded simulation in {sim.label} (seed {seed})"
    else:
        top = min(max_gates, model.max_gates)
        method = (f"seeded simulation in {sim.label} (seed {seed}, circuits of <= {top} gates, padded to "
                  f"{model.max_gates})")
    if plan.random_skip:
        return _skipped("random", method, plan.random_skip)
    note = ""
    if plan.random < plan.requested:
        from grammar.limits import human_seconds, simulation_budget

        note = (f"; {plan.random:,} of the {plan.requested:,} requested, as many as the simulation budget of "
                f"{human_seconds(simulation_budget())} holds (--no-limit runs all)")
    if model.mode == Mode.THM33:
        batch = rng.integers(0, 2, (plan.random, nc.n_inputs)).astype(np.uint8)
        return _result("random", method, sim.thm33_failures(nc, batch), start, plan.random, plan.length, note)
    cases = [cvp.random_circuit(rng, int(rng.integers(1, top + 1))) for _ in range(plan.random)]
    return _result("random", method, sim.cvp_failures(cases), start, plan.random, plan.length, note)
