"""``cotproof reproduce``: the paper's experiments as a grid of cells, trained on equal step budgets (or to
convergence).

A *cell* is (task, setting, layers, length, seed). Every cell of a profile gets the same step budget and the same
learning-rate schedule, whatever its depth, and stops early once its accuracy on the validation split reaches
``EARLY_STOP``. Accuracy is greedy accuracy on the test split: prompts that the hash split of ``neural.learning.tasks``
keeps out of training and validation. Beside each cell stand the chance levels that make it readable: the
majority class, and for cvp the best guess from the last gate's type alone.

Cells train in groups (``plan_groups``, ``neural.learning.train``): one stacked model for cells that can share a step.
Results go to ``results/<profile>.json`` after every group (atomically), so a killed grid resumes at the first
unfinished cell, and a group killed mid-run is formed again from its cells' checkpoints and resumes exactly.
``table.md`` and the figures are drawn from that file; the claims the rows decide, in ``neural.learning.claims``.
A profile with ``plateau_patience`` trains every cell to convergence instead, with its budget as a hard cap.
"""
from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grammar.errors import ParameterError
from neural.checkpoint import atomic_write_bytes, atomic_write_text
from neural.learning import interrupt
from neural.learning.claims import claims
from neural.learning.workers import device_memory, worker_device, worker_devices, worker_pool

EARLY_STOP = 0.995  # validation accuracy at two checks in a row (TrainConfig.early_stop_patience)
ROW = "row.json"  # a cell's scored row, in its run directory, where a cluster job writes it (neural.learning.slurm)
LENGTH_PARAM = {"modadd": "length", "s5": "length", "isq": "steps", "cvp": "gates"}  # each task's input length


@dataclass(frozen=True)
class Profile:
    tasks: dict  # task -> its fixed parameters (the length parameter excluded)
    lengths: dict  # task -> the input lengths run; the first is the one the depth axis uses
    settings: tuple[str, ...]
    depths: tuple[int, ...]
    steps: int  # the budget of every cell ...
    seeds: int
    d_model: int = 128
    test_samples: int = 1000  # held-out test prompts each cell is scored on (validation: TrainConfig.eval_samples)
    lr: float = 1e-3
    warmup: int = 200
    task_steps: tuple = ()  # ... except these tasks': (task, steps) pairs; equal across depths within a task
    # (task, setting, layers, length) cells beyond the grid of ``depths`` x ``settings`` x ``lengths``
    more_cells: tuple = ()
    depths_of: tuple = ()  # (task, setting, depths): where the grid runs other depths than ``depths``
    plateau_patience: int | None = None  # also stop, converged, after this many checks without a new best ...
    plateau_from: int = 0  # ... from this step on (TrainConfig.plateau_from)
    # a profile run over several sittings trains its cheapest groups first, so a sitting that ends scores the most
    # cells it can; otherwise the costliest go first, for the shortest whole run (``run_order``)
    cheapest_first: bool = False
    finish_with: str = ""  # the command that runs the cells not yet run, where the profile is sized for

    def budget(self, task: str) -> int:
        return dict(self.task_steps).get(task, self.steps)


PROFILES = {
    # 2-core CPU, within an hour: the claims small scale can show (CoT at 1 layer; base failing at 1 and 2 layers)
    # isq's primes are large enough that squaring orbits are long: with small primes an answer often repeats at
    # another k of the same (p, r), or is forced (p = 3, 5, 17), and base scores well above chance by recall
    "quick": Profile(tasks={"modadd": {"modulus": 7}, "s5": {}, "isq": {"min_prime": 151, "max_prime": 199},
                            "cvp": {}},
                     lengths={"modadd": (8,), "s5": (8,), "isq": (4,), "cvp": (6,)},
                     settings=("base", "cot", "hint"), depths=(1, 2, 4), steps=3000, seeds=1, test_samples=500, lr=2e-3,
                     task_steps=(("isq", 6000),), finish_with="cotproof reproduce --quick --jobs 2"),
    # 2-core CPU, resumable: every cell trains to convergence (early stop, or in 8 checks neither a new best
    # validation accuracy nor a 1% lower training loss, from step 2,500 on) or to a cap of 8,000 steps. Width
    # 64: a step costs about a third of width 128's here. Depths 1-8, 3 seeds, and the cvp depth question (base at
    # every depth, CoT at 1 layer) at 4, 6 and 8 gates; cvp's CoT and hint run at 1 layer only, since no claim
    # reads them deeper and their long sequences would cost half the profile. One learning rate, 1e-3, at every
    # depth (README's sweep)
    "cpu": Profile(tasks={"modadd": {"modulus": 7}, "s5": {}, "isq": {"min_prime": 151, "max_prime": 199},
                          "cvp": {}},
                   lengths={"modadd": (6,), "s5": (5,), "isq": (3,), "cvp": (4,)},
                   settings=("base", "cot", "hint"), depths=(1, 2, 4, 8), steps=8000, seeds=3, d_model=64,
                   test_samples=500, lr=1e-3, warmup=200, plateau_patience=8, plateau_from=2500,
                   depths_of=(("cvp", "cot", (1,)), ("cvp", "hint", (1,))),
                   more_cells=tuple(("cvp", "base", layers, gates) for gates in (6, 8) for layers in (1, 2, 4, 8)) +
                   tuple(("cvp", "cot", 1, gates) for gates in (6, 8)),
                   cheapest_first=True, finish_with="cotproof reproduce --profile cpu --jobs 2"),
    # a GPU (``--jobs`` 10-14 on one H100): depths to 8 (16 for base where the paper's base needs depth), the
    # length axis for modadd and cvp, every setting, 3 seeds: 261 cells
    "full": Profile(tasks={"modadd": {"modulus": 7}, "s5": {}, "isq": {"min_prime": 101, "max_prime": 397},
                           "cvp": {}},
                    lengths={"modadd": (16, 4, 8), "s5": (16,), "isq": (8,), "cvp": (16, 8)},
                    settings=("base", "cot", "hint"), depths=(1, 2, 4, 8), steps=8000, seeds=3, test_samples=1000,
                    more_cells=(("s5", "base", 16, 16), ("isq", "base", 16, 8), ("cvp", "base", 16, 16)),
                    finish_with="cotproof reproduce --full --device cuda --jobs 12"),
}


@dataclass(frozen=True)
class Cell:
    task: str
    setting: str
    layers: int
    length: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.task}:{self.setting}:{self.layers}"

    @property
    def key(self) -> tuple:
        return (self.task, self.setting, self.layers, self.length, self.seed)

    def directory(self, root: Path) -> Path:
        return root / f"{self.task}_{self.setting}_L{self.layers}_n{self.length}_s{self.seed}"


def parse_cells(text: str | None) -> list[tuple[str, str, int]] | None:
    """``TASK:SETTING:LAYERS[,...]`` -> [(task, setting, layers)]; ValueError names the bad item."""
    if text is None:
        return None
    from neural.learning.tasks import SETTINGS

    out = []
    for item in text.split(","):
        parts = item.strip().split(":")
        if len(parts) != 3 or parts[0] not in LENGTH_PARAM or parts[1] not in SETTINGS or not parts[2].isdigit() \
                or int(parts[2]) < 1:
            raise ParameterError(item.strip())
        out.append((parts[0], parts[1], int(parts[2])))
    return out


def cells_of(profile: Profile, seeds: int, chosen: list | None = None) -> list[Cell]:
    """Every cell of the profile: each setting at every depth at each of the task's lengths, then ``more_cells``;
    ``chosen`` (task, setting, layers) selects cells, at any depth, even one the profile lacks, and orders them as
    listed."""
    cells, depths_of = [], {(task, setting): depths for task, setting, depths in profile.depths_of}
    for task in profile.tasks:
        for setting in profile.settings:
            for layers in depths_of.get((task, setting), profile.depths):
                for length in profile.lengths[task]:
                    cells += [Cell(task, setting, layers, length, s) for s in range(seeds)]
            more = sorted((layers, length) for t, st, layers, length in profile.more_cells
                          if (t, st) == (task, setting))
            cells += [Cell(task, setting, layers, length, s) for layers, length in more for s in range(seeds)]
    if chosen is None:
        return cells
    picked = [c for c in cells if (c.task, c.setting, c.layers) in chosen]
    have = {(c.task, c.setting, c.layers) for c in picked}
    for task, setting, layers in chosen:  # a depth the profile does not run: at the task's main length
        if (task, setting, layers) not in have:
            picked += [Cell(task, setting, layers, profile.lengths[task][0], s) for s in range(seeds)]
    return sorted(picked, key=lambda c: chosen.index((c.task, c.setting, c.layers)))  # in the order asked for


def recipe(task: str, params: dict, setting: str, layers: int, *, d_model: int, lr: float, warmup: int, steps: int,
           seed: int, **run):
    """The one training recipe of the grid's cells and the ablations' runs: 4 heads, a feed-forward 4x the width,
    validation every 250 steps. ``run`` holds what differs by caller: early stop and plateau, validation samples,
    saves, logging, device, precision."""
    from neural.learning.runs import TrainConfig

    return TrainConfig(task=task, task_params=tuple(params.items()), setting=setting, layers=layers, d_model=d_model,
                       heads=4, d_ff=4 * d_model, lr=lr, warmup=warmup, steps=steps, seed=seed, eval_every=250, **run)


def scored_fields(ev: dict, meta: dict) -> dict:
    """What every scored row holds, a grid cell's or an ablation run's: test accuracy (and S5's accuracy per image
    of the permutation, chance 0.2 against 1/120 whole), and the steps and seconds it trained."""
    return {"accuracy": round(ev["accuracy"], 4),
            **({"answer_part_accuracy": round(ev["answer_part_accuracy"], 4)} if "answer_part_accuracy" in ev else {}),
            "steps": int(meta["step"]), "seconds": round(float(meta.get("elapsed_seconds", 0.0)), 1)}


def train_config(profile: Profile, cell: Cell, precision: str = "auto"):
    params = {**profile.tasks[cell.task], LENGTH_PARAM[cell.task]: cell.length}
    return recipe(cell.task, params, cell.setting, cell.layers, d_model=profile.d_model, lr=profile.lr,
                  warmup=profile.warmup, steps=profile.budget(cell.task), seed=cell.seed, early_stop=EARLY_STOP,
                  plateau_patience=profile.plateau_patience, plateau_from=profile.plateau_from, eval_samples=512,
                  save_every=250, log_every=50, precision=precision)


# ---- one cell -------------------------------------------------------------------------------------------------

def baselines(task, samples: int = 4000) -> dict:
    """Chance levels on the test split: the majority answer of the training split, and (cvp) the best answer
    given the shallow feature alone, both fitted on training prompts and scored on test prompts."""
    rng = np.random.default_rng(99)
    train_p, train_s = task.sample_split(rng, samples, "train")
    test_p, test_s = task.sample_split(rng, samples, "test")
    train_ans, test_ans = train_s[:, -1], test_s[:, -1]
    values, counts = np.unique(train_ans, return_counts=True)
    out = {"majority_baseline": float((test_ans == values[counts.argmax()]).mean()), "shallow_baseline": None}
    feature = task.shallow_feature(train_p)
    if feature is not None:
        guess = {}
        for f in np.unique(feature):
            v, c = np.unique(train_ans[feature == f], return_counts=True)
            guess[int(f)] = v[c.argmax()]
        test_f = task.shallow_feature(test_p)
        pred = np.array([guess.get(int(f), values[counts.argmax()]) for f in test_f])
        out["shallow_baseline"] = float((pred == test_ans).mean())
    return out


def heldout_disjoint(task, cfg, test_seed: int, test_samples: int, train_steps: int = 200) -> bool:
    """The test prompts the cell is scored on all lie in the test split, and none occurs among the prompts the
    training stream drew in its first ``train_steps`` steps (the stream is a function of seed and step)."""
    test_p, _ = task.sample_split(np.random.default_rng(test_seed), test_samples, "test")
    if not (task.split_of(test_p) == 2).all():
        return False
    seen = set()
    for step in range(train_steps):
        p, _ = task.sample_split(np.random.default_rng([cfg.seed, step, 0]), cfg.batch_size, "train")
        seen.update(map(bytes, p.astype(np.int64)))
    return not any(bytes(row) in seen for row in test_p.astype(np.int64))


def run_group(profile_name: str, cells: list[Cell], root: str, index: str = "", fresh: bool = False,
              device: str | None = None, precision: str = "auto", on_row=None,
              profile: Profile | None = None) -> list[dict]:
    """Train (or resume) a group of cells as one stacked model (``neural.learning.train``), then score each on the test
    split. Runs in a worker process under ``--jobs``, or as a cluster job (``neural.learning.slurm``), which hears
    each row as it is scored (``on_row(run_dir, row)``) and may be asked to stop between two cells
    (``neural.learning.interrupt``)."""
    import shutil

    import torch

    from neural.learning.train import train_group
    from neural.model import resolve_device

    threads = os.environ.get("COTPROOF_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    profile = profile or PROFILES[profile_name]
    cfgs = [train_config(profile, cell, precision) for cell in cells]
    dirs = [cell.directory(Path(root) / profile_name) for cell in cells]
    if fresh:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
    device = device or worker_device() or resolve_device(cfgs[0].device)
    started = time.perf_counter()
    tag = f"[{index}]" + (f" (group of {len(cells)})" if len(cells) > 1 else "")

    def report(i, step, acc):
        cell = cells[i]
        print(f"{tag} {cell.name} length {cell.length} seed {cell.seed}: step {step}/{cfgs[i].steps}, "
              f"validation accuracy {acc:.3f}, {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)

    lasts = train_group(cfgs, dirs, resume=True, progress=False, on_eval=report, device=device)
    rows = []
    for cell, cfg, d, last in zip(cells, cfgs, dirs, lasts):
        interrupt.raise_if_requested()
        rows.append(score_cell(profile, cell, cfg, d, last, device, len(cells), tag))
        if on_row is not None:
            on_row(d, rows[-1])
    return rows


@dataclass(frozen=True)
class GroupUnit:
    """One group of cells as one task of a cluster job array (``neural.learning.slurm``): where its cells write,
    and the call that trains and scores them there."""

    profile_name: str
    profile: Profile  # as planned: the task trains what was submitted, not what PROFILES says when it starts
    cells: tuple[Cell, ...]
    root: str
    label: str
    device: str = "auto"
    precision: str = "auto"

    @property
    def dirs(self) -> tuple[Path, ...]:
        return tuple(cell.directory(Path(self.root) / self.profile_name) for cell in self.cells)

    def run(self, on_row) -> None:
        """Rows are written once every member has trained, so a task restarted with some rows written has only
        scoring left: it scores the rest."""
        from neural.model import resolve_device

        left = [cell for cell, d in zip(self.cells, self.dirs) if not (d / ROW).exists()]
        if left:
            run_group(self.profile_name, left, self.root, self.label, False, resolve_device(self.device),
                      self.precision, on_row, self.profile)


def score_cell(profile: Profile, cell: Cell, cfg, run_dir: Path, last: dict, device: str, group: int,
               tag: str = "") -> dict:
    """One cell's row: test accuracy where it trained (greedy decoding of 1,000 prompts is no small job), chance
    levels, soundness, and how it ran."""
    from neural.learning.evaluation import evaluate_model, load_trained
    from neural.learning.runs import CONVERGED, stop_reason_of
    from neural.learning.tasks import TEST_SEED

    model, task, setting, meta = load_trained(run_dir)
    reason = stop_reason_of(last, cfg.steps)
    model.to(device)
    ev = evaluate_model(model, task, setting, profile.test_samples, seed=TEST_SEED, split="test")
    row = {"task": cell.task, "setting": cell.setting, "layers": cell.layers, "length": cell.length,
           "seed": cell.seed, **scored_fields(ev, meta), **baselines(task),
           "unsound_step_rate": None if "unsound_step_rate" not in ev else round(ev["unsound_step_rate"], 5),
           "weights_sha256": weights_sha256(run_dir),
           "early_stopped": bool(last.get("early_stopped")), "stop_reason": reason, "converged": reason in CONVERGED,
           "heldout_disjoint": heldout_disjoint(task, cfg, TEST_SEED, profile.test_samples),
           "device": device, "machine": machine(), "commit": commit(), "group": group}
    if cell.task == "cvp" and cell.setting == "cot":  # does the learned model read what the construction reads?
        from neural.learning.mechanism import mechanism_of

        row["mechanism"] = mechanism_of(model, task)
    print(f"{tag} {cell.name} length {cell.length} seed {cell.seed}: test accuracy {row['accuracy']:.3f} after "
          f"{row['steps']} steps, {row['seconds']:.0f} s", file=sys.stderr, flush=True)
    return row


def weights_sha256(run_dir: Path) -> str | None:
    """The hash of the weights a row was scored from, as the checkpoint's config.json records it: two rows with
    the same hash come from bit-identical models, whichever machine or executor trained them."""
    return _checkpoint_config(run_dir).get("weights_sha256")


def _checkpoint_config(run_dir: Path) -> dict:
    """A run directory's config.json as it stands ({} when there is none, or none readable yet)."""
    try:
        config = json.loads((Path(run_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


# ---- groups -----------------------------------------------------------------------------------------------------

MAX_GROUP = {"cpu": 4, "cuda": 64}  # members of one group (see plan_groups)


def plan_groups(profile: Profile, cells: list[Cell], root: Path, device: str, memory_bytes: float,
                fresh: bool = False, precision: str = "auto") -> list[list[Cell]]:
    """Cells that train well together, as groups of at most ``MAX_GROUP`` members within ``memory_bytes``.

    Members must share ``neural.learning.train.group_key`` and the step they resume from. On CUDA a group also spans the
    settings and lengths of a task (padded to its longest sequence): small models there are bound by kernel
    launches, and G models cost about the launches of one. On a CPU training is bound by arithmetic (a group of 4
    measured 1.08x the rate of separate processes, of 64 0.48x, ``docs/benchmarks.md``), so padding would be lost
    work: a CPU group holds cells of one exact shape only, such as the seeds of a cell."""
    from neural.learning.train import group_key

    cuda = device.startswith("cuda")
    cfgs = {cell: train_config(profile, cell, precision) for cell in cells}
    by_key: dict[tuple, list[Cell]] = {}
    for cell, cfg in cfgs.items():
        key = (group_key(cfg), 0 if fresh else resume_step(cell.directory(root)))
        if not cuda:
            key += (cell.setting, cell.length)
        by_key.setdefault(key, []).append(cell)
    groups = []
    for members in by_key.values():
        per_member = max(cfgs[c].training_bytes() for c in members)
        size = int(max(1, min(MAX_GROUP["cuda" if cuda else "cpu"], memory_bytes // per_member)))
        n = -(-len(members) // size)  # as few groups as fit, of equal size
        groups += [members[i::n] for i in range(n)]
    return groups


def resume_step(run_dir: Path) -> int:
    """The step a cell's checkpoint holds (0 when it has none); a finished cell resumes as finished."""
    try:
        return int(_checkpoint_config(run_dir).get("step", 0))
    except (TypeError, ValueError):
        return 0


def group_cost(profile: Profile, group: list[Cell]) -> float:
    """What orders groups longest first: the training FLOP of the whole budget, summed over members (depth alone
    would rank a 1-layer cvp cell, with its long sequences, with a 1-layer modadd cell 3x cheaper)."""
    from neural.learning.stacked import flops_per_step

    total = 0.0
    for cell in group:
        cfg = train_config(profile, cell)
        mc = cfg.model_config(cfg.make_task())
        total += cfg.steps * flops_per_step(mc, cfg.batch_size, mc.max_len, mc.max_len)
    return total


def run_order(profile: Profile, groups: list[list[Cell]], jobs: int) -> list[list[Cell]]:
    """The order groups start in: cheapest first where the profile asks (``Profile.cheapest_first``), else with
    several workers costliest first, so no long group starts last and holds the run up. Stable: ties keep their
    order."""
    if profile.cheapest_first:
        return sorted(groups, key=lambda g: group_cost(profile, g))
    if jobs > 1:
        return sorted(groups, key=lambda g: -group_cost(profile, g))
    return groups


# ---- the grid ---------------------------------------------------------------------------------------------------

def machine() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)} (CUDA), torch {torch.__version__}"
        version = torch.__version__
    except ImportError:
        version = "?"
    return f"CPU: {os.cpu_count()} cores, {platform.machine()}, {platform.system()}, torch {version}"


COMMIT_ENV = "COTPROOF_COMMIT"  # the commit a grid started at, handed to its worker processes


@functools.lru_cache(maxsize=1)
def commit() -> str:
    """The code's commit, as a row records it: the grid's own (``COMMIT_ENV``, set before its workers start), so a
    row scored hours later does not name a commit made meanwhile in the same checkout."""
    if os.environ.get(COMMIT_ENV):
        return os.environ[COMMIT_ENV]
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def load_results(path: Path) -> list[dict]:
    """The cells already scored; a file that is not a results JSON is refused, never overwritten."""
    from grammar.errors import InputError, SourceLoc
    from grammar.source import parse_json, read_text

    if not path.exists():
        return []
    doc = parse_json(read_text(path, "results file"), path, "the results file",
                     "a results file written by cotproof reproduce")
    cells = doc.get("cells") if isinstance(doc, dict) else None
    key = {"task", "setting", "layers", "length", "seed"}
    if not isinstance(cells, list) or not all(isinstance(r, dict) and key <= r.keys() for r in cells):
        raise InputError("not a reproduction's results: no list of cells with task, setting, layers, length and seed",
                         SourceLoc(str(path)), expected="a results file written by cotproof reproduce")
    # A row keeps the provenance of the run that produced it; rows from before rows carried their own get the
    # file's.
    return [{"commit": doc.get("commit", "unknown"), "machine": doc.get("machine", "unknown"), **r} for r in cells]


def run_grid(profile_name: str, out: Path, results: Path, *, seeds: int | None = None, cells: list | None = None,
             jobs: int | None = None, device: str | None = None, precision: str = "auto",
             rerun: bool = False) -> dict:
    """Run the profile's unfinished cells (``cells``: rerun just these, from scratch; ``rerun``: every cell, from
    scratch) and write the results. With nothing to run, nothing is written: the files stay byte for byte.

    Cells train in groups (``plan_groups``), ``jobs`` worker processes at a time (default: one per visible GPU, or
    one on a CPU), each worker on one device: with several GPUs, the workers are dealt out over them."""
    from grammar.limits import require_training_steps
    from neural.model import resolve_device

    profile = PROFILES[profile_name]
    seeds = profile.seeds if seeds is None else seeds
    per_seed = cells_of(profile, 1, cells)  # priced before the grid is built: --seeds 10**12 is refused, not listed
    require_training_steps(seeds * sum(profile.budget(c.task) for c in per_seed),
                           f"{len(per_seed):,} cells x {seeds:,} seeds", "--seeds")
    todo = cells_of(profile, seeds, cells)
    path = results / f"{profile_name}.json"
    rows = {row_key(r): r for r in load_results(path)}
    if cells is None and not rerun:
        todo = unscored(profile, rows.values(), seeds)  # resume: cells already scored stay as they are
    if not todo:
        return document(profile_name, [])
    _require_resources(profile, todo)
    results.mkdir(parents=True, exist_ok=True)
    fresh = cells is not None or rerun
    device = resolve_device(device or "auto")
    workers = worker_devices(device, jobs)
    jobs = len(workers)
    per_device = -(-jobs // len(set(workers)))
    os.environ.setdefault(COMMIT_ENV, commit())  # before any worker starts: every row names this grid's commit
    groups = plan_groups(profile, todo, out / profile_name, device,
                         device_memory(workers[0], per_device), fresh, precision)
    groups = run_order(profile, groups, jobs)
    ran = []
    labels = [f"{i + 1}/{len(groups)}" for i in range(len(groups))]
    steps = sum(train_config(profile, c).steps for c in todo)
    print(f"reproduce {profile_name}: {len(todo)} cells in {len(groups)} groups, {steps:,} training steps in all, "
          f"on {device} with {jobs} worker(s); each cell's line follows when it is scored", file=sys.stderr,
          flush=True)

    def done(new_rows):
        for row in new_rows:
            ran.append(row)
            rows[row_key(row)] = row
        write_results(profile_name, list(rows.values()), results, out)

    if jobs <= 1:
        for group, label in zip(groups, labels):
            done(run_group(profile_name, group, str(out), label, fresh, workers[0], precision))
    else:
        from concurrent.futures import as_completed

        with worker_pool(workers) as pool:
            futures = [pool.submit(run_group, profile_name, g, str(out), label, fresh, None, precision)
                       for g, label in zip(groups, labels)]
            for f in as_completed(futures):
                done(f.result())
    # the cells this call ran, and the claims as the results file now judges them (from every scored cell)
    return {**document(profile_name, ran), "claims": claims(list(rows.values()), profile)}


def unscored(profile: Profile, rows, seeds: int) -> list[Cell]:
    """The profile's cells (``seeds`` each) that ``rows`` has not scored: what a resumed grid runs, and what a
    results file lists as not run."""
    done = {row_key(r) for r in rows}
    return [c for c in cells_of(profile, seeds) if c.key not in done]


def _require_resources(profile: Profile, todo: list[Cell]) -> None:
    """Before any training: every cell must fit in memory (``--cells s5:cot:1000000`` is refused here, with the
    estimate, not killed an hour in)."""
    from grammar.limits import require_memory

    for cell in todo:
        require_memory(train_config(profile, cell).training_bytes(), f"cell {cell.name} (length {cell.length})",
                       "--cells", "cells of sensible depth")


def row_key(row: dict) -> tuple:
    return tuple(row[k] for k in ("task", "setting", "layers", "length", "seed"))


def document(profile_name: str, rows: list[dict], planned: bool = False) -> dict:
    """A results document: the scored cells and the claims they decide. ``planned`` also lists every cell of the
    profile that has not run (``"status": "not run"``, never a stand-in) and the command that runs them."""
    profile = PROFILES[profile_name]

    def order(r):
        return list(LENGTH_PARAM).index(r["task"]), r["setting"], r["length"], r["layers"], r["seed"]

    rows = sorted(rows, key=order)
    doc = {"profile": profile_name, "machine": _provenance(rows, "machine", machine),
           "commit": _provenance(rows, "commit", commit), "cells": rows, "claims": claims(rows, profile)}
    if planned:
        missing = [{"task": c.task, "setting": c.setting, "layers": c.layers, "length": c.length, "seed": c.seed,
                    "status": "not run"} for c in unscored(profile, rows, profile.seeds)]
        doc["not_run"] = sorted(missing, key=order)
        doc["finish_with"] = profile.finish_with if missing else None
    return doc


def _provenance(rows: list[dict], key: str, current) -> str:
    """A results file's commit (or machine) is that of the runs that produced its cells, not of the process that
    last wrote the file: one value, or the distinct ones joined."""
    values = sorted({str(r[key]) for r in rows if r.get(key)})
    return "; ".join(values) if values else current()


def write_results(profile_name: str, rows: list[dict], results: Path, runs: Path | None = None) -> None:
    """The results JSON, table and figures; with ``runs`` (the grid's --out), also the learning curves drawn from
    the run directories' metrics."""
    from neural.learning.reproduce_report import plot_curves, plot_depth, plot_length, render_table

    doc = document(profile_name, rows, planned=True)
    atomic_write_text(results / f"{profile_name}.json", json.dumps(doc, indent=1) + "\n")
    atomic_write_text(results / "table.md" if profile_name == "quick" else results / f"table_{profile_name}.md",
                      render_table(doc, PROFILES[profile_name]))
    for name, png in (("accuracy_vs_depth", plot_depth(doc, PROFILES[profile_name])),
                      ("accuracy_vs_length", plot_length(doc, PROFILES[profile_name]))):
        if png is not None:
            atomic_write_bytes(results / f"{name}_{profile_name}.png", png)
    if runs is not None:
        png = plot_curves(doc, PROFILES[profile_name], lambda r: Cell(r["task"], r["setting"], r["layers"],
                                                                     r["length"], r["seed"]).directory(
                                                                         Path(runs) / profile_name))
        if png is not None:
            atomic_write_bytes(results / f"learning_curves_{profile_name}.png", png)
