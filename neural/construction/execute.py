"""Running a constructed model: in F(e,s) (``FiniteSession``) or an IEEE dtype (``neural.decoding.TorchSession``),
and runs checked in one pass. The sessions, the greedy loop and the teacher-forced pass are ``neural.decoding``'s,
shared with the learning half and the audit.

A run of a constructed model (``run_thm33``, ``run_cvp``) does not generate token by token when it need not. Greedy
decoding's output is the one sequence t whose every token is the argmax after the tokens before it. So a proposal p
(the reference evaluation's CoT) scored by one teacher-forced pass, with the argmax after every position equal to
the next token of p, *is* the greedy output: induction on steps, the two runs see the same prefix at every step.
From the first step where the argmax departs from p, the model's own tokens are generated greedily, as before.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grammar.errors import ParameterError
from grammar.evaluate import check_trace, evaluate
from grammar.ir import NormCircuit
from neural import cvp
from neural.config import ModelConfig
from neural.construction.constructed import ConstructedModel
from neural.construction.finite import FiniteCache, FiniteDecoder
from neural.construction.fp import FPFormat
from neural.decoding import TorchSession, greedy, teacher_forced, teacher_forced_rows


@dataclass(frozen=True)
class ExecMode:
    """``finite`` with a format, or ``ieee`` with a torch dtype name."""

    kind: str
    fmt: FPFormat | None = None
    dtype: str = "float32"

    def __str__(self) -> str:
        return f"F({self.fmt.ebits},{self.fmt.sbits})" if self.kind == "finite" else f"IEEE {self.dtype}"


class FiniteSession:
    """The finite-precision executor, one sequence at a time (F(e,s) execution is inherently sequential)."""

    def __init__(self, cfg: ModelConfig, weights: dict, fmt: FPFormat, selection=None):
        self.decoder = FiniteDecoder(cfg, weights, fmt)
        self.decoder.selection = selection
        self.cache = FiniteCache()

    def reset(self) -> None:
        self.cache = FiniteCache()

    def next_tokens(self, tokens: np.ndarray) -> np.ndarray:
        if tokens.shape[0] != 1:
            raise ValueError("finite-precision execution runs one sequence at a time")
        return np.argmax(self.decoder.forward(tokens[0], self.cache)[-1:], axis=-1)

    def predictions(self, tokens, at=None) -> np.ndarray:
        logits = self.decoder.forward(tokens)
        return np.argmax(logits if at is None else logits[at], axis=-1)

    def rows_per_pass(self, length: int) -> int:
        return 1


def session(cfg: ModelConfig, weights: dict, mode: ExecMode, device: str = "cpu", selection=None):
    """A session computing in ``mode``; ``device`` is where an IEEE mode's torch model runs. ``selection`` (a
    ``neural.selected.Selection``): whole-sequence passes gather each head's row at its selected key, where a
    proof licenses it (``neural.construction.selection``)."""
    if mode.kind == "finite":
        return FiniteSession(cfg, weights, mode.fmt, selection)
    sess = TorchSession.from_arrays(cfg, weights, mode.dtype, device)
    sess.model.selection = selection
    return sess


@dataclass(frozen=True)
class StepCheck:
    """Every CoT step of one instance, teacher-forced: what the model predicts after the correct prefix."""

    predicted: np.ndarray
    expected: np.ndarray

    @property
    def ok(self) -> np.ndarray:
        return self.predicted == self.expected

    @property
    def first_wrong(self) -> int | None:
        wrong = np.flatnonzero(~self.ok)
        return int(wrong[0]) if wrong.size else None


@dataclass(frozen=True)
class TeacherForcing:
    """What a teacher-forced check feeds and expects: ``tokens`` (B, L) (the prompt and the correct CoT but its last
    token), the positions ``steps`` whose predictions are CoT steps, and the tokens ``expected`` there (B, steps)."""

    tokens: np.ndarray
    steps: np.ndarray
    expected: np.ndarray


def thm33_teacher_forcing(nc: NormCircuit, bits) -> TeacherForcing:
    """Rows of input bits: feed the inputs and the correct gate values; one prediction per gate."""
    values = evaluate(nc, np.atleast_2d(np.asarray(bits, dtype=np.uint8))).astype(np.int64)
    return TeacherForcing(values[:, :-1], np.arange(nc.n_inputs - 1, values.shape[1] - 1), values[:, nc.n_inputs:])


def cvp_teacher_forcing(circuits: list[cvp.CVPCircuit], max_gates: int) -> TeacherForcing:
    """CVP circuits of any sizes up to ``max_gates``, padded to it: feed each prompt and its correct CoT; one
    prediction per CoT token."""
    padded = [c.padded(max_gates) for c in circuits]
    prompts = np.stack([c.prompt() for c in padded])
    cots = np.stack([c.cot() for c in padded])
    start = prompts.shape[1] - 1
    return TeacherForcing(np.concatenate([prompts, cots[:, :-1]], axis=1),
                          np.arange(start, start + cots.shape[1]), cots)


def check_thm33_teacher_forced(model: ConstructedModel, nc: NormCircuit, bits, mode: ExecMode,
                               sess=None) -> StepCheck:
    """Every gate of one input, in one pass. A teacher-forced pass keeps no state, so many checks can share one
    ``sess`` (and not rebuild the model for each)."""
    tf = thm33_teacher_forcing(nc, bits)
    pred = teacher_forced(sess or session(model.config, model.weights, mode), tf.tokens[0], tf.steps)
    return StepCheck(pred, tf.expected[0])


def check_cvp_teacher_forced(model: ConstructedModel, c: cvp.CVPCircuit, mode: ExecMode, sess=None) -> StepCheck:
    """Every CoT token of one circuit, in one pass (``sess`` as above)."""
    tf = cvp_teacher_forcing([c], model.max_gates)
    pred = teacher_forced(sess or session(model.config, model.weights, mode), tf.tokens[0], tf.steps)
    return StepCheck(pred, tf.expected[0])


# ---- runs checked in one pass --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Decoded:
    """The model's greedy output for one prompt, and how it was found."""

    tokens: np.ndarray  # (steps,)
    departure: int | None  # the first step whose argmax departs from the proposal (decoded greedily from there)
    arithmetic: str  # what computed the tokens that count

    @property
    def path(self) -> str:
        return "one-pass" if self.departure is None else "one-pass+greedy"


def decode_checked(model: ConstructedModel, forcing: TeacherForcing, mode: ExecMode, fast: ExecMode | None = None,
                   device: str = "cpu", progress=None, selection=None) -> list[Decoded]:
    """Greedy decoding of every row of ``forcing`` (its prompts, proposing its expected tokens), in one
    teacher-forced pass where the model agrees with the proposal and token by token from where it departs.

    ``fast``: an arithmetic that ``bridge`` has proved computes exactly what ``mode`` computes (torch float32 for
    F(e,s) when no dot product rounds), used for the pass; a row where it departs is decided again in ``mode``,
    the arbiter. ``progress(n)``: n CoT steps decided so far. ``selection``: the proved attention path for the
    one-pass checks (``session``); tokens generated one at a time use the dense kernel."""
    steps = forcing.expected.shape[1]
    prompt_len = int(forcing.steps[0]) + 1 if steps else forcing.tokens.shape[1]
    first = session(model.config, model.weights, fast or mode, device, selection)
    arbiter = first if fast is None else None
    first_label = str(mode) if fast is None else f"{mode}, computed exactly as {fast}"
    out = []
    for row, pred in enumerate(teacher_forced_rows(first, forcing.tokens, forcing.steps)):
        proposal, where = forcing.expected[row], first_label
        if fast is not None and not np.array_equal(pred, proposal):
            arbiter = arbiter or session(model.config, model.weights, mode, device, selection)
            pred, where = teacher_forced(arbiter, forcing.tokens[row], forcing.steps), str(mode)
        departs = np.flatnonzero(pred != proposal)
        if not departs.size:
            out.append(Decoded(proposal.copy(), None, where))
        else:
            j = int(departs[0])
            tokens = proposal.copy()
            tokens[j] = pred[j]  # the prefix is the proposal's up to here, so this is the model's own token
            if j + 1 < steps:
                prefix = np.concatenate([forcing.tokens[row, :prompt_len + j], tokens[j:j + 1]])
                done = row * steps + j + 1
                tokens[j + 1:] = greedy(arbiter, prefix, steps - j - 1,
                                        None if progress is None else lambda n, done=done: progress(done + n))
            out.append(Decoded(tokens, j, where))
        if progress is not None:
            progress((row + 1) * steps)
    return out


# ---- running circuits through the constructions --------------------------------------------------------------

@dataclass(frozen=True)
class RunResult:
    trace: np.ndarray  # one bit per normalised gate
    outputs: dict[str, int]
    first_unsound: int | None  # the first normalised gate whose CoT step is wrong, or None when every step is sound
    decoded: Decoded  # the generated CoT tokens, and how they were found

    @property
    def sound(self) -> bool:
        return self.first_unsound is None

    @property
    def tokens(self) -> np.ndarray:
        return self.decoded.tokens

    @property
    def path(self) -> str:
        return self.decoded.path

    @property
    def departure(self) -> int | None:
        """The CoT step from which the tokens were generated one at a time, or None."""
        return self.decoded.departure

    @property
    def arithmetic(self) -> str:
        return self.decoded.arithmetic


def _result(nc: NormCircuit, bits, trace, decoded: Decoded, first_wrong: int | None = None) -> RunResult:
    """``first_wrong``: a wrong step the normalised trace cannot show (a CVP token naming the wrong gate)."""
    values = np.concatenate([np.asarray(bits, dtype=np.uint8), trace])
    bad = np.flatnonzero(~check_trace(nc, bits[None], trace[None])[0])
    firsts = [int(t) for t in (bad[:1].tolist() + ([first_wrong] if first_wrong is not None else []))]
    return RunResult(trace, {name: int(values[node]) for name, node in zip(nc.output_names, nc.outputs)},
                     min(firsts) if firsts else None, decoded)


def _rows(bits) -> tuple[np.ndarray, bool]:
    bits = np.asarray(bits, dtype=np.uint8)
    return np.atleast_2d(bits), bits.ndim == 1


def run_thm33(model: ConstructedModel, nc: NormCircuit, bits, mode: ExecMode, progress=None,
              fast: ExecMode | None = None, device: str = "cpu", selection=None):
    """Run each row of input bits ((B, n) -> a list of B results; (n,) -> one result), checked in one pass."""
    batch, single = _rows(bits)
    if not len(batch):
        return []
    decoded = decode_checked(model, thm33_teacher_forcing(nc, batch), mode, fast, device, progress, selection)
    results = [_result(nc, b, d.tokens.astype(np.uint8), d) for b, d in zip(batch, decoded)]
    return results[0] if single else results


def run_cvp(model: ConstructedModel, nc: NormCircuit, bits, mode: ExecMode, progress=None,
            fast: ExecMode | None = None, device: str = "cpu", selection=None):
    """Lower each row of input bits, pad it to the model's N gates, generate the 4N CoT tokens, and check each one
    (``neural.cvp``). The trace is v(g) of every normalised gate; a run is sound when every CoT token is, the id
    tokens included. (B, n) bits -> a list of B results; (n,) -> one result."""
    batch, single = _rows(bits)
    if not len(batch):
        return []
    N = model.max_gates
    circuits = [cvp.lower(nc, b) for b in batch]
    for c in circuits:
        if c.size > N:
            raise ParameterError(f"the circuit lowers to {c.size} CVP gates but the construction takes at most {N}")
    decoded = decode_checked(model, cvp_teacher_forcing(circuits, N), mode, fast, device, progress, selection)
    results = [_cvp_result(nc, b, c.padded(N), d) for b, c, d in zip(batch, circuits, decoded)]
    return results[0] if single else results


def _cvp_result(nc: NormCircuit, bits, c: cvp.CVPCircuit, decoded: Decoded) -> RunResult:
    N = c.size
    tokens = decoded.tokens
    values = cvp.cot_values(tokens[None], N)[0]
    wrong_gate = ~cvp.check_cot(c.prompt()[None, :-1], tokens[None], N)[0].reshape(N, 4).all(axis=1)
    cvp_trace = np.where(values >= 0, values, 1 - c.evaluate())  # a non-value token is a wrong value
    gate_of_step = np.asarray(c.node_gate[nc.n_inputs:], dtype=np.int64)  # normalised gate -> its CVP gate id
    trace = cvp_trace[gate_of_step - 1].astype(np.uint8)
    first_wrong = None
    if wrong_gate.any():  # the first normalised gate whose CVP gate comes at or after the first unsound one
        later = np.flatnonzero(gate_of_step >= np.flatnonzero(wrong_gate)[0] + 1)
        first_wrong = int(later[0]) if later.size else nc.n_gates - 1
    return _result(nc, bits, trace, decoded, first_wrong)
