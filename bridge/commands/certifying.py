"""``cotproof certify``: the command shell over ``bridge.certificate`` (flags, pricing, printing, exit codes).

    cotproof certify MODEL [--length n] [--up-to] [--shard i/k] [--out CERT.json]   every prompt of the size
    cotproof certify MODEL --samples N [--confidence C]                               a uniform sample, with a bound
    cotproof certify --merge CERT... [--out CERT.json]                                shards joined into one
    cotproof certify --check CERT MODEL                                               a certificate re-checked

Exit status: 0 certified (or no unsound prompt among the samples, or a certificate confirmed), 1 a counterexample
(or a certificate not confirmed), 2 bad input or a request over the limits, 3 incomplete (interrupted).
"""
from __future__ import annotations

import json

from bridge.output import EXIT_FAILED, EXIT_OK, EXIT_UNKNOWN, emit
from grammar.errors import InputError, ParameterError, SourceLoc

BLOCK_BYTES = 512 << 20  # caches and activations of one block of prompts
CHECK_SAMPLES = 1000


def cmd_certify(args) -> int:
    if args.merge:
        if args.model or args.check:
            raise InputError("--merge takes certificates only", SourceLoc("--merge"),
                             expected="cotproof certify --merge CERT [CERT ...]")
        return _finish(args, _merge(args.merge))
    if not args.model:
        raise InputError("which model? certify needs MODEL (or --merge CERT...)", SourceLoc("MODEL"),
                         expected="cotproof certify MODEL [--length n]")
    if args.check:
        return _check(args)
    from bridge import certificate as cf
    from grammar.limits import human_count, require_memory, require_multiply_adds

    subject = cf.load_subject(args.model, args.format, args.vocab)
    space = _space(subject.task, args.length, args.up_to)
    if args.samples is not None:
        if args.shard:
            raise InputError("--shard splits an enumeration; --samples draws from the whole space",
                             SourceLoc("--shard"), expected="one of --samples and --shard")
        request = cf.Request(0, space.count, samples=args.samples, seed=args.seed, confidence=args.confidence)
    else:
        from neural.learning.prompt_space import ENUMERABLE

        if space.count > ENUMERABLE:
            raise InputError(f"{space.count:.3g} prompts cannot be enumerated (more than 2^62), whatever the "
                             f"limits", SourceLoc("--length"), expected="--samples N, or a smaller --length")
        request = cf.Request.whole(space.count, args.shard)
    work = cf.estimate(subject, space, request)
    what = f"certifying {human_count(request.prompts)} prompts of {subject.task.name}"
    hint = "--samples N (a bound instead of a certificate), --shard i/k, or a smaller --length"
    require_multiply_adds(work["multiply_adds"], what, "--length", hint)
    rows = cf.block_rows(subject, BLOCK_BYTES)
    require_memory(rows * subject.bytes_per_token * (subject.task.n_prompt + subject.task.n_steps + 1) * 3, what,
                   "--length", hint)
    if args.out:
        _writable(args.out)
    from bridge.progress import Progress

    with Progress(request.prompts, "prompt", "certify") as bar:
        cert = cf.run(subject, space, request, rows=rows, on_progress=bar.update_to)
    cert["estimate"] = work
    return _finish(args, cert)


def _space(task, length, up_to):
    from neural.learning.prompt_space import prompt_space

    try:
        return prompt_space(task, length, up_to)
    except ParameterError as err:
        raise InputError(str(err), SourceLoc("--length"), expected="a size this model reads") from None


def _merge(paths: list[str]) -> dict:
    from bridge import certificate as cf

    return cf.merge([(p, _read_certificate(p)) for p in paths])


def _check(args) -> int:
    from bridge import certificate as cf

    cert = _read_certificate(args.check)
    subject = cf.load_subject(args.model, args.format, args.vocab)
    foreign = cf.other_weights(cert, subject)
    if foreign:  # not this model's: nothing more to compare
        return _checked(args, cert, {"confirmed": False, "rechecked": 0, "problems": [foreign]})
    if cert["task"] != {"kind": subject.task.name, **subject.task.params}:
        raise InputError(f"the certificate is for the task {cert['task']}, the model's is "
                         f"{{'kind': {subject.task.name!r}, ...}}", SourceLoc(args.check),
                         expected="a certificate of this model")
    sizes = cert["space"]["sizes"]
    space = _space(subject.task, max(sizes), len(sizes) > 1)
    if space.count != cert["space"]["count"]:
        raise InputError(f"the certificate's space has {cert['space']['count']:,} prompts; this version counts "
                         f"{space.count:,}", SourceLoc(args.check), expected="a certificate of this model")
    return _checked(args, cert, cf.check(cert, subject, space, args.samples or CHECK_SAMPLES, args.seed,
                                         cf.block_rows(subject, BLOCK_BYTES)))


def _checked(args, cert: dict, out: dict) -> int:
    out.update(certificate=args.check, model=args.model, status=cert["status"])
    emit(out, args.json, _human_check)
    return EXIT_OK if out["confirmed"] else EXIT_FAILED


def _read_certificate(path: str) -> dict:
    from grammar.source import parse_json, read_text

    expected = "a certificate written by cotproof certify --out"
    doc = parse_json(read_text(path, "certificate"), path, "the certificate", expected)
    keys = ("certificate", "weights_sha256", "task", "space", "status", "checked", "counterexamples")
    if not isinstance(doc, dict) or doc.get("certificate") != "cotproof certify" or any(k not in doc for k in keys):
        raise InputError("not a cotproof certificate", SourceLoc(path), expected=expected)
    return doc


def _writable(path: str) -> None:
    from pathlib import Path

    from bridge.commands.inputs import writable_directory

    writable_directory(str(Path(path).resolve().parent), "--out")


def _finish(args, cert: dict) -> int:
    if args.out:
        from pathlib import Path

        from neural.checkpoint import atomic_write_text

        atomic_write_text(Path(args.out), json.dumps(cert, indent=1) + "\n")
    emit(cert, args.json, human)
    return {"certified": EXIT_OK, "sampled": EXIT_OK, "counterexample": EXIT_FAILED}.get(cert["status"], EXIT_UNKNOWN)


def _shown(tokens: list[str], most: int = 24) -> str:
    return " ".join(tokens) if len(tokens) <= most else " ".join(tokens[:8] + ["..."] + tokens[-(most - 9):])


def human(c: dict) -> str:
    task = ", ".join(f"{k} {v}" for k, v in c["task"].items() if k != "kind")
    sp = c["space"]
    sizes = f"size {sp['sizes'][0]}" if len(sp["sizes"]) == 1 else f"sizes 1..{sp['sizes'][-1]}"
    lines = [f"{c['model']}: {c['task']['kind']} ({task}), {sizes}: {sp['count']:,} prompts ({sp['formula']})"]
    if "samples" in c:
        s = c["samples"]
        lines.append(f"  sampled {s['drawn']:,} uniformly (seed {s['seed']}), {s['unsound_drawn']:,} unsound: with "
                     f"confidence {s['confidence']}, at most {s['upper_bound']:.3g} of the prompts "
                     f"({s['upper_bound_prompts']:,.0f}) have an unsound step")
    else:
        lo, hi = c["range"]
        part = f" (shard {c['shard'][0]}/{c['shard'][1]}: prompts {lo:,}..{hi - 1:,})" if c.get("shard") else ""
        lines.append(f"  checked {c['checked']:,} of {hi - lo:,}{part}, unsound {c['unsound_prompts']:,}")
    m = c["smallest_margin"]
    if m:
        lines.append(f"  smallest margin {m['margin']:.4g} (prompt {m['index']:,}, step {m['step']}: "
                     f"{_shown(m['prompt'])})")
    for e in c["counterexamples"]:
        r = e["replay"]
        lines.append(f"  counterexample {e['index']:,}: {_shown(e['prompt'])} = ... step {e['step']} wrote "
                     f"{e['got']}, expected {e['expected']}; greedy replay "
                     f"{'confirms it' if r['confirmed'] else 'differs'}: {_shown(r['greedy'])}")
    a = c["arithmetic"]
    lines.append(f"  arithmetic {a['dtype']} on {a['device']}, torch {a['torch']}; {c['seconds']:.1f} s")
    lines.append(f"  {c['status'].upper()}")
    return "\n".join(lines)


def _human_check(r: dict) -> str:
    verdict = "CONFIRMED" if r["confirmed"] else "NOT CONFIRMED"
    lines = [f"{r['certificate']} against {r['model']}: {verdict} ({r['rechecked']:,} prompts re-run)"]
    lines += [f"  {p}" for p in r["problems"]]
    return "\n".join(lines)


def register(sub) -> None:
    from bridge.commands import flags

    p = flags.command(sub, "certify", cmd_certify, help="check every CoT step of every prompt of a size",
                      json_help="print the certificate as one JSON object")
    p.add_argument("model", nargs="?", metavar="MODEL", help="a checkpoint directory (trained or compiled)")
    p.add_argument("--length", type=flags.positive_int, help="the size: digits (modadd), permutations (s5), "
                   "squarings (isq), gates (cvp); default the model's own")
    p.add_argument("--up-to", action="store_true", help="every size 1..--length (isq, cvp)")
    p.add_argument("--samples", type=flags.positive_int, help="draw N prompts uniformly instead of enumerating, "
                   "and bound the unsound fraction (Clopper-Pearson); with --check, prompts to re-run")
    p.add_argument("--confidence", type=flags.open_fraction, default=0.99, help="of the --samples bound")
    p.add_argument("--seed", type=flags.seed, default=0, help="of --samples draws")
    p.add_argument("--shard", type=flags.shard, metavar="I/K", help="prompts [count*i/k, count*(i+1)/k) only")
    p.add_argument("--out", metavar="CERT.json", help="write the certificate here (atomically)")
    p.add_argument("--merge", nargs="+", metavar="CERT", help="join shards' certificates into one")
    p.add_argument("--check", metavar="CERT", help="re-check CERT against MODEL: its weights' hash, a random "
                   "subset of its prompts and its counterexamples")
    p.add_argument("--format", choices=("cotproof", "hf"), default="cotproof",
                   help="hf: a Hugging Face causal LM directory, read with --vocab")
    p.add_argument("--vocab", metavar="FILE", help="with --format hf: the vocabulary file")
