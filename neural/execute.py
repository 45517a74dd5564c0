"""Greedy CoT generation with a KV cache and teacher-forced checking, in the finite and the IEEE modes.

A *session* feeds tokens and returns logits, keeping its own cache; the greedy loop and the teacher-forced pass are
written once, over either session, so both modes are driven by the same code.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grammar.evaluate import check_trace
from grammar.ir import NormCircuit
from neural.config import ModelConfig
from neural.construct import ConstructedModel, build_cvp, build_thm33
from neural.encode import CVPCircuit, cvp_cot_tokens, cvp_decode, cvp_prompt, lower_to_cvp
from neural.finite import FiniteCache, FiniteDecoder
from neural.fp import FPFormat

IEEE_DTYPES = ("float32", "float16", "bfloat16", "float64")


@dataclass(frozen=True)
class ExecMode:
    """``finite`` with a format, or ``ieee`` with a torch dtype name."""

    kind: str
    fmt: FPFormat | None = None
    dtype: str = "float32"

    def __str__(self) -> str:
        return f"F({self.fmt.ebits},{self.fmt.sbits})" if self.kind == "finite" else f"IEEE {self.dtype}"


class FiniteSession:
    def __init__(self, cfg: ModelConfig, weights: dict, fmt: FPFormat):
        self.decoder = FiniteDecoder(cfg, weights, fmt)
        self.cache = FiniteCache()

    def feed(self, tokens) -> np.ndarray:
        return self.decoder.forward(tokens, self.cache)

    def all_logits(self, tokens) -> np.ndarray:
        return self.decoder.forward(tokens)


class TorchSession:
    def __init__(self, cfg: ModelConfig, weights: dict, dtype: str, device: str = "cpu"):
        import torch

        from neural.model import Decoder, KVCache

        self.torch = torch
        self.device = device
        self.model = Decoder.from_arrays(cfg, weights, getattr(torch, dtype)).to(device)
        self.cache = KVCache()

    def _run(self, tokens, cache):
        with self.torch.inference_mode():
            t = self.torch.as_tensor(np.asarray(tokens, dtype=np.int64), device=self.device)[None]
            logits, _ = self.model(t, cache)
        return logits[0].to(self.torch.float64).cpu().numpy()

    def feed(self, tokens) -> np.ndarray:
        return self._run(tokens, self.cache)

    def all_logits(self, tokens) -> np.ndarray:
        return self._run(tokens, None)


def session(cfg: ModelConfig, weights: dict, mode: ExecMode):
    if mode.kind == "finite":
        return FiniteSession(cfg, weights, mode.fmt)
    return TorchSession(cfg, weights, mode.dtype)


def greedy(sess, prompt, steps: int, progress=None) -> np.ndarray:
    """Feed the prompt, then ``steps`` times append the argmax token (ties go to the lowest token id)."""
    out = []
    logits = sess.feed(prompt)[-1]
    for i in range(steps):
        tok = int(np.argmax(logits))
        out.append(tok)
        if progress is not None:
            progress(i + 1)
        if i + 1 < steps:
            logits = sess.feed([tok])[-1]
    return np.array(out, dtype=np.int64)


def teacher_forced(sess, tokens) -> np.ndarray:
    """One pass over the whole sequence: the argmax prediction after every position."""
    return np.argmax(sess.all_logits(tokens), axis=-1)


# ---- running circuits through the constructions --------------------------------------------------------------

@dataclass(frozen=True)
class RunResult:
    trace: np.ndarray  # one bit per normalised gate
    outputs: dict[str, int]
    sound: bool
    tokens: np.ndarray  # the generated CoT tokens


def _result(nc: NormCircuit, bits, trace) -> RunResult:
    values = np.concatenate([np.asarray(bits, dtype=np.uint8), trace])
    sound = bool(check_trace(nc, bits[None], trace[None]).all())
    return RunResult(trace, {name: int(values[node]) for name, node in zip(nc.output_names, nc.outputs)}, sound,
                     np.asarray(trace))


def run_thm33(model: ConstructedModel, nc: NormCircuit, bits, mode: ExecMode, progress=None) -> RunResult:
    bits = np.asarray(bits, dtype=np.uint8)
    tokens = greedy(session(model.config, model.weights, mode), bits, nc.n_gates, progress)
    return _result(nc, bits, tokens.astype(np.uint8))


def run_cvp(model: ConstructedModel, nc: NormCircuit, bits, mode: ExecMode, progress=None) -> RunResult:
    bits = np.asarray(bits, dtype=np.uint8)
    c = lower_to_cvp(nc, bits)
    N = model.meta["max_gates"]
    if c.size > N:
        raise ValueError(f"the circuit lowers to {c.size} CVP gates but the construction takes at most {N}")
    tokens = greedy(session(model.config, model.weights, mode), cvp_prompt(c), c.size, progress)
    ids, values = cvp_decode(tokens, N)
    named_right = ids == np.arange(1, c.size + 1)
    cvp_trace = np.where(named_right, values, 1 - c.evaluate())  # a token naming the wrong gate is a wrong step
    trace = cvp_trace[np.asarray(c.node_gate[nc.n_inputs:], dtype=np.int64) - 1].astype(np.uint8)
    result = _result(nc, bits, trace)
    return RunResult(trace, result.outputs, result.sound and bool(c.check(cvp_trace).all()), tokens)


def check_cvp_teacher_forced(model: ConstructedModel, c: CVPCircuit, mode: ExecMode) -> np.ndarray:
    """Feed the prompt and the *correct* CoT in one pass; True where the model predicts the next CoT token."""
    N = model.meta["max_gates"]
    cot = cvp_cot_tokens(c.evaluate(), N)
    prompt = cvp_prompt(c)
    pred = teacher_forced(session(model.config, model.weights, mode), np.concatenate([prompt, cot[:-1]]))
    return pred[len(prompt) - 1:] == cot


def check_thm33_teacher_forced(model: ConstructedModel, nc: NormCircuit, bits, mode: ExecMode) -> np.ndarray:
    from grammar.evaluate import evaluate

    values = evaluate(nc, np.asarray(bits, dtype=np.uint8)[None])[0]
    pred = teacher_forced(session(model.config, model.weights, mode), values[:-1])
    return pred[nc.n_inputs - 1:] == values[nc.n_inputs:]


def build(mode_name: str, nc: NormCircuit | None, fmt: FPFormat, key_scale=None, max_gates: int | None = None,
          bits=None) -> ConstructedModel:
    """The construction for a run: Theorem 3.3 for the circuit, or CVP sized to fit the lowered circuit."""
    if mode_name == "thm33":
        return build_thm33(nc, fmt, key_scale)
    if max_gates is None:
        max_gates = lower_to_cvp(nc, np.zeros(nc.n_inputs, dtype=np.uint8) if bits is None else bits).size
    return build_cvp(max_gates, fmt, key_scale)
