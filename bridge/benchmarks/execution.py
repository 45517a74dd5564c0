"""Execution throughput of the constructed transformer (not a timed test: this machine's timings drift).

- IEEE float32 greedy CoT with the KV cache on a generated netlist: steps/s, and achieved FLOP/s as a ratio to a
  plain torch matmul of the same shapes measured in the same run (the bound for these tiny per-step products).
- The finite-mode teacher-forced check of a c432-sized circuit (about 200 ISCAS gates).
Peak RSS is reported so that O(L*d) memory, not O(L^2), is visible.
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import torch

from bridge.benchmarks.gen import random_circuit
from grammar.evaluate import evaluate
from grammar.normalize import normalize
from neural.construct import build_thm33
from neural.execute import ExecMode, check_thm33_teacher_forced, run_thm33
from neural.fp import FPFormat
from neural.model import flops_per_token


def matmul_bound(cfg, steps: int, context: int) -> float:
    """FLOP/s of the same per-step products done as bare torch matmuls (no Python model around them)."""
    d, hd, ff, V = cfg.d_model, cfg.n_heads * cfg.d_head, cfg.d_ff, cfg.vocab_size
    x = torch.randn(1, d)
    mats = [torch.randn(d, 3 * hd), torch.randn(hd, d), torch.randn(d, ff), torch.randn(ff, d), torch.randn(d, V)]
    keys = torch.randn(cfg.n_heads, context, cfg.d_head)
    start = time.perf_counter()
    for _ in range(steps):
        y = x @ mats[0]
        (y[:, :hd].view(cfg.n_heads, 1, cfg.d_head) @ keys.transpose(1, 2)) @ keys
        x @ mats[2] @ mats[3]
        (y[:, :hd] @ mats[1]) @ mats[4]
    elapsed = time.perf_counter() - start
    return steps * flops_per_token(cfg, context) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gates", type=int, default=10_000)
    ap.add_argument("--check-gates", type=int, default=200, help="ISCAS gates of the finite-mode check (c432: 160)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    fmt = FPFormat(5, 11)

    nc = normalize(random_circuit(36, args.gates, seed=3))
    bits = np.random.default_rng(0).integers(0, 2, nc.n_inputs).astype(np.uint8)
    model = build_thm33(nc, fmt)
    start = time.perf_counter()
    result = run_thm33(model, nc, bits, ExecMode("ieee", fmt, "float32"))
    gen_seconds = time.perf_counter() - start
    exact = bool(np.array_equal(result.trace, evaluate(nc, bits[None])[0][nc.n_inputs:]))
    steps = nc.n_gates
    achieved = sum(flops_per_token(model.config, c) for c in range(nc.n_inputs, nc.n_nodes)) / gen_seconds
    bound = matmul_bound(model.config, 2000, nc.n_nodes // 2)

    small = normalize(random_circuit(36, args.check_gates, seed=4))
    start = time.perf_counter()
    ok = check_thm33_teacher_forced(build_thm33(small, fmt), small, bits[:36], ExecMode("finite", fmt)).ok.all()
    check_seconds = time.perf_counter() - start
    print(json.dumps({
        "gates": args.gates, "normalized_gates": steps, "d_model": model.config.d_model, "exact": exact,
        "ieee_float32_steps_per_second": round(steps / gen_seconds, 1),
        "achieved_to_matmul_flops_ratio": round(achieved / bound, 3),
        "finite_teacher_forced": {"normalized_gates": small.n_gates, "all_steps_exact": bool(ok),
                                  "seconds": round(check_seconds, 2)},
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    main()
