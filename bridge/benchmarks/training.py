"""Training throughput of grouped runs against separate processes, measured in the same run.

For each group size G, on the CPU always and on CUDA when present:

- *grouped*: one process trains G runs as one stacked model (``neural.learning.train.train_group``, the loop
  ``train`` and ``reproduce`` run, clipping and schedule included);
- *separate*: G runs as separate processes, at most ``--jobs`` at a time (the CPU's cores, or 14 on a GPU, as the
  last full grid ran), each timing its own steps. Past ``--jobs`` processes the machine runs them in waves, so the
  aggregate rate of G separate runs is that of ``min(G, jobs)`` concurrent ones.

Rates are steady-state: each process times two runs of n1 and n2 steps and divides the difference, so process
start, model set-up and checkpoint writes cancel out. Grouped and separate are measured ``--repeats`` times,
interleaved, and the ratio is the median of the per-round ratios (this machine's speed drifts by minutes).
Reported: aggregate cell-steps/s, achieved FLOP/s (``neural.learning.stacked.flops_per_step``) and
``grouped_to_separate_ratio``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace

import numpy as np

SHAPE = {"task": "s5", "task_params": (("length", 8),), "layers": 1, "d_model": 128, "heads": 4, "d_ff": 512,
         "batch_size": 128, "lr": 2e-3, "warmup": 10}  # a quick-profile S5 CoT cell


def configs(g: int, setting: str, layers: int, device: str):
    from neural.learning.runs import TrainConfig

    base = TrainConfig(**{**SHAPE, "layers": layers}, setting=setting, steps=10_000, device=device,
                       save_every=10 ** 9, log_every=10 ** 9, precision="auto")
    return [replace(base, seed=s) for s in range(g)]


def steady_rate(g: int, setting: str, layers: int, device: str, n1: int, n2: int) -> float:
    """Cell-steps/s of one process training ``g`` runs as one group, set-up and saving excluded."""
    from neural.learning.train import train_group

    cfgs = configs(g, setting, layers, device)

    def timed(n: int) -> float:
        with tempfile.TemporaryDirectory() as d:
            start = time.perf_counter()
            train_group(cfgs, [os.path.join(d, str(i)) for i in range(g)], progress=False, stop_after=n)
            if device.startswith("cuda"):
                import torch

                torch.cuda.synchronize()
            return time.perf_counter() - start

    timed(1)  # warm-up: kernels, allocator
    return g * (n2 - n1) / max(1e-9, timed(n2) - timed(n1))


def flops_per_cell_step(setting: str, layers: int) -> float:
    from neural.learning.stacked import flops_per_step
    from neural.learning.tasks import IGNORE

    cfg = configs(1, setting, layers, "cpu")[0]
    task = cfg.make_task()
    b = task.batch(np.random.default_rng(0), cfg.batch_size, setting)
    labelled = int((b.labels != IGNORE).any(0).sum())
    return flops_per_step(cfg.model_config(task), cfg.batch_size, b.tokens.shape[1], labelled)


def separate(g: int, jobs: int, args, device: str) -> float:
    """Aggregate cell-steps/s of ``min(g, jobs)`` one-run processes running at once."""
    n = min(g, jobs)
    threads = max(1, (os.cpu_count() or 1) // n) if device == "cpu" else 1
    cmd = [sys.executable, "-m", "bridge.benchmarks.training", "--worker", "--device", device, "--setting",
           args.setting, "--layers", str(args.layers), "--threads", str(threads), "--n1", str(args.n1), "--n2",
           str(args.n2)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(n)]
    rates = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"a separate training process failed with status {p.returncode}")
        rates.append(json.loads(out.strip().splitlines()[-1])["rate"])
    return sum(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--groups", default="1,4,16,64", help="group sizes G")
    ap.add_argument("--setting", default="cot")
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--n1", type=int, default=3)
    ap.add_argument("--n2", type=int, default=13)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=None, help="separate processes at a time (default: cores, or 14 "
                                                          "on a GPU)")
    ap.add_argument("--device", default=None, help="one device only (default: cpu, and cuda when present)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps({"rate": steady_rate(1, args.setting, args.layers, args.device, args.n1, args.n2)}))
        return
    devices = [args.device] if args.device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    flops = flops_per_cell_step(args.setting, args.layers)
    report = {"task": "s5", "setting": args.setting, "layers": args.layers, "batch": SHAPE["batch_size"],
              "d_model": SHAPE["d_model"], "flop_per_cell_step": flops, "rows": []}
    for device in devices:
        jobs = args.jobs or (os.cpu_count() or 1 if device == "cpu" else 14)
        name = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU, {os.cpu_count()} cores"
        for g in (int(x) for x in args.groups.split(",")):
            rounds = []
            try:
                for _ in range(args.repeats):
                    rounds.append((steady_rate(g, args.setting, args.layers, device, args.n1, args.n2),
                                   separate(g, jobs, args, device)))
            except torch.OutOfMemoryError:
                report["rows"].append({"device": name, "G": g, "error": "out of memory"})
                continue
            grouped = statistics.median(r[0] for r in rounds)
            alone = statistics.median(r[1] for r in rounds)
            ratios = [r[0] / r[1] for r in rounds]
            row = {"device": name, "G": g, "grouped_cell_steps_per_s": round(grouped, 2),
                   "separate_cell_steps_per_s": round(alone, 2), "separate_jobs": min(g, jobs),
                   "grouped_tflops": round(grouped * flops / 1e12, 4),
                   "separate_tflops": round(alone * flops / 1e12, 4),
                   "grouped_to_separate_ratio": round(statistics.median(ratios), 3),
                   "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)], "rounds": len(rounds)}
            report["rows"].append(row)
            report[f"{device}_G{g}_grouped_to_separate_ratio"] = row["grouped_to_separate_ratio"]
            print(json.dumps(row), file=sys.stderr, flush=True)
    report["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
