"""The ``cotproof`` command line: the root of the bridge, which nothing imports. Each subcommand imports what it
needs when it runs, so paths that need no torch never pay for importing it. Every InputError becomes one message
on stderr and exit status 2 (``bridge.output.run_command``)."""
from __future__ import annotations

import argparse
import sys

from bridge.output import ArgParser, emit, run_command

# ---- circuit / spec ------------------------------------------------------------------------------------------

def cmd_circuit_info(args) -> int:
    from bridge.target import load_target

    target = load_target(args.file)
    circuit, nc = target.raw_circuit(), target.circuit
    payload = {
        "inputs": list(circuit.inputs),
        "outputs": list(circuit.outputs),
        "gates": len(circuit.gates),
        "gate_types": dict(sorted(_count(g.op for g in circuit.gates).items())),
        "normalized_gates": nc.n_gates,
        "unused_gates": sum(not g.used for g in nc.gates),
        "depth": int(nc.levels.max()) if nc.n_nodes else 0,
    }
    emit(payload, args.json, lambda p: "\n".join([
        f"{circuit.name}: {len(p['inputs'])} inputs, {len(p['outputs'])} outputs, {p['gates']} gates, depth {p['depth']}",
        "gate types: " + ", ".join(f"{k} {v}" for k, v in p["gate_types"].items()),
        f"normalised: {p['normalized_gates']} two-input gates ({p['unused_gates']} unused)",
    ]))
    return 0


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def cmd_circuit_eval(args) -> int:
    from bridge.inputs import parse_bits
    from bridge.target import load_target
    from grammar.evaluate import evaluate

    nc = load_target(args.file).circuit
    bits = parse_bits(args.inputs, nc.n_inputs, "--inputs")
    values = evaluate(nc, bits[None, :])[0]
    payload = {"outputs": {name: int(values[node]) for name, node in zip(nc.output_names, nc.outputs)}}
    emit(payload, args.json, lambda p: "\n".join(f"{k} = {v}" for k, v in p["outputs"].items()))
    return 0


def cmd_spec_check(args) -> int:
    from bridge.inputs import parse_overrides
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
        "random": {"instances": spec.random.instances, "seed": spec.random.seed},
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
    p = csub.add_parser("info", help="inputs, outputs and gate counts")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_circuit_info)
    p = csub.add_parser("eval", help="evaluate with the reference evaluator")
    p.add_argument("file")
    p.add_argument("--inputs", required=True, help="bits in the order of the circuit's inputs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_circuit_eval)

    spec = sub.add_parser("spec", help="check spec files")
    ssub = spec.add_subparsers(dest="spec_command", required=True, parser_class=ArgParser)
    p = ssub.add_parser("check", help="parse and validate a spec")
    p.add_argument("spec")
    p.add_argument("--override", action="append", metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_spec_check)

    from bridge import commands

    commands.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
