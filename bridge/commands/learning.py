"""``cotproof train``, ``cotproof eval`` and ``cotproof reproduce``: the paper's experiments from the command line."""
from __future__ import annotations

import time
from pathlib import Path

from bridge.output import emit
from grammar.errors import InputError, ParameterError, SourceLoc

AUTOCAST = ("auto", "bf16", "fp32")  # train's and reproduce's --autocast (neural.learning.train.resolve_precision)


def _task_from(args) -> tuple[str, dict]:
    if args.spec and args.task:
        raise InputError("give a spec or --task, not both", SourceLoc("--task"), expected="one task source")
    if args.spec:
        from bridge.commands.inputs import parse_overrides
        from grammar.spec import parse_spec

        spec = parse_spec(args.spec, parse_overrides(args.override))
        if spec.task is None:
            raise InputError("this spec has no task", SourceLoc(args.spec), expected="a 'task' section")
        return spec.task.kind, _whole_params(dict(spec.task.params), args.spec)
    if not args.task:
        raise InputError("no task given", SourceLoc("--task"), expected="SPEC or --task modadd|s5|isq|cvp")
    from bridge.commands.inputs import parse_overrides
    from grammar.spec import TASK_DEFAULTS, parse_scalar

    if args.task not in TASK_DEFAULTS:
        raise InputError(f"unknown task {args.task!r}", SourceLoc("--task"), text=args.task,
                         expected=", ".join(sorted(TASK_DEFAULTS)))
    params = dict(TASK_DEFAULTS[args.task])
    for key, value in parse_overrides(args.param).items():
        if key not in params:
            raise InputError(f"task {args.task} has no parameter {key!r}", SourceLoc("--param"), text=key,
                             expected=", ".join(sorted(params)))
        params[key] = parse_scalar(value)
    return args.task, _whole_params(params, "--param")


def _whole_params(params: dict, where: str) -> dict:
    """Every task parameter is a count (a length, a modulus, a number of gates or steps, a prime bound)."""
    for key, value in params.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"task parameter {key} must be a whole number of at least 1", SourceLoc(where),
                             text=f"{key}={value}", expected=f"{key}=N with N >= 1")
    return params


def cmd_train(args) -> int:
    from dataclasses import replace

    from neural.learning.runs import TrainConfig
    from neural.learning.train import train_group

    kind, params = _task_from(args)
    cfg = TrainConfig(task=kind, task_params=tuple((k, int(v)) for k, v in params.items()),
                      setting=args.setting, layers=args.layers, d_model=args.d_model, heads=args.heads,
                      d_ff=args.d_ff or 4 * args.d_model, activation=args.activation,
                      layernorm=not args.no_layernorm, lr=args.lr, weight_decay=args.weight_decay,
                      batch_size=args.batch_size, steps=args.steps, warmup=args.warmup,
                      time_limit=args.time_limit, seed=args.seed, device=args.device, save_every=args.save_every,
                      precision=args.autocast)
    try:  # the task, from the user's parameters, before anything else: a bad one is bad input
        task = cfg.make_task()
    except ParameterError as err:
        raise InputError(str(err), SourceLoc(args.spec or "--param"), expected="task parameters this task "
                         "accepts") from None
    try:
        cfg.model_config(task)
    except ParameterError as err:
        raise InputError(str(err), SourceLoc("--heads"), expected="--d-model a multiple of --heads") from None
    from neural.model import resolve_device

    try:
        resolve_device(args.device)
    except ParameterError as err:
        raise InputError(str(err), SourceLoc("--device"), text=args.device, expected="auto, cpu, or cuda where "
                         "torch sees a CUDA device") from None
    from bridge.estimates import train_estimate
    from grammar.limits import require_memory, require_training_steps

    require_training_steps(args.steps * args.seeds, f"training {args.seeds} seed(s)", "--steps")
    estimate = train_estimate(cfg, args.seeds)
    require_memory(estimate.bytes, f"training {args.seeds} model(s) of {cfg.layers} layer(s), "
                   f"d_model {cfg.d_model}, batch {cfg.batch_size}", "train", "fewer layers, a smaller width or batch")
    if args.seeds == 1:
        cfgs, outs = [cfg], [Path(args.out)]
    else:  # one group: the seeds train as one stacked model, each into its own directory
        cfgs = [replace(cfg, seed=cfg.seed + i) for i in range(args.seeds)]
        outs = [Path(args.out) / f"seed{c.seed}" for c in cfgs]
    _refuse_overwrite(outs, args)
    from bridge.commands.inputs import writable_directory

    for out in outs:  # before the first step, not at the first checkpoint minutes later
        writable_directory(str(out), "--out")
    start = time.perf_counter()
    try:  # user errors inside (a resume that does not match) are InputErrors; a ValueError here is a bug
        lasts = train_group(cfgs, outs, resume=args.resume, progress=not args.json)
    except OSError as err:
        raise InputError(f"cannot write the checkpoint: {err.strerror or err}", SourceLoc(args.out),
                         expected="--out DIR in a writable place") from None
    seconds = round(time.perf_counter() - start, 2)  # the estimate prices the group, all seeds together
    for out, last in zip(outs, lasts):
        emit({"out": str(out), **last, "estimate": estimate.to_json(), "seconds": seconds}, args.json,
             lambda p: f"wrote {p['out']} after {p['step']} steps (loss {p.get('loss', float('nan')):.4f})")
    return 0


def _refuse_overwrite(outs: list[Path], args) -> None:
    """A finished or running checkpoint is someone's result: only --resume (continue it) or --force (start over)
    may write into it."""
    from neural import checkpoint

    if args.resume or args.force:
        return
    for out in outs:
        if (out / checkpoint.CONFIG).exists():
            raise InputError("this directory already holds a checkpoint", SourceLoc(str(out)),
                             expected="--resume to continue it, --force to train over it, or another --out")


def cmd_eval_checkpoint(args) -> int:
    from neural.learning.evaluation import evaluate_model, load_trained

    model, task, setting, meta = load_trained(args.dir)
    from grammar.limits import require_tokens

    require_tokens(args.samples * task.seq_len(setting), f"scoring {args.samples:,} samples", "--samples",
                   "fewer --samples")
    from bridge.progress import Progress

    with Progress(args.samples, "sample", "eval") as progress:
        out = evaluate_model(model, task, setting, args.samples, args.seed, on_progress=progress.update_to)
    emit(out, args.json, lambda p: f"{p['task']}/{p['setting']}: accuracy {p['accuracy']:.4f} on {p['samples']} "
                                   f"fresh samples (seed {p['seed']})" + (
        f"\nper CoT position: {p['cot_position_accuracy']}" if "cot_position_accuracy" in p else ""))
    return 0


def cmd_reproduce(args) -> int:
    from neural.learning.reproduce import parse_cells, run_grid

    if args.executor == "slurm":
        return _on_slurm(args)
    given = [flag for flag, dest in args.slurm_flags if getattr(args, dest) not in (None, False, [])]
    if given:
        raise InputError(f"{given[0]} goes with --executor slurm", SourceLoc(given[0]),
                         expected="reproduce ... --executor slurm " + given[0])
    if args.ablation:
        return _ablation(args)
    if args.smoke:
        raise InputError("--smoke goes with --ablation NAME", SourceLoc("--smoke"),
                         expected="reproduce --ablation NAME --smoke")
    if args.cpu_anyway and args.profile != "full":
        raise InputError("--cpu-anyway goes with --ablation NAME or --full", SourceLoc("--cpu-anyway"),
                         expected="reproduce --full --cpu-anyway")

    try:
        cells = parse_cells(args.cells)
    except ParameterError as err:
        raise InputError(f"bad cell {str(err)!r}", SourceLoc("--cells"), text=str(err),
                         expected="TASK:SETTING:LAYERS[:LENGTH], e.g. s5:cot:1 or cvp:base:2:8 (tasks "
                                  "modadd|s5|isq|cvp, settings base|cot|hint)") from None
    from neural.model import resolve_device

    try:
        device = resolve_device(args.device)
    except ParameterError as err:
        raise InputError(str(err), SourceLoc("--device"), text=args.device, expected="auto, cpu, or cuda where "
                         "torch sees a CUDA device") from None
    on_a_cpu = not device.startswith("cuda")
    if args.profile == "full" and cells is None and not args.rerun and on_a_cpu and not args.cpu_anyway:
        return _full_on_a_cpu(args)
    try:
        doc = run_grid(args.profile or "quick", Path(args.out), Path(args.results), seeds=args.seeds,
                       cells=cells, jobs=args.jobs, device=args.device, precision=args.autocast, rerun=args.rerun)
    except OSError as err:
        raise InputError(f"cannot write results: {err.strerror or err}", SourceLoc(args.results),
                         expected="writable --out and --results") from None
    emit(doc, args.json, _reproduce_text)
    return 0


def _full_on_a_cpu(args) -> int:
    """The full grid is sized for a GPU: on a CPU it says what is left and the command that runs it, as a GPU
    ablation does, rather than start days of training (``--cpu-anyway`` does; ``--cells`` runs chosen cells)."""
    from neural.learning.grid_results import load_results
    from neural.learning.profiles import PROFILES, unscored

    full = PROFILES["full"]
    left = unscored(full, load_results(Path(args.results) / "full.json"), args.seeds or full.seeds)
    doc = {"profile": "full", "not_run": len(left), "finish_with": full.finish_with if left else None}

    def text(d: dict) -> str:
        if not d["not_run"]:
            return _reproduce_text({"profile": "full", "cells": []})
        return (f"reproduce full: {d['not_run']} cells not yet run, sized for a GPU: {d['finish_with']} (or "
                "--cpu-anyway; --cells TASK:SETTING:LAYERS[:LENGTH] runs chosen cells here)")

    emit(doc, args.json, text)
    return 0


SLURM_CHECK_SECONDS = 30  # slurmctld's period for time limits: a warning may come this much before it is due
# what a flag of ours already sets in the batch script: an --sbatch-arg may not set it a second way
OWN_SBATCH_KEYS = {"partition", "account", "time", "gpus-per-node", "gpus", "gres", "cpus-per-task", "mem", "array",
                   "signal", "job-name", "output", "error", "nodes", "ntasks-per-node", "open-mode"}


def _slurm_options(args):
    from neural.learning.slurm_options import SlurmOptions

    extra = []
    for item in args.sbatch_arg or []:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key or not value or any(c.isspace() for c in key):
            raise InputError(f"bad --sbatch-arg {item!r}", SourceLoc("--sbatch-arg"), text=item,
                             expected="KEY=VALUE, as in #SBATCH --KEY=VALUE (e.g. qos=high, constraint=a100)")
        if key.replace("_", "-") in OWN_SBATCH_KEYS:
            raise InputError(f"--sbatch-arg {key} is set by a flag of its own", SourceLoc("--sbatch-arg"), text=item,
                             expected="--partition, --account, --time-per-job, --gpus-per-job, --cpus-per-job, "
                                      "--mem-per-job or --array-parallelism")
        extra.append((key.replace("-", "_"), value))
    if args.gpus_per_job is not None and args.gpus_per_job > 1:
        raise InputError("a task trains one group on one device: --gpus-per-job is 0 or 1", SourceLoc("--gpus-per-job"),
                         text=str(args.gpus_per_job), expected="--gpus-per-job 1, and --array-parallelism for more "
                                                               "tasks at once")
    defaults = SlurmOptions()
    minutes = args.time_per_job or defaults.time_minutes
    warning = args.signal_seconds or defaults.signal_seconds
    if warning + SLURM_CHECK_SECONDS >= 60 * minutes:
        raise InputError(f"--signal-seconds {warning} leaves no time in a {minutes}-minute task: Slurm checks time "
                         f"limits every {SLURM_CHECK_SECONDS} s, so it would warn as the task starts",
                         SourceLoc("--signal-seconds"), text=str(warning),
                         expected=f"--signal-seconds below {60 * minutes - SLURM_CHECK_SECONDS}, or a longer "
                                  "--time-per-job")
    picked = {"partition": args.partition, "account": args.account, "time_minutes": args.time_per_job,
              "gpus_per_job": args.gpus_per_job, "cpus_per_job": args.cpus_per_job, "mem_gb": args.mem_per_job,
              "array_parallelism": args.array_parallelism, "signal_seconds": args.signal_seconds,
              "max_requeues": args.max_requeues}
    from dataclasses import replace

    return replace(defaults, **{k: v for k, v in picked.items() if v is not None}, sbatch_args=tuple(extra),
                   wait=bool(args.wait))


def _on_slurm(args) -> int:
    """The grid's unscored cells (or an ablation's runs) as one Slurm job array; again: progress, collection, and
    only what is neither done nor queued submitted (``neural.learning.slurm``)."""
    for flag, refused in (("--cells", args.cells), ("--rerun", args.rerun), ("--jobs", args.jobs),
                          ("--cpu-anyway", args.cpu_anyway)):
        if refused:
            raise InputError(f"{flag} does not go with --executor slurm", SourceLoc(flag),
                             expected="reproduce --quick|--full|--ablation NAME --executor slurm: the profile's "
                                      "unscored cells, one group per array task (--array-parallelism at once); to "
                                      "retrain a cell, delete its run directory and its row from the results file")
    if args.ablation and (args.profile or args.seeds):
        raise InputError("--ablation runs its own list of runs: no --profile, --full or --seeds",
                         SourceLoc("--ablation"),
                         expected="reproduce --ablation NAME --executor slurm")
    if args.smoke and not args.ablation:
        raise InputError("--smoke goes with --ablation NAME", SourceLoc("--smoke"),
                         expected="reproduce --ablation NAME --smoke")
    options = _slurm_options(args)
    from neural.learning import slurm

    slurm.require_slurm()
    from bridge.commands.inputs import writable_directory

    out, results = writable_directory(args.out, "--out"), writable_directory(args.results, "--results")
    if args.ablation:
        work = slurm.ablation_work(args.ablation, out, results, options, toy=args.smoke, device=args.device)
    else:
        work = slurm.grid_work(args.profile or "quick", out, results, options, seeds=args.seeds,
                               device=args.device, precision=args.autocast)
    try:
        doc = slurm.drive(work, options, dry_run=args.dry_run)
    except OSError as err:
        raise InputError(f"cannot write: {err.strerror or err}", SourceLoc(getattr(err, "filename", None) or
                                                                          args.out),
                         expected="writable --out and --results on a filesystem every node sees") from None
    emit(doc, args.json, slurm.report_text)
    return 0


def _ablation(args) -> int:
    from neural.learning.ablations import NOT_RUN, run_ablation

    if args.cells or args.profile or args.rerun or args.seeds:
        raise InputError("--ablation runs its own list of runs: no --cells, --profile, --rerun or --seeds",
                         SourceLoc("--ablation"),
                         expected="reproduce --ablation NAME [--smoke] [--device D] [--jobs N]")
    try:
        doc = run_ablation(args.ablation, Path(args.out), Path(args.results), toy=args.smoke,
                           cpu_anyway=args.cpu_anyway, device=args.device, jobs=args.jobs)
    except OSError as err:
        raise InputError(f"cannot write results: {err.strerror or err}", SourceLoc(args.results),
                         expected="writable --out and --results") from None

    def text(d: dict) -> str:
        lines = [f"ablation {d['ablation']}{' (smoke sizes)' if d['smoke'] else ''}: {d['question']}"]
        for r in d["runs"]:
            score = (NOT_RUN if r["status"] == NOT_RUN else f"accuracy {r['accuracy']:.3f}"
                     + (f", per part {r['answer_part_accuracy']:.3f}" if "answer_part_accuracy" in r else ""))
            lines.append(f"  {r['label']}: {score}")
        if d.get("findings"):
            holds = {True: "holds", False: "does not hold", None: "undecided"}[d["findings"]["holds"]]
            lines.append(f"  finding: the claim {holds}: {d['findings']['why']}")
        if "finish_with" in d:
            lines.append(f"  sized for a GPU: {d['finish_with']} (or --cpu-anyway)")
        return "\n".join(lines)

    emit(doc, args.json, text)
    return 0


def _reproduce_text(doc: dict) -> str:
    if not doc["cells"]:
        return (f"every {doc['profile']} cell is already in the results: nothing trained, nothing written "
                f"(--rerun retrains every cell, --cells TASK:SETTING:LAYERS just those)")
    lines = [f"{len(doc['cells'])} cells run ({doc['profile']}, {doc['machine']})"]
    for r in doc["cells"]:
        lines.append(f"  {r['task']}:{r['setting']}:{r['layers']} length {r['length']} seed {r['seed']}: "
                     f"accuracy {r['accuracy']:.3f} (majority {r['majority_baseline']:.3f}) after {r['steps']} steps")
    for c in doc["claims"]:
        lines.append(f"  claim [{c['task']}] {c['verdict'].replace('fails', 'FAILS')}: {c['claim']}")
    return "\n".join(lines)


def register(sub) -> None:
    from bridge.commands import flags
    from grammar.spec import TASK_DEFAULTS
    from neural.learning.tasks import SETTINGS

    p = flags.command(sub, "train", cmd_train, help="train a decoder on a task (base, cot or hint)")
    p.add_argument("spec", nargs="?", help="a spec with a 'task' section (or use --task)")
    p.add_argument("--task", choices=tuple(TASK_DEFAULTS))
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="task parameter, with --task")
    p.add_argument("--override", action="append", metavar="KEY=VALUE", help="spec override, with SPEC")
    p.add_argument("--setting", choices=SETTINGS, default="cot")
    p.add_argument("--layers", type=flags.positive_int, default=1)
    p.add_argument("--d-model", type=flags.positive_int, default=128)
    p.add_argument("--heads", type=flags.positive_int, default=4)
    p.add_argument("--d-ff", type=flags.positive_int, default=None, help="default 4 * d_model")
    p.add_argument("--activation", choices=("gelu", "relu"), default="gelu")
    p.add_argument("--no-layernorm", action="store_true")
    p.add_argument("--lr", type=flags.positive_float, default=2e-3)
    p.add_argument("--weight-decay", type=flags.nonnegative_float, default=0.0)
    p.add_argument("--batch-size", type=flags.positive_int, default=128)
    p.add_argument("--steps", type=flags.positive_int, default=5_000,
                   help="optimizer steps")
    p.add_argument("--warmup", type=flags.count, default=100)
    p.add_argument("--time-limit", type=flags.seconds, default=None, metavar="SECONDS")
    p.add_argument("--seed", type=flags.seed, default=0)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--save-every", type=flags.positive_int, default=500)
    p.add_argument("--seeds", type=flags.positive_int, default=1, metavar="N",
                   help="train seeds SEED..SEED+N-1 as one group (one stacked model), into OUT/seed<S> each; "
                        "with --json, one line per seed")
    p.add_argument("--autocast", choices=AUTOCAST, default="auto",
                   help="bf16: autocast with float32 master weights (and TF32 matmuls on CUDA); auto: bf16 on CUDA, "
                        "fp32 on a CPU")
    flags.renamed(p, "--precision", "--autocast", dest="autocast", choices=AUTOCAST)  # run's --precision is F(e,s)
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--force", action="store_true", help="train from scratch over a checkpoint already in --out")
    p.add_argument("--out", required=True, metavar="DIR")

    from neural.learning.tasks import TEST_SEED

    p = flags.command(sub, "eval", cmd_eval_checkpoint,
                      help="greedy-decoding accuracy of a trained checkpoint on fresh samples")
    p.add_argument("dir")
    p.add_argument("--samples", type=flags.positive_int, default=1000)
    p.add_argument("--seed", type=flags.seed, default=TEST_SEED)

    p = flags.command(sub, "reproduce", cmd_reproduce,
                      help="the paper's grid on equal step budgets, scored on held-out prompts",
                      json_help="print the cells run and the claims as JSON")
    mode = p.add_mutually_exclusive_group()
    from neural.learning.profiles import PROFILES

    mode.add_argument("--profile", choices=tuple(PROFILES), default=None,
                      help="quick: the small grid for a first look (default; depths 1 and 2, 40-100 minutes on a "
                           "2-core CPU); cpu: every cell to convergence, depths "
                           "1-8, 3 seeds, about 17 hours on a 2-core CPU by the measured rate, resumable; full: the "
                           "paper's sizes, for a GPU")
    mode.add_argument("--quick", dest="profile", action="store_const", const="quick", help="--profile quick")
    mode.add_argument("--full", dest="profile", action="store_const", const="full", help="--profile full")
    p.add_argument("--cells", metavar="TASK:SETTING:LAYERS[:LENGTH][,...]",
                   help="rerun just these cells (every length the profile runs, or LENGTH), from scratch")
    p.add_argument("--rerun", action="store_true", help="retrain every cell of the profile from scratch")
    p.add_argument("--seeds", type=flags.positive_int, default=None, help="seeds per cell (default: the profile's)")
    p.add_argument("--jobs", type=flags.positive_int, default=None,
                   help="worker processes, each training one group of cells at a time on one device (default: one "
                        "per visible GPU, or 1 on a CPU)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--autocast", choices=AUTOCAST, default="auto", help="auto: bf16 autocast on CUDA, fp32 on a CPU")
    flags.renamed(p, "--precision", "--autocast", dest="autocast", choices=AUTOCAST)
    from neural.learning.ablations import ABLATIONS

    p.add_argument("--ablation", choices=tuple(ABLATIONS),
                   help="one experiment that settles a disagreement with the paper -> results/ablations/NAME.json")
    p.add_argument("--smoke", action="store_true", help="with --ablation: toy sizes, as CI runs it")
    p.add_argument("--cpu-anyway", action="store_true",
                   help="with --ablation or --full: run what is sized for a GPU on a CPU (hours)")
    p.add_argument("--out", default="runs/reproduce", help="checkpoints of every cell")
    p.add_argument("--results", default="results", help="<profile>.json, table.md and the figures")
    p.add_argument("--executor", choices=("local", "slurm"), default="local",
                   help="local: train here (--jobs workers); slurm: submit the cells as one job array through "
                        "submitit (pip install 'cotproof[cluster]'); run the same command again to see progress, "
                        "collect finished rows and submit only what is neither done nor queued")
    from neural.learning.slurm_options import SlurmOptions

    d = SlurmOptions()  # each flag's default, shown in --help from the one place that holds it
    cluster = p.add_argument_group("with --executor slurm (--out and --results on a filesystem every node sees)")
    slurm_flags = []  # the local executor refuses each one given without --executor slurm

    def slurm_flag(*names, **kwargs) -> None:
        slurm_flags.append(cluster.add_argument(*names, **kwargs))

    slurm_flag("--partition", help="Slurm partition (default: the cluster's default partition)")
    slurm_flag("--account", help="Slurm account to charge (default: your default account)")
    slurm_flag("--time-per-job", type=flags.positive_int, metavar="MINUTES",
               help="time limit of each array task; a cell that needs longer is checkpointed at the "
                    f"warning signal and requeued (default: {d.time_minutes})")
    slurm_flag("--gpus-per-job", type=flags.count, metavar="N",
               help=f"0: CPU tasks; 1: each task trains its group on one GPU (default: {d.gpus_per_job})")
    slurm_flag("--cpus-per-job", type=flags.positive_int, metavar="N",
               help=f"CPU cores per task, and torch's threads (default: {d.cpus_per_job})")
    slurm_flag("--mem-per-job", type=flags.positive_float, metavar="GB",
               help=f"memory per task; CPU groups are planned into half of it (default: {d.mem_gb:g})")
    slurm_flag("--array-parallelism", type=flags.positive_int, metavar="N",
               help=f"array tasks running at once (default: {d.array_parallelism})")
    slurm_flag("--sbatch-arg", action="append", metavar="KEY=VALUE",
               help="an extra '#SBATCH --KEY=VALUE' line, e.g. qos=high or constraint=a100; repeatable "
                    "(default: none)")
    slurm_flag("--signal-seconds", type=flags.positive_int, metavar="S",
               help="seconds before the time limit that Slurm warns a task to checkpoint "
                    f"(default: {d.signal_seconds})")
    slurm_flag("--max-requeues", type=flags.count, metavar="N",
               help="requeues after a time limit before a task gives up; preemptions do not count "
                    f"(default: {d.max_requeues})")
    slurm_flag("--wait", action="store_true",
               help="stay until every task has left the queue, collecting rows as they finish "
                    "(default: print the job ids and return)")
    slurm_flag("--dry-run", action="store_true",
               help="print the batch script that would be submitted, and submit nothing")
    p.set_defaults(slurm_flags=tuple((a.option_strings[0], a.dest) for a in slurm_flags))
