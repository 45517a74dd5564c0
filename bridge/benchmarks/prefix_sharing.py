"""certify's two teacher-forced paths on one prompt space: the prompt trie (``neural.prefix_forcing.Forcer``)
against plain batched teacher forcing (one causal pass per whole sequence), in prompts per second.

The model has the quick profile's shape (d_model 128, 4 heads, d_ff 512, GELU, LayerNorm) with random weights:
the cost of a pass does not depend on what the weights are. The prompts are the first ``--prompts`` of modadd's
space in the canonical order, as ``certify`` runs them, in blocks of ``--rows``.
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import torch

from neural.config import ModelConfig
from neural.learning.prompt_space import prompt_space
from neural.learning.tasks import make_task
from neural.model import Decoder
from neural.prefix_forcing import forced_logits_plain, forced_logits_shared, score


def rate(forced, space, task, prompts: int, rows: int) -> float:
    start = time.perf_counter()
    for lo in range(0, prompts, rows):
        p, s = space.decode(np.arange(lo, min(prompts, lo + rows)))
        score(forced(p, np.concatenate([np.full((len(p), 1), task.eq), s[:, :-1]], axis=1)), s)
    return prompts / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--length", type=int, default=8)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--prompts", type=int, default=262_144)
    ap.add_argument("--rows", type=int, default=4096)
    args = ap.parse_args()
    torch.manual_seed(0)
    task = make_task("modadd", length=args.length, modulus=7)
    model = Decoder(ModelConfig(len(task.vocab), 2 * args.length, 128, args.layers, 4, 32, 512, "gelu", True)).eval()
    space = prompt_space(task)
    prompts = min(args.prompts, space.count)
    shared = rate(lambda p, k: forced_logits_shared(model, p, k), space, task, prompts, args.rows)
    plain = rate(lambda p, k: forced_logits_plain(model, p, k), space, task, prompts, args.rows)
    print(json.dumps({"task": f"modadd length {args.length}", "layers": args.layers, "prompts": prompts,
                      "shared_prompts_per_second": round(shared), "plain_prompts_per_second": round(plain),
                      "shared_over_plain_ratio": round(shared / plain, 2),
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


if __name__ == "__main__":
    main()
