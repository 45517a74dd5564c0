"""``python -m bridge.verify SPEC``: prove the construction's weights exact, or print a replayed counterexample.

Exit status: 0 proved, 1 refuted, 2 bad input, 3 unknown. This module is the command's shell (flags, progress,
human output); the engine is ``bridge.proof``, and the proof path never imports torch.
"""
from __future__ import annotations

import argparse
import json
import sys

from bridge.commands import flags
from bridge.commands.flags import add_netlist_flags, optimize_lines
from bridge.output import EXIT_UNKNOWN, ArgParser, run_command


class _CrossCheck(argparse.Action):
    """``--cross-check [SOLVERS]``. The solver list is optional, so ``--cross-check SPEC`` must not swallow the spec:
    a word that names no solver is kept as the positional argument instead (``_spec``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from bridge.smt_export import SOLVERS

        if values is None or all(n.strip() in SOLVERS for n in values.split(",") if n.strip()) and values.strip(","):
            namespace.cross_check = values or self.const
        else:
            namespace.cross_check = self.const
            namespace.stray_spec = values


def add_verify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", nargs="?", help="a spec (.lark) or a netlist (.bench/.aag/.aig/.blif/.v)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--timeout", type=flags.seconds, default=60.0, help="seconds per solver query; a timeout is UNKNOWN")
    p.add_argument("--emit-smt2", metavar="DIR", help="also write every solver query as SMT-LIB2 to DIR")
    p.add_argument("--cross-check", nargs="?", const="cvc5", metavar="SOLVERS", action=_CrossCheck,
                   help="re-solve the exported queries with cvc5, bitwuzla or both (cvc5,bitwuzla; default cvc5) "
                        "and report disagreements")
    p.add_argument("--override", action="append", metavar="KEY=VALUE")
    p.add_argument("--ieee", metavar="DTYPE",
                   help="prove the lemmas in torch's IEEE arithmetic for float16, bfloat16 or float32 (inf, NaN, "
                        "any summation order) instead of the spec's saturating F(e,s)")
    add_netlist_flags(p, optimize=True)


class _Progress:
    """What ``prove_model`` reports (each lemma, each query answered) as ``bridge.progress`` shows it."""

    def __init__(self):
        from bridge.progress import Progress

        self.progress = Progress(None, "query", "proving")

    def lemma(self, name: str) -> None:
        self.progress.describe(f"proving {name}")

    def query(self, outcome) -> None:
        self.progress.update()

    def close(self) -> None:
        self.progress.close()


def human(report) -> str:
    """A ``bridge.proof.Report`` for people."""
    lines = [f"{report.spec}: {report.mode} construction, key scale {report.model.key_scale:g}, "
             f"in {report.arithmetic}"]
    lines += optimize_lines(report.optimize)
    lines += ["",
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
            where = f"torch {report.ieee}" if report.ieee else "neural.construction.fp"
            lines.append(f"  replay in {where}: " + json.dumps(cex["replay"]))
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
    from bridge.commands.inputs import parse_overrides
    from bridge.proof import exit_status, verify
    from bridge.smt_export import cross_check_all, emit_smt2, parse_solvers
    from grammar.errors import InputError, SourceLoc

    stray = getattr(args, "stray_spec", None)
    if stray is not None and args.spec is not None:  # `SPEC --cross-check WORD`: WORD was meant as a solver
        parse_solvers(stray)
    args.spec = args.spec or stray
    if args.spec is None:
        raise InputError("no spec or netlist given", SourceLoc("verify"), expected="cotproof verify SPEC [flags]")
    solvers = parse_solvers(args.cross_check) if args.cross_check else ()
    if args.emit_smt2:
        from bridge.commands.inputs import writable_directory

        writable_directory(args.emit_smt2, "--emit-smt2")
    progress = _Progress()
    try:
        report = verify(args.spec, parse_overrides(args.override), timeout_s=args.timeout, progress=progress,
                        fmt=args.format, optimize=args.optimize, ieee=args.ieee)
    finally:
        if progress:
            progress.close()
    if args.emit_smt2:
        paths = emit_smt2(report, args.emit_smt2)
        if args.cross_check:
            report.cross_check = cross_check_all(paths, args.timeout, solvers)
    elif args.cross_check:  # the files are only the other solvers' input: a directory that goes away after
        import tempfile

        with tempfile.TemporaryDirectory(prefix="cotproof-smt2-") as directory:
            report.cross_check = cross_check_all(emit_smt2(report, directory), args.timeout, solvers)
    print(json.dumps(report.to_json()) if args.json else human(report))
    if report.cross_check and report.cross_check["disagreements"]:
        print(f"verify: {report.cross_check['solver']} DISAGREES with z3 on {report.cross_check['disagreements']}",
              file=sys.stderr)
        return EXIT_UNKNOWN
    return exit_status(report.status)


def main(argv: list[str] | None = None) -> int:
    parser = ArgParser(prog="python -m bridge.verify", description=__doc__.splitlines()[0])
    add_verify_arguments(parser)
    return run_command(run_verify, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
