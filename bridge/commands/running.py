"""``cotproof run`` and ``cotproof compile``: the constructed transformer executing a circuit, and its checkpoint."""
from __future__ import annotations

from bridge.commands import flags
from bridge.commands.flags import add_netlist_flags, optimize_lines
from bridge.output import EXIT_FAILED, EXIT_OK, emit
from bridge.target import Target, build, load_target, optimized
from grammar.errors import InputError, ParameterError, SourceLoc
from grammar.ir import MODES, Mode
from neural.selected import UnsoundAttention


def parse_precision(text: str) -> tuple[int, int]:
    from neural.construction.fp import FPFormat

    parts = [p.strip() for p in text.split(",")]
    expected = "EBITS,SBITS such as 5,11 (ebits 2..10, sbits 2..25)"
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise InputError("--precision: not two integers", SourceLoc("--precision"), text=text, expected=expected)
    e, s = (int(p) for p in parts)
    try:
        FPFormat(e, s)
    except ParameterError as err:
        raise InputError(f"--precision: {err}", SourceLoc("--precision"), text=text, expected=expected) from None
    return e, s


def exec_mode(args, target: Target):
    from neural.construction.execute import ExecMode
    from neural.construction.fp import IEEE_FORMATS, FPFormat

    if args.ieee and args.precision:
        raise InputError("--precision and --ieee exclude each other", SourceLoc("--ieee"),
                         expected="one execution mode")
    if args.ieee:
        if args.ieee not in IEEE_FORMATS:  # the dtypes `verify --ieee` can prove, no others
            raise InputError(f"--ieee {args.ieee} is not a dtype cotproof proves the construction exact in",
                             SourceLoc("--ieee"), text=args.ieee, expected=", ".join(IEEE_FORMATS))
        return ExecMode("ieee", FPFormat.ieee(args.ieee), args.ieee)
    return ExecMode("finite", FPFormat(*parse_precision(args.precision)) if args.precision else target.fmt)


def torch_device(name: str, mode) -> str:
    """``--device``: where the torch kernels run. Checked before any work: a device torch does not know or cannot
    see is bad input (``neural.model.resolve_device``, as for train), and so is a device other than cpu and cuda,
    or a GPU for the F(e,s) reference, which runs in numpy."""
    import torch

    from neural.model import resolve_device

    try:
        device = torch.device(resolve_device(name))
    except ParameterError as err:
        raise InputError(str(err), SourceLoc("--device"), text=name, expected="auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"--device {name!r}: run supports cpu and cuda", SourceLoc("--device"), text=name,
                         expected="auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if mode.kind == "finite":
            raise InputError("the F(e,s) reference runs in numpy, not on a GPU", SourceLoc("--device"), text=name,
                             expected="--ieee DTYPE with --device cuda")
        torch.backends.cuda.matmul.allow_tf32 = False  # TF32 is not float32: it rounds products to 10 bits
        torch.backends.cudnn.allow_tf32 = False
    return str(device)


def proved_in(model, circuit, dtype: str, where: str, timeout_s: float) -> dict:
    """The lemmas of ``verify --ieee DTYPE`` over the very weights ``run`` is about to execute (the bounded
    simulations aside: the run itself is checked step by step). A dtype they do not prove is refused."""
    from bridge.proof import prove_ieee_lemmas
    from formal.query import PROVED
    from grammar.errors import Refused

    report = prove_ieee_lemmas(model, circuit, dtype, where, timeout_s)
    if report.status != PROVED:
        lemma = next(r for r in report.lemmas if r.status not in (PROVED, "skipped"))
        raise Refused(f"the construction is not proved exact in IEEE {dtype} for this circuit ({lemma.name}: "
                      f"{lemma.status}); --unproved runs it anyway", SourceLoc("--ieee"), text=dtype,
                      expected=f"`cotproof verify {where} --ieee {dtype}` to see why, or another dtype")
    return {"dtype": dtype, "status": PROVED, "lemmas": [r.name for r in report.lemmas],
            "seconds": round(sum(r.seconds for r in report.lemmas), 2)}


def attention_kernel(args, model, mode, proof: dict | None):
    """Which attention a run computes, and why: ``proved`` (each head's row gathered at the key its code selects,
    ``neural.construction.selection``) where the retrieval lemma holds for these weights in the run's arithmetic,
    else ``dense``. In an IEEE dtype the lemma is among those ``proved_in`` proved; in F(e,s) it is proved here.
    ``--attention proved`` where the lemma does not hold is refused."""
    from formal.query import PROVED

    def dense(why: str):
        if args.attention == "proved":
            raise InputError(f"--attention proved: {why}", SourceLoc("--attention"), text="proved",
                             expected="--attention dense, or weights and an arithmetic the retrieval lemma holds in")
        return None, {"kernel": "dense", "why": why}

    if args.attention == "dense":
        return None, {"kernel": "dense", "why": "--attention dense"}
    if mode.kind == "ieee":
        if proof is None:
            return dense(f"--unproved: the retrieval lemma is not proved in IEEE {mode.dtype} for these weights")
        seconds = None  # proved with the dtype's other lemmas (see "proof")
    else:
        from formal.obligations import prove_lemma

        lemma = prove_lemma(model, None, "retrieval", args.timeout)
        if lemma.status != PROVED:
            return dense(f"the retrieval lemma is {lemma.status} in {mode} for these weights "
                         f"(cotproof verify {args.file} shows why)")
        seconds = round(lemma.seconds, 2)
    from neural.construction.selection import proved_selection

    return proved_selection(model), {"kernel": "proved", "lemma": "retrieval", "arithmetic": str(mode),
                                     **({"proof_seconds": seconds} if seconds is not None else {})}


def fast_arithmetic(model, mode, work: float):
    """A faster arithmetic proved to compute what ``mode`` computes, or None: for F(e,s), batched torch float32
    when no dot product rounds (``bridge.bounded.Simulator``, the rule ``verify`` uses)."""
    from bridge.bounded import Simulator

    if mode.kind != "finite":
        return None
    sim = Simulator.choose(model, None, work)
    return sim.mode if sim.confirm is not None else None


def cmd_run(args) -> int:
    import importlib
    import time

    from bridge.commands.inputs import input_vectors, parse_overrides
    from bridge.estimates import instance_work, run_estimate
    from bridge.progress import Progress
    from bridge.target import in_ieee
    from grammar.limits import human_count, require_memory, require_seconds, require_tokens
    from neural.construction.execute import run_cvp, run_thm33

    target = load_target(args.file, parse_overrides(args.override), args.format)
    construction = Mode(args.construction or target.spec.construction.mode)
    if args.optimize:
        target = optimized(target, construction)
    nc = target.circuit
    batch, single = input_vectors(args, nc.n_inputs, nc.n_nodes)
    mode = exec_mode(args, target)
    if args.unproved and mode.kind != "ieee":
        raise InputError("--unproved goes with --ieee DTYPE", SourceLoc("--unproved"),
                         expected="--ieee float16|bfloat16|float32 --unproved")
    device = torch_device(args.device, mode) if args.device != "cpu" else "cpu"
    if mode.kind == "ieee":
        target = in_ieee(target, mode.dtype)  # the model `verify --ieee` proves is the one that runs
    model = build(target, construction, batch[0] if len(batch) else None)
    proof = None  # the proofs are flat in the circuit's size: they come before the run is priced
    if mode.kind == "ieee" and not args.unproved:
        proof = proved_in(model, nc if construction == Mode.THM33 else None, mode.dtype, args.file, args.timeout)
    selection, attention = attention_kernel(args, model, mode, proof)
    length, work = model.config.max_len, len(batch) * instance_work(model, selection is not None)
    fast = fast_arithmetic(model, mode, work)
    estimate = run_estimate(model, len(batch), selection is not None, mode.kind == "ieee" or fast is not None)
    what = f"running {human_count(len(batch))} vector(s) of {length:,} tokens"
    where, hint = "--random" if args.random is not None else args.file, "fewer vectors, or a smaller circuit"
    require_tokens(len(batch) * length, what, where, hint)
    require_memory(estimate.bytes, what, where, hint)
    require_seconds(estimate.seconds, what, where, hint)
    if mode.kind == "ieee" or fast is not None:
        importlib.import_module("torch")  # before the clock starts: its import is not the run's time
    runner = run_thm33 if construction == Mode.THM33 else run_cvp
    start = time.perf_counter()
    try:
        with Progress(len(batch) * model.cot_steps, "step", "CoT") as progress:
            results = runner(model, nc, batch, mode, progress.update_to, fast, device, selection)
    except UnsoundAttention as err:
        emit({"sound": False, "attention": attention, "unsound_attention": {
            "layer": err.layer, "head": err.head, "sequence": err.row, "position": err.position}, "error": str(err)},
             args.json, lambda p: f"sound: NO: {p['error']}")
        return EXIT_FAILED
    seconds = time.perf_counter() - start
    if selection is not None:
        attention["spot_checked_rows"] = selection.check.checked
    provenance = {"construction": construction, "mode": str(mode), "device": device,
                  "proof": proof if proof else ("unproved" if args.unproved else None), "attention": attention,
                  "estimate": estimate.to_json(), "seconds": round(seconds, 3),
                  "tokens_per_second": round(len(batch) * model.cot_steps / max(seconds, 1e-9), 1)}
    if not single:
        return _emit_lines(nc, batch, results, provenance)
    result = results[0]
    payload = {"outputs": result.outputs, "trace": [int(b) for b in result.trace], "sound": result.sound,
               "first_unsound_step": result.first_unsound, **_how(result), **provenance}
    if not result.sound:
        payload["gate"] = _gate(nc, result.first_unsound)
    if target.optimize_report:
        payload["optimize"] = target.optimize_report
    emit(payload, args.json, lambda p: "\n".join(
        optimize_lines(target.optimize_report) + [f"{k} = {v}" for k, v in p["outputs"].items()]
        + [f"trace ({len(p['trace'])} CoT steps, {p['mode']}, {construction}): "
           + "".join(map(str, p["trace"][:200])) + (" ..." if len(p["trace"]) > 200 else ""),
           _path_line(p), _proof_line(p), _attention_line(p["attention"]),
           "sound: yes" if p["sound"] else
           f"sound: NO: step {p['first_unsound_step']} (gate {p['gate']['name']}, {p['gate']['op']}) is wrong, "
           "so the outputs above are not to be trusted"]))
    return EXIT_OK if result.sound else EXIT_FAILED


def _how(result) -> dict:
    return {"path": result.path, "greedy_from_step": result.departure, "arithmetic": result.arithmetic}


def _gate(nc, step: int) -> dict:
    g = nc.gates[step]
    return {"name": g.name, "op": g.op, "origin": g.origin}


def _path_line(p: dict) -> str:
    if p["path"] == "one-pass":
        return (f"path: one pass, computed in {p['arithmetic']} ({p['tokens_per_second']:,.0f} tokens/s): the model's "
                "argmax after every prefix is the next token of the reference trace, so that trace is its greedy "
                "output")
    return (f"path: one pass, then token by token from CoT step {p['greedy_from_step']}, where the model departs "
            f"from the reference trace (computed in {p['arithmetic']})")


def _proof_line(p: dict) -> str:
    if p["proof"] == "unproved":
        return f"proof: NONE: --unproved ran {p['mode']} without a proof that it is exact for this circuit"
    if p["proof"]:
        return f"proof: the lemmas of verify --ieee {p['proof']['dtype']} hold for these weights"
    if p["attention"]["kernel"] == "proved":
        return f"proof: {p['mode']} is the reference arithmetic; the attention's lemma is proved below"
    return f"proof: none needed: {p['mode']} is the reference arithmetic"


def _attention_line(a: dict) -> str:
    if a["kernel"] == "dense":
        return f"attention: dense ({a['why']})"
    return (f"attention: proved: each head's row is the value at the key its code selects, as the lemma "
            f"{a['lemma']} proves for these weights in {a['arithmetic']}; {a['spot_checked_rows']:,} gathered rows "
            "recomputed by the dense kernel, bit for bit")


def _emit_lines(nc, batch, results, provenance: dict) -> int:
    """One JSON line per vector, then a summary on stderr. Exit 1 if any vector has an unsound step."""
    import json
    import sys

    unsound = 0
    for bits, result in zip(batch, results):
        line = {"inputs": "".join(map(str, bits)), "outputs": result.outputs, "sound": result.sound,
                "first_unsound_step": result.first_unsound, **_how(result)}
        if not result.sound:
            unsound += 1
            line["gate"] = _gate(nc, result.first_unsound)
        sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
    print(f"run: {len(results):,} vector(s), {unsound:,} with an unsound step; {provenance['mode']}, "
          f"{provenance['tokens_per_second']:,.0f} CoT tokens/s; {_attention_line(provenance['attention'])}",
          file=sys.stderr)
    return EXIT_FAILED if unsound else EXIT_OK


def construction_meta(model, circuit=None) -> dict:
    """config.json's account of a construction; a Theorem 3.3 model's ``circuit`` too, so that the checkpoint can
    be rebuilt, proved and exported without its netlist."""
    stored = {"circuit_gates": circuit.to_dict()} if model.mode == Mode.THM33 and circuit is not None else {}
    return {"kind": "construction", "vocab": list(model.vocab),
            "construction": {"mode": model.mode, "ebits": model.fmt.ebits, "sbits": model.fmt.sbits,
                             "key_scale": model.key_scale, "code_bits": model.code_bits,
                             "layout": model.layout.to_dict(), **model.describe(), **stored}}


def cmd_compile(args) -> int:
    import time

    from bridge.commands.inputs import parse_overrides
    from bridge.estimates import compile_estimate
    from bridge.target import construction_size
    from neural import checkpoint
    from neural.construction.construct import construction_width

    target = load_target(args.file, parse_overrides(args.override), args.format, args.optimize)
    mode = target.spec.construction.mode
    length, vocab, _ = construction_size(target, mode)
    gates = target.circuit.n_gates if mode == Mode.THM33 else 0
    estimate = compile_estimate(length, vocab, construction_width(mode, length), gates)
    start = time.perf_counter()
    model = build(target)
    try:
        out = checkpoint.save(args.out, model.config, model.weights,
                              construction_meta(model, target.circuit if model.mode == Mode.THM33 else None))
    except OSError as err:
        raise InputError(f"cannot write the checkpoint: {err.strerror or err}", SourceLoc(args.out),
                         expected="--out DIR in a writable place") from None
    cfg = model.config
    payload = {"out": str(out), "mode": model.mode, "layers": cfg.n_layers, "heads": cfg.n_heads,
               "d_model": cfg.d_model, "vocab_size": cfg.vocab_size, "max_len": cfg.max_len,
               "estimate": estimate.to_json(), "seconds": round(time.perf_counter() - start, 2)}
    if target.optimize_report:
        payload["optimize"] = target.optimize_report
    emit(payload, args.json, lambda p: "\n".join(optimize_lines(target.optimize_report) + [
        f"wrote {p['out']}: {p['mode']} construction, {p['layers']} layer(s), {p['heads']} heads, "
        f"d_model {p['d_model']}, vocab {p['vocab_size']}"]))
    return 0


def register(sub) -> None:
    p = flags.command(sub, "run", cmd_run, help="run a circuit through the constructed transformer, with CoT")
    p.add_argument("file", help="a netlist (.bench/.aag/.aig/.blif/.v) or a spec with a circuit")
    p.add_argument("--inputs", help="one vector: bits in the order of the circuit's inputs")
    p.add_argument("--vectors", metavar="FILE", help="one bit string per line, run as one batch; prints JSON lines")
    p.add_argument("--random", type=flags.count, metavar="N", help="N seeded random vectors; prints JSON lines")
    p.add_argument("--seed", type=flags.seed, default=0, help="seed of --random")
    p.add_argument("--precision", metavar="E,S", help="finite mode F(E,S) (default: the spec's, or 5,11)")
    p.add_argument("--ieee", metavar="DTYPE", help="IEEE mode with torch's kernels: float32, float16, bfloat16; "
                   "the lemmas of verify --ieee DTYPE are proved for the circuit first")
    p.add_argument("--unproved", action="store_true", help="with --ieee: run without proving the dtype exact")
    p.add_argument("--attention", choices=("dense", "proved"), help="proved: gather each head's row at the key its "
                   "code selects, where the retrieval lemma holds for these weights in the run's arithmetic (the "
                   "default there; dense elsewhere); dense: score every key")
    p.add_argument("--device", default="cpu", help="where torch runs: cpu, cuda, cuda:N, or auto")
    p.add_argument("--timeout", type=flags.seconds, default=60.0, help="seconds per solver query of that proof")
    p.add_argument("--construction", choices=MODES)
    p.add_argument("--override", action="append", metavar="KEY=VALUE")
    add_netlist_flags(p, optimize=True)

    p = flags.command(sub, "compile", cmd_compile, help="write the construction as a checkpoint directory")
    p.add_argument("file", help="a spec or a netlist")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--override", action="append", metavar="KEY=VALUE")
    add_netlist_flags(p, optimize=True)
