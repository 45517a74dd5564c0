"""The experiments ``cotproof reproduce`` runs: profiles (which cells, which budgets), the cell, and the one training
recipe every cell and ablation run shares.

A *cell* is (task, setting, layers, length, seed). Every cell of every profile gets the same learning-rate schedule,
whatever its depth, and trains to convergence: it stops once its accuracy on the validation split reaches
``EARLY_STOP``, or once ``plateau_patience`` checks after step ``plateau_from`` have brought it nothing, with its
step budget as a hard cap.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grammar.errors import ParameterError

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
    # also stop, converged, after this many checks without a new best validation accuracy or a 1% lower validation
    # loss (1,500 steps) ... counting only checks after this step: S5 CoT sits at chance for up to 2,250 steps
    # before it learns, and an initial plateau is not convergence (TrainConfig.plateau_patience, plateau_from)
    plateau_patience: int | None = 6
    plateau_from: int = 2000
    # a profile run over several sittings trains its cheapest groups first, so a sitting that ends scores the most
    # cells it can; otherwise the costliest go first, for the shortest whole run (``run_order``)
    cheapest_first: bool = False
    finish_with: str = ""  # the command that runs the cells not yet run, where the profile is sized for

    def budget(self, task: str) -> int:
        return dict(self.task_steps).get(task, self.steps)


PROFILES = {
    # 2-core CPU, meant to fit an hour with --jobs 2 (README): the claims small scale can show (CoT at 1 layer; base
    # failing at 1 and 2 layers); depth is the cpu profile's question. A cap of 5,000 steps (isq 6,000) leaves the
    # plateau rule, which counts from step 2,000, room to say that a base cell has converged.
    # isq's primes are large enough that squaring orbits are long: with small primes an answer often repeats at
    # another k of the same (p, r), or is forced (p = 3, 5, 17), and base scores well above chance by recall
    "quick": Profile(tasks={"modadd": {"modulus": 7}, "s5": {}, "isq": {"min_prime": 151, "max_prime": 199},
                            "cvp": {}},
                     lengths={"modadd": (8,), "s5": (8,), "isq": (4,), "cvp": (6,)},
                     settings=("base", "cot", "hint"), depths=(1, 2), steps=5000, seeds=1, test_samples=500, lr=2e-3,
                     task_steps=(("isq", 6000),), finish_with="cotproof reproduce --quick --jobs 2"),
    # 2-core CPU, resumable: every cell trains to convergence (early stop, or the plateau rule, so never before step
    # 3,500) or to a cap of 8,000 steps. Width 64: a step costs about a third of width 128's here. 3 seeds. Base and
    # CoT at depths 1-8 for modadd, s5 and isq; hint at 1 and 2 layers only (no claim reads hint, and its deep cells
    # run to the cap); the cvp depth question (base at 1, 2 and 4 layers, CoT at 1) at 4, 6 and 8 gates: base at 8
    # layers and 6-8 gates alone would cost more than the rest of the profile. One learning rate, 1e-3, at every
    # depth (README's sweep)
    "cpu": Profile(tasks={"modadd": {"modulus": 7}, "s5": {}, "isq": {"min_prime": 151, "max_prime": 199},
                          "cvp": {}},
                   lengths={"modadd": (6,), "s5": (5,), "isq": (3,), "cvp": (4,)},
                   settings=("base", "cot", "hint"), depths=(1, 2, 4, 8), steps=8000, seeds=3, d_model=64,
                   test_samples=500, lr=1e-3, warmup=200,
                   depths_of=(("modadd", "hint", (1, 2)), ("s5", "hint", (1, 2)), ("isq", "hint", (1, 2)),
                              ("cvp", "base", (1, 2, 4)), ("cvp", "cot", (1,)), ("cvp", "hint", (1,))),
                   more_cells=tuple(("cvp", "base", layers, gates) for gates in (6, 8) for layers in (1, 2, 4)) +
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


def row_key(row: dict) -> tuple:
    """A scored row's cell, as ``Cell.key`` names it."""
    return tuple(row[k] for k in ("task", "setting", "layers", "length", "seed"))


def unscored(profile: Profile, rows, seeds: int) -> list[Cell]:
    """The profile's cells (``seeds`` each) that ``rows`` has not scored: what a resumed grid runs, what a results
    file lists as not run, and the cells a claim may still wait on."""
    done = {row_key(r) for r in rows}
    return [c for c in cells_of(profile, seeds) if c.key not in done]


def parse_cells(text: str | None) -> list[tuple[str, str, int, int | None]] | None:
    """``TASK:SETTING:LAYERS[:LENGTH][,...]`` -> [(task, setting, layers, length)], length None for every length the
    profile runs that cell at; ValueError names the bad item."""
    if text is None:
        return None
    from neural.learning.tasks import SETTINGS

    out = []
    for item in text.split(","):
        parts = item.strip().split(":")
        numbers = parts[2:]
        if len(parts) not in (3, 4) or parts[0] not in LENGTH_PARAM or parts[1] not in SETTINGS \
                or not all(n.isdigit() and int(n) >= 1 for n in numbers):
            raise ParameterError(item.strip())
        out.append((parts[0], parts[1], int(parts[2]), int(parts[3]) if len(parts) == 4 else None))
    return out


def cells_of(profile: Profile, seeds: int, chosen: list | None = None) -> list[Cell]:
    """Every cell of the profile: each setting at every depth at each of the task's lengths, then ``more_cells``;
    ``chosen`` (task, setting, layers, length or None for every length) selects cells, at any depth and length, even
    one the profile lacks (at the task's main length where none is named), and orders them as listed."""
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

    def names(i: int, c: Cell) -> bool:
        task, setting, layers, length = chosen[i]
        return (c.task, c.setting, c.layers) == (task, setting, layers) and length in (None, c.length)

    def choice(c: Cell) -> int | None:  # the first choice that names the cell
        return next((i for i in range(len(chosen)) if names(i, c)), None)

    picked = [c for c in cells if choice(c) is not None]
    for i, (task, setting, layers, length) in enumerate(chosen):  # a cell the profile does not run: as asked
        if not any(names(i, c) for c in picked):
            picked += [Cell(task, setting, layers, length or profile.lengths[task][0], s) for s in range(seeds)]
    return sorted(picked, key=choice)  # in the order asked for


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


def convergence(profile: Profile) -> dict:
    """How a cell's training is checked, stopped and saved: the early stop and the profile's plateau rule at checks
    on 512 validation prompts, a checkpoint every 250 steps, a log line every 50. An ablation that trains its runs
    to convergence (``Ablation.converge``) takes these too, so its runs stop as the grid's cells do."""
    return {"early_stop": EARLY_STOP, "plateau_patience": profile.plateau_patience,
            "plateau_from": profile.plateau_from, "eval_samples": 512, "save_every": 250, "log_every": 50}


def train_config(profile: Profile, cell: Cell, precision: str = "auto"):
    params = {**profile.tasks[cell.task], LENGTH_PARAM[cell.task]: cell.length}
    return recipe(cell.task, params, cell.setting, cell.layers, d_model=profile.d_model, lr=profile.lr,
                  warmup=profile.warmup, steps=profile.budget(cell.task), seed=cell.seed, precision=precision,
                  **convergence(profile))
