"""``cotproof export``: the command over ``bridge.export``."""
from __future__ import annotations

from pathlib import Path

from bridge.export import FORMATS, export, load_source, write_suite
from bridge.output import EXIT_OK, emit
from grammar.errors import InputError, ParameterError, SourceLoc


def cmd_export(args) -> int:
    from bridge.commands.inputs import parse_overrides, writable_directory
    from bridge.proof import exit_status
    from formal.obligations import combine

    if args.suite:
        if args.source or args.to:
            raise InputError("--suite writes the whole suite: it takes no SOURCE or --to", SourceLoc("--suite"),
                             expected="cotproof export --suite DIR")
        writable_directory(args.suite, "--suite")
        rows = write_suite(args.suite, args.timeout)
        emit({"suite": args.suite, "models": rows}, args.json,
             lambda p: f"wrote {len(rows)} models to {args.suite}: " + ", ".join(
                 f"{r['name']} ({r['proof']})" for r in rows))
        return exit_status(combine(r["proof"] for r in rows))
    if not args.source or not args.to:
        raise InputError("export needs SOURCE --to FORMAT OUT, or --suite DIR", SourceLoc("export"),
                         expected=f"cotproof export SOURCE --to {{{','.join(FORMATS)}}} OUT")
    to, out = args.to
    if to not in FORMATS:
        raise InputError(f"--to {to!r} is not a format export writes", SourceLoc("--to"), text=to,
                         expected=", ".join(FORMATS))
    if args.override and Path(args.source).is_dir():
        raise InputError("--override changes a spec or netlist's parameters; a checkpoint's are fixed",
                         SourceLoc("--override"), expected="a netlist or spec, or no --override")
    writable_directory(out, "OUT")
    source = load_source(args.source, parse_overrides(args.override))
    try:
        summary = export(source, to, out, args.source, args.timeout)
    except ParameterError as err:
        raise InputError(str(err), SourceLoc(args.source), expected=f"a model --to {to} can hold") from None
    emit(summary, args.json, _human)
    return exit_status(summary["proof"]) if "proof" in summary else EXIT_OK


def _human(s: dict) -> str:
    line = f"wrote {s['out']} ({s['to']})"
    if "proof" in s:
        line += f": {s['mode']} construction, proof in IEEE float32: {s['proof']}; manifest.json beside it"
    if "unembedding_bias" in s:
        f = s["unembedding_bias"]
        line += (f"; the unembedding bias is folded into ln_f (largest logit error {f['max_logit_error']:.2e}, "
                 "up to a constant)")
    return line


def register(sub) -> None:
    from bridge.commands import flags

    p = flags.command(sub, "export", cmd_export, help="write a model for TransformerLens or Hugging Face, or the "
                      "mechanism suite")
    p.add_argument("source", nargs="?", help="a checkpoint directory, a netlist, or a spec")
    p.add_argument("--to", nargs=2, metavar=("FORMAT", "OUT"), help=f"FORMAT: {', '.join(FORMATS)}; OUT: a directory")
    p.add_argument("--suite", metavar="DIR", help="write the mechanism suite (constructions with manifests) to DIR")
    p.add_argument("--timeout", type=flags.seconds, default=60.0, help="seconds per solver query of the proof")
    p.add_argument("--override", action="append", metavar="KEY=VALUE")
