"""The paper's grid: 4 tasks x {base, cot, hint} x depths, written to ``results/table.md`` and a plot.

``quick`` fits in about 30 minutes on a 2-core CPU: reduced sizes and a fixed time budget per run. ``full`` is the
paper's scale (longer inputs, depths up to 16, a step budget), meant for a GPU. Every run is seeded and keeps its
checkpoint, so any cell can be re-evaluated or audited later.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from neural.checkpoint import atomic_write_bytes, atomic_write_text
from neural.tasks import SETTINGS
from neural.train import TrainConfig, evaluate_model, load_trained, train

GRIDS = {
    "quick": {"tasks": {"modadd": {"length": 8, "modulus": 7}, "s5": {"length": 8},
                        "isq": {"steps": 4, "min_prime": 2, "max_prime": 397}, "cvp": {"gates": 8}},
              "depths": (1, 2, 4), "time_limit": 48.0, "steps": 100_000, "d_model": 128, "samples": 500},
    "full": {"tasks": {"modadd": {"length": 16, "modulus": 7}, "s5": {"length": 16},
                       "isq": {"steps": 8, "min_prime": 2, "max_prime": 397}, "cvp": {"gates": 16}},
             "depths": (1, 2, 4, 8, 16), "time_limit": None, "steps": 20_000, "d_model": 256, "samples": 2000},
}
CHANCE = {"modadd": 1 / 7, "s5": 1 / 120, "isq": None, "cvp": 0.5}


def run_grid(which: str, out: Path, results: Path, seed: int = 0, progress: bool = False) -> str:
    grid = GRIDS[which]
    rows = []
    results.mkdir(parents=True, exist_ok=True)
    log = results / f"runs_{which}.jsonl"
    done = {}
    if log.exists():  # an interrupted reproduction picks up where it stopped
        for line in log.read_text().splitlines():
            r = json.loads(line)
            done[(r["task"], r["setting"], r["layers"])] = r
    for task, params in grid["tasks"].items():
        for setting in SETTINGS:
            for depth in grid["depths"]:
                key = (task, setting, depth)
                if key in done:
                    rows.append(done[key])
                    continue
                cfg = TrainConfig(task=task, task_params=tuple(sorted(params.items())), setting=setting, layers=depth,
                                  d_model=grid["d_model"], heads=4, d_ff=4 * grid["d_model"],
                                  steps=grid["steps"], time_limit=grid["time_limit"], seed=seed)
                run_dir = out / which / f"{task}_{setting}_L{depth}"
                start = time.perf_counter()
                last = train(cfg, run_dir, progress=progress)
                model, t, s, _ = load_trained(run_dir)
                ev = evaluate_model(model, t, s, grid["samples"], seed=1234)
                row = {"task": task, "setting": setting, "layers": depth, "accuracy": ev["accuracy"],
                       "steps": last["step"], "seconds": round(time.perf_counter() - start, 1), "seed": seed,
                       "params": params}
                rows.append(row)
                with open(log, "a") as f:
                    f.write(json.dumps(row) + "\n")
    table = render_table(rows, grid["depths"], which)
    atomic_write_text(results / "table.md", table)
    plot(rows, grid["depths"], results / "accuracy_vs_depth.png")
    return table


def render_table(rows: list[dict], depths, which: str) -> str:
    by = {(r["task"], r["setting"], r["layers"]): r for r in rows}
    head = "| task | setting | " + " | ".join(f"L={d}" for d in depths) + " |"
    lines = [f"Accuracy (greedy, fresh samples, seed 1234) of `cotproof reproduce --{which}`; training seed "
             f"{rows[0]['seed'] if rows else 0}.", "", head, "|" + "---|" * (len(depths) + 2)]
    for task in dict.fromkeys(r["task"] for r in rows):
        for setting in SETTINGS:
            cells = [f"{by[(task, setting, d)]['accuracy']:.3f}" if (task, setting, d) in by else "–" for d in depths]
            lines.append(f"| {task} | {setting} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], depths, path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.4), sharey=True)
    for ax, task in zip(list(axes) if len(tasks) > 1 else [axes], tasks):
        for setting, style in zip(SETTINGS, ("o--", "s-", "^:")):
            pts = sorted((r["layers"], r["accuracy"]) for r in rows if r["task"] == task and r["setting"] == setting)
            if pts:
                ax.plot(*zip(*pts), style, label=setting)
        if CHANCE.get(task):
            ax.axhline(CHANCE[task], color="grey", lw=0.8, ls=":")
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(depths), [str(d) for d in depths])
        ax.set_title(task)
        ax.set_xlabel("layers")
        ax.set_ylim(-0.02, 1.02)
    (axes[0] if len(tasks) > 1 else axes).set_ylabel("accuracy")
    (axes[0] if len(tasks) > 1 else axes).legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
