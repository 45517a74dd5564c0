"""``run``'s estimate against its measurement: generated netlists at several sizes, each ``run`` in its own process,
its estimated seconds and bytes (``bridge.estimates.run_estimate``, printed in the run's JSON) against the measured
run time and the process's peak RSS (``wait4``), for proved and dense attention.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bridge.benchmarks.cost_model import estimate_against_measurement
from bridge.benchmarks.gen import write_bench


def measure(path: Path, attention: str) -> dict:
    return {"attention": attention, **estimate_against_measurement("run", str(path), "--inputs", "0" * 64,
                                                                   "--attention", attention, statuses=(0,))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gates", type=int, nargs="+", default=[10_000, 30_000, 100_000, 300_000, 1_000_000])
    ap.add_argument("--dense-up-to", type=int, default=30_000, help="dense attention only at these sizes and below")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for gates in args.gates:
            path = write_bench(Path(tmp), gates)
            for attention in ("proved", "dense") if gates <= args.dense_up_to else ("proved",):
                rows.append({"gates": gates, **measure(path, attention)})
    ratios = [r[k] for r in rows for k in ("seconds_ratio", "bytes_ratio")]
    print(json.dumps({"sizes": rows, "worst_estimate_to_measured_ratio": max(max(ratios), 1 / min(ratios))}))


if __name__ == "__main__":
    main()
