"""cotproof bench --quick runs in CI time and reports ratios (their values are not asserted: timings drift)."""
from __future__ import annotations

import pytest
from helpers import cli_json


def test_bench_runs_each_benchmark_in_its_own_process_and_reports_ratios():
    """The harness, on one benchmark (the whole quick plan is the slow test below)."""
    from bridge.commands.benchmarking import run_benchmarks

    out = run_benchmarks("quick", "trace_check")
    assert set(out["benchmarks"]) == {"trace_check"} and "error" not in out["benchmarks"]["trace_check"]
    assert out["benchmarks"]["trace_check"]["agree"] is True and out["benchmarks"]["trace_check"]["peak_rss_mib"] > 0
    assert "trace_check.numpy_to_pysat_speed_ratio" in out["ratios"]


@pytest.mark.slow
def test_bench_quick_reports_ratios():
    out = cli_json("bench", "--quick")
    assert out["plan"] == "quick"
    assert all("error" not in r for r in out["benchmarks"].values()), out["benchmarks"]
    assert out["benchmarks"]["proof_scaling"]["all_proved"] is True
    assert {"proof_scaling.whole_command_time_largest_to_smallest_ratio", "execution.achieved_to_matmul_flops_ratio",
            "trace_check.numpy_to_pysat_speed_ratio", "parse.parse_to_split_time_ratio",
            "training.cpu_G4_grouped_to_separate_ratio",
            "attention.largest_proved_to_dense_time_ratio", "run_estimate.worst_estimate_to_measured_ratio",
            "cost_model.worst_estimate_to_measured_ratio",
            "command_scaling.run_largest_to_smallest_time_ratio"} <= set(out["ratios"])
    assert all(row["identical_logits"] for row in out["benchmarks"]["attention"]["sizes"])
    assert out["benchmarks"]["trace_check"]["agree"] is True
    assert out["benchmarks"]["execution"]["exact"] is True
