"""Whole commands against size: ``compile``, ``verify`` and ``run --random 1`` on generated netlists of growing size,
each command in its own process, its wall time and peak RSS (``wait4``). Seconds are this machine's (they drift);
the growth from size to size is the figure.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bridge.benchmarks.gen import write_bench
from bridge.benchmarks.process import run_command

COMMANDS = {"compile": ["compile", "{net}", "--out", "{tmp}/compiled"], "verify": ["verify", "{net}"],
            "run": ["run", "{net}", "--random", "1"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gates", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for gates in args.gates:
            net = write_bench(Path(tmp), gates)
            row = {"gates": gates}
            for name, template in COMMANDS.items():
                done = run_command(*(a.format(net=net, tmp=tmp) for a in template))
                if done.returncode != 0:
                    raise SystemExit(f"{name} failed on {gates} gates: {done.stderr.strip()[-500:]}")
                row |= {f"{name}_seconds": round(done.seconds, 1), f"{name}_peak_mib": round(done.peak_rss_mib)}
            rows.append(row)
    first, last = rows[0], rows[-1]
    print(json.dumps({"sizes": rows, "largest_to_smallest_gates_ratio": last["gates"] / first["gates"],
                      **{f"{name}_largest_to_smallest_time_ratio": round(last[f"{name}_seconds"] /
                                                                         first[f"{name}_seconds"], 1)
                         for name in COMMANDS}}))


if __name__ == "__main__":
    main()
