"""The whole ``verify`` command on the CVP construction against max_gates, as ratios measured in one run.

Each size runs ``python -m bridge.verify specs/cvp.lark --override max_gates=N --json`` in its own process, so the
time is the command's (import, build, every lemma, the bounded and random checks, the report) and the peak RSS is
that process's alone. Nothing is left out of the ratio: the benchmark once counted only the solver lemmas, and the
command beside it grew to 17 GiB unseen. The lemmas' own seconds are reported beside it.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

SPEC = Path(__file__).resolve().parents[2] / "specs" / "cvp.lark"


def run_verify(max_gates: int, ieee: str | None) -> dict:
    """One verify process. Its peak RSS is the largest of any child so far; sizes run smallest first, and memory
    grows with size, so each row's figure is its own."""
    argv = [sys.executable, "-m", "bridge.verify", str(SPEC), "--override", f"max_gates={max_gates}", "--json"]
    if ieee:
        argv += ["--ieee", ieee]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    out = proc.stdout.strip()
    report = json.loads(out) if out else {"status": f"exit {proc.returncode}: {proc.stderr.strip()[-200:]}"}
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(peak, 1), "status": report["status"],
            "lemma_seconds": {r["name"]: r["seconds"] for r in report.get("lemmas", [])}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 256, 4096, 65536])
    ap.add_argument("--ieee", help="also state the lemmas in this torch dtype (verify --ieee)")
    args = ap.parse_args()
    sizes = sorted(args.sizes)
    rows = {n: run_verify(n, args.ieee) for n in sizes}
    first, last = rows[sizes[0]], rows[sizes[-1]]
    print(json.dumps({"sizes": rows, "ieee": args.ieee,
                      "whole_command_time_largest_to_smallest_ratio": round(last["seconds"] / first["seconds"], 2),
                      "peak_rss_mib": last["peak_rss_mib"], "all_proved": all(r["status"] == "proved"
                                                                             for r in rows.values())}))


if __name__ == "__main__":
    main()
