"""``cotproof reproduce``: the paper's experiments as a grid of cells (``neural.learning.profiles``), trained in
groups (``neural.learning.grouping``) to the profile's budget or to convergence, scored on held-out prompts.

Accuracy is greedy accuracy on the test split: prompts that the hash split of ``neural.learning.tasks`` keeps out of
training and validation. Beside each cell stand the chance levels that make it readable: the majority class, and for
cvp the best guess from the last gate's type alone. Results go to ``results/<profile>.json`` after every group
(``neural.learning.grid_results``), so a killed grid resumes at the first unfinished cell, and a group killed
mid-run is formed again from its cells' checkpoints and resumes exactly. The claims the rows decide are in
``neural.learning.claims``.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neural.learning import interrupt
from neural.learning.claims import claims
from neural.learning.grid_results import (
    COMMIT_ENV,
    commit,
    document,
    load_results,
    machine,
    write_results,
)
from neural.learning.grouping import checkpoint_config, group_cost, plan_groups, resume_step, run_order
from neural.learning.profiles import (
    EARLY_STOP,
    LENGTH_PARAM,
    PROFILES,
    ROW,
    Cell,
    Profile,
    cells_of,
    parse_cells,
    recipe,
    row_key,
    scored_fields,
    train_config,
    unscored,
)
from neural.learning.workers import device_memory, worker_device, worker_devices, worker_pool

__all__ = ["COMMIT_ENV", "EARLY_STOP", "LENGTH_PARAM", "PROFILES", "ROW", "Cell", "Profile", "cells_of", "claims",
           "commit", "document", "group_cost", "load_results", "parse_cells", "plan_groups", "recipe", "resume_step",
           "row_key", "run_grid", "run_order", "scored_fields", "train_config", "unscored", "write_results"]


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
           "device": device, "machine": machine(), "commit": commit(), "group": group,
           "validation_curve": validation_curve(run_dir)}
    if cell.task == "cvp" and cell.setting == "cot":  # does the learned model read what the construction reads?
        from neural.learning.mechanism import mechanism_of

        row["mechanism"] = mechanism_of(model, task)
    print(f"{tag} {cell.name} length {cell.length} seed {cell.seed}: test accuracy {row['accuracy']:.3f} after "
          f"{row['steps']} steps, {row['seconds']:.0f} s", file=sys.stderr, flush=True)
    return row


def validation_curve(run_dir: Path) -> list[list] | None:
    """The cell's learning curve, ``[[step, validation accuracy], ...]`` at each early-stop check, kept in its row:
    run directories stay on the machine that trained them, and the figure of every cell's curve is drawn from the
    results file alone. None for a run that recorded no check."""
    from neural.checkpoint import read_metrics

    curve = [[r["step"], round(r["valid_accuracy"], 4)] for r in read_metrics(run_dir)
             if r.get("valid_accuracy") is not None]
    return curve or None


def weights_sha256(run_dir: Path) -> str | None:
    """The hash of the weights a row was scored from, as the checkpoint's config.json records it: two rows with
    the same hash come from bit-identical models, whichever machine or executor trained them."""
    return checkpoint_config(run_dir).get("weights_sha256")


# ---- the grid ---------------------------------------------------------------------------------------------------

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
        write_results(profile_name, list(rows.values()), results)

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


def _require_resources(profile: Profile, todo: list[Cell]) -> None:
    """Before any training: every cell must fit in memory (``--cells s5:cot:1000000`` is refused here, with the
    estimate, not killed an hour in)."""
    from grammar.limits import require_memory

    for cell in todo:
        require_memory(train_config(profile, cell).training_bytes(), f"cell {cell.name} (length {cell.length})",
                       "--cells", "cells of sensible depth")
