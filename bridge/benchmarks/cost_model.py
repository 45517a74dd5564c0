"""Every command's estimate against its measurement (``bridge.estimates``): ``compile`` and ``verify`` on generated
netlists at five sizes, ``train`` at five model sizes, each command in its own process, its estimated seconds and
bytes (printed in its JSON) against the seconds it measured for the same work and the process's peak RSS
(``wait4``). ``run``'s own benchmark is ``run_estimate``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bridge.benchmarks.gen import write_bench
from bridge.benchmarks.process import run_command

# (task, parameter, setting, layers, width, steps): a step's FLOP spans about 50x
TRAIN_SIZES = (("modadd", "length=6", "cot", 1, 32, 200), ("s5", "length=5", "cot", 1, 64, 200),
               ("s5", "length=5", "cot", 2, 64, 150), ("isq", "steps=3", "cot", 2, 128, 100),
               ("cvp", "gates=6", "base", 4, 128, 60))


def estimate_against_measurement(*args: str, statuses: tuple[int, ...] = (0, 1)) -> dict:
    """One command's estimate, its own seconds and the whole process's peak bytes (seconds below 10 ms, the JSON's
    resolution, count as 10 ms); an exit status outside ``statuses`` stops the benchmark."""
    done = run_command(*args, "--json")
    if done.returncode not in statuses:
        raise SystemExit(f"{' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    doc, peak = json.loads(done.stdout.splitlines()[-1]), done.peak_rss_mib * 2 ** 20
    est = doc["estimate"]
    return {"estimated_seconds": est["seconds"], "seconds": doc["seconds"], "estimated_bytes": est["bytes"],
            "peak_bytes": int(peak), "seconds_ratio": round(max(est["seconds"], 0.01) / max(doc["seconds"], 0.01), 3),
            "bytes_ratio": round(est["bytes"] / peak, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gates", type=int, nargs="+", default=[1_000, 10_000, 30_000, 100_000, 300_000])
    ap.add_argument("--train", type=int, default=len(TRAIN_SIZES), help="how many of the training sizes to run")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for gates in args.gates:
            path = write_bench(Path(tmp), gates)
            rows.append({"command": "compile", "gates": gates,
                         **estimate_against_measurement("compile", str(path), "--out", str(Path(tmp) / f"c{gates}"))})
            rows.append({"command": "verify", "gates": gates, **estimate_against_measurement("verify", str(path))})
            print(json.dumps(rows[-2:]), file=sys.stderr)
        for task, param, setting, layers, width, steps in TRAIN_SIZES[:args.train]:
            out = Path(tmp) / f"t_{task}_{layers}_{width}"
            rows.append({"command": "train", "model": f"{task} {setting} L{layers} d{width}", "steps": steps,
                         **estimate_against_measurement(
                             "train", "--task", task, "--param", param, "--setting", setting, "--layers", str(layers),
                             "--d-model", str(width), "--heads", "4", "--steps", str(steps), "--out", str(out))})
            print(json.dumps(rows[-1]), file=sys.stderr)
    ratios = [r[k] for r in rows for k in ("seconds_ratio", "bytes_ratio")]
    print(json.dumps({"sizes": rows, "worst_estimate_to_measured_ratio": max(max(ratios), 1 / min(ratios))}))


if __name__ == "__main__":
    main()
