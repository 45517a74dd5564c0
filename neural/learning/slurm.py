"""``reproduce --executor slurm``: the grid's groups (or an ablation's runs) as the tasks of one Slurm job array,
through submitit.

- **One writer of results.** A task writes each of its cells' rows into the cell's run directory (``row.json``,
  atomically); only the command that collects them writes ``results/*.json``. Run directories and results must lie
  on a filesystem every node sees.
- **Nothing trained twice.** ``<out>/<name>/slurm/jobs.json`` (the ledger) names the array task that owns each run
  directory. A directory with a row is done; one whose task ``squeue`` still lists is queued or running; only the
  rest is submitted. The ledger is read, the queue asked and new tasks submitted under one lock, so two commands run
  at once cannot both submit a cell.
- **Time limits and preemption.** Slurm warns a task ``--signal-seconds`` before its time limit, and on
  preemption; the warning is noted (``neural.learning.interrupt``), the training loop saves every run it holds at
  its current step, and submitit requeues the task, which resumes bit for bit. A task killed without warning
  (``scancel``, a node failure) leaves its last periodic checkpoint; running the command again submits it anew and
  it resumes from there. Where Slurm sends SIGTERM first (``scancel``, preemption with a grace period), the loop
  saves at the next step and goes on, so what the grace period allows is kept. Each row records the task's
  requeues (``attempts.jsonl`` in the run directory).

submitit is an optional extra (``pip install 'cotproof[cluster]'``); nothing here imports it before a command asks
for Slurm.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from grammar.errors import InputError, SourceLoc
from neural.checkpoint import atomic_write_text, read_metrics
from neural.learning import interrupt
from neural.learning.profiles import ROW
from neural.learning.slurm_options import SlurmOptions

ATTEMPTS = "attempts.jsonl"  # one line per start of a task in each of its run directories
FAILED = "failed.json"  # the error of the last task that raised, in each of its run directories
LEDGER = "jobs.json"
# what squeue lists for a task that still owns its cells: it will run, runs, or is being requeued
ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
          "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "SPECIAL_EXIT"}
WARNING_SIGNAL = signal.SIGUSR2  # submitit's: ``#SBATCH --signal=USR2@S``
EXTRA = "pip install 'cotproof[cluster]'"


# ---- refusals, before anything is submitted ------------------------------------------------------------------

def require_slurm() -> None:
    """submitit importable and ``sbatch``/``squeue`` on PATH, or one line saying what is missing."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise InputError(f"--executor slurm needs submitit, which is not installed: {EXTRA}",
                         SourceLoc("--executor"), expected="the cluster extra installed") from None
    for tool in ("sbatch", "squeue"):
        if shutil.which(tool) is None:
            raise InputError(f"--executor slurm needs Slurm's {tool}, which is not on PATH",
                             SourceLoc("--executor"), expected="a machine that submits to Slurm (a login node)")


# ---- what one array task does --------------------------------------------------------------------------------

class ClusterJob:
    """The callable an array task runs: train and score one unit (a ``reproduce.GroupUnit`` or an
    ``ablations.RunUnit``), writing each row into its run directory. submitit calls ``checkpoint`` on the warning
    signal and requeues the returned call, which is this one again: everything is resumed from the run
    directories."""

    def __call__(self, unit) -> str:
        cpus = os.environ.get("SLURM_CPUS_PER_TASK")
        if cpus:
            os.environ.setdefault("COTPROOF_THREADS", cpus)
        job = _job_id()
        with interrupt.deferred(WARNING_SIGNAL) as deliver, interrupt.checkpoint_on(signal.SIGTERM):
            for d in unit.dirs:
                _record_attempt(Path(d), job)
            try:
                unit.run(lambda run_dir, row: _write_row(Path(run_dir), row))
            except interrupt.Interrupted:
                deliver()  # submitit: checkpoint, requeue, exit; it does not return
                raise
            except Exception as err:
                for d in unit.dirs:
                    if not (Path(d) / ROW).exists():
                        atomic_write_text(Path(d) / FAILED, json.dumps({"job": job, "error": repr(err)}) + "\n")
                raise
        return unit.label

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def _job_id() -> str:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID", "local")


def _record_attempt(run_dir: Path, job: str) -> None:
    from neural.learning.grouping import resume_step

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / FAILED).unlink(missing_ok=True)
    line = {"job": job, "restart": int(os.environ.get("SLURM_RESTART_COUNT", 0) or 0),
            "from_step": resume_step(run_dir), "host": socket.gethostname(), "time": round(time.time(), 1)}
    with open(run_dir / ATTEMPTS, "a") as f:
        f.write(json.dumps(line) + "\n")


def attempts(run_dir: Path) -> list[dict]:
    try:
        lines = (Path(run_dir) / ATTEMPTS).read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def _write_row(run_dir: Path, row: dict) -> None:
    """The row as the task scored it, with how the cluster ran it: its jobs and how often Slurm requeued it."""
    tries = attempts(run_dir)
    row = {**row, "executor": "slurm", "requeues": sum(1 for a in tries if a.get("restart", 0) > 0),
           "slurm_jobs": sorted({a["job"] for a in tries}, key=lambda j: [int(x) for x in j.split("_") if x.isdigit()])}
    atomic_write_text(run_dir / ROW, json.dumps(row, indent=1) + "\n")


def read_row(run_dir: Path) -> dict | None:
    """The row a task wrote (None before it has): a damaged one is refused at its line and column, never taken for
    a cell still to run or skipped."""
    from grammar.source import parse_json, read_text

    path = Path(run_dir) / ROW
    if not path.exists():
        return None
    row = parse_json(read_text(path, "a cell's row"), path, "the cell's row", "row.json as a cluster task writes it")
    if not isinstance(row, dict):
        raise InputError("the cell's row is not a JSON object", SourceLoc(str(path)),
                         expected="row.json as a cluster task writes it")
    return row


# ---- the queue -----------------------------------------------------------------------------------------------

def queue_states() -> dict[str, str]:
    """Every task Slurm still lists for this user, by id (an array task as ``JOB_TASK``), with its state. A queue
    that cannot be asked is an error, never an empty queue: that would submit everything again."""
    user = os.environ.get("USER") or _user()
    try:
        done = subprocess.run(["squeue", "-h", "-r", "-u", user, "-o", "%i|%T"], capture_output=True, text=True,
                              timeout=120)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise InputError(f"cannot ask Slurm what is queued: {err}", SourceLoc("squeue"),
                         expected="a working squeue") from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit status {done.returncode}"]
        raise InputError(f"cannot ask Slurm what is queued: {lines[-1].removeprefix('squeue:').strip()}",
                         SourceLoc("squeue"), expected="a working squeue (is SLURM_CONF right?)")
    states = {}
    for line in done.stdout.splitlines():
        job, _, state = line.strip().partition("|")
        if job:
            states[job] = state.strip()
    return states


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


class Ledger:
    """Which array task owns which run directory (by the directory's name), kept beside the runs."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / LEDGER
        self.jobs: dict[str, str] = {}

    @contextlib.contextmanager
    def locked(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self.jobs = json.loads(self.path.read_text()).get("jobs", {}) if self.path.exists() else {}
            except ValueError:
                raise InputError("the cluster ledger is not JSON", SourceLoc(str(self.path)),
                                 expected="jobs.json as reproduce --executor slurm wrote it") from None
            yield self
            fcntl.flock(lock, fcntl.LOCK_UN)

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps({"jobs": self.jobs}, indent=1, sort_keys=True) + "\n")


@dataclass
class CellStatus:
    """A run directory as the cluster command reports it."""

    dir: Path
    status: str = "to submit"  # done | pending | running | to submit | submitted
    job: str | None = None
    step: int | None = None
    note: str = ""

    def to_dict(self) -> dict:
        out = {"dir": self.dir.name, "status": self.status, "job": self.job, "step": self.step}
        return {**out, **({"note": self.note} if self.note else {})}


def _last_step(run_dir: Path) -> int | None:
    """How far a run has trained: its last metrics line (every 50 steps), or its checkpoint."""
    with contextlib.suppress(Exception):
        records = read_metrics(run_dir)
        if records:
            return int(records[-1]["step"])
    from neural.learning.grouping import resume_step

    step = resume_step(run_dir)
    return step or None


def survey(dirs: list[Path], ledger: Ledger, states: dict[str, str]) -> list[CellStatus]:
    """Each directory's status: a row makes it done, a listed task queued or running, else it is to submit (with
    why its last task left it unfinished)."""
    cells = []
    for d in dirs:
        cell = CellStatus(d, job=ledger.jobs.get(d.name))
        if (d / ROW).exists():
            cell.status = "done"
        elif cell.job is not None and states.get(cell.job) in ACTIVE:
            cell.status = "running" if states[cell.job] in ("RUNNING", "COMPLETING") else "pending"
            cell.step = _last_step(d)
        else:
            cell.step = _last_step(d)
            failed = _read_json(d / FAILED)
            if failed:
                cell.note = f"task {failed.get('job')} failed: {failed.get('error')}"
            elif cell.job is not None:
                cell.note = f"task {cell.job} ended unfinished (cancelled, killed or out of requeues)"
        cells.append(cell)
    return cells


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ---- submitting ----------------------------------------------------------------------------------------------

def executor(folder: Path, options: SlurmOptions, job_name: str):
    import submitit

    ex = submitit.SlurmExecutor(folder=str(folder / "logs" / "%j"), max_num_timeout=options.max_requeues)
    ex.update_parameters(**options.parameters(job_name))
    return ex


def sbatch_script(folder: Path, options: SlurmOptions, job_name: str, tasks: int) -> str:
    """The batch script an array of ``tasks`` tasks would be submitted with (``--dry-run``)."""
    ex = executor(folder, options, job_name)
    ex.parameters["map_count"] = tasks
    return ex._make_submission_file_text(ex._submitit_command_str, "DRY-RUN")


def submit(folder: Path, options: SlurmOptions, job_name: str, units: list) -> list[str]:
    """One job array, a task per unit; the task ids in order. A request Slurm refuses (a partition it does not know,
    more memory than a node has) is one line of bad input, and nothing is submitted."""
    import io

    import submitit

    ex = executor(folder, options, job_name)
    logs = folder / "logs"
    before = set(logs.iterdir()) if logs.exists() else set()
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # submitit echoes sbatch's stderr: the error says it once
            jobs = ex.map_array(ClusterJob(), units)
    except (submitit.core.utils.FailedJobError, subprocess.CalledProcessError, OSError) as err:
        for staged in set(logs.iterdir()) - before if logs.exists() else ():  # the calls submitit pickled for it
            if staged.is_file():
                staged.unlink()
        raise InputError(f"Slurm refused the submission: {_first_error_line(err)}", SourceLoc("sbatch"),
                         expected="a partition, account and resources this cluster grants") from None
    return [job.job_id for job in jobs]


def _first_error_line(err: Exception) -> str:
    """sbatch's first error, without its ``sbatch: error:`` prefix (the message is ours, located at sbatch)."""
    text = str(getattr(err, "stderr", None) or err).strip()
    lines = [line.strip() for line in text.splitlines() if "error" in line.lower()] or text.splitlines() or [repr(err)]
    return lines[0].removeprefix("sbatch:").strip().removeprefix("error:").strip()[:300]


# ---- one command: survey, collect, submit, and perhaps wait ----------------------------------------------------

@dataclass
class Work:
    """What the command drives: the run directories left, how to group the ones to submit into units, and how to
    write the results from the rows collected."""

    name: str  # the job name's and the ledger folder's
    folder: Path  # <out>/<name>/slurm
    dirs: list[Path]
    plan: Callable[[list[Path]], list]  # the run directories to submit -> the units, one per array task
    collect: Callable[[dict[Path, dict]], None]  # rows by run directory -> the results file written
    collected: set = field(default_factory=set)


def drive(work: Work, options: SlurmOptions, dry_run: bool = False) -> dict:
    ledger = Ledger(work.folder)
    submitted: list[dict] = []
    with ledger.locked():
        cells = survey(work.dirs, ledger, queue_states())
        _collect(work, cells)
        todo = [c.dir for c in cells if c.status == "to submit"]
        if todo:
            units = work.plan(todo)
            if dry_run:
                script = sbatch_script(work.folder, options, f"cotproof-{work.name}", len(units))
                return {**_report(work, cells, submitted), "dry_run": True, "tasks": len(units), "sbatch": script}
            ids = submit(work.folder, options, f"cotproof-{work.name}", units)
            for unit, job in zip(units, ids):
                for d in unit.dirs:
                    ledger.jobs[Path(d).name] = job
                submitted.append({"job": job, "label": unit.label, "dirs": [Path(d).name for d in unit.dirs]})
            ledger.save()
            chosen = {Path(d).name: job for unit, job in zip(units, ids) for d in unit.dirs}
            for c in cells:
                if c.dir.name in chosen:
                    c.status, c.job = "submitted", chosen[c.dir.name]
    if options.wait:
        cells = _wait(work, ledger, options)
    return _report(work, cells, submitted)


def _collect(work: Work, cells: list[CellStatus]) -> None:
    rows = {}
    for c in cells:
        if c.status == "done" and c.dir not in work.collected:
            rows[c.dir] = read_row(c.dir)
    if rows:
        work.collect(rows)
        work.collected.update(rows)


def _wait(work: Work, ledger: Ledger, options: SlurmOptions) -> list[CellStatus]:
    """Until no task of these cells is queued: rows are collected as they appear (the results file rewritten after
    each poll that found some)."""
    while True:
        with ledger.locked():
            cells = survey(work.dirs, ledger, queue_states())
        _collect(work, cells)
        active = [c for c in cells if c.status in ("pending", "running")]
        print(f"slurm {work.name}: " + _counts(cells), file=sys.stderr, flush=True)
        if not active:
            return cells
        time.sleep(options.poll_seconds)


def _counts(cells: list[CellStatus]) -> str:
    order = ("done", "running", "pending", "submitted", "to submit")
    counts = {s: sum(1 for c in cells if c.status == s) for s in order}
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing to do"


def _report(work: Work, cells: list[CellStatus], submitted: list[dict]) -> dict:
    return {"executor": "slurm", "name": work.name, "summary": _counts(cells), "ledger": str(ledger_path(work)),
            "logs": str(work.folder / "logs"), "submitted": submitted, "cells": [c.to_dict() for c in cells],
            "collected": len(work.collected)}


def ledger_path(work: Work) -> Path:
    return work.folder / LEDGER


def report_text(doc: dict) -> str:
    lines = [f"slurm {doc['name']}: {doc['summary']}; {doc['collected']} row(s) collected into the results"]
    if doc.get("dry_run"):
        lines.append(f"dry run: {doc['tasks']} array task(s) would be submitted with this batch script:")
        lines.append(doc["sbatch"].rstrip())
        return "\n".join(lines)
    shown = [c for c in doc["cells"] if c["status"] == "running" or c.get("note")]  # pending ones: the count says it
    for c in shown:
        step = f" at step {c['step']}" if c["step"] else ""
        lines.append(f"  {c['dir']}: {c['status']}{step}" + (f" (task {c['job']})" if c["job"] else "")
                     + (f"; {c['note']}" if c.get("note") else ""))
    if doc["submitted"]:
        first, last = doc["submitted"][0]["job"], doc["submitted"][-1]["job"]
        lines.append(f"submitted {len(doc['submitted'])} array task(s), {first} .. {last}; logs in {doc['logs']}")
    left = sum(1 for c in doc["cells"] if c["status"] != "done")
    if left:
        lines.append("run the same command again to see their progress and collect the finished rows "
                     "(nothing is submitted twice)")
    return "\n".join(lines)


# ---- the grid and the ablations as work --------------------------------------------------------------------------

def grid_work(profile_name: str, out: Path, results: Path, options: SlurmOptions, seeds: int | None = None,
              device: str = "auto", precision: str = "auto") -> Work:
    from neural.learning import reproduce as rp

    profile = rp.PROFILES[profile_name]
    seeds = profile.seeds if seeds is None else seeds
    path = results / f"{profile_name}.json"
    scored = {rp.row_key(r): r for r in rp.load_results(path)}
    cells = rp.unscored(profile, scored.values(), seeds)
    root = out / profile_name
    by_dir = {c.directory(root): c for c in cells}
    job_device = options.device if device == "auto" else device

    def plan(dirs: list[Path]) -> list:
        todo = [by_dir[d] for d in dirs]
        rp._require_resources(profile, todo)
        groups = rp.plan_groups(profile, todo, root, job_device, options.plan_memory, False, precision)
        groups = sorted(groups, key=lambda g: -rp.group_cost(profile, g))  # the longest start first
        return [rp.GroupUnit(profile_name, profile, tuple(g), str(out),
                             f"{profile_name} group {i + 1}/{len(groups)}", device, precision)
                for i, g in enumerate(groups)]

    def collect(rows: dict) -> None:
        for row in rows.values():
            scored[rp.row_key(row)] = row
        rp.write_results(profile_name, list(scored.values()), results)

    return Work(profile_name, root / "slurm", list(by_dir), plan, collect)


def ablation_work(name: str, out: Path, results: Path, options: SlurmOptions, toy: bool = False,
                  device: str = "auto") -> Work:
    from neural.learning import ablations as ab

    runs = ab._sized(name, toy).runs
    dirs = [ab.run_directory(name, toy, i, out) for i in range(len(runs))]
    index = {d: i for i, d in enumerate(dirs)}
    scored: dict[int, dict] = {}
    for i, d in enumerate(dirs):
        row = read_row(d)
        if row is not None:
            scored[i] = row
    shown_device = options.device if device == "auto" else device

    def plan(todo: list[Path]) -> list:
        order = sorted(todo, key=lambda d: -ab._cost(runs[index[d]]))
        return [ab.RunUnit(name, toy, index[d], str(out), device) for d in order]

    def collect(rows: dict) -> None:
        for d, row in rows.items():
            scored[index[d]] = row
        path = ab.results_path(name, toy, results)
        text = json.dumps(ab.ablation_document(name, toy, shown_device, scored), indent=1) + "\n"
        if not path.exists() or path.read_text() != text:  # collected again, unchanged: the file stays as it was
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)

    stem = ab._stem(name, toy)
    return Work(stem, out / stem / "slurm", dirs, plan, collect)
