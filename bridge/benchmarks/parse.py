"""Parse + normalise throughput on a generated 10^5-gate .bench (not a timed test: this machine's timings drift)."""
from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from bridge.benchmarks.gen import random_circuit
from bridge.benchmarks.process import timed
from grammar.bench import write_bench
from grammar.netlist import load_netlist
from grammar.normalize import normalize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gates", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.bench"
        path.write_text(write_bench(random_circuit(64, args.gates, seed=1)))
        nc, best = timed(lambda: normalize(load_netlist(path)), args.repeats)
        start = time.perf_counter()  # the bound: reading and splitting the same file, nothing else
        len(path.read_text().split())
        split = time.perf_counter() - start
    print(json.dumps({"gates": args.gates, "normalized_gates": nc.n_gates, "best_seconds": round(best, 3),
                      "gates_per_second": round(args.gates / best), "parse_to_split_time_ratio": round(best / split, 1),
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
    main()
