"""How the grid's cells share processes: groups of cells trained as one stacked model (``neural.learning.train``),
what each costs, the step each resumes from, and the order they start in."""
from __future__ import annotations

import json
from pathlib import Path

from neural.learning.profiles import Cell, Profile, train_config

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
        return int(checkpoint_config(run_dir).get("step", 0))
    except (TypeError, ValueError):
        return 0


def group_cost(profile: Profile, group: list[Cell]) -> float:
    """What orders groups (``run_order``): the training FLOP of the whole budget, summed over members (depth alone
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


def checkpoint_config(run_dir: Path) -> dict:
    """A run directory's config.json as it stands ({} when there is none, or none readable yet)."""
    try:
        config = json.loads((Path(run_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}
