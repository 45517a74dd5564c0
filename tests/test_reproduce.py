"""The fair experiment: held-out splits, chance levels, early stopping, and the grid's resumable JSON."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, cli

from neural.learning import reproduce
from neural.learning.claims import UNDECIDED
from neural.learning.grid_results import document, load_results, write_results
from neural.learning.reproduce import (
    PROFILES,
    Profile,
    cells_of,
    group_cost,
    parse_cells,
    plan_groups,
    run_grid,
    run_order,
)
from neural.learning.runs import TrainConfig
from neural.learning.tasks import SPLITS, make_task
from neural.learning.train import train

TASKS = [("modadd", {"length": 4}), ("s5", {"length": 3}), ("isq", {"steps": 3, "max_prime": 31}),
         ("cvp", {"gates": 4})]


@pytest.mark.parametrize("kind,params", TASKS)
def test_the_held_out_split_is_disjoint_and_fixed(kind, params):
    task = make_task(kind, **params)
    drawn = {}
    for split in SPLITS:
        prompts, states = task.sample_split(np.random.default_rng(7), 1000, split)
        assert (task.split_of(prompts) == SPLITS.index(split)).all()
        assert task.check_steps(prompts, states).all()
        drawn[split] = set(map(bytes, prompts.astype(np.int64)))
    assert not drawn["train"] & drawn["test"] and not drawn["train"] & drawn["valid"]
    assert not drawn["valid"] & drawn["test"]
    # the split is a function of the prompt alone: the same prompts, drawn another way, land in the same split
    p, _ = task.sample(np.random.default_rng(8), 2000)
    assert np.array_equal(task.split_of(p), task.split_of(p[::-1].copy())[::-1])


def test_isq_test_prompts_have_every_step_in_training():
    """The trap: with k fixed, holding out (p, r) leaves CoT's first step unseen whenever r is a non-residue. Here
    every squaring (s, p) and every padding copy of every held-out prompt occurs in some training prompt."""
    task = make_task("isq", steps=3, min_prime=2, max_prime=23)
    rows = []
    for p in task.primes:
        for r in range(p):
            for k in range(1, 4):
                xs = ["_"] * (3 - k) + ["^2"] * k
                rows.append([task.index[f"p{p}"], task.index[f"s{r}"]] + [task.index[x] for x in xs])
    prompts = np.array(rows)
    split = task.split_of(prompts)
    assert set(np.unique(split)) == {0, 1, 2}

    # the true trace of every prompt, step by step: (p, state before, input token)
    def trace_steps(batch):
        out = set()
        for row in batch:
            p = task.primes[row[0] - task.index[f"p{task.primes[0]}"]]
            s = row[1] - task.index["s0"]
            for x in row[2:]:
                out.add((int(row[0]), int(s), int(x)))
                if x == task.index["^2"]:
                    s = s * s % p
        return out

    seen = trace_steps(prompts[split == 0])
    held = trace_steps(prompts[split == 2]) | trace_steps(prompts[split == 1])
    assert held <= seen, sorted(held - seen)[:5]
    # ... and (p, r, k) and (p, p - r, k), which share their answer, are never split apart
    p = np.array(task.primes)[prompts[:, 0] - task.index[f"p{task.primes[0]}"]]
    mirror = prompts.copy()
    mirror[:, 1] = (p - (prompts[:, 1] - task.index["s0"])) % p + task.index["s0"]
    assert np.array_equal(task.split_of(mirror), split)


def test_cvp_answers_are_balanced_given_the_last_gate_type():
    task = make_task("cvp", gates=8)
    base = reproduce.baselines(task, samples=4000)
    assert abs(base["shallow_baseline"] - 0.5) < 0.04 and abs(base["majority_baseline"] - 0.5) < 0.04


def test_early_stopping_on_the_validation_split(tmp_path):
    cfg = TrainConfig(task="modadd", task_params=(("length", 3), ("modulus", 7)), setting="cot", d_model=32, heads=2,
                      d_ff=64, batch_size=16, steps=200, warmup=5, early_stop=0.0, eval_every=20, eval_samples=32)
    seen = []
    last = train(cfg, tmp_path / "run", progress=False, on_eval=lambda step, acc: seen.append(step))
    assert last["step"] == 40 and last["early_stopped"] and seen == [20, 40]  # two passing checks in a row
    again = train(cfg, tmp_path / "run", resume=True, progress=False)  # a finished run stays finished
    assert again["step"] == 40 and again["early_stopped"]
    never = train(dataclasses.replace(cfg, early_stop=1.01, steps=60), tmp_path / "never", progress=False)
    assert never["step"] == 60 and not never["early_stopped"]


def test_cells_are_parsed_or_refused(tmp_path):
    assert parse_cells("s5:cot:1, cvp:base:4:8") == [("s5", "cot", 1, None), ("cvp", "base", 4, 8)]
    for bad in ("s5:cot", "s6:cot:1", "s5:cott:1", "s5:cot:0", "s5:cot:x", "s5:cot:1:0", "s5:cot:1:8:2"):
        with pytest.raises(ValueError):
            parse_cells(bad)
    full = PROFILES["full"]
    chosen = cells_of(full, 2, parse_cells("cvp:cot:1,s5:base:8,modadd:cot:1"))
    assert [(c.task, c.length, c.seed) for c in chosen[:6]] == [("cvp", 16, 0), ("cvp", 16, 1), ("cvp", 8, 0),
                                                                ("cvp", 8, 1), ("s5", 16, 0), ("s5", 16, 1)]
    # in the order asked for, and a task's length axis comes along
    assert {c.length for c in chosen if c.task == "modadd"} == {4, 8, 16}
    groups = plan_groups(full, chosen, tmp_path, "cpu", 1e12)
    assert groups[0] == chosen[:2]  # the seeds of a cell form one group, in the order asked for
    ordered = run_order(full, groups, jobs=2)  # costliest first, as --jobs runs them
    # by training FLOP, not depth: 1-layer cvp CoT (129-token sequences) outweighs 8-layer s5 base (17 tokens)
    assert ordered[0] == chosen[:2] and [c.name for c in ordered[1]] == ["s5:base:8"] * 2
    assert ordered[2] == chosen[2:4]  # cvp at 8 gates (65-token sequences) after 8-layer s5
    assert [c.length for g in ordered[3:] for c in g] == [16, 16, 8, 8, 4, 4]  # modadd, longest first
    assert run_order(full, groups, jobs=1) == groups  # one worker: in the order asked for
    # a length picks one of a cell's lengths, or one the profile lacks; a cell named twice is run once
    one = cells_of(full, 1, parse_cells("modadd:cot:1:8,cvp:base:32:12,modadd:cot:1"))
    assert [(c.task, c.layers, c.length) for c in one] == [("modadd", 1, 8), ("cvp", 32, 12), ("modadd", 1, 16),
                                                           ("modadd", 1, 4)]
    cpu = PROFILES["cpu"]  # sized for several sittings: cheapest first, so each sitting scores the most cells
    cheap = run_order(cpu, plan_groups(cpu, cells_of(cpu, 1), tmp_path, "cpu", 1e12), jobs=2)
    assert [group_cost(cpu, g) for g in cheap] == sorted(group_cost(cpu, g) for g in cheap)
    assert cheap[-1][0].key == ("cvp", "base", 4, 8, 0)
    proc = cli("reproduce", "--quick", "--cells", "s5:cot:zero")
    assert proc.returncode == 2 and "s5:cot:zero" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("reproduce", "--quick", "--seeds", "0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="asks for CUDA where there is none")
def test_a_device_torch_cannot_see_is_refused(tmp_path):
    proc = cli("reproduce", "--quick", "--device", "cuda", "--out", str(tmp_path / "runs"), "--results",
               str(tmp_path / "results"))
    assert proc.returncode == 2 and "--device" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "results").exists()


TINY = Profile(tasks={"modadd": {"modulus": 7}, "cvp": {}}, lengths={"modadd": (3,), "cvp": (3,)},
               settings=("base", "cot"),
               depths=(1,), steps=20, seeds=1, d_model=32, test_samples=40, finish_with="cotproof reproduce --tiny")
CELL_KEYS = {"task", "setting", "layers", "length", "seed", "accuracy", "majority_baseline", "shallow_baseline",
             "unsound_step_rate", "steps", "seconds", "heldout_disjoint"}


@pytest.fixture(scope="module")
def tiny_grid(tmp_path_factory):
    """Two of TINY's four cells, run once for the tests below: (the call's document, its runs, its results)."""
    root = tmp_path_factory.mktemp("tiny_grid")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(reproduce.PROFILES, "quick", TINY)
        doc = run_grid("quick", root / "runs", root / "results", cells=parse_cells("cvp:cot:1,modadd:base:1"))
    return doc, root / "runs", root / "results"


def test_a_grid_scores_the_cells_it_is_asked_for(tiny_grid):
    doc, _, _ = tiny_grid
    assert {(c["task"], c["setting"]) for c in doc["cells"]} == {("cvp", "cot"), ("modadd", "base")}
    for cell in doc["cells"]:
        assert CELL_KEYS <= set(cell) and cell["heldout_disjoint"] is True and cell["steps"] <= 20
    cvp_cell = next(c for c in doc["cells"] if c["task"] == "cvp")
    assert cvp_cell["unsound_step_rate"] is not None and cvp_cell["shallow_baseline"] is not None


def test_the_results_file_lists_every_cell_scored_or_not_run(tiny_grid):
    _, _, results = tiny_grid
    saved = json.loads((results / "quick.json").read_text())
    assert set(saved) == {"profile", "machine", "commit", "cells", "claims", "not_run", "finish_with"}
    assert len(saved["cells"]) == 2 and saved["finish_with"] == TINY.finish_with
    assert [(r["task"], r["setting"], r["status"]) for r in saved["not_run"]] == [("modadd", "cot", "not run"),
                                                                                ("cvp", "base", "not run")]
    assert {c["task"] for c in saved["claims"]} == {"modadd", "s5", "isq", "cvp"}
    assert all(set(c) == {"task", "claim", "holds", "verdict", "evidence"} for c in saved["claims"])


def test_the_table_says_not_run_and_the_figures_are_drawn(tiny_grid):
    _, _, results = tiny_grid
    table = (results / "table.md").read_text()
    assert table.split("| task | claim")[0].count("| not run |") == 2 and TINY.finish_with in table
    assert (results / "accuracy_vs_depth_quick.png").exists()
    assert (results / "learning_curves_quick.png").exists()  # drawn from the curves the rows hold


def test_resuming_a_grid_runs_only_the_cells_not_yet_scored(tiny_grid, tmp_path, monkeypatch):
    import shutil

    _, runs, results = tiny_grid
    shutil.copytree(runs, tmp_path / "runs")
    shutil.copytree(results, tmp_path / "results")
    runs, results = tmp_path / "runs", tmp_path / "results"
    monkeypatch.setitem(reproduce.PROFILES, "quick", TINY)
    doc = run_grid("quick", runs, results)
    assert len(doc["cells"]) == 4 - 2
    saved = json.loads((results / "quick.json").read_text())
    assert len(saved["cells"]) == 4 and saved["not_run"] == [] and saved["finish_with"] is None
    assert doc["claims"] == saved["claims"]  # judged from every scored cell, not just the two this call ran
    assert "not run" not in (results / "table.md").read_text().split("| task | claim")[0]
    assert run_grid("quick", runs, results)["cells"] == []  # nothing left: nothing trained, nothing written


def test_the_seeds_of_a_cell_train_as_one_group(tmp_path, monkeypatch):
    monkeypatch.setitem(reproduce.PROFILES, "quick", TINY)
    doc = run_grid("quick", tmp_path / "runs", tmp_path / "results", seeds=2, cells=parse_cells("modadd:cot:1"))
    assert sorted((c["seed"], c["group"]) for c in doc["cells"]) == [(0, 2), (1, 2)]
    for seed in (0, 1):  # each seed's checkpoint is its own, as if it had trained alone
        meta = json.loads((tmp_path / f"runs/quick/modadd_cot_L1_n3_s{seed}/config.json").read_text())
        assert meta["seed"] == seed and meta["step"] == doc["cells"][seed]["steps"]


@pytest.mark.slow
def test_quick_cells_reproduce_the_committed_numbers(tmp_path):
    """The issue's check, on this CPU: the two deciding CoT cells rerun from scratch land within 0.05 of the
    committed results/quick.json (each about 3 to 10 minutes)."""
    from helpers import ROOT

    committed = {(c["task"], c["setting"], c["layers"]): c["accuracy"]
                 for c in json.loads((ROOT / "results/quick.json").read_text())["cells"]}
    proc = cli("reproduce", "--quick", "--cells", "s5:cot:1,cvp:cot:1", "--seeds", "1", "--json", "--out",
               str(tmp_path / "runs"), "--results", str(tmp_path / "results"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    for cell in json.loads(proc.stdout)["cells"]:
        assert abs(cell["accuracy"] - committed[(cell["task"], cell["setting"], cell["layers"])]) <= 0.05, cell


def test_a_damaged_results_file_is_refused_not_overwritten(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    for text, where in (('{"cells": [\n  {"task": }', "quick.json:2:"), ('{"cells": [{"task": "s5"}]}', "quick.json")):
        (results / "quick.json").write_text(text)
        proc = cli("reproduce", "--quick", "--results", str(results), "--out", str(tmp_path / "runs"))
        assert proc.returncode == 2 and where in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert (results / "quick.json").read_text() == text


def test_the_claims_prose_reads_the_thresholds_it_is_judged_by(monkeypatch):
    import dataclasses

    from neural.learning import claims, reproduce

    moved = dataclasses.replace(claims.THRESHOLDS, cot_reaches=0.97, base_stays_below=0.3, cvp_gap=0.2)
    monkeypatch.setattr(claims, "THRESHOLDS", moved)
    text = " ".join(c["claim"] for c in reproduce.claims([], reproduce.PROFILES["quick"]))
    assert "reaches 0.97" in text and "below 0.3 " in text and "by 0.2 or more" in text
    assert "0.99" not in text and "0.25" not in text and "0.15" not in text


def test_the_full_profile_is_the_whole_figure():
    """The issue's grid: every setting at depths 1, 2, 4 and 8 (16 for base on s5, isq and cvp), modadd at
    lengths 4, 8 and 16, cvp at 8 and 16 gates, 3 seeds: at least 150 cells."""
    full = PROFILES["full"]
    cells = cells_of(full, full.seeds)
    assert len(cells) >= 150 and {c.seed for c in cells} == {0, 1, 2}
    for task in full.tasks:
        for setting in full.settings:
            assert {1, 2, 4, 8} <= {c.layers for c in cells if (c.task, c.setting) == (task, setting)}
    assert {(c.task, c.setting) for c in cells if c.layers == 16} == {("s5", "base"), ("isq", "base"), ("cvp", "base")}
    assert {c.length for c in cells if c.task == "modadd"} == {4, 8, 16}
    assert {c.length for c in cells if c.task == "cvp"} == {8, 16}
    assert len({c.key for c in cells}) == len(cells)


@pytest.mark.parametrize("profile", ["quick", "cpu", "full"])
def test_every_committed_cell_is_scored_or_marked_not_run(profile):
    """No cell of a profile is silently missing from its committed results: each is scored or listed as not run,
    with the command that runs it; the table says "not run" where the JSON does."""
    from helpers import ROOT

    doc = json.loads((ROOT / f"results/{profile}.json").read_text())
    plan = PROFILES[profile]
    scored = {reproduce.row_key(r) for r in doc["cells"]}
    missing = {reproduce.row_key(r) for r in doc["not_run"]}
    assert not scored & missing and {c.key for c in cells_of(plan, plan.seeds)} <= scored | missing
    assert all(r["status"] == "not run" and "accuracy" not in r for r in doc["not_run"])
    assert doc["finish_with"] == (plan.finish_with if missing else None)
    assert doc["claims"] == reproduce.claims(doc["cells"], plan)  # the claims are those of the scored cells
    table = (ROOT / ("results/table.md" if profile == "quick" else f"results/table_{profile}.md")).read_text()
    shown = table.split("| task | claim")[0].count("not run")
    assert shown == len({key[:4] for key in missing}) and (plan.finish_with in table) == bool(missing)


def test_the_full_grid_on_a_cpu_says_what_is_left_and_trains_nothing(tmp_path):
    """Like a GPU ablation: the full grid on a CPU names the cells left and the command that runs them, rather
    than start days of CPU training; --cpu-anyway belongs to --full and --ablation only."""
    from helpers import ROOT

    results = tmp_path / "results"
    results.mkdir()
    (results / "full.json").write_text((ROOT / "results/full.json").read_text())
    proc = cli("reproduce", "--full", "--device", "cpu", "--json", "--results", str(results), "--out",
               str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    committed = json.loads((ROOT / "results/full.json").read_text())
    assert doc == {"profile": "full", "not_run": len(committed["not_run"]),
                   "finish_with": PROFILES["full"].finish_with}
    assert not (tmp_path / "runs").exists() and (results / "full.json").read_text() == \
        (ROOT / "results/full.json").read_text()
    proc = cli("reproduce", "--quick", "--cpu-anyway")
    assert proc.returncode == 2 and "--cpu-anyway goes with --ablation NAME or --full" in proc.stderr


def test_a_row_keeps_its_learning_curve_and_the_figure_is_drawn_from_the_rows_alone(tiny_grid, tmp_path,
                                                                                     monkeypatch):
    """The curve is read from the run's metrics where it was scored; the figure and the results JSON (the curve on
    one line) regenerate from the results file with no run directory."""
    from neural.learning.reproduce import validation_curve
    from neural.learning.reproduce_report import plot_curves

    _, _, results = tiny_grid
    rows = load_results(results / "quick.json")
    assert rows and all(r["validation_curve"] for r in rows)
    assert all(step > 0 and 0 <= acc <= 1 for r in rows for step, acc in r["validation_curve"])
    assert '"validation_curve": [[' in (results / "quick.json").read_text()  # one line, not one per number
    monkeypatch.setitem(reproduce.PROFILES, "quick", TINY)
    assert plot_curves(document("quick", rows), TINY) is not None
    write_results("quick", rows, tmp_path)
    assert json.loads((tmp_path / "quick.json").read_text()) == json.loads((results / "quick.json").read_text())
    assert plot_curves(document("quick", [{**r, "validation_curve": None} for r in rows]), TINY) is None
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text('{"step": 50, "loss": 1.0}\n{"step": 100, "loss": 0.5, '
                                                    '"valid_accuracy": 0.30016}\n')
    assert validation_curve(tmp_path / "run") == [[100, 0.3002]]

def test_each_validation_check_is_in_its_metrics_line(tmp_path):
    from neural import checkpoint
    from neural.learning.runs import TrainConfig
    from neural.learning.train import train

    cfg = TrainConfig(task="modadd", task_params=(("length", 3),), layers=1, d_model=32, heads=2, d_ff=64, steps=20,
                      batch_size=16, log_every=5, eval_every=10, eval_samples=32, early_stop=1.01, seed=0)
    train(cfg, tmp_path / "run", progress=False)
    lines = checkpoint.read_metrics(tmp_path / "run")
    assert [r["step"] for r in lines] == [5, 10, 15, 20]
    assert [r["step"] for r in lines if "valid_accuracy" in r] == [10, 20]


def test_budget_bound_cells_are_those_that_did_not_converge():
    from neural.learning.reproduce_report import budget_bound

    assert budget_bound({"stop_reason": "cap", "converged": False, "early_stopped": False})
    assert not budget_bound({"stop_reason": "plateau", "converged": True, "early_stopped": True})
    assert not budget_bound({"early_stopped": True})  # a row from before stop reasons: it reached the target
    assert budget_bound({"early_stopped": False})


def _row(task, setting, layers, accuracy, length=None, seed=0, converged=True):
    length = length or reproduce.PROFILES["cpu"].lengths[task][0]
    return {"task": task, "setting": setting, "layers": layers, "length": length, "seed": seed,
            "accuracy": accuracy, "unsound_step_rate": 0.0 if setting == "cot" else None,
            "majority_baseline": 0.1, "shallow_baseline": 0.5 if task == "cvp" else None,
            "stop_reason": "reached" if converged else "cap", "converged": converged, "early_stopped": converged}


def test_a_claim_judged_on_a_budget_bound_cell_is_undecided_never_holds_or_fails():
    cpu = dataclasses.replace(reproduce.PROFILES["cpu"], seeds=1)  # one seed a cell: the rows below are every seed
    rows = [_row("s5", "cot", 1, 1.0)] + [_row("s5", "base", d, 0.01) for d in (1, 2, 4, 8)]
    s5 = next(c for c in reproduce.claims(rows, cpu) if c["task"] == "s5")
    assert (s5["holds"], s5["verdict"]) == (True, "holds")
    rows[2] = _row("s5", "base", 2, 0.01, converged=False)  # might rise with more steps
    s5 = next(c for c in reproduce.claims(rows, cpu) if c["task"] == "s5")
    assert (s5["holds"], s5["verdict"]) == (None, UNDECIDED) and "base L2 n=5" in s5["evidence"]
    rows[0] = _row("s5", "cot", 1, 0.5, converged=False)  # a failure at the cap is no failure either
    s5 = next(c for c in reproduce.claims(rows, cpu) if c["task"] == "s5")
    assert s5["verdict"] == UNDECIDED
    rows = [_row("s5", "cot", 1, 0.5)] + [_row("s5", "base", d, 0.01) for d in (1, 2, 4, 8)]
    s5 = next(c for c in reproduce.claims(rows, cpu) if c["task"] == "s5")
    assert (s5["holds"], s5["verdict"]) == (False, "fails")
    assert next(c for c in reproduce.claims([], cpu) if c["task"] == "s5")["verdict"] == "not run"


@pytest.mark.parametrize("reach, cot, verdict, when_8_gates_1_layer_is_budget_bound", [
    # base needs more depth as circuits grow; CoT at 1 layer does not. More training at 1 layer and 8 gates could
    # make 1 layer enough there: the verdict could turn, so it is undecided
    ({4: 1, 6: 2, 8: 8}, 1.0, "holds", UNDECIDED),
    ({4: 2, 6: 2, 8: 2}, 1.0, "fails", "fails"),  # one depth serves every size; a shallower one at 8 gates: still
    ({4: 1, 6: 4, 8: None}, 1.0, "holds", UNDECIDED),  # 8 gates: no depth run is enough
    ({4: 1, 6: 2, 8: 4}, 0.8, "fails", "fails"),  # CoT at 1 layer misses a size, whatever base does
])
def test_the_cvp_depth_question_is_decided_across_circuit_sizes(reach, cot, verdict,
                                                                 when_8_gates_1_layer_is_budget_bound):
    rows = []
    for gates, depth in reach.items():
        rows += [_row("cvp", "base", d, 0.95 if depth and d >= depth else 0.6, gates, seed)
                 for d in (1, 2, 4, 8) for seed in range(3)]
        rows += [_row("cvp", "cot", 1, cot, gates, seed) for seed in range(3)]

    def depth_claim(rows):
        return next(c for c in reproduce.claims(rows, reproduce.PROFILES["cpu"]) if "depth question" in c["claim"])

    assert depth_claim(rows)["verdict"] == verdict, depth_claim(rows)["evidence"]
    rows = [{**r, "converged": False, "stop_reason": "cap"} if (r["setting"], r["layers"], r["length"]) ==
            ("base", 1, 8) else r for r in rows]
    claim = depth_claim(rows)
    assert claim["verdict"] == when_8_gates_1_layer_is_budget_bound, claim["evidence"]
    assert "base L1 n=8" in claim["evidence"]


def test_a_budget_bound_cell_that_no_accuracy_could_turn_leaves_the_verdict_standing():
    """S5 base at 0.01 is far below the 0.25 bar, but at its cap it could in principle still rise past it: undecided.
    CoT at 1 layer at 0.995 and at its cap can only rise, and the claim already holds: it stands, and says why."""
    cpu = dataclasses.replace(reproduce.PROFILES["cpu"], seeds=1)
    rows = [_row("s5", "cot", 1, 0.995, converged=False)] + [_row("s5", "base", d, 0.01) for d in (1, 2, 4, 8)]
    s5 = next(c for c in reproduce.claims(rows, cpu) if c["task"] == "s5")
    assert (s5["holds"], s5["verdict"]) == (True, "holds")
    assert "no score up to 1.0 changes the verdict: cot L1 n=5" in s5["evidence"]
    many = rows + [_row("s5", "base", d, 0.01, length=n, converged=False) for d in (1, 2) for n in range(10, 17)]
    s5 = next(c for c in reproduce.claims(many, cpu) if c["task"] == "s5")
    assert s5["verdict"] == UNDECIDED  # more than MOST_OPEN open cells: not tried, undecided


def test_a_claim_waits_on_a_cell_not_run_only_where_its_score_could_turn_the_verdict():
    """The profile's cells not yet scored are tried at accuracy 0 and 1: s5's claim does not read CoT beyond 1
    layer or hint, so it holds without them, but without base at 8 layers it waits on that cell."""
    cpu = dataclasses.replace(reproduce.PROFILES["cpu"], seeds=1)
    rows = [_row("s5", "cot", 1, 1.0)] + [_row("s5", "base", d, 0.01) for d in (1, 2, 4, 8)]
    s5 = next(c for c in reproduce.claims(rows, cpu) if c["task"] == "s5")
    assert s5["verdict"] == "holds" and "not run" not in s5["evidence"]
    s5 = next(c for c in reproduce.claims(rows[:-1], cpu) if c["task"] == "s5")
    assert (s5["holds"], s5["verdict"]) == (None, "not run")
    assert s5["evidence"].endswith("waits on cells not run: base L8 n=5")
    three = reproduce.PROFILES["cpu"]  # 3 seeds a cell: seeds 1 and 2 of every cell are still open
    assert next(c for c in reproduce.claims(rows, three) if c["task"] == "s5")["verdict"] == "not run"


def test_the_cpu_profile_trains_what_the_claims_read_and_cvp_at_three_sizes():
    """Base and CoT at depths 1-8 (CoT must reach the bar at every depth), hint at 1 and 2 layers (no claim reads
    it), and the cvp depth question: base at 1, 2 and 4 layers at 4, 6 and 8 gates, CoT at 1 layer at each."""
    cpu = PROFILES["cpu"]
    cells = cells_of(cpu, cpu.seeds)
    assert {c.seed for c in cells} == {0, 1, 2} and len({c.key for c in cells}) == len(cells)
    expected = {"base": {1, 2, 4, 8}, "cot": {1, 2, 4, 8}, "hint": {1, 2}}
    for task in cpu.tasks:
        for setting in cpu.settings:
            depths = ({1, 2, 4} if setting == "base" else {1}) if task == "cvp" else expected[setting]
            assert {c.layers for c in cells if (c.task, c.setting) == (task, setting)} == depths
    for gates in (4, 6, 8):
        assert {c.layers for c in cells if (c.task, c.setting, c.length) == ("cvp", "base", gates)} == {1, 2, 4}
    assert {(c.length, c.layers) for c in cells if (c.task, c.setting) == ("cvp", "cot")} >= {(6, 1), (8, 1)}
    cfg = reproduce.train_config(cpu, cells[0])
    assert cfg.plateau_patience == cpu.plateau_patience and cfg.d_model == 64 and cfg.steps == cpu.steps


def test_a_row_names_the_commit_its_grid_started_at(monkeypatch):
    """Workers read the grid's commit from the environment: a commit made in the checkout while the grid runs is
    not the code the grid is running."""
    reproduce.commit.cache_clear()
    monkeypatch.setenv(reproduce.COMMIT_ENV, "abc1234")
    try:
        assert reproduce.commit() == "abc1234"
    finally:
        reproduce.commit.cache_clear()
    monkeypatch.delenv(reproduce.COMMIT_ENV)
    assert reproduce.commit() not in ("abc1234", "")
    reproduce.commit.cache_clear()


@pytest.mark.parametrize("name", ["quick", "cpu", "full"])
def test_committed_results_regenerate_byte_for_byte_from_their_rows(name, tmp_path):
    """The JSON and table in results/ are a function of their rows: rewriting them from the rows they hold changes
    nothing (the claims and verdicts, the table's marks, the provenance), so a change in how results are judged or
    drawn shows here as a diff to commit on purpose."""
    from helpers import ROOT

    committed = ROOT / "results"
    write_results(name, load_results(committed / f"{name}.json"), tmp_path)
    table = "table.md" if name == "quick" else f"table_{name}.md"
    for file in (f"{name}.json", table):
        assert (tmp_path / file).read_text() == (committed / file).read_text(), file


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``, read from /proc."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_workers_end_with_a_grid_that_is_killed(tmp_path):
    """A grid killed by a signal it cannot catch leaves no worker training on into its run directories."""
    args = [sys.executable, "-m", "bridge.cli", "reproduce", "--cells", "s5:base:1,modadd:base:1", "--jobs", "2",
            "--out", str(tmp_path / "runs"), "--results", str(tmp_path / "results")]
    grid = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(workers := [p for p in _children(grid.pid) if "spawn_main" in _cmdline(p)]) < 2:
            assert grid.poll() is None and time.monotonic() < deadline, grid.stderr.read().decode()[-2000:]
            time.sleep(0.2)
        assert all(_alive(p) for p in workers)
        grid.kill()
        grid.wait()
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in workers), [_cmdline(p) for p in workers if _alive(p)]
    finally:
        grid.kill()
        for p in _children(grid.pid):
            os.kill(p, signal.SIGKILL)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
