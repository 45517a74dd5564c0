"""Tasks, training, exact resume, DDP (2 CPU processes over gloo), eval and audit; the long runs are marked slow."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import ROOT, cli, cli_json

from grammar.errors import ParameterError
from neural import checkpoint
from neural.learning.evaluation import evaluate_model, load_trained
from neural.learning.runs import TrainConfig
from neural.learning.tasks import IGNORE, SETTINGS, make_task
from neural.learning.train import train

TASKS = [("modadd", {"length": 6}), ("s5", {"length": 5}), ("isq", {"steps": 4}), ("cvp", {"gates": 5})]


@pytest.mark.parametrize("kind,params", TASKS)
def test_task_formats_and_step_circuits(kind, params):
    task = make_task(kind, **params)
    rng = np.random.default_rng(0)
    for setting in SETTINGS:
        b = task.batch(rng, 8, setting)
        assert b.tokens.shape == b.labels.shape == (8, task.seq_len(setting))
        supervised = (b.labels != IGNORE).sum(axis=1)
        assert (supervised == {"base": 1, "cot": task.n_steps, "hint": task.n_steps + 1}[setting]).all()
        assert (b.tokens[:, b.prompt_len - 1] == task.eq).all()
    prompts, states = task.sample(rng, 16)
    assert task.check_steps(prompts, states).all()
    for i in range(task.n_steps):  # a wrong token is caught at exactly its step
        bad = states.copy()
        bad[:, i] = states[:, (i + 1) % task.n_steps] if kind != "cvp" else states[:, i] ^ 1
        changed = bad[:, i] != states[:, i]
        assert not task.check_steps(prompts, bad)[changed, i].any()
        assert task.check_steps(prompts, bad)[:, :i].all()


def _tiny(**kw):
    base = dict(task="modadd", task_params=(("length", 4), ("modulus", 7)), setting="cot", layers=1, d_model=32,
                heads=2, d_ff=64, batch_size=16, steps=30, warmup=5, log_every=5, save_every=10, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def test_train_writes_checkpoint_and_metrics(tmp_path):
    last = train(_tiny(), tmp_path / "run", progress=False)
    assert last["step"] == 30
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"model.safetensors", "optimizer.safetensors", "config.json", "metrics.jsonl"} <= names
    meta = json.loads((tmp_path / "run/config.json").read_text())
    assert meta["task"]["kind"] == "modadd" and meta["setting"] == "cot" and meta["seed"] == 3 and meta["vocab"]
    assert [m["step"] for m in checkpoint.read_metrics(tmp_path / "run")] == [5, 10, 15, 20, 25, 30]
    model, task, setting, _ = load_trained(tmp_path / "run")
    out = evaluate_model(model, task, setting, samples=50)
    assert len(out["cot_position_accuracy"]) == 4 and out["samples"] == 50
    assert (out["accuracy"] * 50).is_integer()  # a count of the 50 prompts
    assert out["accuracy"] == pytest.approx(out["cot_position_accuracy"][-1], abs=1e-4)  # the answer is the last step


def test_resume_continues_exactly(tmp_path):
    cfg = _tiny()
    train(cfg, tmp_path / "straight", progress=False)
    train(cfg, tmp_path / "split", progress=False, stop_after=17)  # stops mid-way; last save at step 10
    (tmp_path / "split/metrics.jsonl").open("a").write('{"step": 99, "trunc')  # a crash mid-append
    train(cfg, tmp_path / "split", resume=True, progress=False)
    a, b = checkpoint.load(tmp_path / "straight"), checkpoint.load(tmp_path / "split")
    assert all(np.array_equal(a.weights[k], b.weights[k]) for k in a.weights)
    strip = lambda ms: [{k: v for k, v in m.items() if k != "seconds"} for m in ms]  # noqa: E731  (wall time)
    assert strip(checkpoint.read_metrics(tmp_path / "straight")) == strip(checkpoint.read_metrics(tmp_path / "split"))


def test_two_process_ddp_over_gloo(tmp_path):
    out = tmp_path / "ddp"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",  # a free port
                           "--nproc_per_node", "2", "-m", "bridge.cli", "train", "--task", "modadd", "--param",
                           "length=4", "--d-model", "32", "--heads", "2", "--steps", "6", "--batch-size", "8",
                           "--device", "cpu", "--out", str(out), "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((out / "config.json").read_text())["step"] == 6


def test_cli_train_eval_and_bad_flags(tmp_path):
    out = cli_json("train", "--task", "isq", "--param", "steps=3", "--d-model", "32", "--heads", "2", "--steps", "8",
                   "--out", str(tmp_path / "r"))
    assert out["step"] == 8
    ev = cli_json("eval", str(tmp_path / "r"), "--samples", "20")
    assert set(ev) >= {"accuracy", "cot_position_accuracy", "samples", "seed"}
    bad = cli("train", "--task", "isq", "--param", "nope=1", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "has no parameter 'nope'" in bad.stderr
    spec = cli_json("train", "specs/modadd.lark", "--override", "task.length=3", "--d-model", "16", "--heads", "2",
                    "--steps", "3", "--out", str(tmp_path / "s"))
    assert json.loads((tmp_path / "s/config.json").read_text())["task"]["length"] == 3 and spec["step"] == 3
    no_prime = cli("train", "--task", "isq", "--param", "min_prime=24", "--param", "max_prime=28", "--out",
                   str(tmp_path / "np"))
    assert no_prime.returncode == 2 and "no prime between" in no_prime.stderr and "Traceback" not in no_prime.stderr
    config = tmp_path / "r/config.json"  # a checkpoint whose task parameters this version does not know
    meta = json.loads(config.read_text())
    meta["task"] = {"kind": "isq", "steps": 3, "prime": 97}
    config.write_text(json.dumps(meta))
    stale = cli("eval", str(tmp_path / "r"))
    assert stale.returncode == 2 and "config.json" in stale.stderr and "'prime'" in stale.stderr
    assert "Traceback" not in stale.stderr


# ---- audit ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compiled_cvp(tmp_path_factory):
    d = tmp_path_factory.mktemp("cvp") / "ck"
    cli_json("compile", "specs/cvp.lark", "--override", "max_gates=6", "--out", str(d))
    return d


def test_audit_of_the_compiled_construction_is_sound_and_aligned(compiled_cvp, tmp_path):
    from bridge.testing import assert_sound

    proc = cli("audit", str(compiled_cvp), "--samples", "100", "--json", "--plots", str(tmp_path / "plots"))
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["accuracy"] == 1.0 and r["unsound_steps"] == 0 and r["steps_checked"] == 2400
    assert r["attention"]["alignment"] == pytest.approx(1.0)
    assert r["exhaustive"] == {"circuits": 4605, "max_gates": 3, "wrong": 0}
    assert r["precision"]["bfloat16"]["traces_changed"] == 0
    assert r["precision"]["float16"]["traces_changed"] == 0  # c = 64: exact in float16 too (no NaN any more)
    assert (tmp_path / "plots/attention.png").stat().st_size > 1000
    assert_sound(compiled_cvp, samples=20)


def test_audit_flags_a_noisy_copy(compiled_cvp, tmp_path):
    ck = checkpoint.load(compiled_cvp)
    rng = np.random.default_rng(0)
    noisy = {k: v + (rng.normal(0, 0.3, v.shape) if k.endswith("ffn.fc1.weight") else 0) for k, v in ck.weights.items()}
    checkpoint.save(tmp_path / "noisy", ck.config, noisy, ck.meta)
    proc = cli("audit", str(tmp_path / "noisy"), "--samples", "100", "--json")
    assert proc.returncode == 1
    r = json.loads(proc.stdout)
    assert r["unsound_steps"] > 0 and r["first_unsound"]["context"]["type"] in ("TRUE", "FALSE", "AND", "OR", "NOT")


def test_audit_refuses_pickles_without_running_them(compiled_cvp, tmp_path):
    import pickle
    import shutil

    d = tmp_path / "evil"
    shutil.copytree(compiled_cvp, d)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (d / "model.pt").write_bytes(pickle.dumps(Payload()))
    proc = cli("audit", str(d))
    assert proc.returncode == 2 and "pickle" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()
    missing = cli("audit", str(tmp_path / "nowhere"))
    assert missing.returncode == 2


def test_smoke_s5_cot_learns_something(tmp_path):
    """CI-sized version of the slow test below: 1 layer, short S5, a few seconds."""
    cfg = TrainConfig(task="s5", task_params=(("length", 3),), setting="cot", layers=1, d_model=64, heads=4,
                      d_ff=256, steps=150, batch_size=64, seed=0, log_every=50)
    train(cfg, tmp_path / "s5", progress=False)
    model, task, setting, _ = load_trained(tmp_path / "s5")
    acc = evaluate_model(model, task, setting, samples=200)["cot_position_accuracy"]
    assert acc[0] > 0.9  # the first state is a copy of the first input


@pytest.mark.slow
def test_s5_cot_one_layer_reaches_99_percent(tmp_path):
    out = tmp_path / "s5cot"
    proc = cli("train", "--task", "s5", "--setting", "cot", "--layers", "1", "--time-limit", "240", "--seed", "0",
               "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert cli_json("eval", str(out))["accuracy"] >= 0.99


@pytest.mark.slow
def test_s5_base_one_layer_stays_near_chance(tmp_path):
    out = tmp_path / "s5base"
    proc = cli("train", "--task", "s5", "--setting", "base", "--layers", "1", "--time-limit", "120", "--seed", "0",
               "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert cli_json("eval", str(out))["accuracy"] < 0.2


def test_the_spec_language_and_the_trainer_know_the_same_tasks():
    from grammar.spec import TASK_DEFAULTS
    from neural.learning.tasks import TASK_CLASSES, make_task

    assert set(TASK_DEFAULTS) == set(TASK_CLASSES)
    for kind, params in TASK_DEFAULTS.items():
        assert make_task(kind, **params).params == params


def test_train_to_an_unwritable_place_exits_2(tmp_path):
    (tmp_path / "file").write_text("")
    proc = cli("train", "--task", "modadd", "--setting", "cot", "--layers", "1", "--steps", "1", "--d-model", "16",
               "--out", str(tmp_path / "file" / "run"))
    assert proc.returncode == 2 and "cannot write" in proc.stderr and "Traceback" not in proc.stderr


def test_the_run_state_is_what_a_checkpoint_records_and_a_resume_reads(tmp_path):
    """neural.learning.runs.RunState is the one writer and reader of the resume keys of config.json."""
    from neural.learning.runs import RunState

    state = RunState(40, 12.5, (1.25, 0.5, 3), 2, True, 0.875)
    assert RunState.from_meta(json.loads(json.dumps(state.to_meta()))) == state
    train(_tiny(steps=20), tmp_path / "run", progress=False)
    saved = RunState.from_meta(json.loads((tmp_path / "run/config.json").read_text()))
    assert saved.step == 20 and saved.elapsed > 0 and not saved.early_stopped


def test_a_run_is_the_same_run_whatever_order_its_task_parameters_come_in(tmp_path):
    """TrainConfig keeps one order of task parameters, the order config.json reads back in, so a run configured
    with its parameters in another order resumes as itself instead of being refused as different."""
    one = TrainConfig(task="modadd", task_params=(("modulus", 7), ("length", 3)), d_model=16, heads=2, d_ff=32,
                      steps=4, log_every=2, save_every=2)
    other = TrainConfig(task="modadd", task_params=(("length", 3), ("modulus", 7)), d_model=16, heads=2, d_ff=32,
                        steps=4, log_every=2, save_every=2)
    assert one == other and TrainConfig.from_dict(json.loads(json.dumps(one.to_dict()))) == one
    train(one, tmp_path / "run", progress=False, stop_after=2)
    assert train(other, tmp_path / "run", resume=True, progress=False)["step"] == 4


@pytest.mark.parametrize("early_stop,plateau,reason", [(0.0, None, "reached"), (1.01, 2, "plateau"),
                                                        (1.01, None, "cap")])
def test_a_run_says_why_it_stopped_and_keeps_saying_it_on_resume(tmp_path, early_stop, plateau, reason):
    """Reached the early-stop level, stopped improving for ``plateau`` checks, or used its whole budget."""
    from neural.learning.runs import RunState

    cfg = TrainConfig(task="modadd", task_params=(("length", 3),), layers=1, d_model=16, heads=2, d_ff=32,
                      steps=60, batch_size=8, lr=1e-9, log_every=5, eval_every=5, eval_samples=16, seed=0,
                      early_stop=early_stop, plateau_patience=plateau)
    result = train(cfg, tmp_path / "run", progress=False)
    assert result["stop_reason"] == reason
    assert result["early_stopped"] == (reason != "cap") and (result["step"] < 60) == (reason != "cap")
    state = RunState.from_meta(checkpoint.load(tmp_path / "run").meta)
    assert state.stop_reason == reason
    again = train(cfg, tmp_path / "run", resume=True, progress=False)  # finished: nothing more runs
    assert again["stop_reason"] == reason and again["step"] == result["step"]
    if reason == "plateau":  # checks count after plateau_from only: an initial plateau is not convergence
        later = train(dataclasses.replace(cfg, plateau_from=40), tmp_path / "later", progress=False)
        assert later["stop_reason"] == "plateau" and later["step"] == 40 + plateau * cfg.eval_every


def test_depth_scaled_init_shrinks_only_the_residual_projections():
    import torch

    from neural.learning.train import RESIDUAL_PROJECTIONS, initial_weights
    from neural.model import Decoder

    cfg = TrainConfig(task="s5", task_params=(("length", 3),), layers=4, d_model=32, heads=2, d_ff=64)
    model_cfg = cfg.model_config(cfg.make_task())
    torch.manual_seed(0)
    plain = initial_weights(Decoder(model_cfg))
    torch.manual_seed(0)
    scaled = initial_weights(Decoder(model_cfg), "depth")
    for name, w in plain.items():
        factor = 8 ** -0.5 if name.endswith(RESIDUAL_PROJECTIONS) else 1.0
        torch.testing.assert_close(scaled[name], w * factor)
    with pytest.raises(ParameterError, match="residual_init"):
        TrainConfig(task="s5", residual_init="gpt3")


def test_a_run_whose_loss_still_falls_is_not_on_a_plateau(tmp_path):
    """Validation accuracy short of the target and no better than before, but the training loss still falling by
    more than 1% between checks: not converged, so no plateau stop (a frozen run with the same patience stops)."""
    def run(lr, name):
        cfg = TrainConfig(task="modadd", task_params=(("length", 3),), layers=1, d_model=16, heads=2, d_ff=32,
                          steps=40, batch_size=16, lr=lr, warmup=1, log_every=5, eval_every=5, eval_samples=8, seed=0,
                          early_stop=1.01, plateau_patience=2)
        return train(cfg, tmp_path / name, progress=False), checkpoint.read_metrics(tmp_path / name)

    frozen, _ = run(1e-9, "frozen")
    assert frozen["stop_reason"] == "plateau" and frozen["step"] <= 20
    learning, lines = run(3e-3, "learning")
    losses = [r["loss"] for r in lines]
    assert losses[-1] < 0.9 * losses[0]  # it did learn
    assert learning["step"] > frozen["step"]


def test_a_plateau_reads_the_validation_loss_not_the_training_loss(tmp_path, monkeypatch):
    """A model that only memorises lowers its training loss while its validation loss stands still: that is a
    plateau. With the validation accuracy and loss held fixed, the learning run above stops after its patience,
    its training loss falling all the while."""
    from neural.learning import train as training

    monkeypatch.setattr(training, "evaluate_model", lambda *a, **k: {"accuracy": 0.5})
    monkeypatch.setattr(training, "validation_loss", lambda *a, **k: 1.0)
    cfg = TrainConfig(task="modadd", task_params=(("length", 3),), layers=1, d_model=16, heads=2, d_ff=32,
                      steps=40, batch_size=16, lr=3e-3, warmup=1, log_every=5, eval_every=5, eval_samples=8, seed=0,
                      early_stop=1.01, plateau_patience=2)
    result = train(cfg, tmp_path / "run", progress=False)
    losses = [r["loss"] for r in checkpoint.read_metrics(tmp_path / "run")]
    assert result["stop_reason"] == "plateau" and result["step"] == 15  # checks at 5 (first), 10 and 15
    assert losses[-1] < losses[0] and all(r["valid_loss"] == 1.0 for r in checkpoint.read_metrics(tmp_path / "run")
                                          if "valid_accuracy" in r)


def _random_partial_table(seed: int, k: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    return {(s, x): int(rng.integers(0, 1 << k)) for s in range(1 << k) for x in range(1 << k) if rng.random() < 0.6}


@pytest.mark.parametrize("table,bits", [(_random_partial_table(seed), 3) for seed in range(4)] +
                         [(make_task("s5", length=3).step_table(), make_task("s5", length=3).code_bits)],
                         ids=[f"random{seed}" for seed in range(4)] + ["s5"])
def test_a_lookup_circuit_computes_its_table_on_every_defined_row(table, bits):
    """Random partial tables (don't-cares elsewhere), and S5's whole step table: the circuit agrees on every row."""
    from grammar.evaluate import evaluate_packed, pack_bits, unpack_bits
    from neural.learning.tasks import lookup_circuit

    circuit = lookup_circuit("t", bits, table)
    rows = np.array([[(s >> b) & 1 for b in range(bits)] + [(x >> b) & 1 for b in range(bits)] for s, x in table],
                    dtype=np.uint8)
    out = unpack_bits(evaluate_packed(circuit, pack_bits(rows))[list(circuit.outputs)], len(rows)).astype(np.int64)
    assert ((out * (1 << np.arange(bits))).sum(axis=1) == list(table.values())).all()
