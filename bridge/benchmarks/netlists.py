"""Real-world netlist paths on a multiplier: reading binary AIGER, bit-parallel batch evaluation, and equivalence.

The circuit is an unsigned array multiplier (``gen.array_multiplier``) written as binary AIGER, the structure of
the EPFL multiplier (64 x 64 bits, about 27,000 ANDs there; this generator's form has more). Reported:
- reading and normalising the .aig (seconds, gates/s);
- batch evaluation, gate-evaluations per second, and its time as a ratio against one numpy AND over the same number
  of words (``eval_to_one_and_ratio``: how many plain bitwise passes the whole evaluation costs);
- equivalence of the multiplier with itself, and of a 16 x 16 one (c6288-sized) with its optimised form.
"""
from __future__ import annotations

import argparse
import json
import resource
import tempfile
from pathlib import Path

import numpy as np

from bridge.benchmarks.gen import array_multiplier
from bridge.benchmarks.process import timed
from formal.aig import equivalent, optimize
from grammar.aiger import write_aig
from grammar.evaluate import evaluate_packed, pack_bits
from grammar.netlist import load_netlist
from grammar.normalize import normalize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bits", type=int, default=64)
    ap.add_argument("--vectors", type=int, default=8192)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"mult{args.bits}.aig"
        path.write_bytes(write_aig(array_multiplier(args.bits)))
        nc, read_s = timed(lambda: normalize(load_netlist(path)), 1)
    x = np.random.default_rng(0).integers(0, 2, (args.vectors, nc.n_inputs)).astype(np.uint8)
    words = pack_bits(x)
    _, eval_s = timed(lambda: evaluate_packed(nc, words))
    a = np.random.default_rng(1).integers(0, 2**63, (nc.n_gates, words.shape[1]), dtype=np.uint64)
    b = a[::-1].copy()
    _, and_s = timed(lambda: np.bitwise_and(a, b))
    same, same_s = timed(lambda: equivalent(nc, nc).status, 1)
    small = normalize(array_multiplier(16))
    opt, opt_s = timed(lambda: optimize(small), 1)
    verdict, opt_eq_s = timed(lambda: equivalent(small, opt).status, 1)
    print(json.dumps({
        "circuit": f"{args.bits}x{args.bits} array multiplier, binary AIGER", "normalized_gates": nc.n_gates,
        "read_and_normalize_seconds": round(read_s, 3), "read_gates_per_second": round(nc.n_gates / read_s),
        "vectors": args.vectors, "gate_evaluations_per_second": round(nc.n_gates * args.vectors / eval_s),
        "eval_to_one_and_ratio": round(eval_s / and_s, 1),
        "self_equivalence": same, "self_equivalence_seconds": round(same_s, 3),
        "optimized_16x16": {"gates_before": small.n_gates, "gates_after": opt.n_gates, "equivalence": verdict,
                            "optimize_seconds": round(opt_s, 2), "equivalence_seconds": round(opt_eq_s, 3)},
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
    main()
