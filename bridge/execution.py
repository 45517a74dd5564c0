"""``cotproof run`` and ``cotproof compile``: the constructed transformer executing a circuit, and its checkpoint."""
from __future__ import annotations

from bridge.output import EXIT_FAILED, EXIT_OK, emit
from bridge.target import Target, add_netlist_flags, build, load_target, optimize_lines, optimized
from grammar.errors import InputError, SourceLoc


def parse_precision(text: str) -> tuple[int, int]:
    from neural.fp import FPFormat

    parts = text.split(",")
    try:
        e, s = (int(p) for p in parts)
        FPFormat(e, s)
    except ValueError as err:
        detail = str(err) if len(parts) == 2 and all(p.strip().isdigit() for p in parts) else "not two integers"
        raise InputError(f"--precision: {detail}", SourceLoc("--precision"), text=text,
                         expected="EBITS,SBITS such as 5,11 (ebits 2..10, sbits 2..25)") from None
    return e, s


def exec_mode(args, target: Target):
    from neural.execute import ExecMode
    from neural.fp import IEEE_FORMATS, FPFormat

    if args.ieee and args.precision:
        raise InputError("--precision and --ieee exclude each other", SourceLoc("--ieee"),
                         expected="one execution mode")
    if args.ieee:
        if args.ieee not in IEEE_FORMATS:  # the dtypes `verify --ieee` can prove, no others
            raise InputError(f"--ieee {args.ieee} is not a dtype cotproof proves the construction exact in",
                             SourceLoc("--ieee"), text=args.ieee, expected=", ".join(IEEE_FORMATS))
        return ExecMode("ieee", target.fmt, args.ieee)
    return ExecMode("finite", FPFormat(*parse_precision(args.precision)) if args.precision else target.fmt)


def cmd_run(args) -> int:
    from bridge.inputs import parse_bits, parse_overrides
    from neural.execute import run_cvp, run_thm33

    target = load_target(args.file, parse_overrides(args.override), args.format)
    construction = args.construction or target.spec.construction.mode
    if args.optimize:
        target = optimized(target, construction)
    nc = target.circuit
    bits = parse_bits(args.inputs, nc.n_inputs, "--inputs")
    mode = exec_mode(args, target)
    model = build(target, construction, bits)
    from bridge.progress import Progress

    runner = run_thm33 if construction == "thm33" else run_cvp
    with Progress(model.cot_steps, "step", "CoT") as progress:
        result = runner(model, nc, bits, mode, progress.update_to)
    payload = {"outputs": result.outputs, "trace": [int(b) for b in result.trace], "sound": result.sound,
               "first_unsound_step": result.first_unsound, "construction": construction, "mode": str(mode)}
    if not result.sound:
        g = nc.gates[result.first_unsound]
        payload["gate"] = {"name": g.name, "op": g.op, "origin": g.origin}
    if target.optimize_report:
        payload["optimize"] = target.optimize_report
    emit(payload, args.json, lambda p: "\n".join(
        optimize_lines(target.optimize_report) + [f"{k} = {v}" for k, v in p["outputs"].items()]
        + [f"trace ({len(p['trace'])} CoT steps, {p['mode']}, {construction}): "
           + "".join(map(str, p["trace"][:200])) + (" ..." if len(p["trace"]) > 200 else ""),
           "sound: yes" if p["sound"] else
           f"sound: NO: step {p['first_unsound_step']} (gate {p['gate']['name']}, {p['gate']['op']}) is wrong, "
           "so the outputs above are not to be trusted"]))
    return EXIT_OK if result.sound else EXIT_FAILED


def construction_meta(model) -> dict:
    return {"kind": "construction", "vocab": list(model.vocab),
            "construction": {"mode": model.mode, "ebits": model.fmt.ebits, "sbits": model.fmt.sbits,
                             "key_scale": model.key_scale, "code_bits": model.code_bits,
                             "layout": model.layout.to_dict(), **model.describe()}}


def cmd_compile(args) -> int:
    from bridge.inputs import parse_overrides
    from neural import checkpoint

    target = load_target(args.file, parse_overrides(args.override), args.format, args.optimize)
    model = build(target)
    try:
        out = checkpoint.save(args.out, model.config, model.weights, construction_meta(model))
    except OSError as err:
        raise InputError(f"cannot write the checkpoint: {err.strerror or err}", SourceLoc(args.out),
                         expected="--out DIR in a writable place") from None
    cfg = model.config
    payload = {"out": str(out), "mode": model.mode, "layers": cfg.n_layers, "heads": cfg.n_heads,
               "d_model": cfg.d_model, "vocab_size": cfg.vocab_size, "max_len": cfg.max_len}
    if target.optimize_report:
        payload["optimize"] = target.optimize_report
    emit(payload, args.json, lambda p: "\n".join(optimize_lines(target.optimize_report) + [
        f"wrote {p['out']}: {p['mode']} construction, {p['layers']} layer(s), {p['heads']} heads, "
        f"d_model {p['d_model']}, vocab {p['vocab_size']}"]))
    return 0


def register(sub) -> None:
    p = sub.add_parser("run", help="run a circuit through the constructed transformer, with CoT")
    p.add_argument("file", help="a netlist (.bench/.aag/.aig/.blif/.v) or a spec with a circuit")
    p.add_argument("--inputs", required=True, help="bits in the order of the circuit's inputs")
    p.add_argument("--precision", metavar="E,S", help="finite mode F(E,S) (default: the spec's, or 5,11)")
    p.add_argument("--ieee", metavar="DTYPE", help="IEEE mode with torch's kernels: float32, float16, bfloat16")
    p.add_argument("--construction", choices=("thm33", "cvp"))
    p.add_argument("--override", action="append", metavar="KEY=VALUE")
    add_netlist_flags(p, optimize=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("compile", help="write the construction as a checkpoint directory")
    p.add_argument("file", help="a spec or a netlist")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--override", action="append", metavar="KEY=VALUE")
    add_netlist_flags(p, optimize=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compile)
