"""verify's bounded checks are sized before they run: full-length instances, as many as the simulation budget holds
(at least one), every skip and cap said in the report, and requests no machine can meet refused."""
from __future__ import annotations

import pytest
from helpers import ROOT

from bridge.bounded import Simulator, plan_simulations, random_instances
from bridge.proof import require_simulation
from grammar import limits
from grammar.errors import Refused
from grammar.netlist import load_netlist
from grammar.normalize import normalize
from grammar.spec import default_claims
from neural import cvp
from neural.construction.construct import build_cvp, build_thm33
from neural.construction.fp import FPFormat

F511 = FPFormat(5, 11)


@pytest.fixture(scope="module")
def rca4():
    nc = normalize(load_netlist(ROOT / "circuits" / "rca4.bench"))
    return build_thm33(nc, F511), nc


def test_every_requested_instance_runs_within_the_budget(rca4):
    model, nc = rca4
    plan = plan_simulations(model, nc, default_claims(), 100)
    assert (plan.random, plan.exhaustive, plan.length) == (100, 0, nc.n_inputs + nc.n_gates)


def test_past_the_budget_as_many_as_it_holds_and_at_least_one(rca4, monkeypatch):
    model, nc = rca4
    per = plan_simulations(model, nc, {}, 1).per_instance_seconds
    monkeypatch.setattr(limits, "SIMULATION_SECONDS", 2.5 * per)
    plan = plan_simulations(model, nc, {}, 100)
    assert plan.random == 2
    result = random_instances(model, nc, plan, 0, sim=Simulator.choose(model))
    assert result.status == "proved"
    assert f"2 instances, {2 * plan.length:,} tokens" in result.detail and "2 of the 100 requested" in result.detail
    monkeypatch.setattr(limits, "SIMULATION_SECONDS", per / 3)
    assert plan_simulations(model, nc, {}, 100).random == 1  # one full-length instance, though past the budget
    monkeypatch.setattr(limits, "_lifted", True)
    assert plan_simulations(model, nc, {}, 100).random == 100  # --no-limit


def test_one_instance_far_past_the_budget_is_skipped_and_says_why(rca4, monkeypatch):
    model, nc = rca4
    monkeypatch.setattr(limits, "SIMULATION_SECONDS", 1e-9)
    plan = plan_simulations(model, nc, {}, 100)
    assert plan.random == 0 and "--no-limit runs it" in plan.random_skip
    result = random_instances(model, nc, plan, 0, sim=Simulator.choose(model))
    assert result.status == "skipped" and result.detail == plan.random_skip


def test_a_long_model_skips_its_exhaustive_check_but_a_huge_bound_is_refused(monkeypatch):
    model = build_cvp(256, F511)
    claims = {"end_to_end": {"max_gates": 2}}
    monkeypatch.setattr(limits, "SIMULATION_SECONDS", 0.1)  # 105 circuits x 2,048 tokens take longer than this
    plan = plan_simulations(model, None, claims, 0)
    assert plan.exhaustive == 0 and plan.claimed == 105 and "past the simulation budget" in plan.exhaustive_skip
    assert plan.priced_tokens == 105 * cvp.sequence_length(2)
    require_simulation(plan, "cvp")  # skipped, and cheap at its floor length: no refusal
    huge = plan_simulations(model, None, {"end_to_end": {"max_gates": 8}}, 0)
    with pytest.raises(Refused, match="would simulate"):
        require_simulation(huge, "cvp")


@pytest.mark.parametrize("attention", ["proved", "dense"])
def test_runs_estimated_bytes_are_within_3x_of_its_measured_peak(attention, tmp_path):
    """``run`` prints its estimate beside what it measured; the bytes are compared here (the seconds too in
    ``bridge/benchmarks/run_estimate.py``: a test never asserts on this machine's timings)."""
    from bridge.benchmarks.gen import write_bench
    from bridge.benchmarks.run_estimate import measure

    row = measure(write_bench(tmp_path, 3000), attention)
    assert 1 / 3 <= row["bytes_ratio"] <= 3, row
    assert row["estimated_seconds"] >= 0 and row["seconds"] > 0


@pytest.mark.parametrize("command", ["verify", "compile", "train"])
def test_each_commands_estimated_bytes_are_within_3x_of_its_measured_peak(command, tmp_path):
    """verify, compile and train print their estimate (``bridge.estimates``) beside the seconds they measured; the
    bytes are compared here, the seconds in ``bridge/benchmarks/cost_model.py`` (a test never asserts on this
    machine's timings)."""
    from bridge.benchmarks.cost_model import estimate_against_measurement
    from bridge.benchmarks.gen import write_bench

    path = write_bench(tmp_path, 3000, inputs=16)
    args = {"verify": ("verify", str(path), "--override", "random.instances=3"),
            "compile": ("compile", str(path), "--out", str(tmp_path / "c")),
            "train": ("train", "--task", "modadd", "--param", "length=4", "--d-model", "32", "--heads", "4",
                      "--steps", "2", "--out", str(tmp_path / "t"))}[command]
    row = estimate_against_measurement(*args)
    assert 1 / 3 <= row["bytes_ratio"] <= 3, row
    assert row["estimated_seconds"] > 0 and row["seconds"] > 0
