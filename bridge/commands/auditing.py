"""``cotproof audit DIR``: the command over ``bridge.audit``; its report, what counts as a departure, and its exit
status."""
from __future__ import annotations

import json

from bridge.audit import ALIGNMENT_OK, audit, hf_audit
from bridge.output import EXIT_FAILED, EXIT_OK, emit
from grammar.errors import InputError, SourceLoc


def cmd_audit(args) -> int:

    if args.plots:
        from bridge.commands.inputs import writable_directory

        writable_directory(args.plots, "--plots")
    if args.format == "hf":
        report = hf_audit(args.dir, args.vocab, args.samples, args.seed)
    elif args.vocab:
        raise InputError("--vocab is for --format hf: a cotproof checkpoint names its own vocabulary",
                         SourceLoc("--vocab"), expected="--format hf, or no --vocab")
    else:
        report = audit(args.dir, args.samples, args.seed, args.plots)
    departures = []
    if report["unsound_steps"]:
        departures.append(f"{report['unsound_steps']} unsound steps")
    al = report["attention"]["alignment"]
    if al is not None and al < ALIGNMENT_OK:
        departures.append(f"attention alignment {al:.3f} < {ALIGNMENT_OK}")
    for dtype, p in report["precision"].items():
        if p["traces_changed"]:
            departures.append(f"{p['traces_changed']} traces change in {dtype}")
    if report.get("exhaustive", {}).get("wrong"):
        departures.append(f"{report['exhaustive']['wrong']} small circuits wrong")
    report["departures"] = departures
    emit(report, args.json, human)
    if report["unsound_steps"] or report.get("exhaustive", {}).get("wrong"):
        return EXIT_FAILED
    return EXIT_FAILED if (args.strict and departures) else EXIT_OK


def human(r: dict) -> str:
    lines = [f"{r['checkpoint']}: {r['task']}, {r['samples']} samples (seed {r['seed']})",
             f"  accuracy            {r['accuracy']:.4f}",
             f"  steps checked       {r['steps_checked']}, unsound {r['unsound_steps']} "
             f"(in {r['samples_with_unsound_steps']} samples)",
             f"  right answer, unsound steps: {r['right_for_wrong_reason']}",
             f"  errors by position  {r['errors_by_position']}"]
    if "errors_by_gate_type" in r:
        lines.append(f"  errors by gate type {r['errors_by_gate_type']}")
    if r["first_unsound"]:
        lines.append(f"  first unsound       {json.dumps(r['first_unsound'])}")
    a = r["attention"]
    lines.append(f"  attention alignment {a['alignment']:.3f}" if a["alignment"] is not None else
                 "  attention alignment n/a")
    for name, c in a["closest_head"].items():
        mass = c["mass"] if c["mass"] is None else round(c["mass"], 3)
        lines.append(f"    {name:<10} closest head {c['head']} (mass {mass})")
    roles = a.get("roles")
    if roles:
        lines.append("  where each head's attention goes, by the CoT token being predicted (mass by role; uniform: a "
                     "head spread evenly over every key it may see):")
        width = 2 + max(len(role) for role in roles["roles"])
        lines.append("    " + " " * 16 + "".join(f"{role:>{width}}" for role in roles["roles"]))
        for head, h in [*roles["heads"].items(), ("uniform", roles["uniform"])]:
            for slot, masses in [("all", h["all"]), *h["by_slot"].items()]:
                lines.append(f"    {head:<8}{slot:<8}" +
                             "".join(f"{masses[role]:>{width}.3f}" for role in roles["roles"]))
    for dtype, p in r["precision"].items():
        lines.append(f"  {dtype:<9} accuracy {p['accuracy']:.4f}, unsound {p['unsound_steps']}, "
                     f"traces changed {p['traces_changed']}")
    if "exhaustive" in r:
        e = r["exhaustive"]
        lines.append(f"  exhaustive: {e['circuits']} circuits of <= {e['max_gates']} gates, {e['wrong']} wrong")
    lines.append("  departures: " + ("; ".join(r["departures"]) if r["departures"] else "none"))
    return "\n".join(lines)


def register(sub) -> None:
    from bridge.commands import flags

    p = flags.command(sub, "audit", cmd_audit, help="check every CoT step of a checkpoint against the construction")
    p.add_argument("dir")
    p.add_argument("--samples", type=flags.positive_int, default=500)
    p.add_argument("--seed", type=flags.seed, default=0)
    p.add_argument("--plots", metavar="DIR")
    p.add_argument("--strict", action="store_true", help="exit 1 on any departure, not only on unsound steps")
    p.add_argument("--format", choices=("cotproof", "hf"), default="cotproof",
                   help="hf: a Hugging Face causal LM directory (GPT-2 and kin), read with --vocab")
    p.add_argument("--vocab", metavar="FILE", help="with --format hf: the vocabulary file (task, setting, token ids)")
