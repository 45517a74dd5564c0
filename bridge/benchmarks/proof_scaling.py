"""The whole ``verify`` command on the CVP construction against max_gates, as ratios measured in one run.

Each size runs ``python -m bridge.verify specs/cvp.lark --override max_gates=N --json`` in its own process, so the
time is the command's (import, build, every lemma, the bounded and random checks, the report) and the peak RSS is
that process's alone. Nothing is left out of the ratio: counting only the solver lemmas would hide table work and
simulations that grow with N (a command can reach many GiB that way). The lemmas' own seconds are reported beside
it.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from bridge.benchmarks.process import run_command

SPEC = Path(__file__).resolve().parents[2] / "specs" / "cvp.lark"


def run_verify(max_gates: int, ieee: str | None) -> dict:
    """One verify process: its wall time and its own peak RSS, so the order in which sizes run does not matter."""
    argv = ["-m", "bridge.verify", str(SPEC), "--override", f"max_gates={max_gates}", "--json"]
    done = run_command(*argv, *(["--ieee", ieee] if ieee else []))
    stdout, stderr = done.stdout.strip(), done.stderr.strip()
    report = json.loads(stdout) if stdout else {"status": f"exit {done.returncode}: {stderr[-200:]}"}
    return {"seconds": round(done.seconds, 2), "peak_rss_mib": round(done.peak_rss_mib, 1),
            "status": report["status"], "lemma_seconds": {r["name"]: r["seconds"] for r in report.get("lemmas", [])}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 256, 4096, 65536])
    ap.add_argument("--repeats", type=int, default=3,
                    help="rounds over every size; the ratio is taken within each round, and the median reported")
    ap.add_argument("--ieee", help="also state the lemmas in this torch dtype (verify --ieee)")
    args = ap.parse_args()
    sizes = sorted(args.sizes)
    rounds = []
    for _ in range(max(1, args.repeats)):  # sizes interleaved, so that each round's pair sees the same load
        rounds.append({n: run_verify(n, args.ieee) for n in sizes})
    ratios = sorted(r[sizes[-1]]["seconds"] / r[sizes[0]]["seconds"] for r in rounds)
    median = statistics.median(ratios)
    rows = {n: {"seconds": [r[n]["seconds"] for r in rounds],
                "peak_rss_mib": max(r[n]["peak_rss_mib"] for r in rounds),
                "status": sorted({r[n]["status"] for r in rounds}),
                "lemma_seconds": rounds[-1][n]["lemma_seconds"]} for n in sizes}
    print(json.dumps({"sizes": rows, "ieee": args.ieee, "repeats": len(rounds),
                      "whole_command_time_largest_to_smallest_ratio": round(median, 2),
                      "ratio_range": [round(ratios[0], 2), round(ratios[-1], 2)],
                      "peak_rss_mib": rows[sizes[-1]]["peak_rss_mib"],
                      "all_proved": all(r["status"] == ["proved"] for r in rows.values())}))


if __name__ == "__main__":
    main()
