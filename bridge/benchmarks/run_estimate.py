"""``run``'s estimate against its measurement: generated netlists at several sizes, each ``run`` in its own process,
its estimated seconds and bytes (``bridge.estimates.run_estimate``, printed in the run's JSON) against the measured
run time and the process's peak RSS (``wait4``), for proved and dense attention.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bridge.benchmarks.gen import random_circuit
from bridge.benchmarks.process import run_command
from grammar.netlist import netlist_bytes


def measure(path: Path, attention: str) -> dict:
    done = run_command("run", str(path), "--inputs", "0" * 64, "--attention", attention, "--json")
    if done.returncode != 0:
        raise SystemExit(f"run failed on {path} ({attention}): {done.stderr.strip()[-500:]}")
    doc, peak = json.loads(done.stdout), done.peak_rss_mib * 2 ** 20
    return {"attention": attention, "estimated_seconds": doc["estimate"]["seconds"], "seconds": doc["seconds"],
            "estimated_bytes": doc["estimate"]["bytes"], "peak_bytes": int(peak),
            "seconds_estimate_to_measured_ratio": round(doc["estimate"]["seconds"] / max(doc["seconds"], 1e-3), 2),
            "bytes_estimate_to_measured_ratio": round(doc["estimate"]["bytes"] / peak, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gates", type=int, nargs="+", default=[10_000, 30_000, 100_000, 300_000, 1_000_000])
    ap.add_argument("--dense-up-to", type=int, default=30_000, help="dense attention only at these sizes and below")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for gates in args.gates:
            path = Path(tmp) / f"r{gates}.bench"
            path.write_bytes(netlist_bytes(random_circuit(64, gates, seed=1, max_fan_in=2), "bench"))
            for attention in ("proved", "dense") if gates <= args.dense_up_to else ("proved",):
                rows.append({"gates": gates, **measure(path, attention)})
    ratios = [r[k] for r in rows for k in ("seconds_estimate_to_measured_ratio", "bytes_estimate_to_measured_ratio")]
    print(json.dumps({"sizes": rows, "worst_estimate_to_measured_ratio": max(max(ratios), 1 / min(ratios))}))


if __name__ == "__main__":
    main()
