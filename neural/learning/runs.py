"""What a training run is: its settings (``TrainConfig``), its learning-rate schedule, and its checkpoint.

- The learning rate is linear warm-up, constant, then cosine decay to 0.1x over the last 30%. Its progress is
  step/steps; with ``--time-limit`` it is the larger of that and elapsed/limit, so a time-limited run still anneals
  before it stops (such a run depends on wall time, so bit-exact ``--resume`` is promised for ``--steps`` runs).
- Checkpoints: ``model.safetensors``, ``optimizer.safetensors`` and ``config.json`` (written last, with the hashes
  of both), each replaced atomically; ``metrics.jsonl`` gets one line per log interval. A run trained alone and a
  run trained in a group (``neural.learning.train``) write the same files.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from grammar.errors import InputError, ParameterError, SourceLoc
from neural import checkpoint
from neural.config import ModelConfig
from neural.learning.tasks import FoldTask, make_task

OPTIMIZER = "optimizer.safetensors"
PLATEAU_LOSS_MARGIN = 0.01  # a validation loss this fraction below the lowest so far counts as progress
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
    residual_init: str = "uniform"  # "depth": residual projections scaled by 1/sqrt(2 * layers) (train.initial_weights)
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
    # stop, converged, after this many checks with neither a new best validation accuracy nor a validation loss 1%
    # below its lowest (PLATEAU_LOSS_MARGIN) (None: never): a model still lowering it is still learning, and one
    # that lowers only its training loss is memorising (evaluation.validation_loss)
    plateau_patience: int | None = None
    plateau_from: int = 0  # ... counting only checks after this step: S5 sits at chance for thousands of steps first
    eval_every: int = 250  # steps between those validation checks
    eval_samples: int = 256
    precision: str = "auto"  # auto: bf16 autocast on CUDA, float32 elsewhere (neural.learning.train.resolve_precision)

    def __post_init__(self):
        if self.residual_init not in ("uniform", "depth"):
            raise ParameterError(f"residual_init must be uniform or depth, not {self.residual_init!r}")
        # one order for the task's parameters, as a checkpoint's config.json reads back: the same run configured
        # with its parameters in another order is the same run (and resumes as one)
        object.__setattr__(self, "task_params", tuple(sorted(dict(self.task_params).items())))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["task_params"] = dict(self.task_params)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        d["task_params"] = tuple(d.get("task_params", {}).items())
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    def training_bytes(self) -> float:
        """A generous estimate of this run's training memory: weights, gradients and two AdamW moments in float32,
        and the activations autograd keeps (about 16 floats per width unit per token and layer, the attention
        scores, and the logits)."""
        mc = self.model_config(self.make_task())
        tokens = self.batch_size * mc.max_len
        activations = tokens * (mc.n_layers * (16 * mc.d_model + 4 * mc.d_ff + 2 * mc.n_heads * mc.max_len)
                                + 3 * mc.vocab_size)
        return 4.0 * (4 * mc.parameter_count() + activations)

    def make_task(self) -> FoldTask:
        return make_task(self.task, **dict(self.task_params))

    def model_config(self, task: FoldTask) -> ModelConfig:
        if self.d_model % self.heads:
            raise ParameterError(f"d_model {self.d_model} is not divisible by {self.heads} heads")
        return ModelConfig(vocab_size=len(task.vocab), max_len=task.seq_len(self.setting), d_model=self.d_model,
                           n_layers=self.layers, n_heads=self.heads, d_head=self.d_model // self.heads,
                           d_ff=self.d_ff, activation=self.activation, layernorm=self.layernorm)


def lr_at(cfg: TrainConfig, step: int, elapsed: float | None = None) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    if cfg.time_limit and elapsed is not None:
        progress = max(progress, min(1.0, elapsed / cfg.time_limit))
    if progress < STABLE:
        return cfg.lr
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (progress - STABLE) / (1 - STABLE))))


# Why a run ended: its validation accuracy reached the early-stop level (``reached``) or stopped improving
# (``plateau``), both converged; or it used its whole step budget (``cap``) or time limit (``time_limit``), both
# budget-bound: more training might have changed its score.
STOP_REASONS = ("reached", "plateau", "cap", "time_limit")
CONVERGED = ("reached", "plateau")


def stop_reason_of(result: dict, steps: int) -> str | None:
    """A finished run's stop reason; for a checkpoint from before reasons were recorded, read from what it has."""
    if result.get("stop_reason"):
        return result["stop_reason"]
    if result.get("early_stopped"):
        return "reached"
    return "cap" if int(result.get("step", 0)) >= steps else None


@dataclass(frozen=True)
class RunState:
    """Where a run stands: what its checkpoint records beside the weights and what a resume reads back. ``to_meta``
    and ``from_meta`` are the only writer and reader of these config.json keys, so saving and resuming cannot
    drift apart."""

    step: int
    elapsed: float = 0.0  # seconds of training so far
    window: tuple = (0.0, 0.0, 0)  # the metrics window's loss and accuracy sums and count since its last line
    early_stop_passes: int = 0  # validation checks in a row at or above the early-stop target
    early_stopped: bool = False
    valid_accuracy: float | None = None  # the latest validation accuracy, if measured
    best_valid: float | None = None  # the best validation accuracy so far ...
    checks_since_best: int = 0  # ... and the checks since it or best_loss improved (TrainConfig.plateau_patience)
    stop_reason: str | None = None  # once finished: STOP_REASONS
    best_loss: float | None = None  # the lowest validation loss seen at a check

    def to_meta(self) -> dict:
        return {"step": self.step, "elapsed_seconds": round(self.elapsed, 3), "metrics_window": list(self.window),
                "early_stop_passes": self.early_stop_passes, "early_stopped": self.early_stopped,
                "valid_accuracy": self.valid_accuracy, "best_valid_accuracy": self.best_valid,
                "checks_since_best": self.checks_since_best, "stop_reason": self.stop_reason,
                "best_loss": self.best_loss}

    @classmethod
    def from_meta(cls, meta: dict) -> "RunState":
        return cls(int(meta["step"]), float(meta.get("elapsed_seconds", 0.0)),
                   tuple(meta.get("metrics_window", (0.0, 0.0, 0))), int(meta.get("early_stop_passes", 0)),
                   bool(meta.get("early_stopped", False)), meta.get("valid_accuracy"),
                   meta.get("best_valid_accuracy"), int(meta.get("checks_since_best", 0)), meta.get("stop_reason"),
                   meta.get("best_loss"))


def save_training(out: Path, cfg: TrainConfig, task: FoldTask, model_cfg: ModelConfig,
                  weights: dict[str, torch.Tensor], moments: dict[str, torch.Tensor], adam_step: float,
                  state: RunState) -> None:
    """One model's checkpoint. ``moments`` are its AdamW moments named ``"{i}.exp_avg"``/``"{i}.exp_avg_sq"`` with
    i its parameter's index in ``Decoder.parameters()``, the layout of ``torch.optim.AdamW.state_dict()``, so a
    run trained alone and a run trained in a group write the same files."""
    from safetensors.numpy import save as st_save

    payload = st_save({k: np.ascontiguousarray(v.detach().float().cpu().numpy()) for k, v in moments.items()})
    scalars = {f"{i}.step": float(adam_step) for i in range(len(weights))} if moments else {}
    meta = {"kind": "trained", "task": {"kind": task.name, **task.params}, "setting": cfg.setting,
            "vocab": list(task.vocab), "seed": cfg.seed, "train": cfg.to_dict(), **state.to_meta(),
            "optimizer_scalars": scalars, "optimizer_sha256": hashlib.sha256(payload).hexdigest()}
    raw = {k: v.detach().to(torch.float32).cpu().numpy() for k, v in weights.items()}
    checkpoint.save(out, model_cfg, raw, meta, extra_files={OPTIMIZER: payload})


def load_training(out: Path):
    from safetensors.numpy import load as st_load

    checkpoint.recover(out)  # the resuming writer finishes a checkpoint write that a kill interrupted
    ck = checkpoint.load(out)
    payload = (out / OPTIMIZER).read_bytes() if (out / OPTIMIZER).exists() else None
    if payload is None or hashlib.sha256(payload).hexdigest() != ck.meta.get("optimizer_sha256"):
        raise InputError(f"{OPTIMIZER} is missing or does not match config.json: cannot resume exactly",
                         SourceLoc(str(out / OPTIMIZER)), expected="the optimizer state written with the checkpoint")
    return ck, st_load(payload)
