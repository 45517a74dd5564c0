"""``cotproof check`` (trace soundness, numpy and SAT checkers side by side) and ``cotproof equiv`` (miter)."""
from __future__ import annotations

import json
import sys

import numpy as np

from bridge.output import EXIT_FAILED, EXIT_OK, EXIT_UNKNOWN, emit
from grammar.errors import InputError, ParameterError, SourceLoc


def cmd_check(args) -> int:
    from bridge.commands.inputs import parse_bits
    from bridge.target import load_target
    from formal.sat import check_trace as sat_check
    from grammar.evaluate import first_unsound

    nc = load_target(args.file, fmt=args.format).circuit
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
    return EXIT_OK if fast is None else EXIT_FAILED  # the exit-code table: 1 means the checked thing is wrong


# Up to this many gates in all, the plain CNF miter re-decides every answer, within CROSS_CHECK_SECONDS; past
# it (a multiplier), a plain miter times out anyway and sweeping alone decides.
MITER_CROSS_CHECK_GATES = 1_500
CROSS_CHECK_SECONDS = 10.0


def cmd_equiv(args) -> int:
    from bridge.target import load_target
    from formal import aig, sat
    from formal.equivalence import DIFFERENT, EQUIVALENT, UNKNOWN

    a, b = load_target(args.a, fmt=args.format).circuit, load_target(args.b, fmt=args.format).circuit
    try:
        verdict = aig.equivalent(a, b, args.conflicts)
    except ParameterError as err:
        raise InputError(str(err), SourceLoc(args.b),
                         expected="two netlists over the same inputs and output count") from None
    methods = [verdict.method]
    small = a.n_gates + b.n_gates <= MITER_CROSS_CHECK_GATES  # small pairs are cross-checked by the miter too
    decisive = not verdict.decided or (verdict.status == DIFFERENT and verdict.counterexample is None)
    if decisive or small:
        miter = sat.equivalent(a, b, args.timeout if decisive else min(args.timeout, CROSS_CHECK_SECONDS))
        methods.append(miter.method)
        if verdict.contradicts(miter):
            print(f"equiv: the two checkers disagree ({verdict.method}: {verdict.status}, {miter.method}: "
                  f"{miter.status})", file=sys.stderr)
            return EXIT_UNKNOWN
        if decisive and (miter.decided or not verdict.decided):
            verdict = miter
    status, counterexample = verdict.status, verdict.counterexample
    if not verdict.decided:
        print("equiv: UNKNOWN (neither checker finished: raise --conflicts or --timeout)", file=sys.stderr)
        if args.json:
            print(json.dumps({"equivalent": None, "status": UNKNOWN, "counterexample": None, "methods": methods}))
        return EXIT_UNKNOWN
    payload = {"equivalent": status == EQUIVALENT, "status": status, "counterexample": counterexample,
               "methods": methods}
    if counterexample:
        from grammar.evaluate import evaluate

        def outputs(nc) -> dict[str, int]:
            x = np.array([counterexample[n] for n in nc.input_names], dtype=np.uint8)
            values = evaluate(nc, x[None])[0]
            return {name: int(values[node]) for name, node in zip(nc.output_names, nc.outputs)}

        payload["outputs"] = {"a": outputs(a), "b": outputs(b)}
        payload["differing_outputs"] = [f"{na} / {nb}" if na != nb else na for (na, va), (nb, vb)
                                        in zip(payload["outputs"]["a"].items(), payload["outputs"]["b"].items())
                                        if va != vb]
        if not payload["differing_outputs"]:
            print("equiv: the counterexample does not replay (both circuits agree on it)", file=sys.stderr)
            return EXIT_UNKNOWN
    emit(payload, args.json, lambda p: ("equivalent" if p["equivalent"] else
         "NOT equivalent; counterexample: " + " ".join(f"{k}={v}" for k, v in p["counterexample"].items())
         + f"\n  outputs that differ: {', '.join(p['differing_outputs'])}"
         + "\n  A: " + " ".join(f"{k}={v}" for k, v in p["outputs"]["a"].items())
         + "\n  B: " + " ".join(f"{k}={v}" for k, v in p["outputs"]["b"].items())) + f"\n  by: {', '.join(methods)}")
    return EXIT_OK if payload["equivalent"] else EXIT_FAILED


def register(sub) -> None:
    from bridge.commands import flags
    from bridge.commands.flags import add_netlist_flags

    p = flags.command(sub, "check", cmd_check, help="check a CoT trace step by step (numpy and SAT checkers)")
    p.add_argument("file")
    p.add_argument("--inputs", required=True)
    p.add_argument("--trace", required=True, help="one bit per normalised gate, in order")
    add_netlist_flags(p)
    p = flags.command(sub, "equiv", cmd_equiv,
                      help="are two netlists equivalent? (sweeping, and a SAT miter as cross-check)")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--timeout", type=flags.seconds, default=60.0,
                   help="seconds for the CNF miter; a timeout is UNKNOWN")
    p.add_argument("--conflicts", type=flags.positive_int, default=1_000_000,
                   help="SAT conflicts for sweeping before it gives up (then the CNF miter decides)")
    add_netlist_flags(p)
