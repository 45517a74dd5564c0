"""``reproduce --executor slurm`` against a real Slurm: the private one-node cluster that conftest.py starts for the
run (tests/slurm_cluster.py). Where it could not start, these tests fail with the reason and how to install it;
they never skip.

Tasks ask for one CPU each, and local reference runs use one thread too: training is bit for bit the same for the
same thread count, whichever executor runs it."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import ROOT, cli

from neural.checkpoint import read_metrics
from neural.learning import interrupt, reproduce, slurm
from neural.learning.reproduce import Profile, run_grid
from neural.learning.train import MIN_STEP_SECONDS_ENV

TINY = Profile(tasks={"modadd": {"modulus": 7}, "cvp": {}}, lengths={"modadd": (3,), "cvp": (3,)},
               settings=("base", "cot"), depths=(1,), steps=60, seeds=1, d_model=32, test_samples=40)
# S5 base never reaches the early-stop level, so it trains its whole budget: about 45 s on one idle core here
LONG = Profile(tasks={"s5": {}}, lengths={"s5": (3,)}, settings=("base",), depths=(1,), steps=3000, seeds=1,
               d_model=32, test_samples=40, warmup=20)
# ... or, in the requeue test, 600 steps held to 85 ms each (train.MIN_STEP_SECONDS_ENV): 51 s of wall time that
# Slurm's limit can overtake, for about 9 s of CPU
PACED, STEP_SECONDS = dataclasses.replace(LONG, steps=600), "0.085"
ONE_CPU = slurm.SlurmOptions(cpus_per_job=1, mem_gb=2, time_minutes=10, poll_seconds=1)
DEADLINE = 420  # seconds any one wait may take before the test fails (the cluster is shared by the run's tests)
SAME = ("task", "setting", "layers", "length", "seed", "accuracy", "steps", "weights_sha256")


@pytest.fixture
def cluster():
    error = os.environ.get("COTPROOF_TEST_SLURM_ERROR")
    if error or not os.environ.get("SLURM_CONF"):
        pytest.fail(error or "no Slurm cluster for the tests: run them with pytest from the repository (conftest.py "
                    "starts one; it needs root and 'apt-get install -y slurm-wlm munge')", pytrace=False)
    return os.environ["SLURM_CONF"]


@pytest.fixture
def one_thread(monkeypatch):
    """Local reference runs on one thread, as the one-CPU tasks train."""
    before = torch.get_num_threads()
    monkeypatch.setenv("COTPROOF_THREADS", "1")
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _grid(monkeypatch, profile: Profile, root: Path, options: slurm.SlurmOptions = ONE_CPU):
    monkeypatch.setitem(reproduce.PROFILES, "quick", profile)
    return slurm.grid_work("quick", root / "runs", root / "results", options)


def _until(predicate, what: str, timeout: float = DEADLINE):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"not within {timeout:.0f} s: {what}\n{_queue()}")


def _queue() -> str:
    return subprocess.run(["squeue"], capture_output=True, text=True).stdout


def _rows(results: Path) -> dict:
    return {reproduce.row_key(r): r for r in json.loads((results / "quick.json").read_text())["cells"]}


def _scancel(*args: str) -> None:
    subprocess.run(["scancel", *args], check=True, capture_output=True)


# ---- the grid as an array ------------------------------------------------------------------------------------

def test_a_grid_as_a_job_array_gives_the_rows_the_local_executor_gives(cluster, monkeypatch, tmp_path, one_thread):
    options = dataclasses.replace(ONE_CPU, wait=True)
    doc = slurm.drive(_grid(monkeypatch, TINY, tmp_path / "slurm"), options)
    assert len(doc["submitted"]) == 4 and doc["summary"] == "4 done" and doc["collected"] == 4
    assert all("_" in s["job"] for s in doc["submitted"])  # one array, a task per group
    assert len({s["job"].split("_")[0] for s in doc["submitted"]}) == 1
    on_slurm = _rows(tmp_path / "slurm/results")
    run_grid("quick", tmp_path / "local/runs", tmp_path / "local/results")
    local = _rows(tmp_path / "local/results")
    assert on_slurm.keys() == local.keys() and len(local) == 4
    for key, row in on_slurm.items():
        assert {k: row[k] for k in SAME} == {k: local[key][k] for k in SAME}
        assert row["executor"] == "slurm" and row["requeues"] == 0 and len(row["slurm_jobs"]) == 1
        assert "executor" not in local[key]
    # the rows the tasks wrote are where the collector read them; the collector alone wrote the results file
    for cell in reproduce.cells_of(TINY, 1):
        assert slurm.read_row(cell.directory(tmp_path / "slurm/runs/quick")) is not None
        assert not (cell.directory(tmp_path / "local/runs/quick") / reproduce.ROW).exists()
    # again: every cell is scored, nothing is submitted, and the results stay byte for byte
    before = (tmp_path / "slurm/results/quick.json").read_bytes()
    again = slurm.drive(_grid(monkeypatch, TINY, tmp_path / "slurm"), options)
    assert again["submitted"] == [] and again["cells"] == []
    assert (tmp_path / "slurm/results/quick.json").read_bytes() == before


def test_an_ablation_as_a_job_array_gives_the_local_runs_results(cluster, tmp_path, one_thread):
    from neural.learning import ablations

    options = dataclasses.replace(ONE_CPU, wait=True)
    work = slurm.ablation_work("metrics", tmp_path / "slurm/runs", tmp_path / "slurm/results", options, toy=True)
    doc = slurm.drive(work, options)
    assert doc["summary"] == "2 done" and len(doc["submitted"]) == 2
    ablations.run_ablation("metrics", tmp_path / "local/runs", tmp_path / "local/results", toy=True, device="cpu")
    on_slurm, local = (json.loads((tmp_path / f"{where}/results/ablations/metrics-smoke.json").read_text())
                       for where in ("slurm", "local"))
    for mine, theirs in zip(on_slurm["runs"], local["runs"], strict=True):
        assert mine["status"] == theirs["status"] == "run"
        assert [mine[k] for k in ("label", "accuracy", "steps")] == [theirs[k] for k in ("label", "accuracy", "steps")]
        assert mine["requeues"] == 0 and mine["executor"] == "slurm"


def test_a_warned_task_saves_its_step_is_requeued_and_ends_bit_identical(cluster, monkeypatch, tmp_path, one_thread):
    """The warning Slurm sends before a time limit (or a preemption), sent by hand once the cell is past step 300,
    so the test decides where it lands: the task saves at the step it is on (not at its last periodic checkpoint,
    250), Slurm requeues the same task, and it resumes there. The slow test below lets the time limit send it."""
    work = _grid(monkeypatch, PACED, tmp_path / "slurm")
    run_dir = reproduce.cells_of(PACED, 1)[0].directory(tmp_path / "slurm/runs/quick")
    monkeypatch.setenv(MIN_STEP_SECONDS_ENV, "0.04")  # 24 s of training: 12 s left to warn it in after step 300
    (task,) = (s["job"] for s in slurm.drive(work, ONE_CPU)["submitted"])
    monkeypatch.delenv(MIN_STEP_SECONDS_ENV)
    _until(lambda: any(r.get("step", 0) >= 300 for r in read_metrics(run_dir)), "the cell past step 300")
    _scancel(f"--signal={slurm.WARNING_SIGNAL.name.removeprefix('SIG')}", task)
    run_grid("quick", tmp_path / "local/runs", tmp_path / "local/results")  # meanwhile, unwarned and unpaced, here
    done = slurm.drive(_grid(monkeypatch, PACED, tmp_path / "slurm"), dataclasses.replace(ONE_CPU, wait=True))
    assert done["summary"] == "1 done", done
    (key, row), = _rows(tmp_path / "slurm/results").items()
    local = _rows(tmp_path / "local/results")[key]
    assert {k: row[k] for k in SAME} == {k: local[k] for k in SAME} and row["steps"] == PACED.steps
    tries = slurm.attempts(run_dir)
    assert [t["restart"] for t in tries] == [0, 1] and row["requeues"] == 1, tries  # requeued, not resubmitted
    assert tries[0]["from_step"] == 0 and 300 <= tries[1]["from_step"] < PACED.steps, tries
    assert row["slurm_jobs"] == [task]


@pytest.mark.slow
def test_a_cell_that_outlasts_its_time_limit_is_requeued_and_ends_bit_identical(cluster, monkeypatch, tmp_path,
                                                                               one_thread):
    """A one-minute limit with the warning 20 s before it: Slurm warns 10 to 40 s into each start (it checks limits
    every 30 s), so the 51 s task is stopped at least once, checkpointed at its step and requeued. Where in the task
    each warning lands depends on the machine's load, so the test asserts what holds for every landing."""
    options = dataclasses.replace(ONE_CPU, time_minutes=1, signal_seconds=20)
    work = _grid(monkeypatch, PACED, tmp_path / "slurm", options)
    monkeypatch.setenv(MIN_STEP_SECONDS_ENV, STEP_SECONDS)  # the task inherits the environment it is submitted in
    first = slurm.drive(work, options)
    monkeypatch.delenv(MIN_STEP_SECONDS_ENV)
    assert [c["status"] for c in first["cells"]] == ["submitted"]
    run_grid("quick", tmp_path / "local/runs", tmp_path / "local/results")  # meanwhile, uninterrupted, unpaced, here
    done = slurm.drive(_grid(monkeypatch, PACED, tmp_path / "slurm", options), dataclasses.replace(options, wait=True))
    assert done["summary"] == "1 done", done
    (key, row), = _rows(tmp_path / "slurm/results").items()
    local = _rows(tmp_path / "local/results")[key]
    assert {k: row[k] for k in SAME} == {k: local[k] for k in SAME} and row["steps"] == PACED.steps
    tries = slurm.attempts(reproduce.cells_of(PACED, 1)[0].directory(tmp_path / "slurm/runs/quick"))
    assert row["requeues"] >= 1 and row["requeues"] == len(tries) - 1, tries
    assert [t["restart"] for t in tries] == list(range(len(tries)))  # one task, requeued by Slurm, not resubmitted
    # Each start resumes where the last one saved. A warning may land before a start's first step (a slow start-up)
    # or after its last (while it scores), so a start may resume at 0 or at the end; at least one resumes midway.
    starts = [t["from_step"] for t in tries]
    assert starts[0] == 0 and starts == sorted(starts) and starts[-1] <= PACED.steps, tries
    assert any(0 < step < PACED.steps for step in starts[1:]), tries
    assert row["slurm_jobs"] == [tries[0]["job"]]


def test_a_cancelled_task_resumes_from_its_checkpoint_and_finished_cells_are_not_submitted_again(
        cluster, monkeypatch, tmp_path):
    profile = dataclasses.replace(LONG, tasks={"s5": {}, "modadd": {"modulus": 7}},
                                  lengths={"s5": (3,), "modadd": (3,)}, steps=1000)
    root = tmp_path / "slurm"
    s5_dir, modadd_dir = (c.directory(root / "runs/quick") for c in reproduce.cells_of(profile, 1))
    # 20 ms a step at least: 15 s between the first checkpoint and the last step, for the cancel to land in (on a
    # fast core the cell would otherwise finish within the second the test polls at)
    monkeypatch.setenv(MIN_STEP_SECONDS_ENV, "0.02")
    first = slurm.drive(_grid(monkeypatch, profile, root), ONE_CPU)
    tasks = {Path(s["dirs"][0]).name: s["job"] for s in first["submitted"]}
    _until(lambda: reproduce.resume_step(s5_dir) >= 250, "the long cell past its first checkpoint")
    _scancel(tasks[s5_dir.name])
    _until(lambda: tasks[s5_dir.name] not in slurm.queue_states(), "the cancelled task gone from the queue")
    _until(lambda: (modadd_dir / reproduce.ROW).exists(), "the short cell done")
    stopped_at = reproduce.resume_step(s5_dir)
    assert 250 <= stopped_at < profile.steps
    again = slurm.drive(_grid(monkeypatch, profile, root), dataclasses.replace(ONE_CPU, wait=True))
    assert [s["dirs"] for s in again["submitted"]] == [[s5_dir.name]]  # the finished cell is not submitted again
    assert again["summary"] == "2 done" and again["collected"] == 2
    tries = slurm.attempts(s5_dir)
    assert [t["job"] for t in tries] == [tasks[s5_dir.name], again["submitted"][0]["job"]]
    assert tries[1]["from_step"] == stopped_at and tries[1]["restart"] == 0
    row = _rows(root / "results")[("s5", "base", 1, 3, 0)]
    assert row["steps"] == profile.steps and row["requeues"] == 0 and len(row["slurm_jobs"]) == 2


def test_the_full_profile_is_submitted_once_and_a_second_run_finds_every_cell_queued(cluster, tmp_path):
    """The full profile's unscored cells on the CPU partition, held back an hour so that nothing trains; then
    cancelled."""
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(ROOT / "results/full.json", results / "full.json")
    left = len(json.loads((results / "full.json").read_text())["not_run"])
    args = ("reproduce", "--full", "--executor", "slurm", "--sbatch-arg", "begin=now+3600", "--cpus-per-job", "1",
            "--out", str(tmp_path / "runs"), "--results", str(results), "--json")
    try:
        proc = cli(*args)
        assert proc.returncode == 0, proc.stderr
        first = json.loads(proc.stdout)
        assert len(first["cells"]) == left == sum(len(s["dirs"]) for s in first["submitted"])
        assert {c["status"] for c in first["cells"]} == {"submitted"}
        proc = cli(*args)
        assert proc.returncode == 0, proc.stderr
        second = json.loads(proc.stdout)
        assert second["submitted"] == [] and {c["status"] for c in second["cells"]} == {"pending"}
        assert {c["job"] for c in second["cells"]} == {s["job"] for s in first["submitted"]}
        assert (results / "full.json").read_text() == (ROOT / "results/full.json").read_text()
    finally:
        _scancel("--name", "cotproof-full")


# ---- refusals: one line, exit 2, nothing submitted -------------------------------------------------------------

def _refused(proc, *words: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 3, proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr


def _process(env: dict, *args: str):
    return subprocess.run([sys.executable, "-m", "bridge.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120)


def test_refusals_before_anything_is_submitted(cluster, tmp_path):
    base = ("reproduce", "--quick", "--executor", "slurm", "--out", str(tmp_path / "runs"))
    results = ("--results", str(tmp_path / "results"))
    # no submitit: the extra is named
    shim = tmp_path / "shim/submitit"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('no submitit here')\n")
    _refused(_process({**os.environ, "PYTHONPATH": str(shim.parent)}, *base, *results), "cotproof[cluster]")
    # no sbatch on PATH
    _refused(_process({**os.environ, "PATH": str(Path(sys.executable).parent)}, *base, *results), "sbatch")
    # results under a file: not writable
    (tmp_path / "a_file").write_text("")
    _refused(cli(*base, "--results", str(tmp_path / "a_file/results")), "--results: cannot write into this directory")
    # a partition Slurm does not know
    _refused(cli(*base, *results, "--partition", "nosuch"), "Slurm refused", "partition")
    assert not (tmp_path / "runs/quick/slurm/jobs.json").exists()
    assert not list((tmp_path / "runs/quick/slurm/logs").glob("[0-9]*"))
    # flags that make no sense
    _refused(cli("reproduce", "--quick", "--partition", "cpu"), "--partition goes with --executor slurm")
    _refused(cli(*base, *results, "--gpus-per-job", "2"), "--gpus-per-job")
    _refused(cli(*base, *results, "--sbatch-arg", "time=5"), "--sbatch-arg time")
    _refused(cli(*base, *results, "--sbatch-arg", "qos"), "KEY=VALUE")
    _refused(cli(*base, *results, "--time-per-job", "1", "--signal-seconds", "45"), "--signal-seconds")
    _refused(cli(*base, *results, "--jobs", "2"), "--jobs")
    assert not (tmp_path / "runs/quick/slurm/jobs.json").exists()
    # a damaged row a task left: refused where it is damaged, not taken for a cell to run again, not skipped
    cell = reproduce.cells_of(reproduce.PROFILES["quick"], 1)[0].directory(tmp_path / "runs/quick")
    cell.mkdir(parents=True)
    (cell / reproduce.ROW).write_text('{"task": "modadd",\n "accuracy": }\n')
    _refused(cli(*base, *results, "--dry-run"), f"{cell / reproduce.ROW}:2:", "not valid JSON")
    assert not (tmp_path / "results/quick.json").exists() and not (tmp_path / "runs/quick/slurm/jobs.json").exists()


def test_gpu_tasks_ask_slurm_for_gpus(cluster, tmp_path):
    """This cluster has no GPUs: the batch script is what is checked (--dry-run submits nothing)."""
    proc = cli("reproduce", "--full", "--executor", "slurm", "--gpus-per-job", "1", "--partition", "gpu",
               "--account", "lab", "--time-per-job", "240", "--mem-per-job", "32", "--cpus-per-job", "8",
               "--array-parallelism", "16", "--sbatch-arg", "qos=high", "--sbatch-arg", "constraint=h100",
               "--dry-run", "--out", str(tmp_path / "runs"), "--results", str(tmp_path / "results"))
    assert proc.returncode == 0, proc.stderr
    lines = set(proc.stdout.splitlines())
    for line in ("#SBATCH --gpus-per-node=1", "#SBATCH --partition=gpu", "#SBATCH --account=lab",
                 "#SBATCH --time=240", "#SBATCH --mem=32GB", "#SBATCH --cpus-per-task=8", "#SBATCH --qos=high",
                 "#SBATCH --constraint=h100", "#SBATCH --signal=USR2@90", "#SBATCH --job-name=cotproof-full"):
        assert line in lines, proc.stdout
    array = next(x for x in lines if x.startswith("#SBATCH --array=0-"))
    assert array.endswith("%16")
    assert not (tmp_path / "runs/full/slurm/jobs.json").exists()


# ---- the stop itself, without Slurm ----------------------------------------------------------------------------

def test_a_warning_signal_stops_training_at_a_step_boundary_and_it_resumes_bit_for_bit(tmp_path):
    """What a task does on Slurm's warning, in this process: the signal is only noted, the loop saves at the next
    step and raises; resuming from that checkpoint ends on the same weights as a run never stopped."""
    from neural.learning.runs import TrainConfig
    from neural.learning.train import train

    cfg = TrainConfig(task="modadd", task_params=(("length", 3), ("modulus", 7)), setting="cot", d_model=16,
                      heads=2, d_ff=32, steps=120, warmup=10, save_every=1000, log_every=10, eval_every=40,
                      early_stop=1.01, eval_samples=16)
    train(cfg, tmp_path / "whole", progress=False)

    def warn(step, accuracy):  # Slurm's warning arrives at step 40, in the middle of the run
        if step == 40:
            os.kill(os.getpid(), signal.SIGUSR2)

    handled = []
    signal.signal(signal.SIGUSR2, lambda *_: handled.append(True))
    try:
        with interrupt.deferred(signal.SIGUSR2) as deliver:
            with pytest.raises(interrupt.Interrupted) as stopped:
                train(cfg, tmp_path / "stopped", progress=False, on_eval=warn)
            deliver()
    finally:
        signal.signal(signal.SIGUSR2, signal.SIG_DFL)
    assert handled == [True] and stopped.value.step == 40  # saved at the boundary after the step it came in
    assert reproduce.resume_step(tmp_path / "stopped") == 40
    train(cfg, tmp_path / "stopped", resume=True, progress=False)
    assert reproduce.weights_sha256(tmp_path / "stopped") == reproduce.weights_sha256(tmp_path / "whole")

    def logged(run):  # every metrics line but its wall time
        return [{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(tmp_path / run)]

    assert logged("stopped") == logged("whole") and len(logged("whole")) == 12

    # SIGTERM (a cancellation's or a preemption's grace period) only asks for a checkpoint: training goes on
    seen = {}

    def cancel(step, accuracy):
        if step == 40:
            os.kill(os.getpid(), signal.SIGTERM)
        if step == 80:  # the periodic save is every 1,000 steps: the checkpoint here is the one SIGTERM asked for
            seen["checkpoint"] = reproduce.resume_step(tmp_path / "saved")

    with interrupt.checkpoint_on(signal.SIGTERM):
        train(cfg, tmp_path / "saved", progress=False, on_eval=cancel)
    assert seen == {"checkpoint": 40}
    assert reproduce.weights_sha256(tmp_path / "saved") == reproduce.weights_sha256(tmp_path / "whole")
