"""Training the one decoder on the four tasks, on the CPU here and on a GPU (or several) elsewhere.

- Fresh samples every step, drawn from ``default_rng([seed, step, rank])`` among the task's *training* prompts (the
  hash split of ``neural.tasks``): the data at a step depends on nothing else, so ``--resume`` continues an
  interrupted run exactly (weights, AdamW moments and step are checkpointed).
- The learning rate is linear warm-up, constant, then cosine decay to 0.1x over the last 30%. Its progress is
  step/steps; with ``--time-limit`` it is the larger of that and elapsed/limit, so a time-limited run still anneals
  before it stops (such a run depends on wall time, so bit-exact ``--resume`` is promised for ``--steps`` runs).
- ``early_stop``: the run ends once greedy accuracy on *validation* prompts reaches the target at two checks in a
  row; the reported numbers come from the separate *test* prompts.
- Checkpoints: ``model.safetensors``, ``optimizer.safetensors`` and ``config.json`` (written last, with the hashes
  of both), each replaced atomically; ``metrics.jsonl`` gets one line per log interval.
- Several processes: run under ``torchrun``; DistributedDataParallel (gloo on CPU, nccl on GPU) averages the
  gradients, each rank draws its own samples, and rank 0 alone writes.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from neural import checkpoint
from neural.config import ModelConfig
from neural.model import Decoder
from neural.tasks import IGNORE, SETTINGS, FoldTask, make_task

OPTIMIZER = "optimizer.safetensors"
STABLE = 0.7  # warm-up, constant rate until 70% of the budget, then cosine to 0.1x (tasks that "grok", like S5,
# need the full rate until they do; an early decay left S5's last CoT position at chance in a 240 s run)


@dataclass(frozen=True)
class TrainConfig:
    task: str
    task_params: tuple = ()
    setting: str = "cot"
    layers: int = 1
    d_model: int = 128
    heads: int = 4
    d_ff: int = 512
    activation: str = "gelu"
    layernorm: bool = True
    lr: float = 2e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    steps: int = 100_000
    warmup: int = 100
    time_limit: float | None = None
    seed: int = 0
    device: str = "auto"
    log_every: int = 50
    save_every: int = 500
    early_stop: float | None = None  # stop once the accuracy on the validation split reaches this ...
    early_stop_patience: int = 2  # ... at this many checks in a row (one lucky check is not a learned task)
    eval_every: int = 250  # steps between those validation checks
    eval_samples: int = 256

    def to_dict(self) -> dict:
        d = asdict(self)
        d["task_params"] = dict(self.task_params)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        d["task_params"] = tuple(sorted(d.get("task_params", {}).items()))
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    def make_task(self) -> FoldTask:
        return make_task(self.task, **dict(self.task_params))

    def model_config(self, task: FoldTask) -> ModelConfig:
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by {self.heads} heads")
        return ModelConfig(vocab_size=len(task.vocab), max_len=task.seq_len(self.setting), d_model=self.d_model,
                           n_layers=self.layers, n_heads=self.heads, d_head=self.d_model // self.heads,
                           d_ff=self.d_ff, activation=self.activation, layernorm=self.layernorm)


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device")
    return name


def lr_at(cfg: TrainConfig, step: int, elapsed: float | None = None) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    if cfg.time_limit and elapsed is not None:
        progress = max(progress, min(1.0, elapsed / cfg.time_limit))
    if progress < STABLE:
        return cfg.lr
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (progress - STABLE) / (1 - STABLE))))


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


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, np.ndarray], dict]:
    state = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in state["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value) and value.ndim > 0:
                tensors[f"{pid}.{key}"] = value.detach().cpu().numpy()
            else:
                scalars[f"{pid}.{key}"] = float(value)
    return tensors, scalars


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, np.ndarray], scalars: dict) -> None:
    state = {}
    for name, arr in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = torch.as_tensor(arr)
    for name, value in scalars.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = torch.tensor(value)
    current = opt.state_dict()
    current["state"] = state
    opt.load_state_dict(current)


def save_training(out: Path, model: Decoder, opt, cfg: TrainConfig, task: FoldTask, step: int,
                  elapsed: float, window: tuple = (0.0, 0.0, 0), finish: dict | None = None) -> None:
    from safetensors.numpy import save as st_save

    tensors, scalars = _optimizer_tensors(opt)
    payload = st_save({k: np.ascontiguousarray(v) for k, v in tensors.items()}) if tensors else st_save({})
    meta = {"kind": "trained", "task": {"kind": task.name, **task.params}, "setting": cfg.setting,
            "vocab": list(task.vocab), "seed": cfg.seed, "train": cfg.to_dict(), "step": step,
            "elapsed_seconds": round(elapsed, 3), "optimizer_scalars": scalars, "metrics_window": list(window),
            "optimizer_sha256": hashlib.sha256(payload).hexdigest(), **(finish or {})}
    raw = {k: v.detach().to(torch.float32).cpu().numpy() for k, v in model.state_dict().items()}
    checkpoint.save(out, model.cfg, raw, meta, extra_files={OPTIMIZER: payload})


def load_training(out: Path):
    from safetensors.numpy import load as st_load

    ck = checkpoint.load(out)  # finishes a checkpoint write that a kill interrupted
    payload = (out / OPTIMIZER).read_bytes() if (out / OPTIMIZER).exists() else None
    if payload is None or hashlib.sha256(payload).hexdigest() != ck.meta.get("optimizer_sha256"):
        raise ValueError(f"{out / OPTIMIZER} is missing or does not match config.json: cannot resume exactly")
    return ck, st_load(payload)


def train(cfg: TrainConfig, out_dir: str | os.PathLike, resume: bool = False, progress: bool = True,
          stop_after: int | None = None, on_eval=None) -> dict:
    """Returns the last metrics record. ``stop_after`` ends the run after that many steps (tests of resume).

    With ``cfg.early_stop``, greedy accuracy on the *validation* split (prompts held out from training, and
    disjoint from the test split that reported numbers use) is measured every ``eval_every`` steps; the run stops
    once it has reached ``early_stop`` at ``early_stop_patience`` checks in a row, and ``on_eval(step, accuracy)``
    hears every measurement."""
    from tqdm import tqdm

    world, rank = _dist()
    out = Path(out_dir)
    device = resolve_device(cfg.device)
    if device == "cuda" and world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    task = cfg.make_task()
    if cfg.setting not in SETTINGS:
        raise ValueError(f"unknown setting {cfg.setting!r}")
    torch.manual_seed(cfg.seed)
    model = Decoder(cfg.model_config(task)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    start_step, elapsed0, window, passes = 0, 0.0, (0.0, 0.0, 0), 0
    if resume and (out / checkpoint.CONFIG).exists():
        ck, opt_tensors = load_training(out)
        if TrainConfig.from_dict(ck.meta["train"]) != cfg:
            raise ValueError("--resume with different training settings than the checkpoint's")
        if ck.meta.get("early_stopped"):  # finished: reached the target before its budget
            return {"step": int(ck.meta["step"]), "early_stopped": True,
                    "valid_accuracy": ck.meta.get("valid_accuracy")}
        model.load_state_dict({k: torch.as_tensor(v, dtype=torch.float32) for k, v in ck.weights.items()})
        _load_optimizer(opt, opt_tensors, ck.meta["optimizer_scalars"])
        start_step, elapsed0 = int(ck.meta["step"]), float(ck.meta.get("elapsed_seconds", 0.0))
        window = tuple(ck.meta.get("metrics_window", (0.0, 0.0, 0)))
        passes = int(ck.meta.get("early_stop_passes", 0))
        if rank == 0:  # drop lines logged after the checkpoint: they will be logged again, identically
            kept = [m for m in checkpoint.read_metrics(out) if m["step"] <= start_step]
            checkpoint.atomic_write_text(out / checkpoint.METRICS, "".join(json.dumps(m) + "\n" for m in kept))
    elif rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / checkpoint.METRICS).unlink(missing_ok=True)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    per_rank = max(1, cfg.batch_size // world)
    t0 = time.perf_counter() - elapsed0
    bar = tqdm(total=cfg.steps, initial=start_step, disable=not progress or rank != 0, unit="step",
               desc=f"{cfg.task}/{cfg.setting} L{cfg.layers}")
    last: dict = {}
    step = start_step
    stopped, valid_accuracy = False, None
    # the running sums since the last metrics line stay on the device (float64, so the same sums as Python
    # floats): reading a loss every step would make the host wait for the GPU at every step
    window_sums = torch.tensor(window[:2], dtype=torch.float64, device=device)
    window_n = int(window[2])

    def window_now() -> tuple:
        return (*window_sums.tolist(), window_n)
    while step < cfg.steps:
        elapsed = _shared_clock(time.perf_counter() - t0, world, device)  # every rank stops at the same step
        if cfg.time_limit is not None and elapsed >= cfg.time_limit:
            break
        if stop_after is not None and step - start_step >= stop_after:
            break
        batch = task.batch(np.random.default_rng([cfg.seed, step, rank]), per_rank, cfg.setting)
        tokens = torch.as_tensor(batch.tokens, device=device)
        labels = torch.as_tensor(batch.labels, device=device)
        lr = lr_at(cfg, step, elapsed)
        for group in opt.param_groups:
            group["lr"] = lr
        logits, _ = net(tokens)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        with torch.no_grad():
            mask = labels[:, -1] != IGNORE
            hits = (logits[:, -1].argmax(-1) == labels[:, -1]) & mask  # no boolean indexing: it syncs on CUDA
            answer_acc = hits.sum().float() / mask.sum().float()
            window_sums += torch.stack([loss.detach(), answer_acc]).double()
        window_n += 1
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            window_loss, window_acc = window_sums.tolist()
            last = {"step": step, "loss": round(window_loss / window_n, 5),
                    "train_answer_acc": round(window_acc / window_n, 4), "lr": lr}
            window_sums.zero_()
            window_n = 0
            bar.set_postfix(loss=f"{last['loss']:.4f}", acc=f"{last['train_answer_acc']:.3f}")
            if rank == 0:
                checkpoint.append_metrics(out, {**last, "seconds": round(time.perf_counter() - t0, 2)})
        if cfg.early_stop is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
            # every rank evaluates the same weights on the same samples, so every rank stops at the same step
            valid_accuracy = evaluate_model(model, task, cfg.setting, cfg.eval_samples, seed=cfg.seed,
                                            split="valid")["accuracy"]
            model.train()
            if on_eval is not None and rank == 0:
                on_eval(step, valid_accuracy)
            passes = passes + 1 if valid_accuracy >= cfg.early_stop else 0
            stopped = passes >= cfg.early_stop_patience
            if stopped:
                break
        if rank == 0 and step % cfg.save_every == 0:
            save_training(out, model, opt, cfg, task, step, time.perf_counter() - t0, window_now(),
                          {"early_stop_passes": passes})
    bar.close()
    if rank == 0:
        save_training(out, model, opt, cfg, task, step, time.perf_counter() - t0, window_now(),
                      {"early_stopped": stopped, "valid_accuracy": valid_accuracy, "early_stop_passes": passes})
    if world > 1:
        torch.distributed.barrier()
    return {**last, "step": step, "early_stopped": stopped, "valid_accuracy": valid_accuracy}


# ---- evaluation ------------------------------------------------------------------------------------------------

def generate(model: Decoder, prompts, steps: int) -> np.ndarray:
    """Batched greedy decoding with the KV cache: ``neural.execute.greedy`` over the module."""
    from neural.execute import TorchSession, greedy

    return greedy(TorchSession(model), np.asarray(prompts), steps)


def load_trained(directory) -> tuple[Decoder, FoldTask, str, dict]:
    from grammar.errors import InputError, SourceLoc

    ck = checkpoint.load(directory)
    if "task" not in ck.meta or "setting" not in ck.meta:
        raise InputError("this checkpoint names no task and setting (a compiled construction?)",
                         SourceLoc(str(Path(directory) / checkpoint.CONFIG)),
                         expected='"task" and "setting" in config.json')
    spec = dict(ck.meta["task"])
    try:
        task = make_task(spec.pop("kind", None), **spec)
    except (TypeError, ValueError) as err:  # a config from another version, or edited by hand
        raise InputError(f"config.json names a task this version cannot build: {err}",
                         SourceLoc(str(Path(directory) / checkpoint.CONFIG)),
                         expected="a task written by this version of cotproof train") from None
    if list(task.vocab) != list(ck.meta.get("vocab", task.vocab)):
        raise InputError("the checkpoint's vocabulary differs from its task's", SourceLoc(str(directory)),
                         expected="a checkpoint written by cotproof train")
    model = Decoder.from_arrays(ck.config, ck.weights)
    return model, task, ck.meta["setting"], ck.meta


def evaluate_model(model: Decoder, task: FoldTask, setting: str, samples: int = 1000, seed: int = 1234,
                   batch_size: int = 250, split: str = "test") -> dict:
    """Greedy answer accuracy on fresh samples of one split (by default the held-out test prompts, which training
    never draws), per-position CoT accuracy, and CoT soundness."""
    rng = np.random.default_rng(seed)
    correct, total, per_pos, sound_steps, steps = 0, 0, None, 0, 0
    model.eval()
    device = next(model.parameters()).device
    while total < samples:
        n = min(batch_size, samples - total)
        b = task.batch(rng, n, "cot", split)  # the prompt is the same in every setting
        prompts = b.tokens[:, :b.prompt_len]
        if setting == "cot":
            gen = generate(model, prompts, task.n_steps)
            answer = gen[:, -1]
            hits = gen == b.cot
            per_pos = hits.sum(0) if per_pos is None else per_pos + hits.sum(0)
            written = gen
        else:
            with torch.inference_mode():
                logits, _ = model(torch.as_tensor(prompts, device=device))
            answer = logits[:, -1].argmax(-1).cpu().numpy()
            # hint: the states the model reads out at the labelled prompt positions are its intermediate steps
            written = logits[:, task.hint_positions].argmax(-1).cpu().numpy() if setting == "hint" else None
        if written is not None:
            ok = task.check_steps(b.tokens[:, :task.n_prompt], written)
            sound_steps, steps = sound_steps + int(ok.sum()), steps + ok.size
        correct += int((answer == b.answer).sum())
        total += n
    out = {"accuracy": correct / total, "samples": total, "seed": seed, "setting": setting, "task": task.name,
           "split": split}
    if per_pos is not None:
        out["cot_position_accuracy"] = [round(float(x) / total, 4) for x in per_pos]
    if steps:  # each written (cot) or read-out (hint) state checked against the step applied to the one before
        out["unsound_step_rate"] = 1 - sound_steps / steps
    return out
