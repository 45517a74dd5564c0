"""``cotproof check`` (trace soundness, numpy and SAT checkers side by side) and ``cotproof equiv`` (miter)."""
from __future__ import annotations

import sys

import numpy as np

from bridge.output import EXIT_FAILED, EXIT_OK, EXIT_UNKNOWN, emit
from grammar.errors import InputError, SourceLoc


def cmd_check(args) -> int:
    from bridge.inputs import parse_bits
    from bridge.target import load_target
    from formal.sat import check_trace as sat_check
    from grammar.evaluate import first_unsound

    nc = load_target(args.file).circuit
    bits = parse_bits(args.inputs, nc.n_inputs, "--inputs")
    trace = parse_bits(args.trace, nc.n_gates, "--trace")
    fast = first_unsound(nc, bits, trace)
    sat = sat_check(nc, bits, trace)
    if sat.first_unsound_step != fast:  # two independent checkers; a disagreement is a bug, never hidden
        print(f"check: the numpy checker says step {fast}, the SAT checker says {sat.first_unsound_step}",
              file=sys.stderr)
        return EXIT_UNKNOWN
    payload = {"sound": fast is None, "first_unsound_step": fast}
    if fast is not None:
        g = nc.gates[fast]
        payload["gate"] = {"name": g.name, "op": g.op, "origin": g.origin}
    emit(payload, args.json, lambda p: "sound: every step follows from the trace's own earlier values"
         if p["sound"] else f"UNSOUND: step {p['first_unsound_step']} (gate {p['gate']['name']}, {p['gate']['op']}) "
                            f"does not follow from the earlier values")
    return 0


def cmd_equiv(args) -> int:
    from bridge.target import load_target
    from formal.sat import equivalent

    a, b = load_target(args.a).circuit, load_target(args.b).circuit
    try:
        verdict = equivalent(a, b, args.timeout)
    except ValueError as err:
        raise InputError(str(err), SourceLoc(args.b), expected="two netlists over the same inputs and output count")
    if verdict.status == "unknown":
        print(f"equiv: UNKNOWN ({verdict.reason})", file=sys.stderr)
        return EXIT_UNKNOWN
    payload = {"equivalent": verdict.status == "equivalent", "counterexample": verdict.counterexample}
    if verdict.counterexample:
        from grammar.evaluate import evaluate

        x = lambda nc: np.array([verdict.counterexample[n] for n in nc.input_names], dtype=np.uint8)  # noqa: E731
        payload["outputs"] = {"a": evaluate(a, x(a)[None])[0][list(a.outputs)].tolist(),
                              "b": evaluate(b, x(b)[None])[0][list(b.outputs)].tolist()}
    emit(payload, args.json, lambda p: "equivalent" if p["equivalent"] else
         "NOT equivalent; counterexample: " + " ".join(f"{k}={v}" for k, v in p["counterexample"].items())
         + f"\n  outputs of A: {p['outputs']['a']}, of B: {p['outputs']['b']}")
    return EXIT_OK if payload["equivalent"] else EXIT_FAILED


def register(sub) -> None:
    p = sub.add_parser("check", help="check a CoT trace step by step (numpy and SAT checkers)")
    p.add_argument("file")
    p.add_argument("--inputs", required=True)
    p.add_argument("--trace", required=True, help="one bit per normalised gate, in order")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("equiv", help="are two netlists equivalent? (SAT miter)")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_equiv)
