"""The verifier's engine: every claimed lemma of a constructed model, the bounded checks beside them, and a replayed
counterexample, gathered in a ``Report``. Callable from Python (``bridge.testing`` does); ``bridge.verify`` is the
command shell around it.

The proof path never imports torch: the weights are numpy arrays from ``neural.construct``, the lemmas are Z3
queries over them, and replays run in ``neural.fp``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from bridge.target import build, load_target
from formal.obligations import LemmaResult, combine
from neural.constructed import ConstructedModel


@dataclass
class Report:
    spec: str
    mode: str
    lemmas: list[LemmaResult] = field(default_factory=list)
    counterexample: dict | None = None
    composition: str | None = None
    cross_check: dict | None = None
    optimize: dict | None = None  # --optimize: gates and CoT steps before and after, and the equivalence proof
    model: ConstructedModel | None = field(default=None, repr=False)  # what was proved, for SMT-LIB export
    circuit: object | None = field(default=None, repr=False)  # the NormCircuit of a Theorem 3.3 model

    @property
    def status(self) -> str:
        return combine(r.status for r in self.lemmas if r.status != "skipped")

    def to_json(self) -> dict:
        return {"status": self.status, "spec": self.spec, "mode": self.mode,
                "lemmas": [r.to_json() for r in self.lemmas], "composition": self.composition,
                "counterexample": self.counterexample, "cross_check": self.cross_check,
                **({"optimize": self.optimize} if self.optimize else {})}


def verify(path: str, overrides: dict[str, str] | None = None, timeout_s: float = 60.0, progress=None,
           fmt: str | None = None, optimize: bool = False) -> Report:
    """Prove the spec or netlist at ``path``: its construction, its claims and its random instances."""
    target = load_target(path, overrides, fmt, optimize)
    spec = target.spec
    claims = {c.lemma: dict(c.params) for c in spec.claims}
    circuit = target.circuit if target.has_circuit else None
    report = prove_model(build(target), circuit, claims, spec.random.instances, spec.random.seed, timeout_s,
                         progress, path, spec.random.max_gates)
    report.optimize = target.optimize_report
    return report


def prove_model(model: ConstructedModel, circuit, claims: dict[str, dict] | None = None, instances: int = 0,
                seed: int = 0, timeout_s: float = 60.0, progress=None, label: str = "<model>",
                random_max_gates: int = 32) -> Report:
    """Every claimed lemma over these exact arrays, the bounded checks, and a replayed counterexample if any."""
    from bridge.bounded import end_to_end, random_instances
    from bridge.replay import replay
    from formal.obligations import COMPOSED_FROM, TABLE_LEMMA, composition, prove_lemma
    from grammar.spec import default_claims

    claims = default_claims() if claims is None else claims
    report = Report(label, model.mode, model=model, circuit=circuit)
    results = {}
    for name in COMPOSED_FROM:  # embedding always: composition stands on it
        if name != TABLE_LEMMA and name not in claims and "composition" not in claims:
            continue
        unrolled_k = int(claims.get("retrieval", {}).get("unrolled_k", 4))
        if progress:
            progress.lemma(name)
        results[name] = prove_lemma(model, circuit, name, timeout_s, unrolled_k,
                                    on_query=progress.query if progress else None)
        report.lemmas.append(results[name])
    if "composition" in claims:
        comp = composition(results)
        report.lemmas.append(comp)
        report.composition = comp.detail
    if "end_to_end" in claims:
        if progress:
            progress.lemma("end_to_end")
        e2e = claims["end_to_end"]
        report.lemmas.append(end_to_end(model, circuit, int(e2e.get("max_inputs", 6)), int(e2e.get("max_gates", 2))))
    if instances:
        if progress:
            progress.lemma("random")
        report.lemmas.append(random_instances(model, circuit, instances, seed, random_max_gates))
    refuted = next((r for r in report.lemmas if r.counterexample is not None), None)
    if refuted is not None:
        report.counterexample = replay(model, circuit, refuted.counterexample)
    else:
        failed = next((r for r in report.lemmas if r.failure), None)
        if failed is not None:
            report.counterexample = {"lemma": failed.name, **failed.failure, "replayed": True}
    return report


