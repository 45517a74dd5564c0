"""Proved against dense attention (``run --attention``): one teacher-forced pass of a Theorem 3.3 construction over
a generated netlist's whole trace, in torch float32, with every head's row gathered at the key its code selects
against scoring every key; interleaved, the best of ``--repeats`` each, the logits compared bit for bit.
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import torch

from bridge.benchmarks.gen import random_circuit
from grammar.normalize import normalize
from neural.construction.construct import build_thm33
from neural.construction.execute import ExecMode, session, thm33_teacher_forcing
from neural.construction.fp import FPFormat
from neural.construction.selection import proved_selection


def one_pass(model, tokens, selection) -> tuple[float, torch.Tensor]:
    sess = session(model.config, model.weights, ExecMode("ieee", FPFormat.ieee("float32"), "float32"),
                   selection=selection)
    start = time.perf_counter()
    with torch.inference_mode():
        logits = sess.model(torch.as_tensor(tokens))[0]
    return time.perf_counter() - start, logits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gates", type=int, nargs="+", default=[2000, 10000, 40000])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    rows = []
    for gates in args.gates:
        nc = normalize(random_circuit(64, gates, seed=3, max_fan_in=2))
        model = build_thm33(nc, FPFormat(5, 11))
        tokens = thm33_teacher_forcing(nc, np.random.default_rng(0).integers(0, 2, (1, nc.n_inputs))).tokens
        dense, proved, same = [], [], True
        for _ in range(args.repeats):
            seconds, reference = one_pass(model, tokens, None)
            dense.append(seconds)
            seconds, logits = one_pass(model, tokens, proved_selection(model))
            proved.append(seconds)
            same &= bool(torch.equal(reference, logits))
        rows.append({"positions": int(tokens.shape[1]), "dense_seconds": round(min(dense), 3),
                     "proved_seconds": round(min(proved), 3), "identical_logits": same,
                     "proved_to_dense_time_ratio": round(min(proved) / min(dense), 4)})
    print(json.dumps({"sizes": rows, "largest_proved_to_dense_time_ratio": rows[-1]["proved_to_dense_time_ratio"],
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
    main()
