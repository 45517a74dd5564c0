"""Whole commands, as a user runs them, each in its own process with its own wall time and peak RSS.

- End to end: an unsigned array multiplier written as binary AIGER (``--bits 53``: 27,353 ANDs, the size of the
  EPFL multiplier) is compiled, verified and run with every CoT step checked. The goal on a 2-core CPU is under
  60 s for the three together.
- Batch: ``run --random N`` on a c7552-sized netlist (207 inputs, 3,512 gates) against separate ``run --inputs``
  commands, per vector. The goal is a ratio of at most 1/100.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from bridge.benchmarks.gen import array_multiplier, random_circuit
from bridge.benchmarks.process import Finished, run_command
from grammar.aiger import write_aig
from grammar.bench import write_bench


def row(done: Finished) -> dict:
    return {"exit": done.returncode, "seconds": round(done.seconds, 2), "peak_rss_mib": round(done.peak_rss_mib, 1)}


def end_to_end(bits: int, tmp: Path) -> dict:
    path = tmp / f"mult{bits}.aig"
    data = write_aig(array_multiplier(bits))
    path.write_bytes(data)
    inputs = "10" * bits
    commands = {"compile": run_command("compile", str(path), "--out", str(tmp / "model"), "--json"),
                "verify": run_command("verify", str(path), "--json"),
                "run": run_command("run", str(path), "--inputs", inputs, "--json")}
    verdict, ran = json.loads(commands["verify"].stdout or "{}"), json.loads(commands["run"].stdout or "{}")
    return {"circuit": f"{bits}x{bits} array multiplier, binary AIGER", "ands": int(data.split(b"\n")[0].split()[5]),
            "cot_steps": len(ran.get("trace", [])), "verify_status": verdict.get("status"),
            "simulated": next((r.get("detail") for r in verdict.get("lemmas", []) if r["name"] == "random"), None),
            "run_sound": ran.get("sound"), "run_path": ran.get("path"),
            "commands": {name: row(done) for name, done in commands.items()},
            "total_seconds": round(sum(done.seconds for done in commands.values()), 2)}


def batch(vectors: int, gates: int, separate: int, tmp: Path) -> dict:
    path = tmp / "c7552_sized.bench"
    path.write_text(write_bench(random_circuit(207, gates, seed=7552, n_outputs=108)))
    together = run_command("run", str(path), "--random", str(vectors), "--seed", "1")
    lines = [json.loads(line) for line in together.stdout.splitlines()]
    alone = [run_command("run", str(path), "--inputs", line["inputs"], "--json") for line in lines[:separate]]
    same = all(json.loads(a.stdout)["outputs"] == line["outputs"] for a, line in zip(alone, lines))
    per_vector_alone = statistics.median(a.seconds for a in alone)
    return {"gates": gates, "vectors": vectors, "all_sound": all(line["sound"] for line in lines),
            "same_outputs_as_separate_runs": same, "batch": row(together),
            "separate_runs_measured": separate, "separate_run_median_seconds": round(per_vector_alone, 2),
            "separate_run_peak_rss_mib": round(max(a.peak_rss_mib for a in alone), 1),
            "batch_to_separate_per_vector_ratio": round(together.seconds / vectors / per_vector_alone, 5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bits", type=int, default=53, help="multiplier width for the end-to-end commands")
    ap.add_argument("--vectors", type=int, default=1000, help="vectors of the batch run")
    ap.add_argument("--gates", type=int, default=3512, help="gates of the batch netlist (c7552: 3,512)")
    ap.add_argument("--separate", type=int, default=3, help="separate runs timed (the median is used)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cotproof-bench-") as tmp:
        e2e = end_to_end(args.bits, Path(tmp))
        many = batch(args.vectors, args.gates, args.separate, Path(tmp))
    print(json.dumps({"end_to_end": e2e, "batch": many,
                      "batch_to_separate_per_vector_ratio": many["batch_to_separate_per_vector_ratio"],
                      "end_to_end_seconds": e2e["total_seconds"],
                      "peak_rss_mib": max(r["peak_rss_mib"] for r in e2e["commands"].values())}))


if __name__ == "__main__":
    main()
