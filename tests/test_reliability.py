"""Reliability: trace mutation, crash safety, mutation testing of the proofs, CLI fuzzing (long parts: slow)."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import ROOT, cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.benchmarks.gen import random_circuit
from bridge.commands.main import main as cli_main
from grammar.evaluate import check_trace, evaluate
from grammar.netlist import load_netlist
from grammar.normalize import normalize
from neural import checkpoint


def test_every_single_flip_over_1000_traces_is_caught_at_its_step():
    nc = normalize(random_circuit(10, 40, seed=2))
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, (1000, nc.n_inputs)).astype(np.uint8)
    traces = evaluate(nc, bits)[:, nc.n_inputs:]
    assert check_trace(nc, bits, traces).all()
    T = nc.n_gates
    for t in range(T):  # all 1000 traces at once, one flipped step at a time
        flipped = traces.copy()
        flipped[:, t] ^= 1
        ok = check_trace(nc, bits, flipped)
        first = np.where((~ok).any(axis=1), np.argmax(~ok, axis=1), -1)
        assert (first == t).all()


def test_sigkill_mid_training_then_resume_matches_an_uninterrupted_run(tmp_path):
    args = ["train", "--task", "modadd", "--param", "length=4", "--d-model", "32", "--heads", "2", "--steps", "200",
            "--save-every", "20", "--batch-size", "16", "--seed", "5", "--json"]
    straight = cli(*args, "--out", str(tmp_path / "a"))
    assert straight.returncode == 0, straight.stderr
    proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", *args, "--out", str(tmp_path / "b")], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill once a checkpoint exists, mid-run
        cfg = tmp_path / "b/config.json"
        if cfg.exists() and json.loads(cfg.read_text())["step"] >= 40:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ck = checkpoint.load(tmp_path / "b")  # never corrupt or partial: it loads, hashes and all
    assert 0 < ck.meta["step"] < 200
    resumed = cli(*args, "--out", str(tmp_path / "b"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a, b = checkpoint.load(tmp_path / "a"), checkpoint.load(tmp_path / "b")
    assert all(np.array_equal(a.weights[k], b.weights[k]) for k in a.weights)
    strip = lambda ms: [{k: v for k, v in m.items() if k != "seconds"} for m in ms]  # noqa: E731
    assert strip(checkpoint.read_metrics(tmp_path / "a")) == strip(checkpoint.read_metrics(tmp_path / "b"))


# ---- mutation testing of the proofs ---------------------------------------------------------------------------

def mutants(model, rng, per_tensor: int, kinds=("flip", "double", "drop")):
    """(tensor, index, kind) for sign flips, doublings and dropped entries of non-zero weights."""
    for name, arr in sorted(model.weights.items()):
        nz = np.argwhere(arr != 0)
        if not len(nz):
            continue
        for row in nz[rng.choice(len(nz), min(per_tensor, len(nz)), replace=False)]:
            for kind in kinds:
                yield name, tuple(int(i) for i in row), kind


def apply(model, name, index, kind):
    w = {k: v.copy() for k, v in model.weights.items()}
    w[name][index] = {"flip": -1.0, "double": 2.0, "drop": 0.0}[kind] * w[name][index]
    return dataclasses.replace(model, weights=w)


def behaviour_changes(model, mutant, nc) -> bool:
    from neural.construction.execute import ExecMode, session
    from neural.decoding import teacher_forced

    sessions = [session(m.config, m.weights, ExecMode("finite", m.fmt)) for m in (model, mutant)]  # stateless
    for i in range(2 ** nc.n_inputs):
        values = evaluate(nc, np.array([[(i >> b) & 1 for b in range(nc.n_inputs)]], dtype=np.uint8))[0]
        if not np.array_equal(*(teacher_forced(s, values[:-1]) for s in sessions)):
            return True
    return False


def kill_report(per_tensor: int, seed: int = 0, kinds=("flip", "double", "drop"), prove_harmless: bool = True) -> dict:
    """Each mutant's proof and whether it changes behaviour. ``prove_harmless=False`` proves only the mutants that
    change behaviour (the kill rate's denominator), leaving the harmless ones' verdicts out of the report."""
    from bridge.proof import prove_model
    from neural.construction.construct import build_thm33
    from neural.construction.fp import FPFormat

    nc = normalize(load_netlist(ROOT / "circuits/c17.bench"))
    model = build_thm33(nc, FPFormat(5, 11))
    claims = {"retrieval": {"unrolled_k": 2}, "gate_ffn": {}, "readout": {}, "composition": {}}
    rows = []
    for name, index, kind in mutants(model, np.random.default_rng(seed), per_tensor, kinds):
        mutant = apply(model, name, index, kind)
        changed = behaviour_changes(model, mutant, nc)
        if not changed and not prove_harmless:
            continue
        report = prove_model(mutant, nc, claims)
        cex = report.counterexample or {}
        rows.append({"tensor": name, "index": index, "kind": kind, "changes_behaviour": changed,
                     "status": report.status, "replayed": bool(cex.get("replayed"))})
    harmful = [r for r in rows if r["changes_behaviour"]]
    killed = [r for r in harmful if r["status"] == "refuted" and r["replayed"]]
    return {"mutants": len(rows), "behaviour_changing": len(harmful), "killed": len(killed),
            "kill_rate": len(killed) / len(harmful) if harmful else 1.0,
            "survivors": [r for r in harmful if r not in killed],
            "harmless_proved": sum(r["status"] == "proved" and not r["changes_behaviour"] for r in rows),
            "harmless_refuted_not_replayed": sum(r["status"] == "refuted" and not r["changes_behaviour"]
                                                 for r in rows)}


def test_mutation_testing_of_the_proofs_small():
    report = kill_report(per_tensor=1, kinds=("flip",), prove_harmless=False)
    assert report["kill_rate"] == 1.0, report["survivors"]
    assert report["behaviour_changing"] > 0


@pytest.mark.slow
def test_mutation_testing_of_the_proofs_full():
    report = kill_report(per_tensor=4, seed=1)
    print(json.dumps({k: v for k, v in report.items() if k != "survivors"}))
    assert report["kill_rate"] == 1.0, report["survivors"]


# ---- fuzzing every CLI entry point ------------------------------------------------------------------------------

SEEDS = [(ROOT / "circuits/c17.bench").read_text(), (ROOT / "circuits/full_adder.aag").read_text(),
         (ROOT / "specs/c17.lark").read_text().replace("../circuits/", str(ROOT / "circuits") + "/")]
SUFFIX = (".bench", ".aag", ".lark")


@st.composite
def corrupted(draw):
    i = draw(st.integers(0, 2))
    text = SEEDS[i]
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(("insert", "delete", "replace")))
        chunk = draw(st.text(alphabet="()=,#\n \tabcxyzANDORNOT0123456789{}\"", min_size=1, max_size=6))
        if op == "insert":
            text = text[:pos] + chunk + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + len(chunk):]
        else:
            text = text[:pos] + chunk + text[pos + len(chunk):]
    return SUFFIX[i], text


def _fuzz_once(tmp_path, suffix, text, capsys) -> None:
    path = tmp_path / f"f{suffix}"
    path.write_text(text)
    commands = [["circuit", "info", str(path)], ["circuit", "eval", str(path), "--inputs", "10110"],
                ["check", str(path), "--inputs", "10110", "--trace", "000000"],
                ["run", str(path), "--inputs", "10110"], ["equiv", str(path), str(ROOT / "circuits/c17.bench")]]
    if suffix == ".lark":
        commands.append(["spec", "check", str(path)])
    for argv in commands:
        try:
            rc = cli_main(argv + ["--json"])
        except SystemExit as exit_:  # argparse on a bad flag
            rc = exit_.code
        err = capsys.readouterr().err
        assert rc in (0, 1, 2), (argv, rc)
        if rc == 2:
            assert ": error: " in err and "Traceback" not in err
            where = err.split(": error: ", 1)[0].splitlines()[-1]  # the place the one message names
            given = (str(path), str(ROOT / "circuits/c17.bench"), "--inputs", "--trace")
            assert where.startswith(given), (argv, err)  # the file (with its line where it has one) or the flag


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(corrupted())
def test_fuzz_cli_entry_points(tmp_path, capsys, case):
    _fuzz_once(tmp_path, *case, capsys)


@pytest.mark.slow
@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(corrupted())
def test_fuzz_cli_entry_points_10k(tmp_path, capsys, case):
    _fuzz_once(tmp_path, *case, capsys)


def test_a_checkpoint_write_killed_between_files_is_read_through_then_finished_or_discarded(tmp_path):
    """A kill after the staged set is sealed: a reader sees the new checkpoint and changes nothing; the next writer
    rolls it forward. An unsealed set whose writer is gone: the old checkpoint stands, and the next writer discards
    it."""
    from neural.config import ModelConfig, weight_shapes

    cfg = ModelConfig(vocab_size=3, max_len=4, d_model=4, n_layers=1, n_heads=1, d_head=4, d_ff=4)
    arrays = lambda v: {k: np.full(s, v, dtype=np.float32) for k, s in weight_shapes(cfg).items()}  # noqa: E731
    checkpoint.save(tmp_path, cfg, arrays(1.0), {"step": 1})
    stage = tmp_path / f"{checkpoint.STAGING}-999999-killed"  # no process 999999: its writer is gone
    checkpoint.save(tmp_path / "new", cfg, arrays(2.0), {"step": 2})
    stage.mkdir()
    for name in (checkpoint.WEIGHTS, checkpoint.CONFIG):
        (stage / name).write_bytes((tmp_path / "new" / name).read_bytes())
    (stage / checkpoint.COMPLETE).write_bytes(b"")
    os.replace(stage / checkpoint.WEIGHTS, tmp_path / checkpoint.WEIGHTS)  # killed right after the first move
    ck = checkpoint.load(tmp_path)
    assert ck.meta["step"] == 2 and (ck.weights["head.weight"] == 2.0).all() and stage.exists()  # read-only
    checkpoint.recover(tmp_path)
    assert not stage.exists() and checkpoint.load(tmp_path).meta["step"] == 2
    stage.mkdir()  # an unsealed staging area: the old checkpoint stands
    (stage / checkpoint.WEIGHTS).write_bytes(b"partial")
    assert checkpoint.load(tmp_path).meta["step"] == 2 and stage.exists()
    checkpoint.recover(tmp_path)
    assert not stage.exists()
    live = tmp_path / f"{checkpoint.STAGING}-{os.getpid()}-writing"  # a live writer's folder is left to it
    live.mkdir()
    checkpoint.recover(tmp_path)
    assert live.exists()


def test_ranks_probing_one_output_directory_at_once_do_not_trip_on_each_other(tmp_path):
    """torchrun starts every rank on the same --out; each checks it is writable before training (a shared probe name
    made one rank's unlink fail on the other's, exit 2, in CI)."""
    from concurrent.futures import ThreadPoolExecutor

    from bridge.commands.inputs import writable_directory

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: writable_directory(str(tmp_path / "out"), "--out"), range(2000)))
    assert list((tmp_path / "out").iterdir()) == []
