"""Training throughput: tokens/s of S5 CoT training steps, and a train step's cost as a ratio to a forward pass."""
from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import torch
from torch.nn import functional as F

from neural.model import Decoder
from neural.runs import TrainConfig
from neural.tasks import IGNORE


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    cfg = TrainConfig(task="s5")
    task = cfg.make_task()
    torch.manual_seed(0)
    model = Decoder(cfg.model_config(task))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    batches = [task.batch(np.random.default_rng([0, s]), cfg.batch_size, "cot") for s in range(args.steps)]
    start = time.perf_counter()
    for b in batches:
        logits, _ = model(torch.as_tensor(b.tokens))
        loss = F.cross_entropy(logits.flatten(0, 1), torch.as_tensor(b.labels).flatten(), ignore_index=IGNORE)
        opt.zero_grad()
        loss.backward()
        opt.step()
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    with torch.inference_mode():
        for b in batches:
            model(torch.as_tensor(b.tokens))
    fwd_s = time.perf_counter() - start
    tokens = args.steps * cfg.batch_size * batches[0].tokens.shape[1]
    print(json.dumps({"task": "s5", "setting": "cot", "batch": cfg.batch_size, "steps": args.steps,
                      "tokens_per_second": round(tokens / train_s), "train_step_to_forward_ratio":
                      round(train_s / fwd_s, 2),
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
    main()
