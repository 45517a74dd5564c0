"""The depth sweep behind the cpu profile's recipe (README, Results: "The sweep at the cpu profile's width").

One run per call, on one core: a TrainConfig varied by flags, early stop at 0.995, validation accuracy printed
at every check, test accuracy on 500 held-out prompts at the end (one JSON line). The README's rows came from

    python scripts/depth_sweep.py OUT/s5L4 --layers 4
    python scripts/depth_sweep.py OUT/s5L8 --layers 8 --steps 5000
    python scripts/depth_sweep.py OUT/s5L8d --layers 8 --steps 5000 --init depth
    python scripts/depth_sweep.py OUT/isqL1 --task isq --params steps=3,min_prime=151,max_prime=199 --layers 1 \\
        --steps 6000 [--lr 2e-3]
    python scripts/depth_sweep.py OUT/isqL1w128s2 --task isq --params steps=3,min_prime=151,max_prime=199 \
        --layers 1 --d-model 128 --steps 8000 --seed 2   (and seeds 0, 1)
"""
import argparse
import json
import time
from pathlib import Path

import torch

from neural.learning.evaluation import evaluate_model, load_trained
from neural.learning.runs import TrainConfig
from neural.learning.train import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--task", default="s5")
    ap.add_argument("--params", default="length=5", help="NAME=INT[,...]")
    ap.add_argument("--setting", default="cot")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--init", choices=("uniform", "depth"), default="uniform")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    params = {k: int(v) for k, v in (kv.split("=") for kv in a.params.split(","))}
    cfg = TrainConfig(task=a.task, task_params=tuple(params.items()), setting=a.setting, layers=a.layers,
                      d_model=a.d_model, d_ff=4 * a.d_model, lr=a.lr, warmup=a.warmup, steps=a.steps,
                      batch_size=a.batch_size, residual_init=a.init, seed=a.seed, early_stop=0.995, eval_every=250,
                      eval_samples=512, save_every=10**6, log_every=250, device="cpu")
    name = Path(a.out).name
    started = time.time()
    result = train(cfg, a.out, progress=False, on_eval=lambda step, acc: print(name, step, round(acc, 3), flush=True))
    model, task, setting, _ = load_trained(a.out)
    test = evaluate_model(model, task, setting, 500, split="test")["accuracy"]
    print(json.dumps({**vars(a), "test_accuracy": test, "steps_run": result["step"],
                      "stop_reason": result["stop_reason"], "seconds": round(time.time() - started)}), flush=True)


if __name__ == "__main__":
    main()
