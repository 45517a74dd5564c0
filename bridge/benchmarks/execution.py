"""Execution throughput of the constructed transformer (not a timed test: this machine's timings drift).

- ``run``'s path: one teacher-forced causal pass over the whole trace, on a generated netlist. Its achieved FLOP/s
  as a ratio to bare torch matmuls of the same products (projections, the causal half of the attention products
  in blocks, FFN, unembedding) timed in the same run; and its speed against token-by-token generation with the KV
  cache (the path before it), on the same model and input, with the tokens compared.
- The finite-mode teacher-forced check of a c432-sized circuit, in F(e,s) itself.
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
from neural.construction.construct import build_thm33
from neural.construction.execute import ExecMode, check_thm33_teacher_forced, run_thm33, session
from neural.construction.fp import FPFormat
from neural.decoding import greedy


def pass_flops(cfg, length: int) -> float:
    """FLOPs of one causal pass over ``length`` tokens: the linear layers at every position, the attention products
    over the causal half of the position pairs, and the unembedding."""
    hd = cfg.n_heads * cfg.d_head
    linear = 2 * length * (3 * cfg.d_model * hd + hd * cfg.d_model + 2 * cfg.d_model * cfg.d_ff)
    attention = 2 * 2 * (length * (length + 1) / 2) * hd
    return cfg.n_layers * (linear + attention) + 2 * length * cfg.d_model * cfg.vocab_size


def matmul_bound(cfg, length: int, block: int = 2048) -> float:
    """FLOP/s of the same products done as bare torch matmuls, no model around them: the attention in query blocks
    against the keys each block may see (the causal half, as the fused kernel does it). The caller takes the best
    of several block sizes."""
    d, hd, dh, ff, V = cfg.d_model, cfg.n_heads * cfg.d_head, cfg.d_head, cfg.d_ff, cfg.vocab_size
    x = torch.randn(length, d)
    w_qkv, w_o, w_1, w_2, w_v = (torch.randn(*shape) for shape in ((d, 3 * hd), (hd, d), (d, ff), (ff, d), (d, V)))
    q = k = v = torch.randn(cfg.n_heads, length, dh)
    heads = torch.randn(length, hd)
    start = time.perf_counter()
    for _ in range(cfg.n_layers):
        x @ w_qkv
        for s in range(0, length, block):
            e = min(length, s + block)
            (q[:, s:e] @ k[:, :e].transpose(1, 2)) @ v[:, :e]
        heads @ w_o
        (x @ w_1) @ w_2
    x @ w_v
    return pass_flops(cfg, length) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gates", type=int, default=10_000)
    ap.add_argument("--check-gates", type=int, default=200, help="ISCAS gates of the finite-mode check (c432: 160)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    fmt = FPFormat(5, 11)
    float32 = ExecMode("ieee", fmt, "float32")

    nc = normalize(random_circuit(36, args.gates, seed=3))
    bits = np.random.default_rng(0).integers(0, 2, nc.n_inputs).astype(np.uint8)
    model = build_thm33(nc, fmt)
    truth = evaluate(nc, bits[None])[0][nc.n_inputs:]
    run_thm33(model, nc, bits, float32)  # warm up: torch's import and first-call costs are not the pass's

    start = time.perf_counter()
    result = run_thm33(model, nc, bits, float32)
    one_pass = time.perf_counter() - start
    bound = max(matmul_bound(model.config, nc.n_nodes, block) for block in (128, 512, 2048) for _ in range(2))

    start = time.perf_counter()
    stepwise = greedy(session(model.config, model.weights, float32), bits, nc.n_gates)
    token_by_token = time.perf_counter() - start

    small = normalize(random_circuit(36, args.check_gates, seed=4))
    start = time.perf_counter()
    ok = check_thm33_teacher_forced(build_thm33(small, fmt), small, bits[:36], ExecMode("finite", fmt)).ok.all()
    check_seconds = time.perf_counter() - start
    print(json.dumps({
        "gates": args.gates, "normalized_gates": nc.n_gates, "tokens": nc.n_nodes, "d_model": model.config.d_model,
        "exact": bool(np.array_equal(result.trace, truth)) and result.path == "one-pass",
        "same_tokens_token_by_token": bool(np.array_equal(stepwise, result.tokens)),
        "one_pass_tokens_per_second": round(nc.n_gates / one_pass),
        "token_by_token_tokens_per_second": round(nc.n_gates / token_by_token),
        "one_pass_to_token_by_token_speed_ratio": round(token_by_token / one_pass, 1),
        "achieved_to_matmul_flops_ratio": round(pass_flops(model.config, nc.n_nodes) / one_pass / bound, 3),
        "achieved_gflops": round(pass_flops(model.config, nc.n_nodes) / one_pass / 1e9, 1),
        "finite_teacher_forced": {"normalized_gates": small.n_gates, "all_steps_exact": bool(ok),
                                  "seconds": round(check_seconds, 2)},
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    main()
