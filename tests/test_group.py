"""Grouped training: G runs as one stacked model must be the G runs trained alone, checkpoint for checkpoint."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from helpers import cli, cli_json
from torch.nn import functional as F

from neural import checkpoint
from neural.config import weight_shapes
from neural.learning.evaluation import evaluate_model, load_trained
from neural.learning.grouping import plan_groups
from neural.learning.profiles import PROFILES, Cell, Profile
from neural.learning.runs import TrainConfig, lr_at
from neural.learning.stacked import StackedDecoder
from neural.learning.tasks import IGNORE
from neural.learning.train import BETAS, group_key, train, train_group
from neural.model import Decoder


def _tiny(**kw) -> TrainConfig:
    base = dict(task="modadd", task_params=(("length", 4), ("modulus", 7)), setting="cot", layers=2, d_model=32,
                heads=2, d_ff=64, batch_size=16, steps=40, warmup=5, log_every=1, save_every=10, seed=0, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def _state(cfg: TrainConfig) -> tuple[Decoder, dict]:
    task = cfg.make_task()
    torch.manual_seed(cfg.seed)
    model = Decoder(cfg.model_config(task))
    return model, {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_the_stack_holds_the_decoders_weights_in_their_order():
    cfg = _tiny().model_config(_tiny().make_task())
    assert list(weight_shapes(cfg)) == [name for name, _ in Decoder(cfg).named_parameters()]


def test_the_stacked_forward_is_each_decoders_forward_padded_members_included():
    cfgs = [_tiny(seed=0), _tiny(seed=1, setting="base"), _tiny(seed=2, setting="hint")]
    models, states = zip(*(_state(c) for c in cfgs))
    longest = max(m.cfg.max_len for m in models)
    padded = []
    for s in states:
        s = dict(s)
        pos = s["pos_emb.weight"]
        s["pos_emb.weight"] = torch.cat([pos, pos.new_zeros(longest - pos.shape[0], pos.shape[1])])
        padded.append(s)
    stacked = StackedDecoder(dataclasses.replace(models[0].cfg, max_len=longest), padded)
    batches = [c.make_task().batch(np.random.default_rng(c.seed), 8, c.setting) for c in cfgs]
    tokens = torch.zeros(3, 8, longest, dtype=torch.long)
    for g, b in enumerate(batches):
        tokens[g, :, :b.tokens.shape[1]] = torch.as_tensor(b.tokens)
    with torch.no_grad():
        together = stacked(tokens)
        for g, (model, b) in enumerate(zip(models, batches)):
            alone, _ = model(torch.as_tensor(b.tokens))
            torch.testing.assert_close(together[g, :, :b.tokens.shape[1]], alone, atol=2e-5, rtol=1e-5)
        columns = torch.tensor([1, 4])
        torch.testing.assert_close(stacked(tokens, columns), together[:, :, columns], atol=1e-6, rtol=1e-6)


def _reference_losses(cfg: TrainConfig, steps: int) -> list[float]:
    """The textbook loop a run alone would be: one Decoder, torch's AdamW, clip_grad_norm_, mean cross-entropy."""
    task = cfg.make_task()
    model, _ = _state(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=BETAS)
    losses = []
    for step in range(steps):
        b = task.batch(np.random.default_rng([cfg.seed, step, 0]), cfg.batch_size, cfg.setting)
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        logits, _ = model(torch.as_tensor(b.tokens))
        loss = F.cross_entropy(logits.flatten(0, 1), torch.as_tensor(b.labels).flatten(), ignore_index=IGNORE)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return losses


def test_a_group_of_three_seeds_is_three_runs_loss_for_loss(tmp_path):
    cfgs = [_tiny(seed=s, steps=20) for s in range(3)]
    train_group(cfgs, [tmp_path / f"s{s}" for s in range(3)], progress=False)
    for s, cfg in enumerate(cfgs):
        grouped = [m["loss"] for m in checkpoint.read_metrics(tmp_path / f"s{s}")]
        reference = _reference_losses(cfg, 20)
        assert len(grouped) == 20
        np.testing.assert_allclose(grouped, reference, rtol=1e-4)  # metrics keep 5 decimals


def test_a_group_ends_where_single_runs_end(tmp_path):
    cfgs = [TrainConfig(task="s5", task_params=(("length", 3),), setting="cot", layers=1, d_model=64, heads=4,
                        d_ff=256, steps=150, batch_size=64, seed=s, log_every=50, device="cpu") for s in range(2)]
    train_group(cfgs, [tmp_path / f"g{s}" for s in range(2)], progress=False)
    for s, cfg in enumerate(cfgs):
        train(cfg, tmp_path / f"alone{s}", progress=False)
        scores = []
        for name in (f"g{s}", f"alone{s}"):
            model, task, setting, _ = load_trained(tmp_path / name)
            ev = evaluate_model(model, task, setting, samples=300)
            scores.append((ev["accuracy"], ev["cot_position_accuracy"][0]))
        assert scores[0][1] > 0.9  # something was learned (the first state copies the first input)
        assert abs(scores[0][0] - scores[1][0]) <= 0.01 and abs(scores[0][1] - scores[1][1]) <= 0.01, scores


def test_a_stopped_member_leaves_and_the_rest_go_on_as_if_alone(tmp_path):
    stopper = _tiny(seed=0, early_stop=0.0, eval_every=10, eval_samples=16)
    rest = [_tiny(seed=1, setting="base"), _tiny(seed=2)]
    heard = []
    lasts = train_group([stopper, *rest], [tmp_path / "a", tmp_path / "b", tmp_path / "c"], progress=False,
                        on_eval=lambda i, step, acc: heard.append((i, step)))
    assert heard == [(0, 10), (0, 20)]  # two passing checks in a row, then it is gone
    assert lasts[0]["step"] == 20 and lasts[0]["early_stopped"]
    assert [last["step"] for last in lasts[1:]] == [40, 40] and not any(last["early_stopped"] for last in lasts[1:])
    meta = json.loads((tmp_path / "a/config.json").read_text())
    assert meta["step"] == 20 and meta["early_stopped"] is True
    for cfg, name in zip(rest, "bc"):  # before and after the group shrank, loss for loss as if trained alone
        train(cfg, tmp_path / f"alone_{name}", progress=False)
        np.testing.assert_allclose([m["loss"] for m in checkpoint.read_metrics(tmp_path / name)],
                                   [m["loss"] for m in checkpoint.read_metrics(tmp_path / f"alone_{name}")], rtol=1e-4)


def test_a_killed_group_resumes_exactly_and_a_member_resumes_alone(tmp_path):
    cfgs = [_tiny(seed=0), _tiny(seed=1, setting="base"), _tiny(seed=2, setting="hint")]
    straight = [tmp_path / f"straight{s}" for s in range(3)]
    split = [tmp_path / f"split{s}" for s in range(3)]
    train_group(cfgs, straight, progress=False)
    train_group(cfgs, split, progress=False, stop_after=17)  # killed after step 17; saved at 10
    train_group(cfgs, split, resume=True, progress=False)
    strip = lambda ms: [{k: v for k, v in m.items() if k != "seconds"} for m in ms]  # noqa: E731  (wall time)
    for a, b in zip(straight, split):
        ca, cb = checkpoint.load(a), checkpoint.load(b)
        assert all(np.array_equal(ca.weights[k], cb.weights[k]) for k in ca.weights)
        assert strip(checkpoint.read_metrics(a)) == strip(checkpoint.read_metrics(b))
    # a grouped checkpoint is a single run's checkpoint: same files, same meta keys, and --resume takes it
    single = tmp_path / "single"
    train(cfgs[1], single, progress=False, stop_after=10)
    assert {p.name for p in single.iterdir()} == {p.name for p in split[1].iterdir()}
    assert set(json.loads((single / "config.json").read_text())) == set(json.loads((split[1] / "config.json")
                                                                                   .read_text()))
    train_group(cfgs, split, progress=False, stop_after=10)
    last = train(cfgs[1], split[1], resume=True, progress=False)
    assert last["step"] == 40
    np.testing.assert_allclose([m["loss"] for m in checkpoint.read_metrics(straight[1])],
                               [m["loss"] for m in checkpoint.read_metrics(split[1])], rtol=1e-4)
    # ... and runs begun alone resume as one group
    alone = [tmp_path / f"alone{s}" for s in range(3)]
    for cfg, out in zip(cfgs, alone):
        train(cfg, out, progress=False, stop_after=10)
    assert [r["step"] for r in train_group(cfgs, alone, resume=True, progress=False)] == [40, 40, 40]
    for a, b in zip(straight, alone):
        np.testing.assert_allclose([m["loss"] for m in checkpoint.read_metrics(a)],
                                   [m["loss"] for m in checkpoint.read_metrics(b)], rtol=1e-4)


def test_batches_drawn_ahead_in_workers_are_the_batches_drawn_inline(tmp_path):
    cfgs = [_tiny(seed=0, steps=12), _tiny(seed=1, setting="base", steps=12)]
    train_group(cfgs, [tmp_path / "inline0", tmp_path / "inline1"], progress=False, data_workers=0)
    train_group(cfgs, [tmp_path / "ahead0", tmp_path / "ahead1"], progress=False, data_workers=2)
    for s in range(2):
        a, b = checkpoint.load(tmp_path / f"inline{s}"), checkpoint.load(tmp_path / f"ahead{s}")
        assert all(np.array_equal(a.weights[k], b.weights[k]) for k in a.weights)


def test_runs_that_cannot_share_a_step_are_refused(tmp_path):
    with pytest.raises(ValueError, match="cannot train as one group"):
        train_group([_tiny(), _tiny(lr=1e-2, seed=1)], [tmp_path / "a", tmp_path / "b"], progress=False)
    with pytest.raises(ValueError, match="same directory"):
        train_group([_tiny(), _tiny(seed=1)], [tmp_path / "a", tmp_path / "a"], progress=False)
    assert group_key(_tiny(setting="base", seed=4)) == group_key(_tiny())  # settings and seeds may differ


def test_groups_are_planned_by_shape_device_memory_and_resume_step(tmp_path):
    profile = Profile(tasks={"modadd": {"modulus": 7}, "s5": {}}, lengths={"modadd": (4, 8), "s5": (3,)},
                      settings=("base", "cot", "hint"), depths=(1, 2), steps=100, seeds=3, d_model=32)
    cells = [Cell(t, s, d, n, seed) for t in ("modadd", "s5") for s in profile.settings for d in (1, 2)
             for n in profile.lengths[t] for seed in range(3)]
    cpu = plan_groups(profile, cells, tmp_path, "cpu", 1e12)
    assert sorted(len(g) for g in cpu) == [3] * (len(cells) // 3)  # the seeds of a cell, one exact shape
    assert all(len({(c.task, c.setting, c.layers, c.length) for c in g}) == 1 for g in cpu)
    cuda = plan_groups(profile, cells, tmp_path, "cuda", 1e12)
    # on a GPU a group spans a task's settings and lengths at one depth
    assert sorted(len(g) for g in cuda) == [9, 9, 18, 18]
    assert all(len({(c.task, c.layers) for c in g}) == 1 for g in cuda)
    small = plan_groups(profile, cells, tmp_path, "cuda", 5e7)
    assert max(len(g) for g in small) < 18 and sorted(c.key for g in small for c in g) == sorted(c.key for c in cells)
    one = cells[0]
    d = one.directory(tmp_path)
    d.mkdir(parents=True)
    (d / "config.json").write_text('{"step": 50}')
    apart = plan_groups(profile, cells, tmp_path, "cpu", 1e12)
    assert [one] in apart  # a cell resumed at step 50 cannot share a step with cells at step 0
    assert PROFILES["full"].budget("cvp") == PROFILES["full"].steps


def test_cli_trains_seeds_as_one_group(tmp_path):
    lines = cli("train", "--task", "modadd", "--param", "length=3", "--d-model", "16", "--heads", "2", "--steps", "6",
                "--seeds", "2", "--seed", "5", "--out", str(tmp_path / "r"), "--json")
    assert lines.returncode == 0, lines.stderr
    outs = [json.loads(line) for line in lines.stdout.splitlines()]
    assert [o["out"] for o in outs] == [str(tmp_path / "r/seed5"), str(tmp_path / "r/seed6")]
    assert json.loads((tmp_path / "r/seed6/config.json").read_text())["seed"] == 6
    assert cli_json("eval", str(tmp_path / "r/seed6"), "--samples", "10")["samples"] == 10
    bad = cli("train", "--task", "modadd", "--seeds", "0", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "--seeds" in bad.stderr and "Traceback" not in bad.stderr


def test_bf16_autocast_trains_on_the_cpu_too(tmp_path):
    cfg = _tiny(precision="bf16", steps=5)
    last = train(cfg, tmp_path / "bf16", progress=False)
    assert last["step"] == 5 and np.isfinite(last["loss"])
    with pytest.raises(ValueError, match="unknown precision"):
        train(_tiny(precision="fp8", steps=1), tmp_path / "fp8", progress=False)


@pytest.mark.parametrize("flag, warned", [("--autocast", False), ("--precision", True)])
def test_train_autocast_flag_and_its_old_spelling(tmp_path, flag, warned):
    """train's --precision was renamed --autocast (run's --precision is the F(e,s) format): the old spelling still
    works, with a warning naming the new one."""
    proc = cli("train", "--task", "modadd", "--param", "length=3", "--d-model", "16", "--heads", "2", "--steps", "2",
               flag, "fp32", "--out", str(tmp_path / "r"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert ("deprecated" in proc.stderr and "--autocast" in proc.stderr) == warned
    assert json.loads((tmp_path / "r/config.json").read_text())["train"]["precision"] == "fp32"
