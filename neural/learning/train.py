"""Training the one decoder on the four tasks, alone or in groups, on the CPU here and on GPUs elsewhere.

- Fresh samples every step, drawn from ``default_rng([seed, step, rank])`` among the task's *training* prompts (the
  hash split of ``neural.learning.tasks``): the data at a step depends on nothing else, so ``--resume`` continues an
  interrupted run exactly (weights, AdamW moments and step are checkpointed).
- ``early_stop``: the run ends once greedy accuracy on *validation* prompts reaches the target at two checks in a
  row; the reported numbers come from the separate *test* prompts.
- A stop asked for by a signal (``neural.learning.interrupt``: Slurm's warning before a time limit or preemption)
  is taken at the next step boundary: every member is saved at that step, as a periodic save writes it, and
  ``Interrupted`` is raised; resuming from there continues bit for bit.
- Several processes: run under ``torchrun``; DistributedDataParallel (gloo on CPU, nccl on GPU) averages the
  gradients, each rank draws its own samples, and rank 0 alone writes.

Every run trains as a member of a *group* (a run alone is a group of one), as one ``StackedDecoder``: one forward
and backward pass and one AdamW step for every member. AdamW acts element by element, so on stacked weights it is
each member's own AdamW. What is per member stays per member:

- data: member i draws its step-t batch from ``default_rng([seed_i, t, rank])``, exactly the stream it draws alone;
- loss: each member's mean over its own labelled positions (the group's objective is their sum, whose gradient
  with respect to member i's weights is member i's gradient);
- gradient clipping: each member's global norm is clipped to 1 on its own;
- metrics, validation, early stop and checkpoints: a member that stops is saved and leaves the group, and the rest
  go on without it.

A member's checkpoint is the one a run alone writes (``neural.learning.runs.save_training``), so ``eval``, ``audit`` and
``--resume`` cannot tell a grouped run from a single one. What members must share is ``group_key``: vocabulary,
architecture, schedule, batch size, device and precision. They may differ in task length and setting (shorter
sequences are padded at the end, see ``neural.learning.stacked``), seed and early stop.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from grammar.errors import InputError, ParameterError, SourceLoc
from neural import checkpoint
from neural.config import Keys, ModelConfig
from neural.learning import interrupt
from neural.learning.evaluation import evaluate_model, validation_loss
from neural.learning.prefetch import Batches
from neural.learning.runs import (
    PLATEAU_LOSS_MARGIN,
    RunState,
    TrainConfig,
    load_training,
    lr_at,
    save_training,
    stop_reason_of,
)
from neural.learning.stacked import StackedDecoder
from neural.learning.tasks import IGNORE, SETTINGS, FoldTask
from neural.model import Decoder, resolve_device

BETAS = (0.9, 0.98)
CLIP_NORM = 1.0


RESIDUAL_PROJECTIONS = ("attn.o.weight", "ffn.fc2.weight")  # what each block adds to the residual stream


def initial_weights(model: Decoder, residual_init: str = "uniform") -> dict:
    """A freshly initialised decoder's weights (normal, std 0.02). ``residual_init="depth"`` scales the projections
    that write into the residual stream by 1 / sqrt(2 * layers), as GPT-2 does, so that the stream's variance at
    initialisation does not grow with depth."""
    weights = {k: v.detach() for k, v in model.state_dict().items()}
    if residual_init == "depth":
        scale = (2 * model.cfg.n_layers) ** -0.5
        weights = {k: v * scale if k.endswith(RESIDUAL_PROJECTIONS) else v for k, v in weights.items()}
    return weights


def group_key(cfg: TrainConfig, task: FoldTask | None = None) -> tuple:
    """What runs must share to train as one group: the vocabulary and architecture (so the weights stack), and
    the schedule, batch, device and precision (so one optimiser step serves all). Seeds, settings, task lengths
    and early-stop targets may differ."""
    task = task or cfg.make_task()
    return (tuple(task.vocab), cfg.layers, cfg.d_model, cfg.heads, cfg.d_ff, cfg.activation, cfg.layernorm, cfg.lr,
            cfg.weight_decay, cfg.batch_size, cfg.steps, cfg.warmup, cfg.time_limit, cfg.device, cfg.precision)


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` is bf16 autocast on CUDA (float32 master weights, TF32 matmuls) and float32 elsewhere: on this
    project's CPU a bf16 training step took 2.4x as long as a float32 one (docs/benchmarks.md)."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ParameterError(f"unknown precision {precision!r}: auto, bf16 or fp32")
    if precision == "auto":
        return "bf16" if device.startswith("cuda") else "fp32"
    return precision


MIN_STEP_SECONDS_ENV = "COTPROOF_MIN_STEP_SECONDS"


def min_step_seconds() -> float:
    """A floor on each step's wall time (``COTPROOF_MIN_STEP_SECONDS``; 0, the default, is none): it stretches a
    tiny run until a scheduler's time limit overtakes it, at almost no CPU, so the cluster tests need not train for
    a minute to be requeued. The steps, and so the weights, are the same."""
    text = os.environ.get(MIN_STEP_SECONDS_ENV, "").strip()
    try:
        return max(0.0, float(text or 0))
    except ValueError:
        raise ValueError(f"{MIN_STEP_SECONDS_ENV}={text!r} is not a number of seconds") from None


@dataclass
class Member:
    """One run of the group: its settings, where it writes, and the state that is its own."""

    cfg: TrainConfig
    out: Path
    task: FoldTask
    model_cfg: ModelConfig
    weights: dict  # name -> tensor: the start weights (random or resumed)
    moments: dict | None  # resumed AdamW moments, "{i}.exp_avg" -> array, or None
    start: int = 0
    elapsed: float = 0.0
    window: tuple = (0.0, 0.0, 0)
    passes: int = 0
    valid_accuracy: float | None = None
    best_valid: float | None = None
    since_best: int = 0  # validation checks since best_valid or best_loss last improved
    best_loss: float | None = None  # the lowest validation loss at a check (with plateau_patience)
    valid_loss: float | None = None  # the latest one
    stop_reason: str | None = None  # runs.STOP_REASONS, once finished
    last: dict = field(default_factory=dict)  # the latest metrics line
    result: dict | None = None  # set once the member is finished

    @property
    def seq_len(self) -> int:
        return self.model_cfg.max_len


@dataclass
class Loop:
    """What the training loop holds between steps, passed whole to the helpers that step, check, save and finish:
    the members still training, their stacked model and its AdamW (``net``: the model, or its DistributedDataParallel
    wrapper), the metrics window, and the clock (``t0``: when the run would have started, resumed time included)."""

    active: list[Member]
    model: StackedDecoder
    opt: torch.optim.Optimizer
    net: torch.nn.Module
    window: "Window"
    t0: float

    def seconds(self) -> float:
        return time.perf_counter() - self.t0


class Window:
    """Each member's loss and training-accuracy sums since its last metrics line. They stay on the device (float64,
    the same sums as Python floats): reading a loss every step would make the host wait for the GPU every step."""

    def __init__(self, members: list[Member], device: str):
        self.sums = torch.tensor([m.window[:2] for m in members], dtype=torch.float64, device=device)
        self.counts = [int(m.window[2]) for m in members]

    def add(self, losses: torch.Tensor, accuracy: torch.Tensor) -> None:
        self.sums += torch.stack([losses, accuracy], 1).double()
        self.counts = [n + 1 for n in self.counts]

    def read(self, g: int) -> tuple[float, float]:
        """Member g's means since its last line, and a fresh window."""
        loss_sum, accuracy_sum = self.sums[g].tolist()
        n, self.counts[g] = self.counts[g], 0
        self.sums[g].zero_()
        return loss_sum / n, accuracy_sum / n

    def state(self, g: int) -> tuple:
        """What a checkpoint keeps, so a resumed run logs the same lines."""
        return (*self.sums[g].tolist(), self.counts[g])

    def keep(self, members: list[int]) -> None:
        self.sums = self.sums[members]
        self.counts = [self.counts[g] for g in members]


class Group:
    """The runs of one group, trained as one ``StackedDecoder`` (see the module's docstring)."""

    def __init__(self, cfgs: list[TrainConfig], outs: list[Path], resume: bool = False, device: str | None = None):
        if not cfgs or len(cfgs) != len(outs):
            raise ValueError("a group needs one output directory per run, and at least one run")
        if len({str(Path(o).resolve()) for o in outs}) != len(outs):
            raise ValueError("two runs of one group would write to the same directory")
        if len({group_key(cfg) for cfg in cfgs}) > 1:  # before any directory is touched
            raise ValueError("these runs cannot train as one group: they differ in vocabulary, architecture, "
                             "schedule, batch size, device or precision")
        self.world, self.rank = _dist()
        self.device = device or resolve_device(cfgs[0].device)
        if self.device == "cuda" and self.world > 1:
            self.device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        self.precision = resolve_precision(cfgs[0].precision, self.device)
        self.members = [self._member(cfg, Path(out), resume) for cfg, out in zip(cfgs, outs)]
        starts = {m.start for m in self.members if m.result is None}
        if len(starts) > 1:
            raise InputError(f"the runs of a group resume from different steps {sorted(starts)}: group them by step",
                             SourceLoc(str(outs[0].parent)), expected="runs checkpointed at the same step")
        self.cfg = cfgs[0]  # the shared schedule

    # ---- members ---------------------------------------------------------------------------------------------

    def _member(self, cfg: TrainConfig, out: Path, resume: bool) -> Member:
        if cfg.setting not in SETTINGS:
            raise ValueError(f"unknown setting {cfg.setting!r}")
        task = cfg.make_task()
        member = Member(cfg, out, task, cfg.model_config(task), {}, None)
        if resume and (out / checkpoint.CONFIG).exists():
            ck, moments = load_training(out)
            saved = TrainConfig.from_dict(ck.meta["train"])
            if saved != cfg:
                differ = [f"{k} {a!r} (checkpoint) vs {b!r} (now)" for (k, a), b in
                          zip(saved.to_dict().items(), cfg.to_dict().values()) if a != b]
                raise InputError("--resume with different training settings than the checkpoint's: "
                                 + "; ".join(differ), SourceLoc(str(out / checkpoint.CONFIG)),
                                 expected="the checkpoint's own settings, or --force to start over")
            state = RunState.from_meta(ck.meta)
            member.start = state.step
            if state.early_stopped or member.start >= cfg.steps:  # finished before
                member.result = {"step": member.start, "early_stopped": state.early_stopped,
                                 "valid_accuracy": state.valid_accuracy,
                                 "stop_reason": stop_reason_of(state.to_meta(), cfg.steps)}
                return member
            member.weights = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in ck.weights.items()}
            member.moments = moments
            member.elapsed, member.window = state.elapsed, state.window
            member.passes, member.valid_accuracy = state.early_stop_passes, state.valid_accuracy
            member.best_valid, member.since_best = state.best_valid, state.checks_since_best
            member.best_loss = state.best_loss
            if self.rank == 0:  # drop lines logged after the checkpoint: they will be logged again, identically
                kept = [m for m in checkpoint.read_metrics(out) if m["step"] <= member.start]
                checkpoint.atomic_write_text(out / checkpoint.METRICS, "".join(json.dumps(m) + "\n" for m in kept))
            return member
        torch.manual_seed(cfg.seed)  # the initial weights a run alone starts from
        member.weights = initial_weights(Decoder(member.model_cfg), cfg.residual_init)
        if self.rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            (out / checkpoint.METRICS).unlink(missing_ok=True)
        return member

    # ---- the stacked model and its optimiser ------------------------------------------------------------------

    def _stack(self, active: list[Member]) -> tuple[StackedDecoder, torch.optim.Optimizer]:
        max_len = max(m.seq_len for m in active)
        shape = replace(active[0].model_cfg, max_len=max_len)

        def padded(name: str, tensor) -> torch.Tensor:
            tensor = torch.as_tensor(tensor, dtype=torch.float32)
            if name == Keys.POS_EMB and tensor.shape[0] < max_len:
                tensor = torch.cat([tensor, tensor.new_zeros(max_len - tensor.shape[0], *tensor.shape[1:])])
            return tensor

        model = StackedDecoder(shape, [{k: padded(k, v) for k, v in m.weights.items()} for m in active])
        model.to(self.device)
        opt = self._adamw(model)
        if active[0].moments is not None:
            state = {}
            for i, name in enumerate(model.names):
                state[i] = {"step": torch.tensor(float(active[0].start)),
                            **{key: torch.stack([padded(name, m.moments[f"{i}.{key}"]) for m in active]).to(self.device)
                               for key in ("exp_avg", "exp_avg_sq")}}
            current = opt.state_dict()
            current["state"] = state
            opt.load_state_dict(current)
        for m in active:  # the stack holds them now
            m.weights, m.moments = {}, None
        return model, opt

    def _adamw(self, model: StackedDecoder) -> torch.optim.Optimizer:
        return torch.optim.AdamW(model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay, betas=BETAS)

    def _shrink(self, model: StackedDecoder, opt, keep: list[int]):
        """Members ``keep`` only: the weights and AdamW state of the rest are dropped."""
        smaller = model.select(keep)
        new_opt = self._adamw(smaller)
        for old, new in zip(model.parameters(), smaller.parameters()):
            st = opt.state.get(old)
            if st:
                new_opt.state[new] = {"step": st["step"].clone(), "exp_avg": st["exp_avg"][keep].clone(),
                                      "exp_avg_sq": st["exp_avg_sq"][keep].clone()}
        return smaller, new_opt

    def _save(self, loop: Loop, g: int, step: int, stopped: bool = False) -> None:
        """Active member g's checkpoint at ``step``: its weights, AdamW moments and where it stands (``RunState``)."""
        m, model, opt = loop.active[g], loop.model, loop.opt
        state = RunState(step, loop.seconds(), loop.window.state(g), m.passes, stopped, m.valid_accuracy, m.best_valid,
                         m.since_best, m.stop_reason, m.best_loss)
        weights = model.member(g, m.seq_len)
        moments, adam_step = {}, 0.0
        for i, p in enumerate(model.parameters()):
            st = opt.state.get(p)
            if st:
                adam_step = float(st["step"])
                for key in ("exp_avg", "exp_avg_sq"):
                    value = st[key][g]
                    moments[f"{i}.{key}"] = value[:m.seq_len] if model.names[i] == Keys.POS_EMB else value
        save_training(m.out, m.cfg, m.task, m.model_cfg, weights, moments, adam_step, state)

    def _decoder(self, model: StackedDecoder, g: int, m: Member) -> Decoder:
        return Decoder.from_arrays(m.model_cfg, model.member(g, m.seq_len)).to(self.device)

    # ---- one step's data ----------------------------------------------------------------------------------------

    def _batch(self, source: Batches, active: list[Member], step: int, per_rank: int):
        """Tokens and labels (G, B, T), padded at the end to the longest member; the columns that carry a label in
        some member; and for each member its answer column's index among them."""
        batches = source.request([(m.cfg.task, m.cfg.task_params, m.cfg.setting, m.cfg.seed) for m in active], step,
                                 self.rank, per_rank, self.cfg.steps)
        t = max(tok.shape[1] for tok, _ in batches)
        tokens = np.zeros((len(active), per_rank, t), dtype=np.int64)
        labels = np.full((len(active), per_rank, t), IGNORE, dtype=np.int64)
        for g, (tok, lab) in enumerate(batches):
            tokens[g, :, :tok.shape[1]] = tok
            labels[g, :, :lab.shape[1]] = lab
        columns = np.flatnonzero((labels != IGNORE).any(axis=(0, 1)))
        answer = np.searchsorted(columns, [tok.shape[1] - 1 for tok, _ in batches])
        labels = labels[:, :, columns]
        counts = (labels != IGNORE).reshape(len(active), -1).sum(1).astype(np.float32)
        return tokens, labels, columns, answer, counts

    # ---- the loop -----------------------------------------------------------------------------------------------

    def run(self, progress: bool = True, stop_after: int | None = None, on_eval=None,
            data_workers: int | None = None) -> list[dict]:
        """``data_workers``: processes drawing batches ahead (default: a few on CUDA, none on a CPU, whose cores
        are busy training)."""
        if data_workers is None:
            data_workers = min(4, max(1, (os.cpu_count() or 2) // 4)) if self.device.startswith("cuda") else 0
        source = Batches(data_workers)
        try:
            return self._run(source, progress, stop_after, on_eval)
        finally:
            source.close()

    def _run(self, source: Batches, progress: bool, stop_after: int | None, on_eval) -> list[dict]:
        from tqdm import tqdm

        cfg, device = self.cfg, self.device
        active = [m for m in self.members if m.result is None]
        if not active:
            return [m.result for m in self.members]
        if device.startswith("cuda") and self.precision == "bf16":
            torch.backends.cuda.matmul.allow_tf32 = True  # what stays float32 under autocast
            torch.backends.cudnn.allow_tf32 = True
        model, opt = self._stack(active)
        loop = Loop(active, model, opt, self._distributed(model), Window(active, device),
                    time.perf_counter() - max(m.elapsed for m in active))
        start = step = active[0].start
        names = {f"{m.task.name}/{m.cfg.setting}" for m in active}
        bar = tqdm(total=cfg.steps, initial=start, disable=not progress or self.rank != 0, unit="step",
                   mininterval=0.1 if sys.stderr.isatty() else 10.0,  # in a log: a line every 10 s, not a flood
                   desc=(names.pop() if len(names) == 1 else f"{len(active)} runs") + f" L{cfg.layers}"
                   + (f" x{len(active)}" if len(active) > 1 else ""))
        floor = min_step_seconds()
        while step < cfg.steps and loop.active:
            step_started = time.perf_counter()
            elapsed = _shared_clock(loop.seconds(), self.world, device)  # every rank stops together
            if cfg.time_limit is not None and elapsed >= cfg.time_limit:
                break
            if stop_after is not None and step - start >= stop_after:
                break
            lr = lr_at(cfg, step, elapsed)
            loop.window.add(*self._step(source, loop, step, lr))
            step += 1
            if floor:
                time.sleep(max(0.0, floor - (time.perf_counter() - step_started)))
            bar.update(1)
            stopped = [g for g in range(len(loop.active)) if self._after_step(loop, g, step, lr, on_eval)]
            for g in stopped:
                self._finish(loop, g, step, stopped=True)
            last = loop.active[0].last
            if len(loop.active) == 1 and last.get("step") == step:
                bar.set_postfix(loss=f"{last['loss']:.4f}", acc=f"{last['train_answer_acc']:.3f}")
            if stopped:  # they leave the group: the rest go on as a smaller stack
                keep = [g for g in range(len(loop.active)) if g not in stopped]
                loop.active = [loop.active[g] for g in keep]
                loop.window.keep(keep)
                if loop.active:
                    loop.model, loop.opt = self._shrink(loop.model, loop.opt, keep)
                    loop.net = self._distributed(loop.model)
            if interrupt.requested() and loop.active:  # a scheduler's warning: save here, exactly, and stop
                bar.close()
                self._save_all(loop, step)
                raise interrupt.Interrupted(step)
            if interrupt.take_save_request() and loop.active:  # a cancellation's grace period: save, and go on
                self._save_all(loop, step)
        bar.close()
        for g in range(len(loop.active)):
            self._finish(loop, g, step, stopped=False)
        if self.world > 1:
            torch.distributed.barrier()
        return [m.result for m in self.members]

    def _step(self, source: Batches, loop: Loop, step: int, lr: float):
        """One optimiser step of every active member. Returns each member's loss and training answer accuracy (G,),
        left on the device."""
        device, active, net, model, opt = self.device, loop.active, loop.net, loop.model, loop.opt
        per_rank = max(1, self.cfg.batch_size // self.world)
        tokens, labels, columns, answer, counts = (self._to_device(a) for a in
                                                   self._batch(source, active, step, per_rank))
        for group in opt.param_groups:
            group["lr"] = lr
        autocast = torch.autocast(device.split(":")[0], dtype=torch.bfloat16) if self.precision == "bf16" \
            else contextlib.nullcontext()
        with autocast:
            logits = net(tokens, columns)
        logits = logits.float()
        g_n, vocab = logits.shape[0], logits.shape[-1]
        token_loss = F.cross_entropy(logits.reshape(-1, vocab), labels.reshape(-1), ignore_index=IGNORE,
                                     reduction="none").view(g_n, -1)
        losses = token_loss.sum(1) / counts  # each member's mean over its own labels
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        self._clip(model)
        opt.step()
        with torch.no_grad():
            members = torch.arange(g_n, device=device)
            answer_logits, answer_labels = logits[members, :, answer], labels[members, :, answer]  # (G, B, V), (G, B)
            mask = answer_labels != IGNORE
            hits = (answer_logits.argmax(-1) == answer_labels) & mask  # no boolean indexing: it syncs on CUDA
            return losses.detach(), hits.sum(1).float() / mask.sum(1).float()

    def _after_step(self, loop: Loop, g: int, step: int, lr: float, on_eval) -> bool:
        """Active member g's metrics line, validation check and checkpoint after ``step``; True once it stops early. A
        validation check at a logged step is recorded in that step's metrics line (``valid_accuracy``), which the
        learning curves read."""
        m = loop.active[g]
        checked = m.cfg.early_stop is not None and (step % m.cfg.eval_every == 0 or step == self.cfg.steps)
        if checked:
            # every rank evaluates the same weights on the same samples, so every rank stops at one step
            decoder = self._decoder(loop.model, g, m)
            m.valid_accuracy = evaluate_model(decoder, m.task, m.cfg.setting, m.cfg.eval_samples, seed=m.cfg.seed,
                                              split="valid")["accuracy"]
            loss = None
            if m.cfg.plateau_patience is not None:  # the validation loss: falling by learning, not by memorising
                loss = round(validation_loss(decoder, m.task, m.cfg.setting, m.cfg.eval_samples, m.cfg.seed), 5)
                m.valid_loss = loss
            if on_eval is not None and self.rank == 0:
                on_eval(next(i for i, x in enumerate(self.members) if x is m), step, m.valid_accuracy)
            m.passes = m.passes + 1 if m.valid_accuracy >= m.cfg.early_stop else 0
            better_loss = loss is not None and (m.best_loss is None or loss < m.best_loss * (1 - PLATEAU_LOSS_MARGIN))
            if better_loss:
                m.best_loss = loss
            if m.best_valid is None or m.valid_accuracy > m.best_valid:
                m.best_valid, m.since_best = m.valid_accuracy, 0
            else:  # checks count only after plateau_from: a plateau from the start is not convergence
                m.since_best = 0 if better_loss or step <= m.cfg.plateau_from else m.since_best + 1
        if step % m.cfg.log_every == 0 or step == self.cfg.steps:
            loss, accuracy = loop.window.read(g)
            m.last = {"step": step, "loss": round(loss, 5), "train_answer_acc": round(accuracy, 4), "lr": lr}
            if self.rank == 0:
                line = {**m.last, **({"valid_accuracy": m.valid_accuracy} if checked else {}),
                        **({"valid_loss": m.valid_loss} if checked and m.valid_loss is not None else {})}
                checkpoint.append_metrics(m.out, {**line, "seconds": round(loop.seconds(), 2)})
        if checked and m.passes >= m.cfg.early_stop_patience:
            m.stop_reason = "reached"
            return True
        if checked and m.cfg.plateau_patience is not None and m.since_best >= m.cfg.plateau_patience:
            m.stop_reason = "plateau"
            return True
        if self.rank == 0 and step % m.cfg.save_every == 0:
            self._save(loop, g, step)
        return False

    def _finish(self, loop: Loop, g: int, step: int, stopped: bool) -> None:
        """Active member g's last checkpoint and result: it stopped early (its ``stop_reason`` set), or the group's run
        ended: at the step budget or the time limit, or (``stop_after``) before either, unfinished."""
        m, seconds = loop.active[g], loop.seconds()
        if not stopped:
            m.stop_reason = ("cap" if step >= m.cfg.steps else
                             "time_limit" if m.cfg.time_limit is not None and seconds >= m.cfg.time_limit else None)
        if self.rank == 0:
            self._save(loop, g, step, stopped)
        m.result = {**m.last, "step": step, "early_stopped": stopped, "valid_accuracy": m.valid_accuracy,
                    "stop_reason": m.stop_reason}

    def _save_all(self, loop: Loop, step: int) -> None:
        """Every active member's checkpoint at ``step``, as a periodic save writes it: resuming from it continues
        the run bit for bit."""
        if self.rank == 0:
            for g in range(len(loop.active)):
                self._save(loop, g, step)

    def _distributed(self, model: StackedDecoder):
        """Under torchrun, DistributedDataParallel averages the members' gradients over the ranks."""
        return torch.nn.parallel.DistributedDataParallel(model) if self.world > 1 else model

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        """To the device without making the host wait: from pinned memory, asynchronously, on CUDA."""
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if self.device.startswith("cuda"):
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor

    @staticmethod
    def _clip(model: StackedDecoder) -> None:
        """Each member's gradient, clipped to global norm ``CLIP_NORM`` on its own (``clip_grad_norm_`` per run)."""
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        squares = torch.stack([g.pow(2).flatten(1).sum(1) for g in grads]).sum(0)  # (G,)
        scale = (CLIP_NORM / (squares.sqrt() + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(-1, *([1] * (g.ndim - 1))))


def _dist():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    rank = torch.distributed.get_rank() if world > 1 else 0
    return world, rank


def _shared_clock(elapsed: float, world: int, device: str) -> float:
    """Rank 0's elapsed time on every rank, so time limits and the schedule agree across processes."""
    if world == 1:
        return elapsed
    t = torch.tensor([elapsed], dtype=torch.float64, device=device)
    torch.distributed.broadcast(t, 0)
    return float(t.item())


def train(cfg: TrainConfig, out_dir: str | os.PathLike, resume: bool = False, progress: bool = True,
          stop_after: int | None = None, on_eval=None) -> dict:
    """One run: a group of one (``train_group``). Returns its last metrics record."""
    hear = None if on_eval is None else (lambda member, step, accuracy: on_eval(step, accuracy))
    return train_group([cfg], [out_dir], resume, progress, stop_after, hear)[0]


def train_group(cfgs: list[TrainConfig], out_dirs: list, resume: bool = False, progress: bool = True,
                stop_after: int | None = None, on_eval=None, device: str | None = None,
                data_workers: int | None = None) -> list[dict]:
    """Train several runs as one stacked model (``Group``): one forward and backward pass and one
    optimiser step for all of them, each with its own data stream, loss, clipping, metrics, early stop and
    checkpoint. Returns each run's last metrics record, in order. ``stop_after`` ends the run after that many steps
    (tests of resume); ``device`` overrides the configs' own; ``data_workers`` see ``Group.run``.

    With ``early_stop``, greedy accuracy on the *validation* split (prompts held out from training, and disjoint
    from the test split that reported numbers use) is measured every ``eval_every`` steps; a run stops once it has
    reached ``early_stop`` at ``early_stop_patience`` checks in a row, and ``on_eval(i, step, accuracy)`` hears
    every measurement of run i."""
    return Group(cfgs, [Path(d) for d in out_dirs], resume, device).run(progress, stop_after, on_eval, data_workers)
