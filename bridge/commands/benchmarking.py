"""``cotproof bench [--quick] [--json]``: every benchmark in its own process, as ratios measured in one run.

This machine's absolute timings drift by up to 10x, so the figures that matter are ratios taken in the same run
(keys ending in ``_ratio``); seconds and rates are reported beside them for context. Each benchmark runs in a
fresh process, so its ``peak_rss_mib`` is its own.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

from bridge.commands import flags
from bridge.output import EXIT_FAILED, EXIT_OK, emit

PLANS = {
    "quick": {"parse": ["--gates", "20000", "--repeats", "1"], "execution": ["--gates", "2000", "--check-gates", "160"],
              "proof_scaling": ["--sizes", "16", "65536", "--repeats", "1"], "trace_check": ["--gates", "20000"],
              "training": ["--groups", "1,4", "--n1", "2", "--n2", "5", "--repeats", "1"],
              "netlists": ["--bits", "32", "--vectors", "4096"],
              "commands": ["--bits", "16", "--vectors", "100", "--gates", "500", "--separate", "2"],
              "prefix_sharing": ["--length", "5", "--prompts", "16807"],
              "attention": ["--gates", "1000", "4000", "--repeats", "1"],
              "run_estimate": ["--gates", "2000", "10000", "--dense-up-to", "2000"],
              "cost_model": ["--gates", "2000", "10000", "--train", "2"],
              "command_scaling": ["--gates", "2000", "20000"]},
    "full": {"parse": ["--gates", "100000"], "execution": ["--gates", "10000"],
             "proof_scaling": ["--sizes", "16", "256", "4096", "65536"], "trace_check": ["--gates", "100000"],
             "training": ["--groups", "1,4,16,64"], "netlists": ["--bits", "64"],
             "commands": ["--bits", "53", "--vectors", "1000", "--gates", "3512", "--separate", "3"],
             "prefix_sharing": ["--length", "8", "--prompts", "262144"],
             "attention": ["--gates", "2000", "10000", "40000"],
             "run_estimate": [],
             "cost_model": [],
             "command_scaling": []},
}


MODULES = {"commands": "whole_commands"}  # a benchmark's module under bridge.benchmarks, where not its name


def run_benchmarks(plan: str, only: str | None = None) -> dict:
    results = {}
    for name, argv in PLANS[plan].items():
        if only is not None and name != only:
            continue
        start = time.perf_counter()
        module = f"bridge.benchmarks.{MODULES.get(name, name)}"
        proc = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True)
        if proc.returncode != 0:
            results[name] = {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
            continue
        results[name] = {**json.loads(proc.stdout.strip().splitlines()[-1]),
                         "wall_seconds": round(time.perf_counter() - start, 1)}
    ratios = {f"{name}.{k}": v for name, r in results.items() for k, v in r.items() if k.endswith("_ratio")}
    return {"plan": plan, "ratios": ratios, "benchmarks": results}


def cmd_bench(args) -> int:

    report = run_benchmarks("quick" if args.quick else "full", "training" if args.training else None)
    failed = [n for n, r in report["benchmarks"].items() if "error" in r]
    emit(report, args.json, lambda r: "\n".join(
        [f"cotproof bench ({r['plan']})"] + [f"  {k:<55} {v}" for k, v in r["ratios"].items()]
        + [f"  {n}: FAILED ({report['benchmarks'][n]['error']})" for n in failed]))
    return EXIT_FAILED if failed else EXIT_OK


def register(sub) -> None:
    p = flags.command(sub, "bench", cmd_bench, help="benchmarks, reported as ratios measured in one run")
    p.add_argument("--quick", action="store_true", help="smaller sizes (a few minutes, fits CI)")
    p.add_argument("--training", action="store_true",
                   help="only training throughput: grouped runs against separate processes, G = 1, 4, 16, 64 "
                        "(with --quick: 1, 4)")
