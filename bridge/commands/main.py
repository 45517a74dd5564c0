"""The ``cotproof`` command line: the root of the bridge, which nothing imports. Each subcommand imports what it
needs when it runs, so paths that need no torch never pay for importing it. Every InputError becomes one message
on stderr and exit status 2 (``bridge.output.run_command``)."""
from __future__ import annotations

import argparse
import sys

from bridge.commands import flags
from bridge.output import ArgParser, emit, run_command

# ---- spec ------------------------------------------------------------------------------------------

def cmd_spec_check(args) -> int:
    from bridge.commands.inputs import parse_overrides
    from grammar.spec import parse_spec

    spec = parse_spec(args.spec, parse_overrides(args.override))
    c = spec.construction
    payload = {
        "name": spec.name,
        "mode": c.mode,
        "precision": [c.precision.ebits, c.precision.sbits],
        "key_scale": c.key_scale if c.key_scale is not None else "auto",
        "max_gates": c.max_gates,
        "task": None if spec.task is None else {"kind": spec.task.kind, **dict(spec.task.params)},
        "circuit": None if spec.circuit is None else spec.circuit.name,
        "claims": [{"lemma": cl.lemma, **dict(cl.params)} for cl in spec.claims],
        "random": {"instances": spec.random.instances, "seed": spec.random.seed, "max_gates": spec.random.max_gates},
    }
    emit(payload, args.json, lambda p: f"{args.spec}: ok ({p['mode']} mode, F({c.precision.ebits},"
                                       f"{c.precision.sbits}), lemmas: {', '.join(cl.lemma for cl in spec.claims)})")
    return 0


# ---- parser --------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = ArgParser(prog="cotproof", description="Prove, run and audit chain-of-thought transformers.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgParser)

    circuit = sub.add_parser("circuit", help="inspect and evaluate netlists")
    csub = circuit.add_subparsers(dest="circuit_command", required=True, parser_class=ArgParser)
    from bridge.commands import circuits

    circuits.register(csub)

    spec = sub.add_parser("spec", help="check spec files")
    ssub = spec.add_subparsers(dest="spec_command", required=True, parser_class=ArgParser)
    p = flags.command(ssub, "check", cmd_spec_check, help="parse and validate a spec")
    p.add_argument("spec")
    p.add_argument("--override", action="append", metavar="KEY=VALUE")

    from bridge.commands import auditing, benchmarking, certifying, checking, exporting, learning, running, verifying

    p = sub.add_parser("verify", help="prove a spec or netlist (same as python -m bridge.verify)")
    verifying.add_verify_arguments(p)
    p.set_defaults(func=verifying.run_verify)
    for shell in (running, checking, learning, auditing, certifying, exporting, benchmarking):
        shell.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
