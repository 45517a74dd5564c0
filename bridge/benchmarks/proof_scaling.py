"""Proof time of the CVP construction against max_gates, as ratios measured in one run (timings here drift 10x).

"proof" is every solver lemma plus the exhaustive embedding-table check (embedding, retrieval, gate_ffn, readout,
composition): what must not grow with context. The retrieval induction's step queries are the same at every size;
only the code width k = ceil(log2(5N + 1)) enters the queries. The bounded simulations (end_to_end, random) run
the whole model, whose logits span a vocabulary of 3N + 7 tokens, and are reported separately.
"""
from __future__ import annotations

import argparse
import json
import resource
import time

from formal.obligations import COMPOSED_FROM, prove_lemma
from neural.construct import build_cvp
from neural.fp import FPFormat


def prove_seconds(max_gates: int, timeout: float) -> tuple[float, float, str]:
    start = time.perf_counter()
    model = build_cvp(max_gates, FPFormat(5, 11))
    built = time.perf_counter() - start
    statuses = [prove_lemma(model, None, name, timeout).status for name in COMPOSED_FROM]
    status = "proved" if all(s == "proved" for s in statuses) else "/".join(statuses)
    return built, time.perf_counter() - start - built, status


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 256, 4096, 65536])
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    rows = {}
    for n in args.sizes:
        built, proof, status = prove_seconds(n, args.timeout)
        rows[n] = {"proof_seconds": round(proof, 2), "build_seconds": round(built, 2), "status": status}
    base = rows[args.sizes[0]]["proof_seconds"]
    print(json.dumps({"sizes": rows,
                      "proof_time_largest_to_smallest_ratio": round(rows[args.sizes[-1]]["proof_seconds"] / base, 2),
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
    main()
