"""The verifier's engine: every claimed lemma of a constructed model, the bounded checks beside them, and a replayed
counterexample, gathered in a ``Report``. Callable from Python (``bridge.testing`` does);
``bridge.commands.verifying`` is the command shell around it.

The proof path never imports torch in the paper's arithmetic: the weights are numpy arrays from
``neural.construction.construct``, the lemmas are Z3 queries over them, and replays run in
``neural.construction.fp``. With ``ieee`` (a torch dtype) the lemmas are stated in IEEE arithmetic for every
summation order, and the bounded checks and replays run in torch in that dtype, because that is the arithmetic the
claim is about.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from bridge.target import build, in_ieee, load_target
from formal.obligations import LemmaResult, combine
from grammar.spec import RANDOM_DEFAULTS
from neural.construction.constructed import ConstructedModel

RETRIEVAL = "retrieval"  # the lemma whose proof licenses gathered attention in the bounded checks, as in ``run``


@dataclass
class Report:
    spec: str
    mode: str
    lemmas: list[LemmaResult] = field(default_factory=list)
    counterexample: dict | None = None
    composition: str | None = None
    cross_check: dict | None = None
    optimize: dict | None = None  # --optimize: gates and CoT steps before and after, and the equivalence proof
    ieee: str | None = None  # the torch dtype the lemmas are stated for, or None: the paper's F(e,s)
    model: ConstructedModel | None = field(default=None, repr=False)  # what was proved, for SMT-LIB export
    circuit: object | None = field(default=None, repr=False)  # the NormCircuit of a Theorem 3.3 model
    estimate: object | None = None  # bridge.bounded.Estimate of the proof and the checks, made before they start
    seconds: float | None = None  # what they took (the estimate's measure: after parsing and building)

    @property
    def status(self) -> str:
        return combine(r.status for r in self.lemmas if r.status != "skipped")

    @property
    def arithmetic(self) -> str:
        if self.model is None:
            return "?"
        f = f"F({self.model.fmt.ebits},{self.model.fmt.sbits})"
        return (f"IEEE {self.ieee} = {f} with inf and NaN, any summation order" if self.ieee
                else f"{f}, saturating, summed left to right (the paper's)")

    def to_json(self) -> dict:
        return {"status": self.status, "spec": self.spec, "mode": self.mode, "arithmetic": self.arithmetic,
                "ieee": self.ieee, "key_scale": self.model.key_scale if self.model else None,
                "lemmas": [r.to_json() for r in self.lemmas], "composition": self.composition,
                "counterexample": self.counterexample, "cross_check": self.cross_check,
                **({"optimize": self.optimize} if self.optimize else {}),
                **({"estimate": self.estimate.to_json(), "seconds": round(self.seconds, 2)}
                   if self.estimate is not None and self.seconds is not None else {})}


def verify(path: str, overrides: dict[str, str] | None = None, *, timeout_s: float = 60.0, progress=None,
           fmt: str | None = None, optimize: bool = False, ieee: str | None = None) -> Report:
    """Prove the spec or netlist at ``path``: its construction, its claims and its random instances; with ``ieee``
    (float16, bfloat16, float32) in that torch dtype's arithmetic rather than the spec's F(e,s)."""
    target = load_target(path, overrides, fmt, optimize)
    if ieee is not None:
        target = in_ieee(target, ieee)
    spec = target.spec
    claims = {c.lemma: dict(c.params) for c in spec.claims}
    circuit = target.circuit if target.has_circuit else None
    model = build(target, as_arrays=False)  # the proof reads CVP's tables as programs
    report = prove_model(model, circuit, claims, instances=spec.random.instances, seed=spec.random.seed,
                         timeout_s=timeout_s, progress=progress, label=path, random_max_gates=spec.random.max_gates,
                         ieee=ieee)
    report.optimize = target.optimize_report
    return report


def prove_ieee_lemmas(model: ConstructedModel, circuit, dtype: str, where: str, timeout_s: float) -> Report:
    """The lemmas of ``verify --ieee DTYPE`` over these very weights, without the bounded simulations: what ``run
    --ieee`` needs before it runs a dtype, and what ``export`` records beside a construction."""
    from grammar.spec import default_claims

    claims = {name: params for name, params in default_claims().items() if name != "end_to_end"}
    return prove_model(model, circuit, claims, timeout_s=timeout_s, label=where, ieee=dtype)


def exit_status(status: str) -> int:
    """A proof's verdict as the exit-code table says: proved 0, refuted 1, anything else (unknown) 3."""
    from bridge.output import EXIT_FAILED, EXIT_OK, EXIT_UNKNOWN
    from formal.query import PROVED, REFUTED

    return {PROVED: EXIT_OK, REFUTED: EXIT_FAILED}.get(status, EXIT_UNKNOWN)


def require_simulation(plan, where: str) -> None:
    """Price the bounded checks before any proof starts: refuse (exit 2, with the estimate) a spec that asks for
    more simulated tokens or memory than this machine should attempt; ``--no-limit`` lifts it."""
    from bridge.bounded import require_affordable
    from grammar.limits import human_count

    count = plan.instances + plan.claimed - plan.exhaustive
    what = f"the bounded checks ({human_count(count)} instances of up to {plan.length:,} tokens)"
    require_affordable(plan.priced_tokens, plan.seconds, what, where,
                       "fewer random.instances, a smaller claims.end_to_end bound, or a smaller circuit")


def prove_model(model: ConstructedModel, circuit, claims: dict[str, dict] | None = None, *, instances: int = 0,
                seed: int = 0, timeout_s: float = 60.0, progress=None, label: str = "<model>",
                random_max_gates: int = RANDOM_DEFAULTS["max_gates"], ieee: str | None = None) -> Report:
    """Every claimed lemma over these exact arrays, the bounded checks, and a replayed counterexample if any."""
    from bridge.bounded import (
        Simulator,
        end_to_end,
        float32_is_exact,
        plan_simulations,
        prefetch_torch,
        random_instances,
    )
    from bridge.estimates import verify_estimate
    from bridge.replay import replay
    from formal.obligations import ORDER_LEMMA, TABLE_LEMMA, composed_from, composition, prove_lemma
    from formal.query import PROVED
    from grammar.spec import claim_param, default_claims

    claims = default_claims() if claims is None else claims
    report = Report(label, model.mode, model=model, circuit=circuit, ieee=ieee)
    start = time.perf_counter()
    exact = None if ieee is not None else float32_is_exact(model)  # once: the plans and the simulator ask
    plan = plan_simulations(model, circuit, claims, instances, ieee, float32_exact=exact)
    require_simulation(plan, label)  # dense attention: what the checks run if the retrieval lemma is not proved
    licensed_plan = plan_simulations(model, circuit, claims, instances, ieee, proved_attention=True,
                                     float32_exact=exact) if RETRIEVAL in claims else None
    if licensed_plan is not None and licensed_plan.per_instance_seconds >= plan.per_instance_seconds:
        licensed_plan = None  # short sequences: gathering (and its dense spot check) saves nothing
    report.estimate = verify_estimate(model, licensed_plan or plan)
    if plan.in_torch or (licensed_plan and licensed_plan.in_torch):
        prefetch_torch()
    unrolled_k = claim_param(claims, "retrieval", "unrolled_k")
    results = {}
    for name in composed_from(ieee is not None):  # embedding (and, in IEEE, the order) always: composition needs them
        if name not in (TABLE_LEMMA, ORDER_LEMMA) and name not in claims and "composition" not in claims:
            continue
        if progress:
            progress.lemma(name)
        results[name] = prove_lemma(model, circuit, name, timeout_s, unrolled_k,
                                    on_query=progress.query if progress else None, ieee=ieee is not None)
        report.lemmas.append(results[name])
    if "composition" in claims:
        comp = composition(results, ieee is not None, model.mode)
        report.lemmas.append(comp)
        report.composition = comp.detail
    if licensed_plan is not None and results[RETRIEVAL].status == PROVED:  # the checks may gather, as run does
        plan = licensed_plan
    sim = Simulator.choose(model, ieee, plan.work, proved_attention=plan is licensed_plan, float32_exact=exact)
    if "end_to_end" in claims:
        if progress:
            progress.lemma("end_to_end")
        report.lemmas.append(end_to_end(model, circuit, plan, claim_param(claims, "end_to_end", "max_inputs"),
                                        claim_param(claims, "end_to_end", "max_gates"), sim))
    if instances:
        if progress:
            progress.lemma("random")
        report.lemmas.append(random_instances(model, circuit, plan, seed, random_max_gates, sim))
    refuted = next((r for r in report.lemmas if r.counterexample is not None), None)
    if refuted is not None:
        report.counterexample = replay(model, circuit, refuted.counterexample, ieee)
    else:
        failed = next((r for r in report.lemmas if r.failure), None)
        if failed is not None:
            report.counterexample = {"lemma": failed.name, **failed.failure, "replayed": True}
    report.seconds = time.perf_counter() - start
    return report


