"""``python -m bridge.verify SPEC``: prove the construction's weights exact, or print a replayed counterexample.

Exit status: 0 proved, 1 refuted, 2 bad input, 3 unknown. The proof path never imports torch: the weights are
numpy arrays from ``neural.construct``, the lemmas are Z3 queries over them, and replays run in ``neural.fp``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

EXIT_PROVED, EXIT_REFUTED, EXIT_BAD_INPUT, EXIT_UNKNOWN = 0, 1, 2, 3
DEFAULT_NETLIST_CLAIMS = {"retrieval": {"unrolled_k": 4}, "gate_ffn": {}, "readout": {}, "composition": {},
                          "end_to_end": {"max_inputs": 6}}


def add_verify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="a spec (.lark) or a netlist (.bench/.aag)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per solver query; a timeout is UNKNOWN")
    p.add_argument("--emit-smt2", metavar="DIR", help="also write every solver query as SMT-LIB2 to DIR")
    p.add_argument("--cross-check", action="store_true",
                   help="re-solve the exported queries with cvc5 (python package) and report disagreements")
    p.add_argument("--override", action="append", metavar="KEY=VALUE")


@dataclass
class Report:
    spec: str
    mode: str
    lemmas: list = field(default_factory=list)  # LemmaResult
    counterexample: dict | None = None
    composition: str | None = None
    cross_check: dict | None = None

    @property
    def status(self) -> str:
        from formal.obligations import combine

        return combine(r.status for r in self.lemmas if r.status != "skipped")

    def to_json(self) -> dict:
        return {"status": self.status, "spec": self.spec, "mode": self.mode,
                "lemmas": [r.to_json() for r in self.lemmas], "composition": self.composition,
                "counterexample": self.counterexample, "cross_check": self.cross_check}


def _claims(target) -> tuple[dict[str, dict], tuple[int, int]]:
    if target.spec is None:
        return DEFAULT_NETLIST_CLAIMS, (100, 0)
    claims = {c.lemma: dict(c.params) for c in target.spec.claims}
    return claims, (target.spec.random.instances, target.spec.random.seed)


def build_model(target):
    from grammar.errors import InputError, SourceLoc
    from neural.construct import build_cvp, build_thm33
    from neural.fp import FPFormat

    fmt = FPFormat(target.ebits, target.sbits)
    try:
        if target.mode == "cvp":
            return build_cvp(target.max_gates, fmt, target.key_scale)
        if target.circuit is None:
            raise InputError("thm33 mode needs a circuit", SourceLoc(target.spec.path if target.spec else ""),
                             expected="a 'circuit' section")
        return build_thm33(target.circuit, fmt, target.key_scale)
    except ValueError as err:
        raise InputError(str(err), SourceLoc(target.spec.path if target.spec else ""),
                         expected="construction parameters the format can represent") from None


def verify(path: str, overrides: dict[str, str] | None = None, timeout_s: float = 60.0, progress=None) -> Report:
    from bridge.execution import load_target

    target = load_target(path, overrides)
    claims, (instances, seed) = _claims(target)
    report = prove_model(build_model(target), target.circuit, claims, instances, seed, timeout_s, progress, path)
    report._target = target
    return report


def prove_model(model, circuit, claims: dict[str, dict] | None = None, instances: int = 0, seed: int = 0,
                timeout_s: float = 60.0, progress=None, label: str = "<model>") -> Report:
    """Every claimed lemma over these exact arrays, the bounded checks, and a replayed counterexample if any."""
    from bridge.bounded import end_to_end, random_instances
    from bridge.replay import replay
    from formal.obligations import SOLVER_LEMMAS, composition, prove_lemma

    claims = DEFAULT_NETLIST_CLAIMS if claims is None else claims
    report = Report(label, model.mode)
    results = {}
    for name in SOLVER_LEMMAS:  # embedding always: composition stands on it
        if name != "embedding" and name not in claims and "composition" not in claims:
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
        report.lemmas.append(random_instances(model, circuit, instances, seed))
    refuted = next((r for r in report.lemmas if r.counterexample is not None), None)
    if refuted is not None:
        report.counterexample = replay(model, circuit, refuted.counterexample)
    else:
        failed = next((r for r in report.lemmas if getattr(r, "failure", None)), None)
        if failed is not None:
            report.counterexample = {"lemma": failed.name, **failed.failure, "replayed": True}
    report._model, report._circuit = model, circuit
    return report


def emit_smt2(report: Report, directory: str, unrolled_k: int = 4) -> list[Path]:
    from formal.obligations import all_queries
    from formal.query import smt2_filename, to_smt2
    from neural.checkpoint import atomic_write_text

    out = Path(directory)
    paths = []
    for q in all_queries(report._model, report._circuit, unrolled_k):
        p = out / smt2_filename(q.name)
        atomic_write_text(p, to_smt2(q))
        paths.append(p)
    return paths


def cross_check(paths: list[Path], timeout_s: float) -> dict:
    """Re-solve exported queries with cvc5; every answer must be unsat (each file is a claim's negation).

    cvc5's default FP solver takes only Float32/Float64, so small formats use its ``fp-exp`` solver; the report
    names the options used so a disagreement can be reproduced."""
    from grammar.errors import InputError, SourceLoc

    try:
        import cvc5
    except ImportError:
        raise InputError("--cross-check needs the cvc5 Python package, which is not installed",
                         SourceLoc("--cross-check"), expected="pip install cvc5") from None
    options = {"tlimit-per": str(max(1, int(timeout_s * 1000))), "fp-exp": "true"}
    disagreements, unanswered, answers = [], [], {}
    for p in paths:
        tm = cvc5.TermManager()
        solver, symbols = cvc5.Solver(tm), cvc5.SymbolManager(tm)
        for key, value in options.items():
            solver.setOption(key, value)
        solver.setLogic("ALL")
        parser = cvc5.InputParser(solver, symbols)
        parser.setFileInput(cvc5.InputLanguage.SMT_LIB_2_6, str(p))
        said = []
        while not (cmd := parser.nextCommand()).isNull():
            said.append(cmd.invoke(solver, symbols).strip())
        answer = next((w for w in reversed(said) if w), "no answer")
        answers[p.name] = answer if len(answer) < 80 else answer[:77] + "..."
        if answer == "sat":
            disagreements.append(p.name)  # z3 proved it, cvc5 found a counterexample
        elif answer != "unsat":
            unanswered.append(p.name)
    return {"solver": f"cvc5 {cvc5.__version__ if hasattr(cvc5, '__version__') else ''}".strip(),
            "options": options, "queries": len(paths), "disagreements": disagreements, "unanswered": unanswered,
            "answers": answers}


class _Progress:
    """A status line on stderr (only on a terminal): which lemma, how many queries so far."""

    def __init__(self):
        self.start = time.perf_counter()
        self.count = 0
        self.name = ""

    def lemma(self, name: str) -> None:
        self.name = name
        self._show()

    def query(self, outcome) -> None:
        self.count += 1
        self._show()

    def _show(self) -> None:
        sys.stderr.write(f"\r  proving {self.name:<12} {self.count:>4} queries  {time.perf_counter() - self.start:6.1f}s")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\r" + " " * 60 + "\r")


def human(report: Report) -> str:
    lines = [f"{report.spec}: {report.mode} construction", "",
             f"  {'lemma':<12} {'status':<8} {'seconds':>8}  method"]
    for r in report.lemmas:
        extra = f", {len(r.outcomes)} queries" if r.outcomes and r.method.startswith("z3") else ""
        lines.append(f"  {r.name:<12} {r.status.upper():<8} {r.seconds:>8.2f}  {r.method}{extra}"
                     + (f" ({r.detail})" if r.detail and r.name not in ("composition",) else ""))
    if report.composition:
        lines += ["", "composition: " + report.composition]
    cex = report.counterexample
    if cex:
        lines += ["", f"counterexample ({cex.get('query', cex.get('lemma'))}):"]
        lines += [f"  {k}: {json.dumps(v)}" for k, v in cex.items() if k not in ("replay", "model_failure", "replayed")]
        if cex.get("replay"):
            lines.append("  replay in neural.fp: " + json.dumps(cex["replay"]))
        if cex.get("model_failure"):
            lines.append("  whole model, teacher-forced: " + json.dumps(cex["model_failure"]))
        lines.append(f"  replayed: {'yes' if cex.get('replayed') else 'NO (the failure did not reproduce)'}")
    if report.cross_check:
        cc = report.cross_check
        lines.append(f"\ncross-check with {cc['solver']}: {cc['queries']} queries, "
                     + ("no disagreement" if not cc["disagreements"] else f"DISAGREE on {cc['disagreements']}")
                     + (f"; no answer in time on {cc['unanswered']}" if cc["unanswered"] else ""))
    lines += ["", report.status.upper()]
    return "\n".join(lines)


def run_verify(args) -> int:
    from bridge.inputs import parse_overrides
    from formal.query import PROVED, REFUTED

    progress = _Progress() if (not args.json and sys.stderr.isatty()) else None
    try:
        report = verify(args.spec, parse_overrides(args.override), args.timeout, progress)
    finally:
        if progress:
            progress.close()
    if args.emit_smt2 or args.cross_check:
        import tempfile

        directory = args.emit_smt2 or tempfile.mkdtemp(prefix="cotproof-smt2-")
        paths = emit_smt2(report, directory)
        if args.cross_check:
            report.cross_check = cross_check(paths, args.timeout)
    print(json.dumps(report.to_json()) if args.json else human(report))
    if report.cross_check and report.cross_check["disagreements"]:
        print(f"verify: cvc5 DISAGREES with z3 on {report.cross_check['disagreements']}", file=sys.stderr)
        return EXIT_UNKNOWN
    return {PROVED: EXIT_PROVED, REFUTED: EXIT_REFUTED}.get(report.status, EXIT_UNKNOWN)


def main(argv: list[str] | None = None) -> int:
    from bridge.cli import _Parser
    from grammar.errors import InputError

    parser = _Parser(prog="python -m bridge.verify", description=__doc__.splitlines()[0])
    add_verify_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_verify(args)
    except InputError as err:
        print(str(err), file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
