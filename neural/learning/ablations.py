"""The experiments that settle where cotproof's grid and the paper disagree, one ``reproduce --ablation NAME`` each,
written to ``results/ablations/NAME.json``.

An ablation is a list of runs (a task, its parameters, a setting, a depth, a step budget) and the question they
answer. Each run trains one model (``neural.learning.train``) and is scored on held-out test prompts like a grid
cell. ``cvp-depth`` and ``isq-budget`` are sized for a GPU: on a CPU they are written as "not run", with the command
that runs them, unless ``--ablation NAME --cpu-anyway`` asks for hours of CPU. ``cvp-depth-cpu`` and
``isq-budget-cpu`` ask their questions at the cpu profile's sizes and recipe, each run to convergence, on a 2-core
CPU. ``--smoke`` runs any ablation at toy sizes (what CI runs).
"""
from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

from neural.checkpoint import atomic_write_bytes, atomic_write_text

NOT_RUN = "not run"


@dataclass(frozen=True)
class Run:
    label: str
    task: str
    params: tuple  # (name, value) pairs
    setting: str
    layers: int
    steps: int  # the budget: every step, or a cap where the ablation trains to convergence
    seed: int = 0
    d_model: int | None = None  # None: the ablation's width


@dataclass(frozen=True)
class Ablation:
    name: str
    question: str
    runs: tuple[Run, ...]
    gpu: bool = False
    lr: float = 2e-3
    d_model: int = 128
    test_samples: int = 500  # held-out test prompts each run is scored on
    notes: tuple[str, ...] = field(default=())
    findings: Callable[[list[dict]], dict] | None = None  # what the runs decide, from their rows
    warmup: int | None = None  # None: a tenth of the budget, at most 200 steps
    converge: bool = False  # train to convergence as the cpu profile's cells do (its early stop and plateau)


def _modadd_length() -> Ablation:
    runs = tuple(Run(f"L2 length {n} {'mixed' if mixed else 'fixed'}", "modadd",
                     (("length", n), ("modulus", 7)) + ((("mixed", True),) if mixed else ()), "base", 2, 3000)
                 for n in (8, 16) for mixed in (False, True))
    return Ablation("modadd-length", "Does base learn addition mod 7 at lengths 8 and 16 when trained on mixed "
                    "lengths (a random suffix of each training prompt zeroed) rather than one fixed length?", runs)


def _metrics() -> Ablation:
    runs = tuple(Run(f"{setting} L{layers}", "s5", (("length", 8),), setting, layers, 3000)
                 for setting, layers in (("base", 1), ("base", 2), ("cot", 1)))
    return Ablation("metrics", "Is the paper's 'about 20%' for S5 base the whole-permutation accuracy (chance 1/120) "
                    "or the accuracy per image of the permutation (chance 1/5)?", runs,
                    notes=("No task of the four has an answer of several tokens: modadd, isq and S5 answer with "
                           "one token, and CVP's answer is its last CoT token; per-token accuracy of the answer is "
                           "whole-answer accuracy. S5's answer token has five parts, the images of 0..4.",))


CVP_SIZES, CVP_DEPTHS, CVP_LEARNS = (8, 12, 16), (1, 2, 4, 8, 16), 0.9


def _cvp_depth() -> Ablation:
    base = tuple(Run(f"base {gates} gates L{layers} {last}", "cvp",
                     (("gates", gates),) + ((("last_gate", last),) if last != "balanced" else ()), "base", layers,
                     24000)
                 for last in ("balanced", "unconditioned") for gates in CVP_SIZES for layers in CVP_DEPTHS)
    cot = tuple(Run(f"cot {gates} gates L1 balanced", "cvp", (("gates", gates),), "cot", 1, 8000)
                for gates in CVP_SIZES)
    return Ablation("cvp-depth", f"At which depth does base first reach {CVP_LEARNS:g} on CVP circuits of 8, 12 and "
                    "16 gates, with the last gate balanced (the grid's distribution) and as generated, at 3x the "
                    "grid's step budget? Does base need depth that grows with circuit size while CoT at 1 layer "
                    "does not?", base + cot, gpu=True, findings=_cvp_depth_findings)


def _cvp_depth_findings(rows: list[dict], judged: str = "balanced") -> dict:
    """For each size and last-gate distribution, the first depth at which base reaches ``CVP_LEARNS`` (None: it
    never does at the depths run); and whether the claim holds on the ``judged`` distribution: CoT at 1 layer
    reaches 0.99 at every size while base's depth grows with size (never counts as beyond every depth).

    Where runs train to convergence, one that stopped at its cap below the bar might still reach it: the finding
    stands only if it would with every such run at 1.0, in every combination (as ``claims.settle`` judges claims)."""
    from neural.learning.claims import at_ends

    ran = [r for r in rows if r["status"] != NOT_RUN]
    if not ran:
        return {"reach_depth": None, "holds": None, "why": "not run"}
    reach, cot, holds, why = _cvp_depth_as_scored(ran, judged)
    bound = [r for r in ran if r.get("converged") is False and r["accuracy"] < (
        CVP_LEARNS if r["setting"] == "base" else 0.99)]
    if bound:
        names = ", ".join(r["label"] for r in bound)
        if any(_cvp_depth_as_scored(at_ends(ran, [[r] for r in bound], ends), judged)[2] != holds
               for ends in product((False, True), repeat=len(bound)) if any(ends)):
            return {"reach_depth": reach, "cot_l1": cot, "holds": None,
                    "why": f"{why}; undecided: budget-bound below the bar: {names}"}
        why += f"; budget-bound below the bar, but no score up to 1.0 changes the finding: {names}"
    return {"reach_depth": reach, "cot_l1": cot, "holds": holds, "why": why}


def _cvp_depth_as_scored(ran: list[dict], judged: str) -> tuple[dict, dict, bool, str]:
    """(first depth reaching the bar per size and distribution, CoT at 1 layer per size, holds, why) from the runs
    as they scored."""
    from neural.learning.claims import depth_grows

    sizes = sorted({r["params"]["gates"] for r in ran})
    reach = {}
    for last in ("balanced", "unconditioned"):
        for gates in sizes:
            mine = sorted((r for r in ran if r["setting"] == "base" and r["params"]["gates"] == gates and
                           r["params"].get("last_gate", "balanced") == last), key=lambda r: r["layers"])
            if mine:
                reach[f"{gates} gates {last}"] = next((r["layers"] for r in mine if r["accuracy"] >= CVP_LEARNS), None)
    cot = {r["params"]["gates"]: r["accuracy"] for r in ran if r["setting"] == "cot"}
    depth = [reach.get(f"{g} gates {judged}") for g in sizes]
    cot_ok = set(cot) == set(sizes) and all(a >= 0.99 for a in cot.values())
    deepest = max((r["layers"] for r in ran if r["setting"] == "base"), default=0)
    why = (f"{judged} last gate: base first reaches {CVP_LEARNS:g} at depth {depth} for {sizes} gates (None: never, "
           f"up to {deepest} layers); CoT at 1 layer {cot}")
    return reach, cot, bool(depth_grows(depth) and cot_ok), why


def _isq_budget() -> Ablation:
    runs = tuple(Run(f"cot L1 {steps} steps", "isq", (("steps", 8), ("min_prime", 101), ("max_prime", 397)),
                     "cot", 1, steps) for steps in (8000, 16000, 32000))
    return Ablation("isq-budget", "At how many steps does isq CoT at 1 layer reach 0.99 (the grid's 8,000 gave "
                    "0.968)? The grid's equal isq budget, base included, then rises to it.", runs, gpu=True,
                    findings=_isq_budget_findings)


ISQ_REACHES = 0.99


def _isq_budget_findings(rows: list[dict]) -> dict:
    """The smallest budget run at which isq CoT at 1 layer reaches ``ISQ_REACHES`` (None: none does), and what
    follows for the grid: its isq budget rises to that, for base as well."""
    ran = sorted((r for r in rows if r["status"] != NOT_RUN), key=lambda r: r["budget"])
    if not ran:
        return {"budget": None, "holds": None, "why": "not run"}
    budget = next((r["budget"] for r in ran if r["accuracy"] >= ISQ_REACHES), None)
    scores = ", ".join(f"{r['budget']} steps: {r['accuracy']:.3f}" for r in ran)
    then = (f"the full grid's isq budget (base and CoT alike) rises to {budget} steps, and its isq cells rerun"
            if budget else f"no budget run reaches {ISQ_REACHES:g}: steps alone do not close it (width next)")
    return {"budget": budget, "holds": budget is not None, "why": f"CoT at 1 layer: {scores}; {then}"}


def _cpu_recipe(ablation: Ablation) -> Ablation:
    """The ablation at the cpu profile's recipe: its width, learning rate and warmup, each run trained to
    convergence with the budget as a cap, so that a finding is read from converged runs as the grid's claims are."""
    from dataclasses import replace

    from neural.learning.profiles import PROFILES

    cpu = PROFILES["cpu"]
    return replace(ablation, d_model=cpu.d_model, lr=cpu.lr, warmup=cpu.warmup, test_samples=cpu.test_samples,
                   converge=True, gpu=False)


CPU_CVP_DEPTHS = (1, 2)


def _cvp_depth_cpu() -> Ablation:
    from neural.learning.profiles import PROFILES, cells_of

    cpu = PROFILES["cpu"]  # its smallest and largest circuits, at its cap
    gates_run = sorted({c.length for c in cells_of(cpu, 1) if c.task == "cvp"})
    sizes, cap, last = (gates_run[0], gates_run[-1]), cpu.budget("cvp"), (("last_gate", "unconditioned"),)
    lr = f"{cpu.lr:.0e}".replace("e-0", "e-")  # 1e-3, as the README writes it
    base = tuple(Run(f"base {gates} gates L{layers} unconditioned", "cvp", (("gates", gates),) + last, "base", layers,
                     cap) for gates in sizes for layers in CPU_CVP_DEPTHS)
    cot = tuple(Run(f"cot {gates} gates L1 unconditioned", "cvp", (("gates", gates),) + last, "cot", 1, cap)
                for gates in sizes)
    return _cpu_recipe(Ablation(
        "cvp-depth-cpu", f"cvp-depth at CPU scale, its other half: the cpu grid asks the depth question with the last "
        f"gate balanced given its type; with the last gate as generated (its type alone predicts about 0.7 of the "
        f"answers), at which depth (1 or 2) does base first reach {CVP_LEARNS:g} on circuits of {sizes[0]} and "
        f"{sizes[1]} gates, and does CoT at 1 layer still reach 0.99?", base + cot,
        findings=functools.partial(_cvp_depth_findings, judged="unconditioned"),
        notes=(f"The cpu profile's recipe (width {cpu.d_model}, lr {lr}), one seed, each run to convergence "
               f"with a cap of {cap:,} steps. Its balanced half is the cpu grid's own cvp cells (3 seeds; 1, 2 and 4 "
               "layers at 4, 6 and 8 gates), which the grid's depth claim judges.",)))


def _isq_budget_cpu() -> Ablation:
    from neural.learning.profiles import LENGTH_PARAM, PROFILES

    cpu = PROFILES["cpu"]  # its isq task, its width and cap, against twice the cap and twice the width
    task = ((LENGTH_PARAM["isq"], cpu.lengths["isq"][0]),) + tuple(cpu.tasks["isq"].items())
    runs = tuple(Run(f"cot L1 width {width} seed {seed} cap {cap}", "isq", task, "cot", 1, cap, seed, width)
                 for width, cap in ((cpu.d_model, 2 * cpu.budget("isq")), (2 * cpu.d_model, cpu.budget("isq")))
                 for seed in range(cpu.seeds))
    return _cpu_recipe(Ablation(
        "isq-budget-cpu", f"isq-budget at CPU scale: the cpu profile's isq CoT at 1 layer reaches 0.99 in one seed of "
        f"3 at width {cpu.d_model} within {cpu.budget('isq'):,} steps. Trained to convergence, does it reach 0.99 at "
        f"width {cpu.d_model} with twice the cap, or at width {2 * cpu.d_model} within the grid's cap?", runs,
        findings=_isq_budget_cpu_findings,
        notes=("Each run trains to convergence (the grid's early stop) with its budget as a cap: the step it stops "
               "at is when it reached the target, where it did.",)))


def _isq_budget_cpu_findings(rows: list[dict]) -> dict:
    """For each width, the seeds that reach ``ISQ_REACHES`` within their cap; the finding holds (width, not steps)
    where every seed at the wider width reaches it within the grid's cap and some seed at the grid's width does not
    within twice that."""
    ran = [r for r in rows if r["status"] != NOT_RUN]
    widths = sorted({r["d_model"] for r in rows})
    if len(ran) < len(rows) or len(widths) != 2:
        return {"holds": None, "why": "not every run has run"}
    runs = {w: [r for r in ran if r["d_model"] == w] for w in widths}
    reached = {w: [r for r in runs[w] if r["accuracy"] >= ISQ_REACHES] for w in widths}
    text = "; ".join(f"width {w}: {len(reached[w])} of {len(runs[w])} seeds reach {ISQ_REACHES:g} (" +
                     ", ".join(f"{r['accuracy']:.3f} at step {r['steps']}" for r in runs[w]) + ")" for w in widths)
    narrow, wide = widths
    holds = len(reached[wide]) == len(runs[wide]) and len(reached[narrow]) < len(runs[narrow])
    return {"holds": holds,
            "why": text + (f"; more steps do not close isq CoT at width {narrow}, width {wide} does" if holds else "")}


ABLATIONS = {a.name: a for a in (_modadd_length(), _metrics(), _cvp_depth(), _isq_budget(), _cvp_depth_cpu(),
                                 _isq_budget_cpu())}


def smoke(ablation: Ablation) -> Ablation:
    """The same runs at toy sizes: what CI can afford, to show the machinery end to end."""
    from dataclasses import replace

    def small(run: Run) -> Run:
        params = tuple((k, min(v, 4) if k in ("length", "gates", "steps") and not isinstance(v, bool) else v)
                       for k, v in run.params)
        return replace(run, params=params, layers=min(run.layers, 2), steps=20, d_model=None)

    runs = tuple(small(r) for r in ablation.runs)[:2]
    return replace(ablation, runs=runs, d_model=32, test_samples=40)


def run_ablation(name: str, out: Path, results: Path, *, toy: bool = False, cpu_anyway: bool = False,
                 device: str = "auto", jobs: int | None = None) -> dict:
    """Train and score every run of the ablation (or write it as not run: a GPU ablation on a CPU), and write
    ``results/ablations/NAME.json``, again after every run that finishes.

    ``jobs`` worker processes train runs side by side (the grid's workers, dealt out over every visible GPU), the
    costliest first. Runs checkpoint as they go and resume where they stopped, so an ablation cut short by a time
    limit finishes by running the same command again; a finished run is scored again, not retrained."""
    from neural.learning.workers import worker_devices, worker_pool
    from neural.model import resolve_device

    ablation = _sized(name, toy)
    device = resolve_device(device)
    skip = ablation.gpu and not toy and not cpu_anyway and not device.startswith("cuda")
    scored: dict[int, dict] = {}
    path = results_path(name, toy, results)
    path.parent.mkdir(parents=True, exist_ok=True)

    def document() -> dict:
        return ablation_document(name, toy, device, scored)

    def done(i: int, row: dict) -> None:
        scored[i] = row
        print(f"ablation {name}: {ablation.runs[i].label}: accuracy {row['accuracy']:.3f}", file=sys.stderr,
              flush=True)
        write(document())

    def write(doc: dict) -> None:
        from neural.learning.grid_results import results_json
        from neural.learning.reproduce_report import plot_ablation_curves

        atomic_write_text(path, results_json(doc, rows="runs"))
        png = plot_ablation_curves(doc)
        if png is not None:
            atomic_write_bytes(path.with_name(f"{path.stem}_curves.png"), png)

    if not skip:
        workers = worker_devices(device, jobs)
        order = sorted(range(len(ablation.runs)), key=lambda i: -_cost(ablation.runs[i]))  # costliest first
        if len(workers) <= 1:
            for i in order:
                done(i, score_run(name, toy, i, str(out), workers[0]))
        else:
            from concurrent.futures import as_completed

            with worker_pool(workers) as pool:
                futures = {pool.submit(score_run, name, toy, i, str(out), None): i for i in order}
                for f in as_completed(futures):
                    done(futures[f], f.result())
    doc = document()
    write(doc)
    return doc


def results_path(name: str, toy: bool, results: Path) -> Path:
    return Path(results) / "ablations" / f"{_stem(name, toy)}.json"


def ablation_document(name: str, toy: bool, device: str, scored: dict[int, dict]) -> dict:
    """The ablation's results: every run, with the fields its scoring added where it has run (``scored``: run index
    -> those fields), "not run" elsewhere, and what the runs decide."""
    ablation = _sized(name, toy)
    rows = [{"label": run.label, "task": run.task, "params": dict(run.params), "setting": run.setting,
             "layers": run.layers, "budget": run.steps, "seed": run.seed, "d_model": run.d_model or ablation.d_model,
             "status": NOT_RUN, **scored.get(i, {})}
            for i, run in enumerate(ablation.runs)]
    return {"ablation": name, "question": ablation.question, "smoke": toy, "device": device,
            "d_model": ablation.d_model, "lr": ablation.lr, "test_samples": ablation.test_samples,
            "notes": list(ablation.notes), "runs": rows,
            **({"findings": ablation.findings(rows)} if ablation.findings else {}),
            **({"finish_with": f"cotproof reproduce --ablation {name}" + (" --device cuda" if ablation.gpu else "")}
               if any(r["status"] == NOT_RUN for r in rows) else {})}


def run_directory(name: str, toy: bool, index: int, out: str | Path) -> Path:
    return Path(out) / _stem(name, toy) / _sized(name, toy).runs[index].label.replace(" ", "_")


@dataclass(frozen=True)
class RunUnit:
    """One run of an ablation as one task of a cluster job array (``neural.learning.slurm``)."""

    name: str
    toy: bool
    index: int
    out: str
    device: str = "auto"

    @property
    def label(self) -> str:
        return _sized(self.name, self.toy).runs[self.index].label

    @property
    def dirs(self) -> tuple[Path, ...]:
        return (run_directory(self.name, self.toy, self.index, self.out),)

    def run(self, on_row) -> None:
        from neural.model import resolve_device

        on_row(self.dirs[0], score_run(self.name, self.toy, self.index, self.out, resolve_device(self.device)))


def _sized(name: str, toy: bool) -> Ablation:
    return smoke(ABLATIONS[name]) if toy else ABLATIONS[name]


def _stem(name: str, toy: bool) -> str:
    """The name of an ablation's results file and run folder: smoke runs kept apart from real ones."""
    return f"{name}-smoke" if toy else name


def _cost(run: Run) -> float:
    """What orders runs longest first: steps times layers (a run's sequence length matters less than its depth
    where small models are bound by kernel launches)."""
    return run.steps * run.layers


def score_run(name: str, toy: bool, index: int, out: str, device: str | None) -> dict:
    """Train (or resume) run ``index`` of the ablation and score it on held-out test prompts: the fields its row
    adds. Runs in a worker process under ``jobs``."""
    import torch

    from neural.checkpoint import read_metrics
    from neural.learning.evaluation import evaluate_model, load_trained
    from neural.learning.profiles import PROFILES, convergence, recipe, scored_fields
    from neural.learning.reproduce import validation_curve
    from neural.learning.runs import CONVERGED, stop_reason_of
    from neural.learning.tasks import TEST_SEED
    from neural.learning.train import train
    from neural.learning.workers import worker_device

    ablation = _sized(name, toy)
    run = ablation.runs[index]
    # a converging ablation stops as the cpu grid's cells do; the others spend their whole budget
    checks = convergence(PROFILES["cpu"]) if ablation.converge else {
        "early_stop": None, "eval_samples": 256, "save_every": max(1, min(run.steps, 1000)),
        "log_every": max(1, run.steps // 10)}
    cfg = recipe(run.task, dict(run.params), run.setting, run.layers, d_model=run.d_model or ablation.d_model,
                 lr=ablation.lr, warmup=min(200, run.steps // 10) if ablation.warmup is None else ablation.warmup,
                 steps=run.steps, seed=run.seed, device=device or worker_device(), **checks)
    directory = run_directory(name, toy, index, out)
    last = train(cfg, directory, resume=True, progress=False)
    model, task, setting, meta = load_trained(directory)
    model.to(torch.device(cfg.device))
    ev = evaluate_model(model, task, setting, ablation.test_samples, seed=TEST_SEED, split="test")
    row = {"status": "run", **scored_fields(ev, meta),
           "train_answer_accuracy": _last_train_accuracy(read_metrics(directory))}
    if ablation.converge:  # whether each run converged, and its curve; a fixed-budget run is read by its score alone
        reason = stop_reason_of(last, cfg.steps)
        row |= {"stop_reason": reason, "converged": reason in CONVERGED,
                "validation_curve": validation_curve(directory)}
    return row


def _last_train_accuracy(records: list[dict]) -> float | None:
    """The answer accuracy on the last logged training batches: on the training distribution (mixed lengths,
    where asked), beside the test accuracy on full-length prompts."""
    accs = [r["train_answer_acc"] for r in records if "train_answer_acc" in r]
    return round(float(accs[-1]), 4) if accs else None
