"""A refuted query's counterexample, as an object of its kind that replays itself.

The solver's model is read back into ``values`` (the query's context and each witness label's value). Each kind
knows what its lemma claims of one component and runs that claim on the witness's concrete values, in the
model's own F(e,s) arithmetic (``neural.construction.fp``, numpy): a head on two keys, the FFN on one residual
row, the unembedding, a projection. A kind with nothing concrete to run says why instead (``NotReplayable``),
so no counterexample ends in silence. Replays in torch's IEEE arithmetic are ``bridge.replay``'s: formal never
imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

import numpy as np

from grammar.codes import sbin
from grammar.ir import Mode
from neural import cvp
from neural.config import Keys


class Kind(str, Enum):
    """What a query or a violation is about: its counterexample is the ``Witness`` subclass of that kind
    (``WITNESSES``), which replays itself or says why it cannot."""

    SCORE_BASE = "score_base"  # retrieval: the induction's base case, the empty score
    SCORE_STEP = "score_step"  # retrieval: one induction step over a bit pair of a score
    PAIR = "pair"  # retrieval in IEEE: one bit pair from an exact 0
    UNROLLED = "unrolled"  # retrieval: the first k bit pairs, unrolled (cross-checks the induction)
    SOFTMAX = "softmax"  # retrieval: the softmax over a one-hot row of weights
    VALUE = "value"  # retrieval: a head's value projection copies its field
    OUTPUT = "output"  # retrieval: attn.o copies each head dim to its field and adds 0 elsewhere
    GATE_FFN = "gate_ffn"  # one truth-table row of the FFN, in one role
    READOUT = "readout"  # the argmax over the unembedding, on a residual
    READOUT_BASE = "readout_base"  # CVP readout: the induction over code bits, its base case
    READOUT_STEP = "readout_step"  # CVP readout: one step of that induction
    PARTIAL_SUM = "partial_sum"  # order_independence: a partial sum off the grid
    TABLE = "table"  # a fact read off the weights and tables directly (no solver involved)


@dataclass(frozen=True)
class Witness:
    values: dict  # label -> value: the query's context and the solver's model

    KIND: ClassVar[Kind]

    @property
    def kind(self) -> Kind:
        return self.KIND

    def to_json(self) -> dict:
        return {"kind": self.kind.value, **self.values}

    def replay(self, model) -> dict:
        """``{"replayed": bool, ...}``: whether the claim fails on these concrete values, with what was computed."""
        raise NotImplementedError

    # ---- reading the witness's labels (made by formal.residual and the lemma modules) --------------------------

    def residual(self, width: int) -> np.ndarray:
        """The residual row the witness describes: its ``residual<column>`` values, 0 elsewhere."""
        x = np.zeros((1, width))
        for label, value in self.values.items():
            if label.startswith("residual"):
                x[0, int(label[len("residual"):])] = value
        return x

    def bit(self, label: str) -> int | None:
        """A witness's 0 or 1; None for anything else a solver may return (NaN, inf, 0.5, in tiny formats)."""
        try:
            f = float(self.values.get(label))
        except (TypeError, ValueError):
            return None
        return int(f) if f in (0.0, 1.0) else None

    def not_a_bit(self, *labels: str) -> dict:
        """No replay, said plainly: a bit-valued input is no bit, so there is no concrete residual to feed."""
        found = ", ".join(f"{k} = {self.values.get(k)}" for k in labels)
        return {"replayed": False, "why": f"the witness has {found}: not a bit, so no concrete residual to replay"}

    def head(self, model):
        return next(h for h in model.heads if h.layer == self.values["layer"] and h.head == self.values["head"])


def _sign(x: float) -> int:
    return 1 if x > 0 else 0


class ScoreStep(Witness):
    """One induction step over a bit pair of a score: run the head on two concrete keys (the mismatched one first,
    then the match) with the query the witness describes; attention must return the matching value, 1."""

    KIND = Kind.SCORE_STEP

    def positions(self) -> tuple[int, int] | None:
        v = self.values
        b = v["bit"]
        p, j = _sign(v["query_bit"]) << b, _sign(v["key_bit"]) << b
        if not v["matched_so_far"]:
            if b == 0:
                return None  # "a mismatch before bit 0" cannot happen: the solver's state is unreachable
            j |= 1
        return p, j

    def replay(self, model) -> dict:
        fmt, lay = model.fmt, model.layout
        plan = self.head(model)
        pos = self.positions()
        if pos is None:
            return {"replayed": False, "why": "the solver's state is not reachable from a real sequence"}
        p, j = pos
        X = np.zeros((3, model.config.d_model))
        X[0, lay.cols(plan.query_field)] = sbin(p, model.code_bits)
        X[1, lay.cols(plan.key_field)] = sbin(j, model.code_bits)  # the other key first, then the match
        X[2, lay.cols(plan.key_field)] = sbin(p, model.code_bits)
        X[2, lay.cols(plan.value_field)[0]] = 1.0
        keys = X[1:] if p != j else X[2:]
        (wq, bq), (wk, bk), (wv, bv) = (model.head_slice(plan, proj) for proj in "qkv")
        q, k, v = fmt.linear(X[:1], wq, bq), fmt.linear(keys, wk, bk), fmt.linear(keys, wv, bv)
        out, weights = fmt.attention(q, k, v, model.config.scale, causal_offset=None)
        got = float(out[0, 0])
        return {"replayed": got != 1.0, "query_position_code": p, "key_position_code": j,
                "attention_weights": [float(x) for x in weights[0]], "head_output": got, "expected": 1.0,
                "layer": plan.layer, "head": plan.head}


class Unrolled(ScoreStep):
    """The first k bit pairs of a score, unrolled: the same run, with both codes read off the k bits."""

    KIND = Kind.UNROLLED

    def positions(self) -> tuple[int, int]:
        bits = self.values["bits"]
        p = sum(_sign(self.values[f"query_bit{b}"]) << b for b in bits)
        j = sum(_sign(self.values[f"key_bit{b}"]) << b for b in bits)
        return p, j


class GateCase(Witness):
    """The FFN on the witness's residual, with its concrete a, b, type and role: it must write the gate's value to
    the output column and 0 everywhere else."""

    KIND = Kind.GATE_FFN

    def replay(self, model) -> dict:
        fmt, lay, plan, v = model.fmt, model.layout, model.ffn, self.values
        x = self.residual(model.config.d_model)
        a, b = self.bit("a"), self.bit("b")
        if a is None or b is None:
            return self.not_a_bit("a", "b")
        x[0, lay.col(plan.a_field)], x[0, lay.col(plan.b_field)] = a, b
        x[0, lay.cols(plan.type_field)] = np.eye(len(plan.type_ops))[v["type_index"]]
        for flag in (f for f in plan.roles if f is not None):
            x[0, lay.col(flag)] = 1.0 if v.get("role") == flag else 0.0
        hidden = fmt.relu(fmt.linear(x, *model.linear(Keys.ffn(plan.layer, "fc1"))))
        y = fmt.linear(hidden, *model.linear(Keys.ffn(plan.layer, "fc2")))
        out = lay.col(plan.output_field)
        want = np.zeros(model.config.d_model)
        want[out] = v["expected"]
        bad = np.flatnonzero(y[0] != want)
        return {"replayed": bool(bad.size), "op": v["op"], "a": a, "b": b, "ffn_output": float(y[0, out]),
                "expected": float(want[out]), "wrong_columns": [int(c) for c in bad]}


class Readout(Witness):
    """The unembedding on the witness's residual: its argmax must be the token of the value (or id) it holds."""

    KIND = Kind.READOUT

    def replay(self, model) -> dict:
        fmt, lay = model.fmt, model.layout
        x = self.residual(model.config.d_model)
        ans = self.bit("ans")
        if ans is None:
            return self.not_a_bit("ans")
        if model.mode == Mode.CVP:
            role = self.values["role"]
            for flag in ("role_id", "role_va", "role_vg"):
                x[0, lay.col(flag)] = 1.0 if flag == role else 0.0
            # the right id is the code the counters describe when every bit matched: take id 0 (NA), whose code
            # sbin(0) is all -1; where a value is next, that code is what position 0 gives, and out holds ans
            x[0, lay.cols("g_in")] = sbin(0, model.code_bits)
            x[0, lay.col(model.ffn.output_field)] = 0 if role == "role_id" else ans
            want = cvp.NA if role == "role_id" else model.vocab.index(str(ans))
        else:
            x[0, lay.col(model.ffn.output_field)] = ans
            want = ans
        logits = fmt.linear(x, *model.linear(Keys.HEAD))[0]
        got = int(np.argmax(logits))
        return {"replayed": got != want, "expected_token": model.vocab[want], "argmax_token": model.vocab[got],
                "logits": {model.vocab[want]: float(logits[want]), model.vocab[got]: float(logits[got])}}


class Value(Witness):
    """A head's value projection on the witness's value: it must copy it."""

    KIND = Kind.VALUE

    def replay(self, model) -> dict:
        plan, value_in = self.head(model), self.values["value_in"]
        x = np.zeros((1, model.config.d_model))
        x[0, model.layout.cols(plan.value_field)] = value_in
        wv, bv = model.head_slice(plan, "v")
        v = model.fmt.linear(x, wv, bv)[0, :len(model.layout.cols(plan.value_field))]
        return {"replayed": bool((v != value_in).any()), "value_in": value_in, "value_out": [float(t) for t in v]}


class Output(Witness):
    """attn.o's row on the witness's head dims: it must give the dim it copies (its source), or 0."""

    KIND = Kind.OUTPUT

    def replay(self, model) -> dict:
        cfg, layer, r = model.config, self.values["layer"], self.values["row"]
        W, b = model.linear(Keys.attn(layer, "o"))
        cols = [int(c) for c in np.flatnonzero(W[r])]
        h = np.array([[float(self.values.get(f"head_dim{j}", 0.0)) for j in range(len(cols))]])
        got = float(model.fmt.linear(h, W[r:r + 1, cols], b[r:r + 1])[0, 0])
        source = {int(col): plan.head * cfg.d_head + d for plan in model.heads if plan.layer == layer
                  and plan.output_field for d, col in enumerate(model.layout.cols(plan.output_field))}.get(r)
        want = (float(h[0, cols.index(source)]) if source in cols else float(self.values.get("source_dim", 0.0))
                if source is not None else 0.0)
        return {"replayed": got != want, "row": r, "head_dims": [float(v) for v in h[0]], "output": got,
                "expected": want}


# The kinds with nothing concrete to run, and why: their counterexamples are NotReplayable.
REASONS: dict[Kind, str] = {
    Kind.SCORE_BASE: "the induction's base case, the empty score 0: there is no position to run it at",
    Kind.PAIR: "a claim of IEEE arithmetic only: it is replayed in torch, in that dtype",
    Kind.PARTIAL_SUM: "a claim of IEEE arithmetic only: its terms are added in torch, in that dtype",
    Kind.SOFTMAX: "a claim about the softmax over an abstract one-hot row of scores, not about a position",
    Kind.READOUT_BASE: "an induction over abstract counters of code bits: no concrete residual",
    Kind.READOUT_STEP: "an induction over abstract counters of code bits: no concrete residual",
    Kind.TABLE: "read off the weights and tables directly, with no solver model: the counterexample names the entry",
}


@dataclass(frozen=True)
class NotReplayable(Witness):
    """A counterexample of a kind in ``REASONS``: its replay says why there is nothing concrete to run."""

    of: Kind = Kind.TABLE

    @property
    def kind(self) -> Kind:
        return self.of

    def replay(self, model) -> dict:
        return {"replayed": False, "why": f"no component replay: {REASONS[self.of]}"}


REPLAYABLE: dict[Kind, type[Witness]] = {cls.KIND: cls for cls in (ScoreStep, Unrolled, GateCase, Readout, Value,
                                                                   Output)}


def witness(kind: Kind, values: dict) -> Witness:
    """The counterexample of a query of ``kind``, as the object of that kind."""
    if kind in REPLAYABLE:
        return REPLAYABLE[kind](dict(values))
    return NotReplayable(dict(values), kind)
