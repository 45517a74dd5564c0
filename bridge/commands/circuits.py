"""``cotproof circuit info | eval | convert``: netlists in any format, without a model.

``eval`` takes one vector (``--inputs``), a file of them (``--vectors``, one bit string per line) or random ones
(``--random N --seed S``); many vectors are evaluated bit-parallel (64 per uint64 word) and printed as JSON lines.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from bridge.output import emit
from grammar.errors import InputError, SourceLoc

NETLIST_HELP = "a netlist (.bench, .aag, .aig, .blif, .v) or a spec with a circuit"


def cmd_info(args) -> int:
    from bridge.target import load_target

    target = load_target(args.file, fmt=args.format)
    circuit, nc = target.raw_circuit(), target.circuit
    counts: dict[str, int] = {}
    for g in circuit.gates:
        counts[g.op] = counts.get(g.op, 0) + 1
    payload = {
        "inputs": list(circuit.inputs),
        "outputs": list(circuit.outputs),
        "gates": len(circuit.gates),
        "gate_types": dict(sorted(counts.items())),
        "normalized_gates": nc.n_gates,
        "unused_gates": sum(not g.used for g in nc.gates),
        "depth": int(nc.levels.max()) if nc.n_nodes else 0,
    }
    emit(payload, args.json, lambda p: "\n".join([
        f"{circuit.name}: {len(p['inputs'])} inputs, {len(p['outputs'])} outputs, {p['gates']} gates, "
        f"depth {p['depth']}",
        "inputs: " + " ".join(p["inputs"][:16]) + (" ..." if len(p["inputs"]) > 16 else ""),
        "outputs: " + " ".join(p["outputs"][:16]) + (" ..." if len(p["outputs"]) > 16 else ""),
        "gate types: " + ", ".join(f"{k} {v}" for k, v in p["gate_types"].items()),
        f"normalised: {p['normalized_gates']} two-input gates ({p['unused_gates']} unused)",
    ]))
    return 0


def cmd_circuit_eval(args) -> int:
    from bridge.commands.inputs import input_vectors
    from bridge.target import load_target
    from grammar.evaluate import evaluate, evaluate_packed, pack_bits, unpack_bits

    nc = load_target(args.file, fmt=args.format).circuit
    x, single = input_vectors(args, nc.n_inputs, nc.n_nodes / 4 + 64 * len(nc.outputs))
    if single:
        values = evaluate(nc, x)[0]
        payload = {"outputs": {name: int(values[node]) for name, node in zip(nc.output_names, nc.outputs)}}
        emit(payload, args.json, lambda p: "\n".join(f"{k} = {v}" for k, v in p["outputs"].items()))
        return 0
    outputs = unpack_bits(evaluate_packed(nc, pack_bits(x))[list(nc.outputs)], len(x))
    names = nc.output_names
    out = sys.stdout
    for vector, result in zip(x, outputs):
        out.write(json.dumps({"inputs": "".join(map(str, vector)),
                              "outputs": {n: int(v) for n, v in zip(names, result)}}) + "\n")
    return 0


def cmd_convert(args) -> int:
    from grammar.netlist import format_of, load_netlist, netlist_bytes
    from neural.checkpoint import atomic_write_bytes

    circuit = load_netlist(args.input, args.format)
    fmt = format_of(args.output, args.to, "--to")
    data = netlist_bytes(circuit, fmt, args.output)
    try:
        atomic_write_bytes(Path(args.output), data)
    except OSError as err:
        raise InputError(f"cannot write {args.output}: {err.strerror or err}", SourceLoc(args.output),
                         expected="a path in a writable directory") from None
    payload = {"input": args.input, "output": args.output, "format": fmt, "inputs": len(circuit.inputs),
               "outputs": len(circuit.outputs), "gates": len(circuit.gates)}
    emit(payload, args.json, lambda p: f"wrote {p['output']} ({p['format']}): {p['inputs']} inputs, "
                                       f"{p['outputs']} outputs, from {p['gates']} gates of {p['input']}")
    return 0


def register(csub) -> None:
    from bridge.commands import flags
    from bridge.commands.flags import add_netlist_flags

    p = flags.command(csub, "info", cmd_info, help="inputs, outputs and gate counts")
    p.add_argument("file", help=NETLIST_HELP)
    add_netlist_flags(p)

    p = flags.command(csub, "eval", cmd_circuit_eval,
                      help="evaluate with the reference evaluator (one vector, a file, or random ones)")
    p.add_argument("file", help=NETLIST_HELP)
    p.add_argument("--inputs", help="one vector: bits in the order of the circuit's inputs")
    p.add_argument("--vectors", metavar="FILE", help="one bit string per line; prints JSON lines")
    p.add_argument("--random", type=flags.count, metavar="N", help="N random vectors; prints JSON lines")
    p.add_argument("--seed", type=flags.seed, default=0)
    add_netlist_flags(p)

    p = flags.command(csub, "convert", cmd_convert,
                      help="write a netlist in another format (.bench, .aag, .aig, .blif)")
    p.add_argument("input")
    p.add_argument("output")
    add_netlist_flags(p)
    p.add_argument("--to", metavar="FMT", help="the output format when OUT's extension does not say")
